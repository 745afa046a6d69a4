"""FIX <-> JSON mapping: both directions, groups, escaping, user-defined tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fastfix.errors import FixError, JsonMappingError
from fastfix.jsonfix import JsonCodec

SOH = b"\x01"
HEADER = [(49, "CLIENT"), (56, "HUB"), (34, 7), (52, "20240102-09:00:00.000")]


@pytest.fixture(scope="module")
def codec() -> JsonCodec:
    return JsonCodec("FIX.4.4")


def wire(*fields: tuple[int, str | bytes], begin: bytes = b"FIX.4.4") -> bytes:
    """Independent encoder for expected values: BodyLength and CheckSum by the book."""
    body = b"".join(b"%d=%s\x01" % (t, v.encode() if isinstance(v, str) else v) for t, v in fields)
    head = b"8=" + begin + b"\x019=%d\x01" % len(body)
    cks = sum(head + body) % 256
    return head + body + b"10=%03d\x01" % cks


def fields_of(data: bytes) -> list[tuple[int, bytes]]:
    """Split wire bytes (no data fields) and check BodyLength and CheckSum on the way."""
    assert data.endswith(SOH)
    parts = data[:-1].split(SOH)
    out = [(int(t), v) for t, _, v in (p.partition(b"=") for p in parts)]
    assert out[0][0] == 8 and out[1][0] == 9 and out[-1][0] == 10
    start = len(b"%s=%s\x01%s=%s\x01" % (b"8", out[0][1], b"9", out[1][1]))
    end = data.rindex(b"\x0110=") + 1
    assert int(out[1][1]) == end - start
    assert int(out[-1][1]) == sum(data[:end]) % 256
    return out


NOS_BODY = {
    "ClOrdID": "ORD-1",
    "Account": "ACC1",
    "Symbol": "005930",
    "SecurityID": "KR7005930003",
    "SecurityIDSource": "4",
    "Side": "1",
    "OrderQty": "10",
    "OrdType": "2",
    "Price": "70000",
    "TimeInForce": "0",
    "TransactTime": "20240102-09:00:00.000",
}


# ----------------------------------------------------------------------------- JSON -> FIX


def test_body_to_fix_new_order_single(codec: JsonCodec) -> None:
    out = codec.body_to_fix("D", msgspec.json.encode(NOS_BODY), header=HEADER)
    assert out == wire(
        (35, "D"), (49, "CLIENT"), (56, "HUB"), (34, "7"), (52, "20240102-09:00:00.000"),
        # body fields in the dictionary's order for NewOrderSingle
        (11, "ORD-1"), (1, "ACC1"), (55, "005930"), (48, "KR7005930003"), (22, "4"),
        (54, "1"), (60, "20240102-09:00:00.000"), (38, "10"), (40, "2"), (44, "70000"),
        (59, "0"))
    fields_of(out)


def test_body_to_fix_accepts_message_name_and_begin_string(codec: JsonCodec) -> None:
    out = codec.body_to_fix("NewOrderSingle", msgspec.json.encode(NOS_BODY), begin_string="FIXT.1.1")
    assert out.startswith(b"8=FIXT.1.1\x019=")
    assert fields_of(out)[2] == (35, b"D")


def test_body_fields_are_written_in_dictionary_order(codec: JsonCodec) -> None:
    shuffled = dict(reversed(list(NOS_BODY.items())))
    a = codec.body_to_fix("D", msgspec.json.encode(NOS_BODY))
    b = codec.body_to_fix("D", msgspec.json.encode(shuffled))
    assert a == b


@pytest.mark.parametrize(("given", "written"), [
    (b"70000", b"70000"),
    (b"1.5", b"1.5"),
    (b"1.50", b"1.50"),
    (b"-0.25", b"-0.25"),
    (b"1e3", b"1000"),
    (b"2.5E-3", b"0.0025"),
    (b'"70000.0"', b"70000.0"),
])
def test_json_numbers_are_written_as_given(codec: JsonCodec, given: bytes, written: bytes) -> None:
    body = (b'{"ClOrdID":"A","Side":"1","OrdType":"2","TransactTime":"20240102-09:00:00",'
            b'"Price":' + given + b"}")
    assert (44, written) in fields_of(codec.body_to_fix("D", body))


def test_body_may_be_an_already_decoded_dict(codec: JsonCodec) -> None:
    data = msgspec.json.encode(dict(NOS_BODY, Price=70000.5, OrderQty=10))
    want = codec.body_to_fix("D", data, header=HEADER)
    assert codec.body_to_fix("D", msgspec.json.decode(data), header=HEADER) == want
    assert codec.body_to_fix("D", bytearray(data), header=HEADER) == want
    assert (44, b"70000.5") in fields_of(want)


def test_integer_fields_accept_json_integers(codec: JsonCodec) -> None:
    body = dict(NOS_BODY, OrderQty=10, AcctIDSource=1)
    f = fields_of(codec.body_to_fix("D", msgspec.json.encode(body)))
    assert (38, b"10") in f and (660, b"1") in f


def test_boolean_field_takes_json_booleans(codec: JsonCodec) -> None:
    f = fields_of(codec.body_to_fix("D", msgspec.json.encode(dict(NOS_BODY, LocateReqd=True))))
    assert (114, b"Y") in f
    f = fields_of(codec.body_to_fix("D", msgspec.json.encode(dict(NOS_BODY, LocateReqd="N"))))
    assert (114, b"N") in f


def test_multiple_value_string(codec: JsonCodec) -> None:
    f = fields_of(codec.body_to_fix("D", msgspec.json.encode(dict(NOS_BODY, ExecInst="1 G"))))
    assert (18, b"1 G") in f


def test_non_ascii_text_is_written_as_utf8(codec: JsonCodec) -> None:
    f = fields_of(codec.body_to_fix("D", msgspec.json.encode(dict(NOS_BODY, Text="삼성전자 매수"))))
    assert (58, "삼성전자 매수".encode()) in f


@pytest.mark.parametrize("given_length", [None, "6", 6])
def test_data_field_gets_its_length(codec: JsonCodec, given_length: object) -> None:
    body = dict(NOS_BODY, EncodedText="a\x01b가")  # a, SOH, b: 3 bytes; 가: 3 bytes
    if given_length is not None:
        body["EncodedTextLen"] = given_length
    out = codec.body_to_fix("D", msgspec.json.encode(body))
    assert b"\x01354=6\x01355=a\x01b" + "가".encode() + b"\x01" in out
    assert out.count(b"\x01354=") == 1
    back = msgspec.json.decode(codec.fix_body_to_json(out))
    assert (back["EncodedTextLen"], back["EncodedText"]) == ("6", "a\x01b가")


def test_user_defined_field_by_tag_number(codec: JsonCodec) -> None:
    out = codec.body_to_fix("D", msgspec.json.encode(dict(NOS_BODY, **{"5001": "KRX-A", "20001": "7"})))
    f = fields_of(out)
    # user-defined fields go after the dictionary's fields, in the order given
    assert f[-3:-1] == [(5001, b"KRX-A"), (20001, b"7")]
    body = msgspec.json.decode(codec.fix_body_to_json(out))
    assert body["5001"] == "KRX-A" and body["20001"] == "7"


NEW_ORDER_LIST = {
    "ListID": "L1",
    "BidType": "3",
    "TotNoOrders": "2",
    "NoOrders": [
        {
            # members out of dictionary order on purpose: the delimiter must come first in FIX
            "Side": "1", "ClOrdID": "C1", "ListSeqNo": "1", "Symbol": "005930", "OrderQty": "10",
            "NoPartyIDs": [
                {"PartyRole": "3", "PartyID": "CLIENT-1", "PartyIDSource": "D",
                 "NoPartySubIDs": [{"PartySubID": "S1", "PartySubIDType": "1"}]},
                {"PartyID": "BROKER-9", "PartyRole": "1"},
            ],
            "OrdType": "2", "Price": "70000",
        },
        {"ClOrdID": "C2", "ListSeqNo": "2", "Symbol": "000660", "Side": "2", "OrderQty": 5,
         "OrdType": "1"},
    ],
}


def test_new_order_list_groups_and_nested_groups(codec: JsonCodec) -> None:
    out = codec.body_to_fix("E", msgspec.json.encode(NEW_ORDER_LIST), header=HEADER)
    f = fields_of(out)
    body = [(t, v.decode()) for t, v in f[7:-1]]
    assert body == [
        (66, "L1"), (394, "3"), (68, "2"),
        (73, "2"),
        (11, "C1"), (67, "1"),
        (453, "2"),
        (448, "CLIENT-1"), (447, "D"), (452, "3"), (802, "1"), (523, "S1"), (803, "1"),
        (448, "BROKER-9"), (452, "1"),
        (55, "005930"), (54, "1"), (38, "10"), (40, "2"), (44, "70000"),
        (11, "C2"), (67, "2"), (55, "000660"), (54, "2"), (38, "5"), (40, "1"),
    ]
    # and back
    assert msgspec.json.decode(codec.fix_body_to_json(out)) == msgspec.json.decode(
        msgspec.json.encode(NEW_ORDER_LIST).replace(b'"OrderQty":5', b'"OrderQty":"5"'))


@pytest.mark.parametrize(("msg_type", "body"), [("D", NOS_BODY), ("E", NEW_ORDER_LIST)])
def test_body_fields_are_the_body_of_body_to_fix(codec: JsonCodec, msg_type: str, body: dict[str, Any]) -> None:
    fields = codec.body_fields(msg_type, msgspec.json.encode(body))
    whole = fields_of(codec.body_to_fix(msg_type, msgspec.json.encode(body)))
    assert fields == b"".join(b"%d=%s\x01" % (t, v) for t, v in whole[3:-1])  # after 8, 9, 35; before 10
    assert codec.body_fields(msg_type, msgspec.json.decode(msgspec.json.encode(body))) == fields


def test_body_fields_reports_the_same_errors(codec: JsonCodec) -> None:
    bad = msgspec.json.encode(dict(NOS_BODY, Side="X", OrderQty="ten"))
    with pytest.raises(JsonMappingError) as whole:
        codec.body_to_fix("D", bad)
    with pytest.raises(JsonMappingError) as fields:
        codec.body_fields("D", bad)
    assert fields.value.errors == whole.value.errors and len(fields.value.errors) == 2


def test_empty_group_array_writes_a_zero_count(codec: JsonCodec) -> None:
    out = codec.body_to_fix("D", msgspec.json.encode(dict(NOS_BODY, NoPartyIDs=[])))
    assert (453, b"0") in fields_of(out)
    assert msgspec.json.decode(codec.fix_body_to_json(out))["NoPartyIDs"] == []


def test_json_to_fix_whole_message(codec: JsonCodec) -> None:
    msg = {
        "Header": {"BeginString": "FIX.4.4", "MsgType": "D", "SenderCompID": "CLIENT",
                   "TargetCompID": "HUB", "MsgSeqNum": "7", "SendingTime": "20240102-09:00:00.000",
                   "DeliverToCompID": "BROKER", "NoHops": [{"HopCompID": "GW", "HopRefID": 3}]},
        "Body": NOS_BODY,
        "Trailer": {},
    }
    out = codec.json_to_fix(msgspec.json.encode(msg))
    f = fields_of(out)
    assert f[2:10] == [(35, b"D"), (49, b"CLIENT"), (56, b"HUB"), (128, b"BROKER"), (34, b"7"),
                       (52, b"20240102-09:00:00.000"), (627, b"1"), (628, b"GW")]
    back = msgspec.json.decode(codec.fix_to_json(out))
    assert back["Header"]["NoHops"] == [{"HopCompID": "GW", "HopRefID": "3"}]
    assert back["Body"] == NOS_BODY and back["Trailer"] == {}
    # fix -> json -> fix is the identity for a message in dictionary order
    assert codec.json_to_fix(codec.fix_to_json(out)) == out


def test_json_to_fix_ignores_body_length_and_checksum(codec: JsonCodec) -> None:
    msg = {"Header": {"MsgType": "0", "SenderCompID": "A", "TargetCompID": "B", "MsgSeqNum": 2,
                      "SendingTime": "20240102-09:00:00", "BodyLength": "999"},
           "Body": {}, "Trailer": {"CheckSum": "000"}}
    assert codec.json_to_fix(msgspec.json.encode(msg)) == wire(
        (35, "0"), (49, "A"), (56, "B"), (34, "2"), (52, "20240102-09:00:00"))


# ----------------------------------------------------------------------------- FIX -> JSON

EXEC_REPORT = wire(
    (35, "8"), (49, "BROKER"), (56, "HUB"), (34, "215"), (52, "20240102-09:00:01.234"),
    (115, "KRX"), (37, "O-77"), (11, "ORD-1"), (17, "E-1001"), (150, "F"), (39, "1"),
    (453, "2"), (448, "CLIENT-1"), (447, "D"), (452, "3"), (802, "1"), (523, "S1"), (803, "1"),
    (448, "BROKER-9"), (452, "1"),
    (55, "005930"), (54, "1"), (38, "10"), (44, "70000"), (32, "4"), (31, "70000"),
    (151, "6"), (14, "4"), (6, "70000"), (60, "20240102-09:00:01.230"), (5001, "x"))


def test_fix_to_json_execution_report(codec: JsonCodec) -> None:
    out = codec.fix_to_json(EXEC_REPORT)
    assert out == (
        b'{"Header":{"BeginString":"FIX.4.4","MsgType":"8","SenderCompID":"BROKER",'
        b'"TargetCompID":"HUB","MsgSeqNum":"215","SendingTime":"20240102-09:00:01.234",'
        b'"OnBehalfOfCompID":"KRX"},'
        b'"Body":{"OrderID":"O-77","ClOrdID":"ORD-1","ExecID":"E-1001","ExecType":"F",'
        b'"OrdStatus":"1","NoPartyIDs":[{"PartyID":"CLIENT-1","PartyIDSource":"D","PartyRole":"3",'
        b'"NoPartySubIDs":[{"PartySubID":"S1","PartySubIDType":"1"}]},'
        b'{"PartyID":"BROKER-9","PartyRole":"1"}],"Symbol":"005930","Side":"1","OrderQty":"10",'
        b'"Price":"70000","LastQty":"4","LastPx":"70000","LeavesQty":"6","CumQty":"4",'
        b'"AvgPx":"70000","TransactTime":"20240102-09:00:01.230","5001":"x"},"Trailer":{}}')
    assert json.loads(out)["Body"]["NoPartyIDs"][1] == {"PartyID": "BROKER-9", "PartyRole": "1"}


def test_fix_body_to_json_is_the_body_object(codec: JsonCodec) -> None:
    assert msgspec.json.decode(codec.fix_body_to_json(EXEC_REPORT)) == msgspec.json.decode(
        codec.fix_to_json(EXEC_REPORT))["Body"]


def test_fix_to_json_accepts_a_parsed_message(codec: JsonCodec) -> None:
    codec_mod = pytest.importorskip("fastfix.codec")
    if not hasattr(codec_mod, "parse"):
        pytest.skip("codec without parse()")
    assert codec.fix_to_json(codec_mod.parse(EXEC_REPORT)) == codec.fix_to_json(EXEC_REPORT)


def test_fix_to_json_escapes_strings(codec: JsonCodec) -> None:
    text = 'say "hi"\\ tab\there\nnew\x02ctl\x7f 삼성'
    raw = wire((35, "8"), (49, "A"), (56, "B"), (34, "1"), (52, "20240102-09:00:00"),
               (58, text.encode()))
    out = codec.fix_to_json(raw)
    assert b'"Text":"say \\"hi\\"\\\\ tab\\there\\nnew\\u0002ctl\x7f ' + "삼성".encode() + b'"' in out
    assert json.loads(out)["Body"]["Text"] == text


@pytest.mark.parametrize(("value", "decoded"), [
    (b"\xff", "\ufffd"),                     # not a UTF-8 lead byte
    (b"ab\xc3", "ab\ufffd"),                 # truncated sequence
    (b"\xc0\xaf", "\ufffd\ufffd"),           # overlong encoding
    (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),  # UTF-16 surrogate
    (b"\xea\xb0\x80\xf0\x9f\x98\x80", "가😀"),  # valid 3- and 4-byte sequences pass as is
])
def test_fix_to_json_replaces_invalid_utf8(codec: JsonCodec, value: bytes, decoded: str) -> None:
    raw = wire((35, "8"), (49, "A"), (56, "B"), (34, "1"), (52, "20240102-09:00:00"), (58, value))
    out = codec.fix_to_json(raw)
    out.decode("utf-8")  # strict: the output is always valid UTF-8
    assert json.loads(out)["Body"]["Text"] == decoded


def test_fix_to_json_data_field_may_hold_soh(codec: JsonCodec) -> None:
    raw = wire((35, "8"), (49, "A"), (56, "B"), (34, "1"), (52, "20240102-09:00:00"),
               (354, "5"), (355, b"a\x01b=c"), (58, "t"))
    body = json.loads(codec.fix_body_to_json(raw))
    assert body == {"EncodedTextLen": "5", "EncodedText": "a\x01b=c", "Text": "t"}


def test_fix_to_json_unknown_message_type_still_maps_groups(codec: JsonCodec) -> None:
    raw = wire((35, "ZZ"), (49, "A"), (56, "B"), (34, "1"), (52, "20240102-09:00:00"),
               (453, "1"), (448, "P"), (452, "3"), (9999, "u"))
    body = json.loads(codec.fix_body_to_json(raw))
    assert body == {"NoPartyIDs": [{"PartyID": "P", "PartyRole": "3"}], "9999": "u"}


def test_fix_to_json_rejects_malformed_bytes(codec: JsonCodec) -> None:
    with pytest.raises(FixError):
        codec.fix_to_json(b"8=FIX.4.4\x019=5\x01x5=D\x0110=000\x01")
    with pytest.raises(FixError):
        codec.fix_to_json(b"8=FIX.4.4\x019=5\x0135=D")


def test_codec_is_reentrant_under_nested_use(codec: JsonCodec) -> None:
    # many conversions in a row reuse one internal buffer; results stay independent
    a = codec.fix_to_json(EXEC_REPORT)
    b = codec.body_to_fix("D", msgspec.json.encode(NOS_BODY))
    assert codec.fix_to_json(EXEC_REPORT) == a
    assert codec.body_to_fix("D", msgspec.json.encode(NOS_BODY)) == b


def test_json_mapping_error_is_a_fix_error() -> None:
    assert issubclass(JsonMappingError, FixError)


def test_module_examples_run() -> None:
    import doctest

    import fastfix.jsonfix

    assert doctest.testmod(fastfix.jsonfix).failed == 0


def test_documented_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The example of "FIX ↔ JSON" in docs/library.md runs and prints what it says."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "library.md").read_text(encoding="utf-8")
    section = doc.split("\n## FIX ↔ JSON\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/library.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "$.NoOrders[0].OrderQty | OrderQty | invalid decimal 'ten'" in printed
    assert printed.startswith('{"Header":{"BeginString":"FIX.4.4","MsgType":"D"')


def test_shared_codec_across_threads(codec: JsonCodec) -> None:
    """Threads share one codec: results equal those of a single caller, errors included."""
    from concurrent.futures import ThreadPoolExecutor

    good = msgspec.json.encode(NEW_ORDER_LIST)
    bad = msgspec.json.encode(dict(NEW_ORDER_LIST, BidType="9", Bogus="x"))
    want_fix = codec.body_to_fix("E", good, header=HEADER)
    want_json = codec.fix_to_json(EXEC_REPORT)
    with pytest.raises(JsonMappingError) as info:
        codec.body_to_fix("E", bad)
    want_errors = info.value.errors

    def work(n: int) -> int:
        for _ in range(n):
            assert codec.body_to_fix("E", good, header=HEADER) == want_fix
            assert codec.fix_to_json(EXEC_REPORT) == want_json
            try:
                codec.body_to_fix("E", bad)
            except JsonMappingError as exc:
                assert exc.errors == want_errors
            else:
                raise AssertionError("bad body accepted")
        return n

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(work, 300) for _ in range(4)]
        assert [f.result(timeout=60) for f in futures] == [300] * 4


DIALECT = """<fix type='FIX' major='4' minor='4'>
 <header/>
 <trailer/>
 <messages>
  <message name='BoardNotice' msgtype='U1' msgcat='app'>
   <field name='RawDataLength' required='Y'/>
   <field name='RawData' required='Y'/>
   <field name='KrxBoardID' required='Y'/>
  </message>
  <message name='NewOrderSingle' msgtype='D' msgcat='app'>
   <field name='KrxBoardID' required='N'/>
  </message>
 </messages>
 <components/>
 <fields>
  <field number='5001' name='KrxBoardID' type='STRING'>
   <value enum='G1' description='REGULAR'/>
   <value enum='G2' description='CLOSING'/>
  </field>
 </fields>
</fix>
"""


def test_dialect_dictionary_drives_both_directions(tmp_path: Path) -> None:
    from fastfix.dictionary import DataDictionary

    path = tmp_path / "krx.xml"
    path.write_text(DIALECT)
    dd = DataDictionary.load("FIX.4.4").extend(path)
    krx = JsonCodec(dd)
    # a dialect field is keyed by its name, checked against its enumeration
    out = krx.body_to_fix("D", msgspec.json.encode(dict(NOS_BODY, KrxBoardID="G1")))
    assert (5001, b"G1") in fields_of(out)
    assert msgspec.json.decode(krx.fix_body_to_json(out))["KrxBoardID"] == "G1"
    with pytest.raises(JsonMappingError) as info:
        krx.body_to_fix("D", msgspec.json.encode(dict(NOS_BODY, KrxBoardID="G9")))
    assert info.value.errors[0].reason.startswith("invalid value 'G9' for KrxBoardID; allowed: G1 (REGULAR)")
    # a required length field is satisfied by its DATA field
    notice = krx.body_to_fix("U1", b'{"RawData":"x\\u0001y","KrxBoardID":"G2"}')
    assert b"\x0135=U1\x0195=3\x0196=x\x01y\x015001=G2\x01" in notice
    with pytest.raises(JsonMappingError) as info:
        krx.body_to_fix("BoardNotice", b'{"KrxBoardID":"G2"}')
    assert [e.field for e in info.value.errors] == ["RawDataLength", "RawData"]
