"""Message validation against the FIX 4.2 and 4.4 dictionaries: QuickFIX's reasons and texts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfix.dictionary import (
    DataDictionary,
    ValidationError,
    ValidationOptions,
)
from fastfix.errors import ConfigError

try:
    from fastfix.codec import checksum, parse
except ImportError:  # the codec is optional for these tests: fall back to a plain split
    parse = None

TS = "20240101-10:00:00"
VERSIONS = ["FIX.4.2", "FIX.4.4"]


class _Split:
    """Minimal stand-in for a parsed message: wire-ordered (tag, bytes) pairs."""

    def __init__(self, fields: list[tuple[int, bytes]]) -> None:
        self._fields = fields

    def fields(self) -> list[tuple[int, bytes]]:
        return self._fields


def make(version: str, body: str) -> Any:
    """A message from ``35=D|34=2|...``: BeginString, BodyLength and CheckSum added."""
    body = body.replace("<TS>", TS)
    if not body.endswith("|"):
        body += "|"
    wire = body.replace("|", "\x01").encode()
    if parse is not None:
        head = f"8={version}\x019={len(wire)}\x01".encode()
        raw = head + wire
        return parse(raw + b"10=%03d\x01" % checksum(raw))
    fields = [(8, version.encode()), (9, b"0")]
    for part in body.rstrip("|").split("|"):
        tag, _, value = part.partition("=")
        fields.append((int(tag), value.encode()))
    fields.append((10, b"000"))
    return _Split(fields)


def fields_of(version: str, body: str) -> list[tuple[int, bytes]]:
    """Like :func:`make` but as plain pairs, for tags the codec refuses (0, negative)."""
    out = [(8, version.encode()), (9, b"0")]
    for part in body.replace("<TS>", TS).rstrip("|").split("|"):
        tag, _, value = part.partition("=")
        out.append((int(tag), value.encode()))
    return out + [(10, b"000")]


HDR = "34=2|49=TW|52=<TS>|56=ISLD"
HB = f"35=0|{HDR}"  # Heartbeat
ORDER = f"35=D|{HDR}|11=ID|21=1|40=1|54=1|55=INTC|60=<TS>|38=100"


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def dd(version: str) -> DataDictionary:
    return DataDictionary.load(version)


def check(dd: DataDictionary, msg: Any, expected: tuple[int, int | None, str] | None,
          **options: bool) -> ValidationError | None:
    opts = ValidationOptions(**options) if options else None
    res = dd.validate(msg, opts)
    if expected is None:
        assert res is None, res
    else:
        assert res is not None, "expected a reject"
        assert (res.reason, res.ref_tag_id, res.ref_msg_type) == expected
    return res


# (id, message body, expected (373, 371, 372), Text, options that let it pass)
CASES = [
    ("invalid-tag", f"{HB}|999=HI", (0, 999, "0"), "Invalid tag number",
     [{"check_unknown_fields": False}, {"allow_unknown_message_fields": True}]),
    ("invalid-user-tag", f"{HB}|5000=HI", (0, 5000, "0"), "Invalid tag number",
     [{"check_user_defined_fields": False}]),
    ("required-header", "35=0|34=2|49=TW|52=<TS>", (1, 56, "0"), "Required tag missing",
     [{"check_required_fields": False}]),
    ("required-body", f"35=D|{HDR}|21=1|40=1|54=1|55=INTC|60=<TS>", (1, 11, "D"),
     "Required tag missing", [{"check_required_fields": False}]),
    ("not-in-message", f"{HB}|55=MSFT", (2, 55, "0"), "Tag not defined for this message type",
     [{"check_unknown_fields": False}, {"allow_unknown_message_fields": True}]),
    ("without-value", "35=0|34=2|49=TW|52=<TS>|56=", (4, 56, "0"), "Tag specified without a value",
     [{"check_fields_have_values": False}]),
    ("enum", f"{ORDER}|167=BOO", (5, 167, "D"), "Value is incorrect (out of range) for this tag",
     [{"check_field_values": False}]),
    ("enum-handlinst", ORDER.replace("21=1", "21=4"), (5, 21, "D"),
     "Value is incorrect (out of range) for this tag", [{"check_field_values": False}]),
    ("format", ORDER.replace("38=100", "38=+200.00"), (6, 38, "D"),
     "Incorrect data format for value", [{"check_data_format": False}]),
    ("format-timestamp", ORDER.replace("60=<TS>", "60=20241301-10:00:00"), (6, 60, "D"),
     "Incorrect data format for value", [{"check_data_format": False}]),
    ("msgtype", f"35=*|{HDR}", (11, None, "*"), "Invalid MsgType",
     [{"validate_incoming_message": False}]),
    ("repeated", ORDER.replace("40=1", "40=1|40=2"), (13, 40, "D"), "Tag appears more than once",
     [{"check_repeated_tags": False}]),
    ("out-of-order", f"35=D|11=id|21=3|40=1|54=1|55=MSFT|60=<TS>|{HDR}", (14, 34, "D"),
     "Tag specified out of required order", [{"check_fields_out_of_order": False}]),
    ("body-after-trailer", f"{HB}|93=2|89=ab|112=X", (14, 112, "0"),
     "Tag specified out of required order", None),
    ("group-count", ORDER.replace("38=100", "38=100|386=3|336=PRE-OPEN|336=AFTER-HOURS"),
     (16, 386, "D"), "Incorrect NumInGroup count for repeating group",
     [{"check_group_counts": False}]),
    ("group-delimiter", f"{ORDER}|78=1|80=100", (15, 80, "D"),
     "Repeating group fields out of order",
     [{"check_unordered_group_fields": False}, {"check_group_entries": False}]),
    ("group-entry-format", f"{ORDER}|78=1|79=ACC|80=abc", (6, 80, "D"),
     "Incorrect data format for value", [{"check_group_entries": False}]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reject_reasons(dd: DataDictionary, version: str, case: tuple) -> None:
    _, body, expected, text, switches = case
    res = check(dd, make(version, body), expected)
    assert res is not None and res.text == text
    for opts in switches or ():
        check(dd, make(version, body), None, **opts)


def test_valid_messages(dd: DataDictionary, version: str) -> None:
    check(dd, make(version, ORDER), None)
    check(dd, make(version, HB), None)
    check(dd, make(version, f"35=A|{HDR}|98=0|108=30"), None)
    # Header and body fields in any order within their section (acceptance 15).
    check(dd, make(version, "35=D|49=TW|34=3|56=ISLD|52=<TS>|40=1|55=MSFT|60=<TS>|54=1|21=3|11=id"),
          None)
    # A repeating group with zero entries (acceptance 21).
    check(dd, make(version, f"{ORDER}|386=0"), None)
    check(dd, make(version, f"{ORDER}|386=2|336=PRE-OPEN|336=AFTER-HOURS"), None)
    check(dd, make(version, ORDER.replace("60=<TS>", "60=20240101-10:00:00.123456")), None)
    check(dd, make(version, ORDER.replace("38=100", "38=-.5")), None)


def test_invalid_tag_numbers_zero_and_negative(dd: DataDictionary, version: str) -> None:
    for tag in (0, -1):
        res = dd.validate_fields(fields_of(version, f"{HB}|{tag}=HI"))
        assert res is not None and (res.reason, res.ref_tag_id, res.text) == (
            0, tag, "Invalid tag number")


def test_missing_in_header_checked_before_body(dd: DataDictionary, version: str) -> None:
    # Several faults: QuickFIX's order decides which one is reported.
    both = ORDER.replace("56=ISLD", "56=").replace("21=1", "21=4")
    check(dd, make(version, both), (4, 56, "D"))
    missing = ORDER.replace("11=ID|", "").replace("21=1", "21=4")
    check(dd, make(version, missing), (1, 11, "D"))
    # Body fields are checked in tag order, not wire order.
    check(dd, make(version, ORDER + "|999=X|167=BOO"), (5, 167, "D"))
    check(dd, make(version, ORDER + "|5001=X|21=9".replace("|21=9", "")), (0, 5001, "D"))
    # Structure is checked before the message type.
    check(dd, make(version, f"35=*|11=A|{HDR}"), (14, 34, "*"))
    # The trailer is checked before the body.
    check(dd, make(version, f"{ORDER}|167=BOO|93=x|89=ab"), (6, 93, "D"))


def test_group_and_count_precedence(dd: DataDictionary, version: str) -> None:
    # An unknown tag inside a group ends the group: the second 336 lands in the body
    # (not defined there, and sorted before 9999), and the count no longer matches.
    body = ORDER.replace("38=100", "38=100|386=2|336=A|9999=X|336=B")
    check(dd, make(version, body), (2, 336, "D"))
    check(dd, make(version, body), (16, 386, "D"), check_unknown_fields=False)
    # A negative or non-numeric count.
    check(dd, make(version, ORDER + "|386=-1"), (16, 386, "D"), check_data_format=False)
    check(dd, make(version, ORDER + "|386=x"), (6, 386, "D"))


def test_multiple_value_enums(dd: DataDictionary, version: str) -> None:
    check(dd, make(version, ORDER + "|18=1 2"), None)  # ExecInst, space separated
    check(dd, make(version, ORDER + "|18=1 #"), (5, 18, "D"))
    check(dd, make(version, ORDER + "|18=1  2"), (5, 18, "D"))


FIX44_LIST = (
    f"35=E|{HDR}|66=L1|394=1|68=2|73=2"
    "|11=A|67=1|453=2|448=P1|447=D|452=1|802=1|523=S1|803=1|448=P2|447=D|452=3"
    "|55=INTC|54=1|38=100|40=2|44=10.5"
    "|11=B|67=2|55=MSFT|54=2|38=50|40=1"
)


def test_fix44_new_order_list_nested_groups() -> None:
    dd = DataDictionary.load("FIX.4.4")
    check(dd, make("FIX.4.4", FIX44_LIST), None)
    # Outer count wrong.
    check(dd, make("FIX.4.4", FIX44_LIST.replace("|73=2|", "|73=3|")), (16, 73, "E"))
    # Nested NoPartyIDs count wrong (checked inside the entry).
    check(dd, make("FIX.4.4", FIX44_LIST.replace("|453=2|", "|453=3|")), (16, 453, "E"))
    check(dd, make("FIX.4.4", FIX44_LIST.replace("|453=2|", "|453=3|")), None,
          check_group_entries=False)
    # Doubly nested NoPartySubIDs count wrong.
    check(dd, make("FIX.4.4", FIX44_LIST.replace("|802=1|", "|802=2|")), (16, 802, "E"))
    # Required field of an entry missing (ListSeqNo of the second order).
    check(dd, make("FIX.4.4", FIX44_LIST.replace("|67=2|", "|")), (1, 67, "E"))
    check(dd, make("FIX.4.4", FIX44_LIST.replace("|67=2|", "|")), None,
          check_required_fields=False)
    # Bad enum inside a nested entry.
    check(dd, make("FIX.4.4", FIX44_LIST.replace("447=D|452=3", "447=@|452=3")), (5, 447, "E"))
    # Required group missing.
    no_orders = FIX44_LIST.split("|73=")[0]
    check(dd, make("FIX.4.4", no_orders), (1, 73, "E"))


def test_fix42_new_order_list_groups() -> None:
    dd = DataDictionary.load("FIX.4.2")
    body = (f"35=E|{HDR}|66=L1|394=1|68=2|73=2"
            "|11=A|67=1|55=INTC|54=1|38=100|40=2|44=10.5|21=1"
            "|11=B|67=2|55=MSFT|54=2|38=50|40=1|21=1")
    check(dd, make("FIX.4.2", body), None)
    check(dd, make("FIX.4.2", body.replace("|73=2|", "|73=1|")), (16, 73, "E"))
    check(dd, make("FIX.4.2", body.replace("54=2", "54=Z")), (5, 54, "E"))


def test_header_group_hops() -> None:
    dd = DataDictionary.load("FIX.4.4")
    good = f"35=0|{HDR}|627=2|628=H1|629=<TS>|628=H2"
    check(dd, make("FIX.4.4", good), None)
    check(dd, make("FIX.4.4", good.replace("629=<TS>", "629=later")), (6, 629, "0"))


def test_hop_fields_belong_to_the_header_only_inside_no_hops() -> None:
    # HopCompID is a header tag (fastfix.tags.HEADER_TAGS), but outside a NoHops entry it
    # is a body field like any other, as in QuickFIX's parser.
    dd = DataDictionary.load("FIX.4.4")
    check(dd, make("FIX.4.4", f"35=0|{HDR}|112=T|628=H1"), (2, 628, "0"))


def test_custom_dialect_validation(tmp_path: Path) -> None:
    xml = Path(__file__).parent / "data" / "krx44_dialect.xml"
    base = DataDictionary.load("FIX.4.4")
    dd = base.extend(xml)
    order = ORDER + "|5001=KOSPI"
    check(base, make("FIX.4.4", order), (0, 5001, "D"))
    check(dd, make("FIX.4.4", order), None)
    check(dd, make("FIX.4.4", order.replace("40=1", "40=X")), None)  # added enum value
    status = f"35=U1|{HDR}|5001=KOSPI|5002=2|55=005930|5003=2|5004=U|44=100|5004=L"
    check(base, make("FIX.4.4", status), (11, None, "U1"))
    check(dd, make("FIX.4.4", status), None)
    check(dd, make("FIX.4.4", status.replace("5002=2", "5002=7")), (5, 5002, "U1"))
    check(dd, make("FIX.4.4", status.replace("5001=KOSPI|", "")), (1, 5001, "U1"))
    check(dd, make("FIX.4.4", status.replace("5004=L", "5004=Q")), (5, 5004, "U1"))


def test_admin_and_app_messages_both_validated(dd: DataDictionary, version: str) -> None:
    check(dd, make(version, f"35=1|{HDR}"), (1, 112, "1"))  # TestRequest needs TestReqID
    check(dd, make(version, f"35=1|{HDR}|112=T"), None)


def test_reject_fields() -> None:
    err = ValidationError(13, 40, "D", "Tag appears more than once")
    assert err.reject_fields(2, "FIX.4.4") == [
        (45, 2), (58, "Tag appears more than once"), (371, 40), (372, "D"), (373, 13)]
    # FIX.4.2 defines SessionRejectReason values up to 11 only.
    assert err.reject_fields(2, "FIX.4.2") == [
        (45, 2), (58, "Tag appears more than once"), (371, 40), (372, "D")]
    bad_type = ValidationError(11, None, "*", "Invalid MsgType")
    assert bad_type.reject_fields(2, "FIX.4.2") == [
        (45, 2), (58, "Invalid MsgType"), (372, "*"), (373, 11)]
    assert err.reject_fields(None, "FIX.4.1") == [(58, "Tag appears more than once (40)")]


def test_options_from_settings() -> None:
    o = ValidationOptions.from_settings({
        "ValidateFieldsOutOfOrder": "N", "ValidateFieldsHaveValues": "n",
        "ValidateUserDefinedFields": "N", "AllowUnknownMsgFields": "Y",
        "SocketConnectPort": "5001",
    })
    assert o == ValidationOptions(check_fields_out_of_order=False, check_fields_have_values=False,
                                  check_user_defined_fields=False,
                                  allow_unknown_message_fields=True)
    assert not ValidationOptions.from_settings({"ValidateIncomingMessage": "N"}
                                               ).validate_incoming_message
    assert not ValidationOptions.from_settings({"UseDataDictionary": "N"}).validate_incoming_message
    assert ValidationOptions.from_settings({"UseDataDictionary": "Y"}) == ValidationOptions()
    with pytest.raises(ConfigError, match="ValidateFieldsOutOfOrder"):
        ValidationOptions.from_settings({"ValidateFieldsOutOfOrder": "maybe"})


ACCEPTANCE = Path(__file__).resolve().parents[1].parent / "shared" / "fix" / "acceptance" / "fix44"
# Scenarios whose rejects come from the dictionary (the others test the session layer).
DICTIONARY_SCENARIOS = ("14*.def", "15_*.def", "21_*.def", "2q_*.def", "2r_*.def")


def _acceptance_pairs() -> list[tuple[str, str, str | None]]:
    """(file, sent message, expected Reject or None) for each sent message."""
    out = []
    for pattern in DICTIONARY_SCENARIOS:
        for path in sorted(ACCEPTANCE.glob(pattern)):
            lines = [ln.rstrip("\r\n") for ln in path.read_text("latin-1").splitlines()]
            lines = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
            for k, line in enumerate(lines):
                if not line.startswith("I8="):
                    continue
                nxt = lines[k + 1] if k + 1 < len(lines) else ""
                reject = nxt[1:] if nxt.startswith("E") and "\x0135=3\x01" in nxt else None
                out.append((path.name, line[1:], reject))
    return out


def test_acceptance_suite_rejects() -> None:
    if not ACCEPTANCE.is_dir():
        pytest.skip("../shared is absent")
    dd = DataDictionary.load("FIX.4.4")
    pairs = _acceptance_pairs()
    assert sum(1 for _, _, r in pairs if r) >= 15
    for name, sent, reject in pairs:
        fields = [(8, b"FIX.4.4"), (9, b"0")]
        for part in sent.replace("<TIME>", TS).split("\x01"):
            if part and not part.startswith(("8=", "9=", "10=")):
                tag, _, value = part.partition("=")
                fields.append((int(tag), value.encode()))
        fields.append((10, b"000"))
        res = dd.validate_fields(fields)
        if reject is None:
            assert res is None, (name, sent, res)
            continue
        exp = dict(p.split("=", 1) for p in reject.split("\x01") if "=" in p)
        assert res is not None, (name, sent)
        assert res.text == exp["58"], name
        assert res.reason == int(exp["373"]), name
        assert res.ref_msg_type == exp["372"], name
        assert res.ref_tag_id == (int(exp["371"]) if "371" in exp else None), name
        body = [(t, str(v)) for t, v in res.reject_fields(int(exp["45"]), "FIX.4.4")]
        assert body == [(t, exp[str(t)]) for t in (45, 58, 371, 372, 373) if str(t) in exp], name


def test_plain_field_lists_match_parsed_messages(dd: DataDictionary, version: str) -> None:
    bodies = [c[1] for c in CASES] + [ORDER, HB, f"{ORDER}|386=2|336=A|336=B"]
    for body in bodies:
        msg = make(version, body)
        assert dd.validate(_Split(msg.fields())) == dd.validate(msg), body
        assert dd.validate_fields(msg.fields()) == dd.validate(msg), body


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_valid_orders_pass(data: st.DataObject) -> None:
    dd = DataDictionary.load("FIX.4.4")
    d = dd.message("D")
    body = [f"35=D|{HDR}|11=ID|60=<TS>"]
    for tag in (54, 40, 59, 21, 18, 167):
        f = dd.field(tag)
        if tag in d.required or data.draw(st.booleans()):
            if f.type.startswith("MULTIPLE"):
                vals = data.draw(st.lists(st.sampled_from(sorted(f.enums)), min_size=1, max_size=3))
                body.append(f"{tag}={' '.join(vals)}")
            else:
                body.append(f"{tag}={data.draw(st.sampled_from(sorted(f.enums)))}")
    qty = data.draw(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False))
    body.append(f"38={qty}")
    n = data.draw(st.integers(0, 3))
    if n:
        body.append(f"386={n}|" + "|".join(f"336=S{i}|625=P{i}" for i in range(n)))
    msg = make("FIX.4.4", "|".join(body))
    assert dd.validate(msg) is None
    # Breaking one enum value is caught with its tag.
    tag = data.draw(st.sampled_from([54, 40]))
    broken = re.sub(rf"\|{tag}=[^|]*", f"|{tag}=~", "|".join(body), count=1)
    res = dd.validate(make("FIX.4.4", broken))
    assert res is not None and (res.reason, res.ref_tag_id) == (5, tag)


TYPES_XML = """\
<fix major='4' minor='4'>
 <header>
  <field name='BeginString' required='Y'/><field name='BodyLength' required='Y'/>
  <field name='MsgType' required='Y'/>
 </header>
 <trailer><field name='CheckSum' required='Y'/></trailer>
 <messages><message name='Types' msgtype='T' msgcat='app'>{members}</message></messages>
 <fields>
  <field number='8' name='BeginString' type='STRING'/>
  <field number='9' name='BodyLength' type='LENGTH'/>
  <field number='35' name='MsgType' type='STRING'/>
  <field number='10' name='CheckSum' type='STRING'/>
  {fields}
 </fields>
</fix>
"""

FORMATS = {
    # type: (accepted values, refused values)
    "INT": (["0", "-5", "2147483647", "-2147483648", "007"], ["1.0", "+1", "2147483648", "-", "1e3"]),
    "LENGTH": (["12"], ["x"]),
    "NUMINGROUP": (["0"], ["one"]),
    "SEQNUM": (["1", "18446744073709551615"], ["-1", "18446744073709551616"]),
    "FLOAT": (["1", "1.5", "-0.25", ".5", "5.", "-.5"], ["+1", "1e5", ".", "-", "1.2.3", " 1"]),
    "QTY": (["100"], ["1,000"]),
    "PRICE": (["71500.00"], ["71,500"]),
    "AMT": (["1"], ["$1"]),
    "PERCENTAGE": (["0.5"], ["50%"]),
    "PRICEOFFSET": (["-1.5"], ["--1"]),
    "CHAR": (["A", " "], ["AB"]),
    "BOOLEAN": (["Y", "N"], ["y", "T", "YES"]),
    "UTCTIMESTAMP": (["20240229-23:59:60", "20240101-10:00:00.1",
                      "20240101-10:00:00.123456789"],
                     ["20240101-24:00:00", "20241301-10:00:00", "20240100-10:00:00",
                      "2024-01-01 10:00:00", "20240101-10:00:00.12345678901", "20240101-10:00"]),
    "UTCTIMEONLY": (["10:00:00", "23:59:59.999"], ["24:00:00", "10:00", "10:60:00"]),
    "UTCDATEONLY": (["20240101"], ["2024011", "20241301", "2024-01-01"]),
    "UTCDATE": (["20241231"], ["20240132"]),
    "LOCALMKTDATE": (["20240307"], ["240307"]),
    "MONTHYEAR": (["202403", "20240315", "202403w2"], ["2024", "202413", "202403w9", "202403x1"]),
    "DAYOFMONTH": (["1", "31", "07"], ["0", "32", "x"]),
    "STRING": (["anything at all"], []),
    "DATA": (["raw"], []),
    "CURRENCY": (["KRW"], []),
}


def test_data_formats(tmp_path: Path) -> None:
    fields = "".join(f"<field number='{7000 + i}' name='F{t}' type='{t}'/>"
                     for i, t in enumerate(FORMATS))
    members = "".join(f"<field name='F{t}' required='N'/>" for t in FORMATS)
    xml = tmp_path / "types.xml"
    xml.write_text(TYPES_XML.format(fields=fields, members=members))
    dd = DataDictionary.from_xml(xml)
    for i, (ftype, (good, bad)) in enumerate(FORMATS.items()):
        tag = 7000 + i
        for value in good:
            res = dd.validate(make("FIX.4.4", f"35=T|{tag}={value}"))
            assert res is None, (ftype, value, res)
        for value in bad:
            res = dd.validate(make("FIX.4.4", f"35=T|{tag}={value}"))
            assert res is not None and (res.reason, res.ref_tag_id) == (6, tag), (ftype, value)
