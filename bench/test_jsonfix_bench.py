"""FIX <-> JSON mapping speed: a REST order body to FIX, an ExecutionReport to JSON.

Targets on one core: JSON -> FIX of a NewOrderSingle body <= 2 us, FIX -> JSON of
a ~295-byte ExecutionReport <= 1.5 us.
"""

from __future__ import annotations

import msgspec
import pytest

from fastfix.codec import parse
from fastfix.jsonfix import JsonCodec

NOS_BODY = msgspec.json.encode({
    "ClOrdID": "20240102-000001",
    "Account": "ACC-7001",
    "Symbol": "005930",
    "SecurityID": "KR7005930003",
    "SecurityIDSource": "4",
    "Side": "1",
    "OrderQty": "10",
    "OrdType": "2",
    "Price": "70000",
    "TimeInForce": "0",
    "TransactTime": "20240102-09:00:00.000",
})
HEADER = [(49, "FINTECH1"), (56, "STPHUB"), (128, "BROKER01"), (34, 1201),
          (52, "20240102-09:00:00.123")]

EXEC_REPORT = (
    b"8=FIX.4.4\x019=271\x0135=8\x0149=STPHUB\x0156=FINTECH1\x0134=1187\x01"
    b"52=20240102-09:00:00.456\x01115=BROKER01\x0137=KRX-0000012345\x01"
    b"11=20240102-000001\x0117=EXEC-0000098765\x01150=F\x0139=1\x01"
    b"55=005930\x0148=KR7005930003\x0122=4\x0154=1\x0138=10\x0140=2\x0144=70000\x01"
    b"59=0\x0132=4\x0131=70000\x01151=6\x0114=4\x016=70000\x01"
    b"60=20240102-09:00:00.450\x0158=PARTIAL\x0110=000\x01"
)


def _fix_checksum(msg: bytes) -> bytes:
    """Recompute BodyLength and CheckSum of the sample so that it parses."""
    body = msg[msg.index(b"\x0135=") + 1:msg.rindex(b"10=")]
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    return head + body + b"10=%03d\x01" % (sum(head + body) % 256)


EXEC_REPORT = _fix_checksum(EXEC_REPORT)


@pytest.fixture(scope="module")
def codec() -> JsonCodec:
    return JsonCodec("FIX.4.4")


def test_json_to_fix_new_order_single(benchmark, codec: JsonCodec) -> None:
    out = benchmark(codec.body_to_fix, "D", NOS_BODY, HEADER)
    assert out.startswith(b"8=FIX.4.4\x019=")


def test_fix_to_json_execution_report_message(benchmark, codec: JsonCodec) -> None:
    msg = parse(EXEC_REPORT)
    assert 280 <= len(EXEC_REPORT) <= 310
    out = benchmark(codec.fix_to_json, msg)
    assert out.startswith(b'{"Header":{"BeginString":"FIX.4.4"')


def test_fix_to_json_execution_report_bytes(benchmark, codec: JsonCodec) -> None:
    out = benchmark(codec.fix_to_json, EXEC_REPORT)
    assert b'"Text":"PARTIAL"' in out


def test_fix_body_to_json_execution_report(benchmark, codec: JsonCodec) -> None:
    msg = parse(EXEC_REPORT)
    out = benchmark(codec.fix_body_to_json, msg)
    assert out.startswith(b'{"OrderID":')


def test_msgspec_decode_of_the_order_body_for_reference(benchmark) -> None:
    dec = msgspec.json.Decoder()
    benchmark(dec.decode, NOS_BODY)
