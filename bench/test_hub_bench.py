"""STP-HUB: the per-message work of routing one order to its broker.

What the hub does for each routed message besides the session layer: read the
inbound message, build the re-addressed field list (``forward_fields``) and
write the outbound wire bytes. Session costs (validation, store, socket) are
measured by the session benchmarks.
"""

from __future__ import annotations

from fastfix.codec import encode, parse
from server.hub.fix_app import forward_fields

# A NewOrderSingle from a gateway, addressed through the hub to a broker.
INBOUND = encode("FIX.4.4", "D", [
    (49, "GATEWAY"), (56, "STPHUB"), (34, 1042), (52, "20260102-01:23:45.678"),
    (128, "KIWOOM"), (50, "desk-1"), (11, "alpha:ord-000123"), (1, "ACC-1"),
    (21, "1"), (55, "005930"), (54, "1"), (60, "20260102-01:23:45.677"),
    (38, "100"), (40, "2"), (44, "71500"), (59, "0"),
])  # fmt: skip
HEADER = [(49, "STPHUB"), (56, "KIWOOM"), (34, 2210), (52, "20260102-01:23:45.679")]


def test_hub_route_nos(benchmark) -> None:
    """Inbound bytes -> parsed message -> re-addressed fields -> outbound bytes."""

    def route() -> bytes:
        msg = parse(INBOUND)
        return encode("FIX.4.4", msg.msg_type, HEADER + forward_fields(msg, "GATEWAY"))

    out = benchmark(route)
    fwd = parse(out)
    assert (fwd[115], fwd[56], fwd[116], fwd[11]) == (b"GATEWAY", b"KIWOOM", b"desk-1", b"alpha:ord-000123")
    assert 128 not in fwd


def test_hub_forward_fields_only(benchmark) -> None:
    msg = parse(INBOUND)
    fields = benchmark(forward_fields, msg, "GATEWAY")
    assert fields[0] == (115, "GATEWAY")
