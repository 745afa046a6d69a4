"""FIX out: the journaled request goes to its FIX session, in the same callback.

:meth:`FixOut.send` hands one encoded body to the session (which stores it in its
message store and writes it to the socket) synchronously. Orders accepted but
never handed to the session before a crash are found by the recovery stage and
sent here when the session logs on (:meth:`FixOut.on_logon`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastfix.tags import DELIVER_TO_COMP_ID, POSS_RESEND, SENDER_SUB_ID
from server.gateway.config import BrokerConfig, GatewayConfig
from server.gateway.errors import ApiError
from server.gateway.link import Link, LinkDown
from server.gateway.metrics import Metrics

__all__ = ["FixOut", "Unsent"]

log = logging.getLogger("fastfix.gateway")

# A message accepted (journaled) that may never have reached its session before a stop:
# (MsgType, broker id, wire identifier (11 or 66), body, accepted at ns).
Unsent = tuple[str, str, bytes, bytes, int]


def session_down(session: str) -> ApiError:
    return ApiError(503, "session_down", f"the FIX session to the hub ({session}) is not logged on",
                    headers=[("retry-after", "1")])


class FixOut:
    """Sessions per broker, routing headers, and the hand-over to the link."""

    def __init__(self, cfg: GatewayConfig, link: Link, metrics: Metrics) -> None:
        self.cfg = cfg
        self.link = link
        self.metrics = metrics
        self._headers: dict[tuple[str, str], tuple[tuple[int, Any], ...]] = {}
        self._unsent: dict[str, list[Unsent]] = {}  # session -> found at recovery, sent at logon

    def session_of(self, broker: BrokerConfig) -> str:
        return broker.session or self.link.default_session()

    def session_for(self, broker: BrokerConfig) -> str:
        """The broker's session, or 503 when it is down and requests are not queued."""
        session = self.session_of(broker)
        if not self.link.is_up(session) and not self.cfg.queue_when_down:
            self.metrics.rejected.labels("session_down").inc()
            raise session_down(session)
        return session

    def header(self, broker_id: str, client_id: str = "") -> tuple[tuple[int, Any], ...]:
        """Header fields routing a message to the broker (DeliverToCompID) and naming the
        client it is for (SenderSubID 50: the advisor; the hub forwards it as OnBehalfOfSubID)."""
        key = (broker_id, client_id)
        hdr = self._headers.get(key)
        if hdr is None:
            to = (DELIVER_TO_COMP_ID, broker_id)
            hdr = self._headers[key] = (to, (SENDER_SUB_ID, client_id)) if client_id else (to,)
        return hdr

    def blocked(self, session: str) -> bool:
        """True while the hub is not reading: requests wait (:meth:`writable`) before staging."""
        return self.link.write_paused(session)

    async def writable(self, session: str) -> None:
        await self.link.writable(session)

    def send(self, session: str, msg_type: str, body: bytes, broker_id: str, client_id: str = "") -> None:
        """Store and write one message on its session now; raises :class:`LinkDown`."""
        t0 = time.perf_counter()
        self.link.send_bodies(session, ((msg_type, body, self.header(broker_id, client_id)),))
        self.metrics.send_seconds.observe(time.perf_counter() - t0)
        self.metrics.fix_out.labels(msg_type).inc()

    # recovery ---------------------------------------------------------------------------
    def queue_unsent(self, broker_id: str, item: Unsent) -> None:
        broker = self.cfg.brokers.get(broker_id)
        if broker is None:
            log.warning("%s %s: broker %s is no longer configured; not sent", item[0],
                        item[2].decode(errors="replace"), broker_id)
            return
        self._unsent.setdefault(self.session_of(broker), []).append(item)

    def on_logon(self, session: str) -> None:
        items = self._unsent.pop(session, None)
        if items:
            self._send_unsent(session, items)

    def _send_unsent(self, session: str, items: list[Unsent]) -> None:
        """Send what the session's store shows it never had. When the store cannot tell (kept
        in memory, or reset since the order was accepted), send with PossResend=Y so the
        counterparty checks for a duplicate."""
        record = self.link.sent_ids(session)
        msgs = []
        for mt, broker_id, wire_id, body, created_ns in items:
            if record is not None and (mt, wire_id) in record[0]:
                continue  # handed over before the stop: the FIX resend protocol covers it
            certain = record is not None and created_ns >= record[1]
            header = self.header(broker_id, wire_id.partition(b":")[0].decode("latin-1"))
            if not certain:
                header = header + ((POSS_RESEND, "Y"),)
            msgs.append((mt, body, header))
            self.metrics.recovered.labels("N" if certain else "Y").inc()
            log.warning("%s %s was accepted but never handed to FIX before the last stop: sending it%s",
                        mt, wire_id.decode(errors="replace"), "" if certain else " with PossResend=Y")
        if msgs:
            try:
                self.link.send_bodies(session, msgs)
            except Exception:  # noqa: BLE001 - keep the session up; the orders stay for the next logon
                log.exception("sending %d recovered messages failed", len(msgs))
                self._unsent[session] = items


__all__ += ["LinkDown", "session_down"]
