"""Session send path without the network: ``Session.send`` (fields encoded) against
``Session.send_body`` (a pre-encoded body framed with the cached header), each numbering,
storing (memory store) and handing one NewOrderSingle to the transport. This is the
gateway's hand-over of an order to the FIX session."""

from __future__ import annotations

from typing import Any

import pytest

from fastfix.codec import parse
from fastfix.session import Session, SessionConfig
from fastfix.settings import SessionID
from fastfix.store import MemoryStore

BODY_FIELDS = [(11, b"bench:o-1"), (21, b"1"), (38, b"10"), (40, b"2"), (44, b"70000"), (54, b"1"),
               (55, b"005930"), (60, b"20240102-09:00:00.000")]
BODY = b"".join(b"%d=%s\x01" % f for f in BODY_FIELDS)
HEADER = ((128, "BRKA"),)


def _session() -> tuple[Session, list[bytes]]:
    s = Session(SessionID("FIX.4.4", "GATEWAY", "HUB"), SessionConfig(initiator=True, heartbeat_interval=30),
                MemoryStore())
    out: list[bytes] = []
    s.connected(out.append, close=lambda: None)
    s.received_logon = s.sent_logon = True
    return s, out


@pytest.mark.parametrize("how", ["send", "send_body"])
def test_session_send_order(benchmark: Any, how: str) -> None:
    s, out = _session()
    if how == "send":
        def one() -> None:
            s.send("D", list(HEADER) + BODY_FIELDS)
            out.clear()
    else:
        def one() -> None:
            s.send_body("D", BODY, HEADER)
            out.clear()
    benchmark.group = "session-send"
    benchmark(one)
    s.send_body("D", BODY, HEADER) if how == "send_body" else s.send("D", list(HEADER) + BODY_FIELDS)
    msg = parse(out[-1])
    assert (msg[35], msg[128], msg[55]) == (b"D", b"BRKA", b"005930")
