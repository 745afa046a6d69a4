"""Bounded fuzzing in CI; long runs are ``make fuzz``.

* hypothesis drives the same property checks as the atheris targets
  (``fuzz_targets.py``): the tokenizer over spliced, mutated and junk streams cut at
  any size; validation over mutated messages; the JSON mapping over arbitrary JSON;
* atheris runs each target for a fixed number of inputs (skipped where atheris is
  not installed);
* schemathesis checks the gateway against its own /openapi.json: no 5xx, every
  status code, content type and body as documented, undeclared methods refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from _rel_helpers import KEYS, GatewayProcess, gateway_toml
from fuzz_targets import check_jsonfix, check_tokenizer, check_validate, seeds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastfix.errors import JsonMappingError
from fastfix.jsonfix import JsonCodec, decode_error_text

pytestmark = pytest.mark.fuzz
HERE = Path(__file__).resolve().parent
SEEDS = seeds()
_FAST = settings(max_examples=int(os.environ.get("FASTFIX_FUZZ_EXAMPLES", "300")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def mutated(draw: Any) -> bytes:
    """A valid message with a few byte-level edits (flip, drop, insert SOH/=/digits, truncate)."""
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["flip", "drop", "insert", "cut"]))
        if op == "flip":
            raw[i] = draw(st.integers(0, 255))
        elif op == "drop":
            del raw[i]
        elif op == "insert":
            raw[i:i] = draw(st.sampled_from([b"\x01", b"=", b"9=", b"10=", b"8=FIX.4.4\x01", b"0", b"\xff"]))
        else:
            raw = raw[:i]
    return bytes(raw)


junk = st.binary(max_size=40).filter(lambda b: b"8=" not in b)
stream = st.lists(st.one_of(st.sampled_from(SEEDS), mutated(), junk), min_size=1, max_size=8).map(b"".join)


@_FAST
@given(stream, st.integers(1, 64))
def test_tokenizer_properties(data: bytes, split: int) -> None:
    check_tokenizer(data, split)


@_FAST
@given(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=5), st.lists(junk, max_size=5), st.integers(1, 300))
def test_tokenizer_keeps_every_valid_message_between_junk(msgs: list[bytes], junks: list[bytes], split: int) -> None:
    from fastfix.codec import Garbled, Tokenizer

    data = b"".join(j + m for j, m in zip(junks + [b""] * len(msgs), msgs, strict=False))
    tok = Tokenizer()
    out = []
    for i in range(0, len(data), split):
        out.extend(x.raw for x in tok.feed(data[i:i + split]) if not isinstance(x, Garbled))
    assert out == msgs


@_FAST
@given(mutated())
def test_validation_never_fails_unexpectedly(data: bytes) -> None:
    check_validate(data)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
              st.text(max_size=12), st.sampled_from(["1", "2", "005930", "70000", "20240102-09:00:00", ""])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["ClOrdID", "Symbol", "Side", "OrderQty", "OrdType",
                                                             "Price", "NoPartyIDs", "PartyID", "PartyRole",
                                                             "TransactTime", "Text", "5001", "Bogus", "38"]),
                                            inner, max_size=6)),
    max_leaves=20)


@_FAST
@given(st.sampled_from(b"DFG8E"), json_values)
def test_json_mapping_never_fails_unexpectedly(kind: int, value: Any) -> None:
    check_jsonfix(bytes([kind]) + json.dumps(value).encode())


@_FAST
@given(st.binary(max_size=200))
def test_json_mapping_on_arbitrary_bytes(data: bytes) -> None:
    check_jsonfix(data)


def test_json_mapping_refuses_strings_that_are_not_utf8() -> None:
    """Found by fuzzing: the decoder's UnicodeDecodeError escaped instead of a JsonMappingError."""
    codec = JsonCodec("FIX.4.4")
    # the offset of the first bad byte in the input, whichever exception msgspec's version raises
    for bad, at in ((b'{"ClOrdID":"A\xcd\xcf"}', 13), (b'{"Text":"\xed\xa0\x80"}', 9)):
        with pytest.raises(JsonMappingError, match=f"invalid JSON: not valid UTF-8 at byte {at}$"):
            codec.body_to_fix("D", bad)
    with pytest.raises(JsonMappingError, match="not valid UTF-8 at byte 22$"):
        codec.json_to_fix(b'{"Header":{"MsgType":"\xff"},"Body":{}}')
    bad = b'{"Text":"\xff"}'
    assert decode_error_text(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), bad) == \
        "not valid UTF-8 at byte 9"
    assert decode_error_text(msgspec.DecodeError("Invalid UTF-8 encoded string"), bad) == "not valid UTF-8 at byte 9"
    assert decode_error_text(msgspec.DecodeError("Input data was truncated"), b'{"a') == "Input data was truncated"


def test_json_mapping_numbers_of_absurd_magnitude() -> None:
    """Found by fuzzing: 1e999999999 was expanded to a billion digits (MemoryError), and an
    exponent beyond Decimal's range escaped as decimal.InvalidOperation."""
    codec = JsonCodec("FIX.4.4")
    with pytest.raises(JsonMappingError, match="invalid decimal '1E\\+999999999999'"):
        codec.body_to_fix("D", b'{"OrderQty": 1e999999999999}')
    with pytest.raises(JsonMappingError, match="out of range"):
        codec.body_to_fix("D", b'{"OrderQty": 55555555e55555555555555555555555}')
    wire = codec.body_to_fix("D", b'{"ClOrdID":"A","Side":"1","OrdType":"1","TransactTime":"20240102-09:00:00",'
                                  b'"OrderQty":1.5e3,"Price":12e-2}')
    assert b"\x0138=1500\x01" in wire and b"\x0144=0.12\x01" in wire


@pytest.mark.parametrize("target", ["tokenizer", "validate", "jsonfix"])
def test_atheris_bounded(tmp_path: Path, target: str) -> None:
    pytest.importorskip("atheris")
    script = HERE / "fuzz_targets.py"
    env = dict(os.environ, PYTHONPATH=str(HERE.parents[1]))
    subprocess.run([sys.executable, str(script), "--write-seeds", str(tmp_path / "corpus")], check=True,
                   env=env, timeout=60)
    runs = os.environ.get("FASTFIX_ATHERIS_RUNS", "5000")
    seconds = int(os.environ.get("FASTFIX_ATHERIS_SECONDS", "20"))
    res = subprocess.run([sys.executable, str(script), target, f"-runs={runs}", f"-max_total_time={seconds}",
                          f"-artifact_prefix={tmp_path}/", str(tmp_path / "corpus" / target)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=seconds + 40)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "Done" in res.stderr, res.stderr[-2000:]


def test_gateway_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    """schemathesis: coverage, fuzzing and stateful phases, every check but two that do not fit
    (positive_data_acceptance: the schema cannot express KRX ticks or per-client limits;
    ignored_auth: keys are not declared as a security scheme)."""
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.skip("schemathesis is not installed")
    seconds = int(os.environ.get("FASTFIX_SCHEMATHESIS_SECONDS", "25"))
    p = GatewayProcess(tmp_path, gateway_toml()).start()
    try:
        res = subprocess.run(
            [str(exe), "run", f"http://127.0.0.1:{p.rest}/openapi.json",
             "-n", os.environ.get("FASTFIX_SCHEMATHESIS_EXAMPLES", "15"), "--max-time", str(seconds),
             "--checks", "all", "--exclude-checks", "positive_data_acceptance,ignored_auth",
             "-H", f"X-API-Key: {KEYS['beta']}", "--seed", "1", "--no-color", "--generation-database", "none",
             "-w", "1", "--max-failures", "10"],
            cwd=tmp_path, capture_output=True, text=True, timeout=seconds + 30)
    finally:
        p.stop()
    out = res.stdout[-8000:]
    assert res.returncode == 0, out
    assert "passed" in out
    assert "Traceback" not in p.log(), p.log()[-3000:]


def test_order_query_parameters_found_by_schemathesis(tmp_path: Path) -> None:
    """Found by schemathesis: non-ASCII digits in ``since`` and out-of-range cursors were 500s."""
    import asyncio
    import base64

    from _rel_helpers import Http

    p = GatewayProcess(tmp_path, gateway_toml()).start()

    async def go() -> None:
        async with Http(p.rest, KEYS["alpha"]) as h:
            for query in ("since=%C2%B2", "since=" + "9" * 5000, "since=99999999999999999999",
                          "cursor=" + base64.urlsafe_b64encode(b"99999999999999999999:x").decode(),
                          "cursor=" + base64.urlsafe_b64encode(b"\xc2\xb2:x").decode(),
                          "cursor=" + base64.urlsafe_b64encode(b"-5:x").decode()):
                status, body = await h.call("GET", f"/v1/orders?{query}")
                assert status in (200, 400), (query, status, body)
                if status == 400:
                    assert body["errors"][0]["field"] in ("since", "cursor"), body

    try:
        asyncio.run(asyncio.wait_for(go(), 30))
    finally:
        p.stop()
