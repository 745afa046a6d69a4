"""FIX codec: parse and serialize a NewOrderSingle and an ExecutionReport.

fastfix beside simplefix (pure Python) in the same run, and beside QuickFIX's
Python binding when ``import quickfix`` works. "parse" is bytes -> message
object whose fields are accessible, done the way each library documents it;
"serialize" is Python values ``(tag, str)`` -> wire bytes with BodyLength and
CheckSum. ``bench/gate.py`` turns a ``--benchmark-json`` file of this module
into pass/fail ratios.
"""

from __future__ import annotations

import pytest

from fastfix.codec import Template, Tokenizer, encode, frame, parse

simplefix = pytest.importorskip("simplefix")
try:
    import quickfix
except ImportError:  # the binding is optional (extra "quickfix")
    quickfix = None

# Realistic FIX.4.4 order flow toward a Korean exchange.
NOS_FIELDS: list[tuple[int, str]] = [
    (49, "GATEWAY01"),
    (56, "STPHUB"),
    (34, "1042"),
    (52, "20240102-01:23:45.678"),
    (128, "BROKER1"),
    (11, "CL-2401020000123"),
    (1, "ACCT-778812"),
    (21, "1"),
    (55, "005930"),
    (48, "KR7005930003"),
    (22, "4"),
    (207, "XKRX"),
    (54, "1"),
    (60, "20240102-01:23:45.677"),
    (38, "100"),
    (40, "2"),
    (44, "71500"),
    (59, "0"),
    (15, "KRW"),
]

ER_FIELDS: list[tuple[int, str]] = [
    (49, "STPHUB"),
    (56, "GATEWAY01"),
    (34, "2210"),
    (52, "20240102-01:23:45.702"),
    (37, "XKRX-0000981273"),
    (11, "CL-2401020000123"),
    (17, "EX-240102-00451"),
    (150, "F"),
    (39, "1"),
    (1, "ACCT-778812"),
    (55, "005930"),
    (48, "KR7005930003"),
    (207, "XKRX"),
    (54, "1"),
    (38, "100"),
    (40, "2"),
    (44, "71500"),
    (32, "40"),
    (31, "71500"),
    (151, "60"),
    (14, "40"),
    (6, "71500"),
    (60, "20240102-01:23:45.701"),
    (59, "0"),
]

NOS = encode("FIX.4.4", "D", NOS_FIELDS)
ER = encode("FIX.4.4", "8", ER_FIELDS)
CASES = {"nos": ("D", NOS_FIELDS, NOS), "er": ("8", ER_FIELDS, ER)}


# The figures in docs/performance.md refer to these sizes.
assert len(NOS) == 238 and len(ER) == 294, (len(NOS), len(ER))


# --------------------------------------------------------------------------- parse


@pytest.mark.parametrize("case", ["nos", "er"])
def test_parse_fastfix(benchmark, case):
    benchmark.group = f"parse-{case}"
    data = CASES[case][2]
    m = benchmark(parse, data)
    assert m[55] == b"005930"


@pytest.mark.parametrize("case", ["nos", "er"])
def test_parse_fastfix_tokenizer(benchmark, case):
    benchmark.group = f"parse-{case}"
    data = CASES[case][2]
    tok = Tokenizer()
    out = benchmark(tok.feed, data)
    assert out[0][55] == b"005930"


@pytest.mark.parametrize("case", ["nos", "er"])
def test_parse_simplefix(benchmark, case):
    benchmark.group = f"parse-{case}"
    data = CASES[case][2]

    def run():
        parser = simplefix.FixParser()
        parser.append_buffer(data)
        return parser.get_message()

    m = benchmark(run)
    assert m.get(55) == b"005930"


@pytest.mark.parametrize("case", ["nos", "er"])
def test_parse_quickfix(benchmark, case):
    if quickfix is None:
        pytest.skip("quickfix binding not installed")
    benchmark.group = f"parse-{case}"
    data = CASES[case][2].decode()

    def run():
        return quickfix.Message(data, False)

    m = benchmark(run)
    assert m.getField(55) == "005930"


# --------------------------------------------------------------------------- serialize


@pytest.mark.parametrize("case", ["nos", "er"])
def test_serialize_fastfix(benchmark, case):
    benchmark.group = f"serialize-{case}"
    msg_type, fields, wire = CASES[case]
    out = benchmark(encode, "FIX.4.4", msg_type, fields)
    assert out == wire


@pytest.mark.parametrize("case", ["nos", "er"])
def test_serialize_fastfix_template(benchmark, case):
    """Template fast path: only MsgSeqNum and SendingTime (and ExecID for reports) vary."""
    benchmark.group = f"serialize-{case}"
    msg_type, fields, wire = CASES[case]
    variable = [34, 52] + ([17] if case == "er" else [])
    tpl = Template("FIX.4.4", msg_type, fields, variable)
    values = [dict(fields)[t] for t in variable]
    out = benchmark(tpl.render, *values)
    assert out == wire


@pytest.mark.parametrize("case", ["nos", "er"])
def test_serialize_fastfix_frame(benchmark, case):
    """``frame``: the message around pieces already encoded (header pieces and a body), as
    the session sends a body mapped once from JSON."""
    benchmark.group = f"serialize-{case}"
    _, _, wire = CASES[case]
    payload = wire[wire.index(b"35="):-7]
    cut = payload.index(b"\x0152=") + 1
    pieces = (payload[:cut], payload[cut:])
    out = benchmark(frame, b"FIX.4.4", pieces)
    assert out == wire


@pytest.mark.parametrize("case", ["nos", "er"])
def test_serialize_simplefix(benchmark, case):
    benchmark.group = f"serialize-{case}"
    msg_type, fields, wire = CASES[case]

    def run():
        msg = simplefix.FixMessage()
        msg.append_pair(8, "FIX.4.4")
        msg.append_pair(35, msg_type)
        for tag, value in fields:
            msg.append_pair(tag, value, header=tag in (49, 56, 34, 52, 128))
        return msg.encode()

    out = benchmark(run)
    assert parse(out)[55] == b"005930"


@pytest.mark.parametrize("case", ["nos", "er"])
def test_serialize_quickfix(benchmark, case):
    if quickfix is None:
        pytest.skip("quickfix binding not installed")
    benchmark.group = f"serialize-{case}"
    msg_type, fields, wire = CASES[case]
    header_tags = {49, 56, 34, 52, 128}

    def run():
        msg = quickfix.Message()
        header = msg.getHeader()
        header.setField(8, "FIX.4.4")
        header.setField(35, msg_type)
        for tag, value in fields:
            if tag in header_tags:
                header.setField(tag, value)
            else:
                msg.setField(tag, value)
        return msg.toString()

    out = benchmark(run)
    assert "55=005930" in out
