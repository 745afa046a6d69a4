"""Codec: parse, Message accessors, encode, Template, timestamps."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastfix
from fastfix.codec import (
    DEFAULT_DATA_FIELDS,
    SOH,
    Message,
    Template,
    checksum,
    encode,
    frame,
    parse,
    parse_utc_timestamp,
    utc_timestamp,
)
from fastfix.errors import EncodeError, ParseError

UTC = dt.UTC

NOS = (
    b"8=FIX.4.4\x019=148\x0135=D\x0134=1080\x0149=TESTBUY1\x0152=20180920-18:14:19.508\x01"
    b"56=TESTSELL1\x0111=636730640278898634\x0115=USD\x0121=2\x0138=7000\x0140=1\x0154=1\x01"
    b"55=MSFT\x0160=20180920-18:14:19.492\x0110=092\x01"
)


def _wire(fields: list[tuple[int, bytes]]) -> bytes:
    return b"".join(b"%d=%s\x01" % (t, v) for t, v in fields)


def test_constants_and_exports():
    assert SOH == b"\x01"
    assert fastfix.parse is parse and fastfix.encode is encode
    assert DEFAULT_DATA_FIELDS[95] == 96 and DEFAULT_DATA_FIELDS[93] == 89


def test_checksum():
    assert checksum(b"") == 0
    assert checksum(b"\xff\x02") == 1
    assert checksum(NOS[:-7]) == 92


# --------------------------------------------------------------------------- parse + accessors


def test_parse_accessors():
    m = parse(NOS)
    assert isinstance(m, Message)
    assert len(m) == 16
    assert 55 in m and 9999 not in m and "55" not in m
    assert m[55] == b"MSFT"
    assert m.get(9999) is None and m.get(9999, b"x") == b"x"
    assert m.get_str(49) == "TESTBUY1"
    assert m.get_int(38) == 7000
    assert m.get_decimal(38) == Decimal("7000")
    assert m.get_utc(52) == dt.datetime(2018, 9, 20, 18, 14, 19, 508000, tzinfo=UTC)
    assert m.begin_string == b"FIX.4.4"
    assert m.msg_type == b"D"
    assert m.seq_num == 1080
    assert m.raw is NOS
    assert bytes(m) == NOS
    assert m.tag_at(0) == 8 and m.tag_at(2) == 35 and m.tag_at(-1) == 10
    assert m.value_at(-1) == b"092"
    assert m.fields()[:3] == [(8, b"FIX.4.4"), (9, b"148"), (35, b"D")]
    assert list(m) == m.fields()
    assert "35=D|" in repr(m)
    with pytest.raises(KeyError):
        m[9999]
    with pytest.raises(IndexError):
        m.tag_at(16)
    with pytest.raises(IndexError):
        m.value_at(-17)


def test_accessor_defaults_and_errors():
    m = parse(NOS)
    for getter in (m.get_str, m.get_int, m.get_decimal, m.get_utc, m.get_bool):
        with pytest.raises(KeyError):
            getter(9999)
        assert getter(9999, None) is None
    with pytest.raises(ValueError):
        m.get_int(55)
    with pytest.raises(ValueError):
        m.get_decimal(55)
    with pytest.raises(ValueError):
        m.get_utc(55)
    with pytest.raises(ValueError):
        m.get_bool(55)


def _one(tag: int, value: bytes) -> Message:
    return parse(encode("FIX.4.4", "0", [(49, "A"), (56, "B"), (34, 1), (tag, value)]))


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"0", 0),
        (b"-12", -12),
        (b"123456789012345678", 123456789012345678),
        (b"1" * 25, int("1" * 25)),
    ],
)
def test_get_int(raw, expected):
    assert _one(58, raw).get_int(58) == expected


@pytest.mark.parametrize("raw", [b"", b"-", b"1.5", b" 1", b"0x1"])
def test_get_int_invalid(raw):
    with pytest.raises(ValueError):
        _one(58, raw).get_int(58)


@pytest.mark.parametrize("raw", [b"1.50", b"-0.001", b"100", b".5", b"5."])
def test_get_decimal(raw):
    assert _one(44, raw).get_decimal(44) == Decimal(raw.decode())


@pytest.mark.parametrize("raw", [b"", b"NaN", b"1e5", b"1.2.3", b"-", b"."])
def test_get_decimal_invalid(raw):
    with pytest.raises(ValueError):
        _one(44, raw).get_decimal(44)


def test_get_bool():
    assert _one(43, b"Y").get_bool(43) is True
    assert _one(43, b"N").get_bool(43) is False


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"20240102-03:04:05", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (b"20240102-03:04:05.123", dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
        (b"20240102-03:04:05.123456", dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        (b"20240102-03:04:05.123456789", dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        (b"20240229-23:59:60", dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_timestamps_parse(raw, expected):
    assert parse_utc_timestamp(raw) == expected
    assert parse_utc_timestamp(raw.decode()) == expected
    assert _one(60, raw).get_utc(60) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"20240102",
        b"20240102 03:04:05",
        b"20230229-00:00:00",
        b"20241301-00:00:00",
        b"20240102-24:00:00",
        b"20240102-03:04:05.",
        b"20240102-03:04:05.1234567890",
        b"2024010a-03:04:05",
    ],
)
def test_timestamps_invalid(raw):
    with pytest.raises(ValueError):
        parse_utc_timestamp(raw)


def test_utc_timestamp_formats():
    t = dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert utc_timestamp(t) == b"20240102-03:04:05.678"
    assert utc_timestamp(t, 0) == b"20240102-03:04:05"
    assert utc_timestamp(t, 6) == b"20240102-03:04:05.678901"
    assert utc_timestamp(t.replace(tzinfo=None), 6) == b"20240102-03:04:05.678901"
    kst = dt.timezone(dt.timedelta(hours=9))
    assert utc_timestamp(t.astimezone(kst), 3) == b"20240102-03:04:05.678"
    assert utc_timestamp(1_700_000_000_123_456_789, 9) == b"20231114-22:13:20.123456789"
    assert utc_timestamp(-1, 3) == b"19691231-23:59:59.999"
    now = parse_utc_timestamp(utc_timestamp())
    assert abs((now - dt.datetime.now(UTC)).total_seconds()) < 5
    with pytest.raises(ValueError):
        utc_timestamp(t, 2)
    with pytest.raises(TypeError):
        utc_timestamp("now")


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.sampled_from([0, 3, 6]),
)
def test_timestamp_roundtrip(value, prec):
    text = utc_timestamp(value, prec)
    assert (
        text
        == value.strftime("%Y%m%d-%H:%M:%S").zfill(17).encode()
        + (b"" if prec == 0 else b"." + b"%06d" % value.microsecond)[: 1 + prec if prec else 0]
    )
    back = parse_utc_timestamp(text)
    assert back.replace(tzinfo=None) == value.replace(
        microsecond=value.microsecond // 10 ** (6 - prec) * 10 ** (6 - prec) if prec else 0
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**18), max_value=4 * 10**18))
def test_timestamp_from_ns_matches_datetime(ns):
    expected = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ns // 1000)
    assert parse_utc_timestamp(utc_timestamp(ns, 6)).replace(tzinfo=None) == expected


@pytest.mark.parametrize(
    "bad",
    [b"", b"8=FIX.4.4\x01", NOS[:-1], NOS + b"x", b"junk" + NOS, NOS.replace(b"10=092", b"10=093")],
)
def test_parse_errors(bad):
    with pytest.raises(ParseError):
        parse(bad)


def test_parse_accepts_bytearray():
    assert parse(bytearray(NOS)).raw == NOS


def test_message_equality_and_hash():
    a, b = parse(NOS), parse(bytes(bytearray(NOS)))
    assert a == b and hash(a) == hash(b)
    assert a != parse(encode("FIX.4.4", "0", [(34, 1)]))


def test_many_fields_spill_to_heap():
    fields = [(49, "A"), (56, "B"), (34, 1)] + [(5000 + i, str(i)) for i in range(200)]
    m = parse(encode("FIX.4.4", "D", fields))
    assert len(m) == 4 + 3 + 200
    assert m[5199] == b"199"
    assert m.get_all(5000) == [b"0"]
    assert m.tag_at(-1) == 10


# --------------------------------------------------------------------------- encode


def test_encode_order_length_checksum():
    out = encode(
        "FIX.4.4",
        "D",
        [
            (11, "ID"),
            (49, "TW"),
            (21, "3"),
            (56, "ISLD"),
            (34, 2),
            (52, b"20240102-03:04:05"),
            (89, b"sig"),
            (93, 3),
            (55, "INTC"),
        ],
    )
    m = parse(out)
    assert [t for t, _ in m.fields()] == [8, 9, 35, 49, 56, 34, 52, 11, 21, 55, 89, 93, 10]
    body = out[out.index(b"\x0135=") + 1 : out.rindex(b"10=")]
    assert m.get_int(9) == len(body)
    assert m.get_int(10) == checksum(out[: out.rindex(b"10=")])


def test_encode_ignores_computed_tags_and_none():
    a = encode("FIX.4.4", "0", [(8, "X"), (9, 1), (35, "Z"), (34, 1), (58, None), (10, "000")])
    assert a == encode(b"FIX.4.4", b"0", [(34, 1)])
    assert parse(a).fields()[2:4] == [(35, b"0"), (34, b"1")]


def test_encode_value_types():
    fields = [
        (1, "acct"),
        (2, b"raw"),
        (3, 42),
        (4, -7),
        (5, True),
        (6, False),
        (7, Decimal("100.25")),
        (8000, Decimal("1E+3")),
        (9000, 1.5),
        (9001, 1e-7),
        (9002, dt.datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)),
        (9003, dt.date(2024, 1, 2)),
        (9004, dt.time(3, 4, 5, 6000)),
        (9005, 2**70),
        (9006, "한글"),
        (9007, -(2**63)),
    ]
    m = parse(encode("FIX.4.4", "D", fields))
    assert m.fields()[3:-1] == [
        (1, b"acct"),
        (2, b"raw"),
        (3, b"42"),
        (4, b"-7"),
        (5, b"Y"),
        (6, b"N"),
        (7, b"100.25"),
        (8000, b"1000"),
        (9000, b"1.5"),
        (9001, b"0.0000001"),
        (9002, b"20240102-03:04:05.006"),
        (9003, b"20240102"),
        (9004, b"03:04:05.006"),
        (9005, str(2**70).encode()),
        (9006, "한글".encode()),
        (9007, str(-(2**63)).encode()),
    ]
    m6 = parse(
        encode("FIX.4.4", "D", [(60, dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC))], precision=6)
    )
    assert m6[60] == b"20240102-03:04:05.000006"


@pytest.mark.parametrize(
    "fields",
    [
        [(58, "a\x01b")],
        [(58, b"a\x01b")],
        [(58, object())],
        [(58, float("nan"))],
        [(58, Decimal("Infinity"))],
        [(0, "x")],
        [(-5, "x")],
    ],
)
def test_encode_errors(fields):
    with pytest.raises(EncodeError):
        encode("FIX.4.4", "0", fields)


def test_encode_bad_arguments():
    with pytest.raises(TypeError):
        encode(1, "0", [])
    with pytest.raises(ValueError):
        encode("FIX.4.4", "0", [], precision=4)
    with pytest.raises((TypeError, ValueError)):
        encode("FIX.4.4", "0", [(1, 2, 3)])


def test_encode_data_field_may_hold_soh():
    raw = b"\x01\x02\x01"
    m = parse(encode("FIX.4.4", "0", [(95, len(raw)), (96, raw)]))
    assert m[96] == raw


def test_encode_groups_nested():
    legs = [
        [
            (600, "KR7005930003"),
            (624, 1),
            (539, [[(524, "P1"), (525, "D")], [(524, "P2"), (525, "D")]]),
        ],
        [(600, "KR7000660001"), (624, 2), (539, [])],
    ]
    out = encode("FIX.4.4", "AB", [(49, "A"), (56, "B"), (34, 3), (555, legs), (55, "MULTI")])
    m = parse(out)
    assert [t for t, _ in m.fields()][3:-1] == [
        49,
        56,
        34,
        555,
        600,
        624,
        539,
        524,
        525,
        524,
        525,
        600,
        624,
        539,
        55,
    ]
    assert m[555] == b"2"
    assert m.get_all(539) == [b"2", b"0"]
    assert m.get_all(524) == [b"P1", b"P2"]
    # A group given as a sequence of pairs and a tuple entry works too.
    out2 = encode(
        "FIX.4.4",
        "AB",
        [(49, "A"), (56, "B"), (34, 3), (555, [tuple(e) for e in legs]), (55, "MULTI")],
    )
    assert out2 == out


def test_encode_header_group_nohops():
    hops = [[(628, "HUB"), (629, dt.datetime(2024, 1, 1, tzinfo=UTC)), (630, 7)]]
    m = parse(encode("FIX.4.4", "D", [(11, "X"), (627, hops), (49, "A")]))
    assert [t for t, _ in m.fields()][3:-1] == [627, 628, 629, 630, 49, 11]


def test_encode_large_message_grows_buffer():
    big = "x" * 100_000
    m = parse(encode("FIX.4.4", "B", [(49, "A"), (58, big), (56, "B" * 500), (34, 1)]))
    assert m.get_str(58) == big
    assert m[56] == b"B" * 500


_value = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_characters="\x01", blacklist_categories=("Cs",)),
        max_size=20,
    ),
    st.binary(max_size=20).filter(lambda b: b"\x01" not in b),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9
    ),
)
_tag = st.integers(min_value=1, max_value=99999).filter(
    lambda t: t not in (8, 9, 10, 35) and t not in DEFAULT_DATA_FIELDS.values()
)


def _text(v: object) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, bool):
        return b"Y" if v else b"N"
    if isinstance(v, Decimal):
        return format(v, "f").encode()
    return str(v).encode()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_tag, _value), max_size=30),
    st.sampled_from(["FIX.4.2", "FIX.4.4", "FIXT.1.1"]),
)
def test_encode_parse_roundtrip(fields, begin):
    out = encode(begin, "D", fields)
    m = parse(out)
    assert m.begin_string == begin.encode()
    got = m.fields()[3:-1]
    assert sorted(got) == sorted((t, _text(v)) for t, v in fields)
    assert m.get_int(10) == checksum(out[:-7])


# --------------------------------------------------------------------------- Template

ER_FIELDS = [
    (49, "EXEC"),
    (56, "GATEWAY"),
    (34, None),
    (52, None),
    (37, "ORD-1"),
    (11, "CL-1"),
    (17, None),
    (150, "F"),
    (39, None),
    (55, "005930"),
    (54, "1"),
    (38, 100),
    (14, None),
    (151, None),
    (6, Decimal("0")),
]
VARS = [34, 52, 17, 39, 14, 151]


def test_template_matches_encode():
    t = Template("FIX.4.4", "8", ER_FIELDS, VARS)
    values = (12, dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "EX-9", "1", 40, 60)
    expected = encode(
        "FIX.4.4",
        "8",
        [(tag, dict(zip(VARS, values, strict=True)).get(tag, v)) for tag, v in ER_FIELDS],
    )
    assert t.render(*values) == expected
    # again with other values, including wider ones (BodyLength digits change)
    values = (123456789, b"20240102-03:04:05.123", "EX-" + "9" * 800, "2", 100, 0)
    expected = encode(
        "FIX.4.4",
        "8",
        [(tag, dict(zip(VARS, values, strict=True)).get(tag, v)) for tag, v in ER_FIELDS],
    )
    assert t.render(*values) == expected
    parse(expected)


def test_template_variable_not_in_fields_and_none():
    t = Template("FIX.4.4", "0", [(49, "A"), (56, "B"), (112, "x")], [34, 58])
    out = t.render(5, None)
    assert out == encode("FIX.4.4", "0", [(49, "A"), (56, "B"), (34, 5), (112, "x")])
    out = t.render(6, "hello")
    assert [tag for tag, _ in parse(out).fields()] == [8, 9, 35, 49, 56, 34, 112, 58, 10]


def test_template_group_variable_and_errors():
    t = Template("FIX.4.4", "D", [(49, "A"), (453, None)], [453])
    out = t.render([[(448, "P"), (447, "D"), (452, 3)]])
    assert parse(out).get_all(448) == [b"P"]
    with pytest.raises(TypeError):
        t.render()
    with pytest.raises(ValueError):
        Template("FIX.4.4", "D", [(49, "A")], [35])
    with pytest.raises(ValueError):
        Template("FIX.4.4", "D", [(49, "A")], [1, 1])
    with pytest.raises(ValueError):
        Template("FIX.4.4", "D", [(58, "A"), (58, "B")], [58])
    with pytest.raises(EncodeError):
        t.render("bad\x01")


def test_template_many_variables():
    tags = list(range(5000, 5100))
    t = Template("FIX.4.4", "D", [(49, "A")], tags)
    out = t.render(*range(100))
    assert parse(out).get_all(5099) == [b"99"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9999), st.binary(min_size=1, max_size=40).filter(lambda b: b"\x01" not in b)),
                max_size=12),
       st.integers(0, 5))
def test_frame_matches_encode(fields, cut):
    """frame() around encoded pieces gives the bytes encode() gives for the same fields."""
    fields = [(t, v) for t, v in fields if t not in (8, 9, 10, 35) and t not in DEFAULT_DATA_FIELDS
              and t not in DEFAULT_DATA_FIELDS.values()]
    whole = encode("FIX.4.4", "D", fields)
    payload = whole[whole.index(b"35="):-7]
    pieces = [payload[:cut], payload[cut:]]
    assert frame(b"FIX.4.4", pieces) == whole
    assert frame("FIX.4.4", tuple(pieces)) == whole
    assert checksum(whole[:-7]) == int(whole[-4:-1])


def test_frame_rejects_other_types():
    with pytest.raises(TypeError, match="must be bytes"):
        frame(b"FIX.4.4", [b"35=0\x01", "34=1\x01"])
    assert frame(b"FIX.4.2", []) == b"8=FIX.4.2\x019=0\x0110=198\x01"
