"""Tokenizer: framing of a byte stream, garbled input, chunking, memory bounds."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastfix.codec import Garbled, Message, Tokenizer, checksum, encode
from fastfix.tags import HEADER_TAGS

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ACCEPTANCE = SHARED / "fix" / "acceptance" / "fix44"


def _msg(seq: int, msg_type: str = "D", **extra: str) -> bytes:
    fields = [(49, "TW44"), (56, "ISLD"), (34, seq), (52, "20240102-03:04:05.123")]
    fields += [(11, f"ORD{seq}"), (21, "3"), (40, "1"), (54, "1"), (55, "INTC")]
    fields += [(int(k[1:]), v) for k, v in extra.items()]
    return encode("FIX.4.4", msg_type, fields)


def _feed_chunks(tok: Tokenizer, data: bytes, size: int) -> list:
    out = []
    for i in range(0, len(data), size):
        out += tok.feed(data[i : i + size])
    return out


def _seqs(items: list) -> list[int]:
    return [m.seq_num for m in items if isinstance(m, Message)]


def _reassembled(items: list) -> bytes:
    """Every input byte ends up in exactly one item, in order."""
    return b"".join(m.raw if isinstance(m, Message) else m.data for m in items)


# --------------------------------------------------------------------------- basics


def test_one_chunk_several_messages_zero_copy():
    data = _msg(1) + _msg(2) + _msg(3)
    tok = Tokenizer()
    out = tok.feed(data)
    assert _seqs(out) == [1, 2, 3]
    assert tok.buffered == 0
    assert out[0].raw == _msg(1)


def test_messages_reference_the_chunk_instead_of_copying():
    data = _msg(1) + _msg(2) + _msg(3)
    before = sys.getrefcount(data)
    out = Tokenizer().feed(data)
    assert sys.getrefcount(data) == before + 3  # each Message holds the chunk itself
    del out
    assert sys.getrefcount(data) == before
    # A message completed from a buffered tail is the only copy; the rest reference the chunk.
    tok = Tokenizer()
    tok.feed(_msg(1)[:50])
    rest = _msg(1)[50:] + _msg(2)
    before = sys.getrefcount(rest)
    out = tok.feed(rest)
    assert _seqs(out) == [1, 2]
    assert sys.getrefcount(rest) == before + 1


def test_whole_message_chunk_returns_same_object():
    data = _msg(7)
    m = Tokenizer().feed(data)[0]
    assert m.raw is data


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 64, 100, 1000])
def test_any_chunking(size):
    msgs = [_msg(i) for i in range(1, 6)]
    data = b"".join(msgs)
    tok = Tokenizer()
    out = _feed_chunks(tok, data, size)
    assert [m.raw for m in out] == msgs
    assert tok.buffered == 0


def test_partial_tail_is_buffered_then_completed():
    a, b = _msg(1), _msg(2)
    tok = Tokenizer()
    out = tok.feed(a + b[:40])
    assert _seqs(out) == [1]
    assert tok.buffered == 40
    out = tok.feed(b[40:] + _msg(3))
    assert _seqs(out) == [2, 3]
    assert tok.buffered == 0


def test_reset_drops_partial_frame():
    tok = Tokenizer()
    tok.feed(_msg(1)[:30])
    tok.reset()
    assert tok.buffered == 0
    assert _seqs(tok.feed(_msg(2))) == [2]


def test_bytearray_and_memoryview_accepted():
    data = _msg(4)
    assert _seqs(Tokenizer().feed(bytearray(data))) == [4]
    assert _seqs(Tokenizer().feed(memoryview(data))) == [4]


def test_empty_feed():
    assert Tokenizer().feed(b"") == []


def test_fixt_begin_string():
    data = encode("FIXT.1.1", "A", [(49, "A"), (56, "B"), (34, 1), (98, 0), (108, 30), (1137, 9)])
    out = Tokenizer().feed(data)
    assert out[0].begin_string == b"FIXT.1.1"


# --------------------------------------------------------------------------- malformed corpus


def _frame(
    body: bytes, begin: bytes = b"FIX.4.4", length: int | None = None, cks: bytes | None = None
) -> bytes:
    head = (
        b"8=" + begin + b"\x019=" + str(len(body) if length is None else length).encode() + b"\x01"
    )
    if cks is None:
        cks = b"%03d" % checksum(head + body)
    return head + body + b"10=" + cks + b"\x01"


GOOD_BODY = b"35=0\x0149=A\x0156=B\x0134=9\x0152=20240102-03:04:05\x01"


def test_frame_helper_is_valid():
    assert _seqs(Tokenizer().feed(_frame(GOOD_BODY))) == [9]


@pytest.mark.parametrize(
    "bad, reason",
    [
        (_frame(GOOD_BODY, cks=b"000"), "CheckSum (10) is 000"),
        (_frame(GOOD_BODY, cks=b"1"), "CheckSum (10) is not three digits"),
        (_frame(GOOD_BODY, cks=b"1234"), "CheckSum (10) is not three digits"),
        (_frame(GOOD_BODY, cks=b"abc"), "CheckSum (10) is not three digits"),
        (_frame(GOOD_BODY, length=len(GOOD_BODY) - 10), "BodyLength (9) is"),
        (_frame(b"49=A\x0135=0\x0156=B\x0134=9\x01"), "MsgType (35) is not the third field"),
        (_frame(b"35=0\x0149=A\x01x4=1\x0134=9\x01"), "malformed tag=value field"),
        (_frame(b"35=0\x014garbled9=A\x0134=9\x01"), "malformed tag=value field"),
        (_frame(b"35=0\x0149=A\x01=1\x0134=9\x01"), "malformed tag=value field"),
        (_frame(b"35=0\x0149=A\x01-=1\x0134=9\x01"), "malformed tag=value field"),
        (_frame(b"35=0\x0149=A\x01--1=1\x0134=9\x01"), "malformed tag=value field"),
        (_frame(b"35=0\x0149=A\x011-1=1\x0134=9\x01"), "malformed tag=value field"),
        (_frame(b"35=0\x0149=A\x0149A\x0134=9\x01"), "malformed tag=value field"),
        (_frame(b"35=0\x0149=A\x0112345678901=1\x0134=9\x01"), "malformed tag=value field"),
        (_frame(b"35=0\x0195=5\x0196=ab\x0134=9\x01"), "data field 96"),
    ],
)
def test_garbled_frame_dropped_next_survives(bad, reason):
    tok = Tokenizer()
    out = tok.feed(bad + _msg(5))
    assert len(out) == 2, out
    assert isinstance(out[0], Garbled)
    assert reason in out[0].reason
    assert out[0].data == bad
    assert _seqs(out) == [5]


def test_length_too_long_swallows_next_frame_like_quickfix():
    # BodyLength points into the next message: the search for "<SOH>10=" finds the
    # next message's CheckSum, and both are dropped as one frame.
    bad = _frame(GOOD_BODY, length=len(GOOD_BODY) + 12)
    nxt = _msg(6)
    out = Tokenizer().feed(bad + nxt + _msg(7))
    assert isinstance(out[0], Garbled)
    assert out[0].data == bad + nxt
    assert _seqs(out) == [7]


def test_bodylength_not_second_field():
    bad = b"8=FIX.4.4\x0135=0\x019=5\x0110=000\x01"
    out = Tokenizer().feed(bad + _msg(3))
    assert isinstance(out[0], Garbled)
    assert "BodyLength (9) is not the second field" in out[0].reason
    assert _seqs(out) == [3]
    assert _reassembled(out) == bad + _msg(3)


@pytest.mark.parametrize("value", [b"", b"abc", b"-5", b"12345678901"])
def test_bodylength_not_a_number(value):
    bad = b"8=FIX.4.4\x019=" + value + b"\x0135=0\x0110=000\x01"
    out = Tokenizer().feed(bad + _msg(3))
    assert isinstance(out[0], Garbled)
    assert "BodyLength (9) is not a valid number" in out[0].reason
    assert _seqs(out) == [3]


@pytest.mark.parametrize("tag, expected", [(b"0", 0), (b"-1", -1), (b"049", 49), (b"5000", 5000)])
def test_integer_tags_out_of_range_parse(tag, expected):
    # Not garbled: validation answers these with a Reject "Invalid tag number".
    data = _frame(b"35=0\x0134=3\x0149=TW44\x0156=ISLD\x01" + tag + b"=HI\x01")
    m = Tokenizer().feed(data)[0]
    assert isinstance(m, Message)
    assert m.tag_at(-2) == expected
    assert m.value_at(-2) == b"HI"
    assert expected in m


def test_empty_value_parses():
    data = _frame(b"35=0\x0149=A\x0156=\x0134=9\x01")
    m = Tokenizer().feed(data)[0]
    assert isinstance(m, Message)
    assert m[56] == b""


def test_duplicate_tags_parse():
    data = _frame(b"35=0\x0149=A\x0149=B\x0134=9\x01")
    m = Tokenizer().feed(data)[0]
    assert m.get_all(49) == [b"A", b"B"]
    assert m[49] == b"A"


def test_junk_between_messages():
    data = b"hello" + _msg(1) + b"\x00\xff junk 58=x\x01" + _msg(2) + b"8=FI" + _msg(3)
    out = Tokenizer().feed(data)
    assert _seqs(out) == [1, 2, 3]
    assert [type(x) for x in out] == [Garbled, Message, Garbled, Message, Garbled, Message]
    assert _reassembled(out) == data


def test_missing_soh_between_fields_is_garbled():
    good = _msg(1)
    bad = good.replace(b"\x0155=", b"55=")  # SOH dropped: the body is one byte shorter
    # BodyLength now points one byte past the real CheckSum, so (as in QuickFIX) the
    # frame runs to the next message's CheckSum; the message after that survives.
    out = Tokenizer().feed(bad + _msg(2) + _msg(3))
    assert isinstance(out[0], Garbled)
    assert _seqs(out) == [3]
    # With BodyLength fixed up, the bad checksum alone garbles it.
    fixed = bad.replace(b"9=%d" % (len(good) - 21), b"9=%d" % (len(good) - 22))
    out = Tokenizer().feed(fixed + _msg(2))
    assert isinstance(out[0], Garbled)


def test_truncated_message_then_next():
    # A truncated message followed by a complete one: QuickFIX framing drops both
    # when BodyLength reaches into the next; the one after survives.
    trunc = _msg(1)[:60]
    out = Tokenizer().feed(trunc + _msg(2) + _msg(3))
    assert _seqs(out) == [3]
    assert isinstance(out[0], Garbled)


def test_truncated_at_end_waits():
    tok = Tokenizer()
    assert tok.feed(_msg(1)[:-1]) == []
    assert tok.buffered == len(_msg(1)) - 1
    assert _seqs(tok.feed(b"\x01")) == [1]


def test_non_ascii_bytes_in_values():
    text = "주문 확인".encode()
    data = encode("FIX.4.4", "8", [(49, "A"), (56, "B"), (34, 1), (58, text)])
    m = Tokenizer().feed(b"\xc0\xff" + data)[1]
    assert m[58] == text
    assert m.get_str(58) == "주문 확인"


def test_data_field_with_soh_and_fake_checksum():
    raw = b"a\x01b\x0110=123\x01c"
    data = encode(
        "FIX.4.4", "B", [(49, "A"), (56, "B"), (34, 1), (148, "hi"), (95, len(raw)), (96, raw)]
    )
    for size in (1, 7, len(data)):
        out = _feed_chunks(Tokenizer(), data + _msg(2), size)
        assert _seqs(out) == [1, 2]
        assert out[0][96] == raw
        assert out[0].tag_at(-2) == 96


def test_custom_data_fields_table():
    raw = b"x\x01y"
    data = encode(
        "FIX.4.4",
        "U1",
        [(49, "A"), (56, "B"), (34, 1), (5000, len(raw)), (5001, raw)],
        data_fields={5000: 5001},
    )
    m = Tokenizer(data_fields={5000: 5001}).feed(data)[0]
    assert m[5001] == raw
    # Without the pair, the SOH inside the value splits it: "y" is not tag=value.
    assert isinstance(Tokenizer().feed(data)[0], Garbled)
    with pytest.raises(ValueError):
        Tokenizer(data_fields={i: i + 1 for i in range(1, 200, 2)})


def test_large_length_tag_in_table():
    raw = b"x\x01y"
    fields = [(49, "A"), (56, "B"), (34, 1), (20000, len(raw)), (20001, b"x_y")]
    data = encode("FIX.4.4", "U1", fields).replace(b"x_y", raw)
    data = data[:-4] + b"%03d\x01" % checksum(data[:-7])
    assert Tokenizer(data_fields={20000: 20001}).feed(data)[0][20001] == raw


# --------------------------------------------------------------------------- size limits


def test_max_message_size_declared_length():
    tok = Tokenizer(max_message_size=256)
    big = _msg(1, Z58="x" * 300)
    out = tok.feed(big + _msg(2))
    assert isinstance(out[0], Garbled)
    assert "max_message_size" in out[0].reason
    assert _seqs(out) == [2]
    assert tok.buffered == 0


def test_max_message_size_exact_fit():
    m = _msg(1)
    assert _seqs(Tokenizer(max_message_size=len(m)).feed(m)) == [1]
    assert isinstance(Tokenizer(max_message_size=len(m) - 1).feed(m)[0], Garbled)


def test_no_checksum_within_max_size_bounded():
    tok = Tokenizer(max_message_size=1000)
    # Wrong (short) BodyLength and no CheckSum: the frame never ends.
    head = b"8=FIX.4.4\x019=5\x0135=0\x01"
    out = tok.feed(head)
    for _ in range(100):
        out += tok.feed(b"58=" + b"y" * 50 + b"\x01")
        assert tok.buffered <= 1000 + 64
    assert any(isinstance(x, Garbled) and "CheckSum" in x.reason for x in out)
    assert _seqs(tok.feed(_msg(1))) == [1]


def test_megabytes_of_junk_bounded_memory():
    import random

    rnd = random.Random(1)
    tok = Tokenizer()
    junk_total = 0
    seen = []
    for i in range(64):
        chunk = bytes(rnd.getrandbits(8) for _ in range(1024)) * 64  # 64 KiB
        chunk = chunk.replace(b"8=FIX", b"8=FIx")
        junk_total += len(chunk)
        out = tok.feed(chunk)
        assert tok.buffered <= 4
        assert all(isinstance(x, Garbled) for x in out)
        if i % 16 == 0:
            seen += _seqs(tok.feed(_msg(i)))
    assert junk_total >= 4 * 1024 * 1024
    assert seen == [0, 16, 32, 48]


def test_junk_byte_at_a_time_bounded():
    tok = Tokenizer()
    out = []
    for b in b"xyz8=FIyy8=F8=FIX8" * 20:
        out += tok.feed(bytes([b]))
        assert tok.buffered <= 64
    out += tok.feed(_msg(1))
    assert _seqs(out) == [1]


# --------------------------------------------------------------------------- QuickFIX acceptance framing


def _harness_bytes(line: str) -> bytes:
    """Build the bytes the acceptance client sends for an ``I`` line."""
    line = re.sub(r"<TIME([+-]\d+)?>", "20240102-03:04:05", line)
    fields = [f for f in line.split("\x01") if f]
    if not any(f.startswith("9=") for f in fields):
        i = next(k for k, f in enumerate(fields) if f.startswith("8="))
        body = "".join(f + "\x01" for f in fields[i + 1 :] if not f.startswith("10="))
        fields.insert(i + 1, f"9={len(body.encode())}")
    data = "".join(f + "\x01" for f in fields).encode()
    if not any(f.startswith("10=") for f in fields):
        data += b"10=%03d\x01" % checksum(data)
    return data


ACCEPTANCE_CASES = {
    # surviving MsgSeqNum values, in order
    "2m_BodyLengthValueNotCorrect": [1, 3, 2, 4, 5, 7],
    "3c_GarbledMessage": [1, 2, 4, 3, 4],
    "2d_GarbledMessage": [1, 2, 4, 3, 5],
    "2t_FirstThreeFieldsOutOfOrder": [1, 2, 3, 4],
    "3b_InvalidChecksum": [1, 2, 4, 3, 4],
}


@pytest.mark.parametrize("name", sorted(ACCEPTANCE_CASES))
@pytest.mark.parametrize("size", [1, 17, 1 << 20])
def test_acceptance_framing(name, size):
    path = ACCEPTANCE / f"{name}.def"
    if not path.exists():
        pytest.skip("shared acceptance suite not present")
    lines = [
        ln[1:]
        for ln in path.read_text().splitlines()
        if ln.startswith("I") and not ln.startswith("iCONNECT")
    ]
    stream = b"".join(_harness_bytes(ln) for ln in lines)
    out = _feed_chunks(Tokenizer(), stream, size)
    assert _seqs(out) == ACCEPTANCE_CASES[name]
    assert _reassembled(out) == stream
    n_garbled_frames = sum(1 for x in out if isinstance(x, Garbled) and x.data.startswith(b"8=FIX"))
    assert n_garbled_frames >= 1


# --------------------------------------------------------------------------- properties and fuzz

_values = st.binary(min_size=0, max_size=20).filter(lambda b: b"\x01" not in b)
_fieldsets = st.lists(
    st.tuples(
        st.integers(min_value=11, max_value=9999).filter(
            lambda t: (
                t not in (35, 89, 90, 91, 93, 95, 96, 212, 213, 627, 445, 446)
                and t not in range(348, 366)
            )
        ),
        _values,
    ),
    min_size=0,
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_fieldsets, min_size=1, max_size=4),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
)
def test_roundtrip_any_chunking(fieldsets, cuts):
    msgs = [encode("FIX.4.4", "D", [(34, i + 1)] + fs) for i, fs in enumerate(fieldsets)]
    data = b"".join(msgs)
    tok = Tokenizer()
    out, pos, k = [], 0, 0
    while pos < len(data):
        step = cuts[k % len(cuts)]
        out += tok.feed(data[pos : pos + step])
        pos += step
        k += 1
    assert [m.raw for m in out] == msgs
    for m, fs in zip(out, fieldsets, strict=True):
        header = [(t, v) for t, v in fs if t in HEADER_TAGS]
        body = [(t, v) for t, v in fs if t not in HEADER_TAGS]
        # Standard header fields come first, in given order, then the body in given order.
        assert m.fields()[3:-1] == [(34, b"%d" % m.seq_num)] + header + body


_junk = st.binary(min_size=1, max_size=60)


def _accounted(tok: Tokenizer, stream: bytes, out: list) -> None:
    """Items plus the buffered tail are exactly the input stream."""
    done = _reassembled(out)
    assert stream.startswith(done)
    assert len(stream) - len(done) == tok.buffered


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.integers(min_value=1, max_value=10**6), _junk), min_size=1, max_size=12),
    st.integers(min_value=1, max_value=97),
)
def test_fuzz_valid_messages_survive_junk(parts, chunk):
    """Junk that holds no frame start never costs a valid message, whatever the chunking."""
    segments: list[bytes | int] = []
    for part in parts:
        if isinstance(part, bytes) and segments and isinstance(segments[-1], bytes):
            segments[-1] += part
        else:
            segments.append(part)
    stream = b""
    expected = []
    for seg in segments:
        if isinstance(seg, int):
            stream += _msg(seg)
            expected.append(seg)
        else:
            stream += seg.replace(b"8=FIX", b"8=FIx")
    tok = Tokenizer(max_message_size=4096)
    out = _feed_chunks(tok, stream, chunk)
    assert _seqs(out) == expected
    _accounted(tok, stream, out)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=64))
def test_fuzz_random_bytes_never_crash(data, chunk):
    tok = Tokenizer(max_message_size=256)
    out = _feed_chunks(tok, data, chunk)
    for x in out:
        assert isinstance(x, Message | Garbled)
        if isinstance(x, Message):
            x.fields()
    assert tok.buffered <= 256 + 64
    _accounted(tok, data, out)
    tok.reset()
    assert _seqs(tok.feed(_msg(1))) == [1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=5),
    st.data(),
)
def test_fuzz_mutated_messages(seqs, data):
    """Flip bytes in valid messages: no crash, every byte accounted for, untouched ones survive."""
    msgs = [bytearray(_msg(s)) for s in seqs]
    touched = set()
    for i, m in enumerate(msgs):
        if data.draw(st.booleans()):
            pos = data.draw(st.integers(min_value=0, max_value=len(m) - 1))
            m[pos] = data.draw(st.integers(min_value=0, max_value=255))
            touched.add(i)
    stream = b"".join(bytes(m) for m in msgs) + _msg(999)
    chunk = data.draw(st.integers(min_value=1, max_value=300))
    tok = Tokenizer(max_message_size=4096)
    out = _feed_chunks(tok, stream, chunk)
    _accounted(tok, stream, out)
    got = _seqs(out)
    if not touched:
        assert got == seqs + [999]
    for x in out:
        if isinstance(x, Message):
            assert x.raw.startswith(b"8=FIX")
            x.fields()


def test_large_chunks_never_buffer_beyond_max_size():
    tok = Tokenizer(max_message_size=10_000)
    # A frame whose BodyLength is wrong and whose CheckSum never comes.
    out = tok.feed(b"8=FIX.4.4\x019=5\x0135=0\x01")
    for _ in range(20):
        out += tok.feed(b"58=" + b"z" * 4000 + b"\x01")
        assert tok.buffered <= 10_000 + 1
    assert any(isinstance(x, Garbled) for x in out)
    assert _seqs(tok.feed(_msg(1))) == [1]


def test_large_frame_across_chunks():
    big = _msg(1, Z58="q" * 200_000)
    tok = Tokenizer()
    out = _feed_chunks(tok, big + _msg(2), 65536)
    assert _seqs(out) == [1, 2]
    assert out[0][58] == b"q" * 200_000
    assert tok.buffered == 0
