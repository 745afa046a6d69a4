"""Validation cost per inbound message against the shipped FIX.4.4 dictionary.

Messages are parsed once; each round validates the same parsed message, so the
figures are validation alone (parse cost is in the codec benchmarks).
"""

from __future__ import annotations

from fastfix.codec import encode, parse
from fastfix.dictionary import DataDictionary, ValidationOptions

DD = DataDictionary.load("FIX.4.4")
TS = "20240307-09:15:02.123"
HEADER = [(49, "FINTECH01"), (56, "STPHUB"), (34, 1234), (52, TS), (128, "BROKER07")]

NEW_ORDER_SINGLE = parse(encode("FIX.4.4", "D", HEADER + [
    (11, "ORD-20240307-000001"), (1, "ACC-7788990011"), (21, "1"),
    (453, [[(448, "ADVISOR-42"), (447, "D"), (452, "3")]]),
    (55, "005930"), (48, "KR7005930003"), (22, "4"), (207, "XKRX"), (54, "1"),
    (60, TS), (38, "100"), (40, "2"), (44, "71500"), (59, "0"), (15, "KRW"),
]))

EXECUTION_REPORT = parse(encode("FIX.4.4", "8", HEADER + [
    (37, "KRX-0000012345"), (11, "ORD-20240307-000001"), (17, "EXEC-0000067890"),
    (150, "F"), (39, "1"), (1, "ACC-7788990011"), (55, "005930"), (48, "KR7005930003"),
    (22, "4"), (207, "XKRX"), (54, "1"), (38, "100"), (40, "2"), (44, "71500"),
    (59, "0"), (32, "40"), (31, "71500"), (151, "60"), (14, "40"), (6, "71500"),
    (60, TS), (15, "KRW"), (58, "partial fill"),
]))

NEW_ORDER_LIST = parse(encode("FIX.4.4", "E", HEADER + [
    (66, "LIST-1"), (394, "1"), (68, "3"),
    (73, [
        [(11, f"L1-{i}"), (67, str(i + 1)),
         (453, [[(448, "ADVISOR-42"), (447, "D"), (452, "3")]]),
         (55, code), (54, "1"), (38, "10"), (40, "2"), (44, "50000")]
        for i, code in enumerate(("005930", "000660", "035420"))
    ]),
]))


def test_messages_are_valid() -> None:
    for m in (NEW_ORDER_SINGLE, EXECUTION_REPORT, NEW_ORDER_LIST):
        assert DD.validate(m) is None


def test_validate_new_order_single(benchmark) -> None:
    assert benchmark(DD.validate, NEW_ORDER_SINGLE) is None


def test_validate_execution_report(benchmark) -> None:
    assert benchmark(DD.validate, EXECUTION_REPORT) is None


def test_validate_new_order_list_nested_groups(benchmark) -> None:
    assert benchmark(DD.validate, NEW_ORDER_LIST) is None


def test_validate_rejected_enum(benchmark) -> None:
    msg = parse(encode("FIX.4.4", "D", HEADER + [
        (11, "X"), (21, "4"), (55, "005930"), (54, "1"), (60, TS), (38, "1"), (40, "1")]))
    res = benchmark(DD.validate, msg, ValidationOptions())
    assert res is not None and res.reason == 5


def test_validate_field_list(benchmark) -> None:
    fields = NEW_ORDER_SINGLE.fields()
    assert benchmark(DD.validate_fields, fields) is None
