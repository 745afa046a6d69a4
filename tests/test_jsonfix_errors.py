"""JSON -> FIX errors: every class, with path, field and reason; all errors collected."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastfix.errors import FieldError, JsonMappingError
from fastfix.jsonfix import JsonCodec

BASE = {"ClOrdID": "A", "Side": "1", "OrdType": "2", "TransactTime": "20240102-09:00:00"}


@pytest.fixture(scope="module")
def codec() -> JsonCodec:
    return JsonCodec("FIX.4.4", max_bytes=4096, max_depth=8)


def errors_of(codec: JsonCodec, body: Any, msg_type: str = "D") -> list[FieldError]:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    with pytest.raises(JsonMappingError) as info:
        codec.body_to_fix(msg_type, data)
    assert str(info.value)  # a readable message
    return info.value.errors


def one_error(codec: JsonCodec, body: Any, msg_type: str = "D") -> FieldError:
    errs = errors_of(codec, body, msg_type)
    assert len(errs) == 1, errs
    return errs[0]


def test_invalid_json(codec: JsonCodec) -> None:
    e = one_error(codec, b'{"ClOrdID": "A",')
    assert (e.path, e.field) == ("$", "")
    assert e.reason.startswith("invalid JSON")


def test_body_must_be_an_object(codec: JsonCodec) -> None:
    e = one_error(codec, b'["ClOrdID"]')
    assert (e.path, e.reason) == ("$", "expected an object, got array")


def test_oversized_input(codec: JsonCodec) -> None:
    body = dict(BASE, Text="x" * 5000)
    e = one_error(codec, body)
    assert e.path == "$"
    assert "exceeds the limit of 4096 bytes" in e.reason


def test_excessive_nesting(codec: JsonCodec) -> None:
    base = msgspec.json.encode(BASE)[:-1]
    e = one_error(codec, base + b',"Text":' + b"[" * 20 + b"]" * 20 + b"}")
    assert (e.path, e.field, e.reason) == ("$.Text", "Text", "nesting deeper than 8 levels")
    e = one_error(codec, dict(BASE, NoPartyIDs=[{"PartyID": "P", "PartyRole": {"a": [[[[[[1]]]]]]}}]))
    assert (e.path, e.field, e.reason) == ("$.NoPartyIDs[0].PartyRole", "PartyRole",
                                           "nesting deeper than 8 levels")
    # within the limit it is just the wrong type
    e = one_error(codec, dict(BASE, Text=[[1]]))
    assert e.reason == "expected a string, got array"


def test_runaway_nesting_is_refused_without_exhausting_the_stack() -> None:
    big = JsonCodec("FIX.4.4", max_bytes=1 << 20)
    e = one_error(big, b'{"Text":' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    assert (e.path, e.field) == ("$", "")
    assert e.reason == "nesting deeper than 16 levels"


def test_group_nesting_limit_counts_levels() -> None:
    shallow = JsonCodec("FIX.4.4", max_depth=4)
    body = dict(BASE, NoPartyIDs=[{"PartyID": "P", "NoPartySubIDs": [{"PartySubID": "S"}]}])
    e = one_error(shallow, body)
    assert (e.path, e.field) == ("$.NoPartyIDs[0].NoPartySubIDs", "NoPartySubIDs")
    assert e.reason == "nesting deeper than 4 levels"
    # one group level (body, array, entry) fits
    assert shallow.body_to_fix("D", msgspec.json.encode(dict(BASE, NoPartyIDs=[{"PartyID": "P"}])))


def test_unknown_message_type(codec: JsonCodec) -> None:
    e = one_error(codec, BASE, msg_type="ZZ")
    assert (e.path, e.field) == ("$", "MsgType")
    assert "unknown message type 'ZZ'" in e.reason


def test_unknown_field(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, ClientOrderId="x"))
    assert (e.path, e.field, e.reason) == ("$.ClientOrderId", "ClientOrderId", "unknown field")


def test_unknown_low_tag_number_is_unknown(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, **{"4999": "x"}))
    assert (e.path, e.field, e.reason) == ("$.4999", "4999", "unknown field")


def test_dictionary_field_by_tag_number_is_refused(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, **{"44": "1"}))
    assert (e.path, e.field) == ("$.44", "44")
    assert e.reason == "use the field name Price instead of the tag number 44"


def test_field_not_allowed_in_message(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, BidType="1"))
    assert (e.path, e.field) == ("$.BidType", "BidType")
    assert e.reason == "field BidType (394) is not allowed in NewOrderSingle (35=D)"


def test_header_field_not_allowed_in_body(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, SenderCompID="ME"))
    assert (e.path, e.field) == ("$.SenderCompID", "SenderCompID")
    assert "not allowed in NewOrderSingle" in e.reason


def test_user_defined_field_not_allowed_inside_group(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, NoPartyIDs=[{"PartyID": "P", "5001": "x"}]))
    assert (e.path, e.field) == ("$.NoPartyIDs[0].5001", "5001")
    assert e.reason == "user-defined field 5001 is not allowed in NoPartyIDs entry"


def test_user_defined_fields_can_be_refused() -> None:
    strict = JsonCodec("FIX.4.4", allow_user_defined=False)
    e = one_error(strict, dict(BASE, **{"5001": "x"}))
    assert (e.path, e.reason) == ("$.5001", "unknown field")


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("ClOrdID", {"a": 1}, "expected a string, got object"),
    ("ClOrdID", ["A"], "expected a string, got array"),
    ("ClOrdID", None, "expected a string, got null"),
    ("ClOrdID", 12, "expected a string, got number"),
    ("Side", True, "expected a string, got boolean"),
    ("OrderQty", [1], "expected a string or a number, got array"),
    ("OrderQty", False, "expected a string or a number, got boolean"),
    ("LocateReqd", 1, "expected a string (Y or N) or a boolean, got number"),
])
def test_wrong_json_type(codec: JsonCodec, field: str, value: Any, reason: str) -> None:
    e = one_error(codec, dict(BASE, **{field: value}))
    assert (e.path, e.field, e.reason) == (f"$.{field}", field, reason)


def test_bad_enum_value_lists_allowed_codes(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, Side="BUY"))
    assert (e.path, e.field) == ("$.Side", "Side")
    assert e.reason.startswith("invalid value 'BUY' for Side; allowed: 1 (BUY), 2 (SELL), 3 (BUY_MINUS)")
    assert "G (BORROW)" in e.reason


def test_bad_enum_value_in_multiple_value_string(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, ExecInst="1 !"))
    assert (e.path, e.field) == ("$.ExecInst", "ExecInst")
    assert e.reason.startswith("invalid value '!' for ExecInst; allowed: 1 (NOT_HELD)")


def test_integer_enum_as_json_number(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, AcctIDSource=42))
    assert e.reason.startswith("invalid value '42' for AcctIDSource; allowed: 1 (")


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("OrderQty", "ten", "invalid decimal 'ten': expected a decimal number like 123.45 (no exponent)"),
    ("OrderQty", "1e5", "invalid decimal '1e5': expected a decimal number like 123.45 (no exponent)"),
    ("Price", "", "invalid decimal '': empty value"),
    ("Price", "-", "invalid decimal '-': expected a decimal number like 123.45 (no exponent)"),
    ("RepurchaseTerm", "1.5", "invalid integer '1.5': expected an integer"),
    ("RepurchaseTerm", 1.5, "invalid integer '1.5': expected an integer"),
    ("TransactTime", "2024-01-02T09:00:00Z",
     "invalid UTC timestamp '2024-01-02T09:00:00Z': expected a UTC timestamp YYYYMMDD-HH:MM:SS[.sss]"),
    ("TransactTime", "20240102-24:00:00",
     "invalid UTC timestamp '20240102-24:00:00': expected a UTC timestamp YYYYMMDD-HH:MM:SS[.sss]"),
    ("TransactTime", "20240102-09:00:00.1",
     "invalid UTC timestamp '20240102-09:00:00.1': expected a UTC timestamp YYYYMMDD-HH:MM:SS[.sss]"),
    ("TradeDate", "20241301", "invalid date '20241301': expected a date YYYYMMDD"),
    ("TradeDate", "2024010", "invalid date '2024010': expected a date YYYYMMDD"),
    ("MaturityMonthYear", "202413", "invalid month-year '202413': expected a month-year YYYYMM[DD|wN]"),
    ("OptAttribute", "AB", "invalid char 'AB': expected a single character"),
    ("OptAttribute", " ", "invalid char ' ': expected a single character"),
    ("Account", "A\x01B", "invalid string 'A\\x01B': contains the SOH delimiter"),
    ("Account", "", "invalid string '': empty value"),
])
def test_bad_data_format(codec: JsonCodec, field: str, value: Any, reason: str) -> None:
    e = one_error(codec, dict(BASE, **{field: value}))
    assert (e.path, e.field, e.reason) == (f"$.{field}", field, reason)


def test_non_negative_integer(codec: JsonCodec) -> None:
    body = {"RefMsgType": "D", "BusinessRejectReason": "0", "RefSeqNum": -3}
    e = one_error(codec, body, "j")
    assert (e.path, e.field, e.reason) == (
        "$.RefSeqNum", "RefSeqNum",
        "invalid non-negative integer '-3': expected a non-negative integer")


def test_length_field_must_match_its_data(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, EncodedText="가나", EncodedTextLen="2"))
    assert (e.path, e.field) == ("$.EncodedTextLen", "EncodedTextLen")
    assert e.reason == ("EncodedTextLen must be 6, the size in bytes of EncodedText "
                        "(it may be left out)")
    e = one_error(codec, dict(BASE, EncodedTextLen=4))
    assert e.reason == "EncodedTextLen is only valid with EncodedText, which it sizes"


def test_valid_formats_pass(codec: JsonCodec) -> None:
    ok = dict(BASE, TransactTime="20240102-23:59:60.123456789", TradeDate="20240229",
              MaturityMonthYear="202412w2", OptAttribute="Z", Price="-.5", OrderQty="10.",
              ExpireTime="20240102-09:00:00.123456", RepurchaseTerm="-3", LocateReqd=False)
    assert codec.body_to_fix("D", msgspec.json.encode(ok))


def test_missing_required_fields(codec: JsonCodec) -> None:
    errs = errors_of(codec, {"ClOrdID": "A", "TransactTime": "20240102-09:00:00"})
    assert [(e.path, e.field, e.reason) for e in errs] == [
        ("$.Side", "Side", "required field missing"),
        ("$.OrdType", "OrdType", "required field missing"),
    ]


def test_required_fields_inside_group_entries(codec: JsonCodec) -> None:
    body = {"ListID": "L", "BidType": "3", "TotNoOrders": "1",
            "NoOrders": [{"ClOrdID": "C1", "Symbol": "005930"}]}
    errs = errors_of(codec, body, "E")
    assert [(e.path, e.field, e.reason) for e in errs] == [
        ("$.NoOrders[0].ListSeqNo", "ListSeqNo", "required field missing"),
        ("$.NoOrders[0].Side", "Side", "required field missing"),
    ]


def test_group_not_an_array(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, NoPartyIDs="2"))
    assert (e.path, e.field, e.reason) == ("$.NoPartyIDs", "NoPartyIDs",
                                           "expected an array of objects, got string")
    e = one_error(codec, dict(BASE, NoPartyIDs={"PartyID": "P"}))
    assert e.reason == "expected an array of objects, got object"


def test_group_entry_not_an_object(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, NoPartyIDs=[{"PartyID": "P"}, "Q"]))
    assert (e.path, e.field, e.reason) == ("$.NoPartyIDs[1]", "NoPartyIDs",
                                           "expected an object, got string")


def test_group_entry_without_delimiter(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, NoPartyIDs=[{"PartyID": "P"}, {"PartyRole": "3"}]))
    assert (e.path, e.field) == ("$.NoPartyIDs[1].PartyID", "PartyID")
    assert e.reason == "required field missing: every NoPartyIDs entry starts with PartyID"


def test_field_not_allowed_in_group_entry(codec: JsonCodec) -> None:
    e = one_error(codec, dict(BASE, NoPartyIDs=[{"PartyID": "P", "Price": "1"}]))
    assert (e.path, e.field) == ("$.NoPartyIDs[0].Price", "Price")
    assert e.reason == "field Price (44) is not allowed in NoPartyIDs entry"


def test_all_errors_are_collected_with_paths(codec: JsonCodec) -> None:
    body = {
        "ListID": "L", "BidType": "9", "TotNoOrders": "x", "Bogus": 1,
        "NoOrders": [
            {"ClOrdID": "C1", "ListSeqNo": "1", "Side": "1", "OrderQty": "abc"},
            {"ClOrdID": "C2", "ListSeqNo": "2", "Side": "7", "OrderQty": 5,
             "NoPartyIDs": [{"PartyRole": "3"}, {"PartyID": "P", "PartyRole": "zz"}]},
            [],
        ],
    }
    errs = errors_of(codec, body, "E")
    got = {(e.path, e.field) for e in errs}
    assert got == {
        ("$.BidType", "BidType"),
        ("$.TotNoOrders", "TotNoOrders"),
        ("$.Bogus", "Bogus"),
        ("$.NoOrders[0].OrderQty", "OrderQty"),
        ("$.NoOrders[1].NoPartyIDs[0].PartyID", "PartyID"),
        ("$.NoOrders[1].NoPartyIDs[1].PartyRole", "PartyRole"),
        ("$.NoOrders[2]", "NoOrders"),
    }
    assert len(errs) == len(got)


def test_errors_serialise_for_a_rest_answer(codec: JsonCodec) -> None:
    with pytest.raises(JsonMappingError) as info:
        codec.body_to_fix("D", b'{"Side":"X"}')
    doc = msgspec.json.decode(msgspec.json.encode({"errors": info.value.errors}))
    assert doc["errors"][0]["path"] == "$.Side"
    assert {e["field"] for e in doc["errors"]} == {"Side", "ClOrdID", "OrdType", "TransactTime"}


def test_whole_message_errors_are_rooted_at_their_section(codec: JsonCodec) -> None:
    msg = {"Header": {"MsgType": "D", "SenderCompID": "A", "MsgSeqNum": "x",
                      "SendingTime": "20240102-09:00:00"},
           "Body": dict(BASE, Price="p"), "Trailer": {"Foo": "1"}}
    with pytest.raises(JsonMappingError) as info:
        codec.json_to_fix(msgspec.json.encode(msg))
    assert {(e.path, e.field) for e in info.value.errors} == {
        ("$.Header.MsgSeqNum", "MsgSeqNum"),
        ("$.Header.TargetCompID", "TargetCompID"),
        ("$.Body.Price", "Price"),
        ("$.Trailer.Foo", "Foo"),
    }


@pytest.mark.parametrize(("doc", "path", "reason"), [
    ({"Body": BASE}, "$.Header.MsgType", "required field missing"),
    ({"Header": {"MsgType": "ZZ"}, "Body": {}}, "$.Header.MsgType", "unknown message type 'ZZ'"),
    ({"Header": {"MsgType": 1}, "Body": {}}, "$.Header.MsgType", "expected a string, got number"),
    ({"Header": {"MsgType": "D"}}, "$.Body", "required member missing"),
    ({"Header": {"MsgType": "D"}, "Body": []}, "$.Body", "expected an object, got array"),
    ({"Header": {"MsgType": "D"}, "Body": {}, "Extra": {}}, "$.Extra",
     "unknown member: expected Header, Body, Trailer"),
])
def test_whole_message_shape_errors(codec: JsonCodec, doc: dict[str, Any], path: str,
                                    reason: str) -> None:
    with pytest.raises(JsonMappingError) as info:
        codec.json_to_fix(msgspec.json.encode(doc))
    assert (path, reason) in {(e.path, e.reason) for e in info.value.errors}
