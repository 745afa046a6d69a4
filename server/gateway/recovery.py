"""Recovery: the state after a stop or a crash, rebuilt from the journal.

At start-up, before the first request or report:

1. the journal is opened and checked (a record torn by a crash is cut off);
2. the projection applies the records it had not applied yet;
3. open orders and lists, the event counters and the FIX resume points are
   loaded from the projection;
4. requests that were journaled but may never have reached their FIX session
   (the process died between the journal write and the socket write) are queued
   for the session's next logon, where its message store decides (see
   :meth:`server.gateway.fix_out.FixOut.on_logon`).
"""

from __future__ import annotations

import logging

from server.gateway.fanout import Fanout
from server.gateway.fix_out import FixOut, Unsent
from server.gateway.journal import JournalFile
from server.gateway.link import Link
from server.gateway.projection import Projection
from server.gateway.state import OrderState

__all__ = ["recover"]

log = logging.getLogger("fastfix.gateway")


def recover(journal: JournalFile, projection: Projection, state: OrderState, fanout: Fanout, link: Link,
            fix_out: FixOut) -> None:
    journal.open()
    if journal.recovered_bytes:
        log.warning("journal: cut %d bytes of a record torn by the last stop", journal.recovered_bytes)
    projection.open()
    applied = projection.catch_up(journal)
    if applied:
        log.info("journal: %d records applied to the projection after the last stop", applied)
    fanout.seq = dict(projection.last_seqs())
    link.resume_points = projection.resume_points()
    state.load(list(projection.open_orders()), list(projection.open_lists()))
    for broker_id, item in _unsent(state):
        fix_out.queue_unsent(broker_id, item)
    log.info("recovered %d open orders, %d open lists", len(state.orders), len(state.lists))


def _unsent(state: OrderState) -> list[tuple[str, Unsent]]:
    """Orders, lists and cancels journaled (their 202 was ready) whose FIX message may never
    have reached the session. Their records still hold the body as sent (``fix_body``, cleared
    by the first report; ``cancel_body``, which counts while the cancel is pending)."""
    found: list[tuple[int, str, str, bytes, bytes]] = []
    for o in state.orders.values():
        if o.terminal:
            continue
        if o.fix_body is not None and o.MsgType in ("D", "G"):
            found.append((o.created_ns, o.MsgType, o.broker, f"{o.client_id}:{o.ClOrdID}".encode(), o.fix_body))
        if o.cancel_body is not None and o.pending == "cancel" and o.cancel_ids:
            found.append((o.updated_ns, "F", o.broker, f"{o.client_id}:{o.cancel_ids[-1]}".encode(),
                          o.cancel_body))
    for ol in state.lists.values():
        if ol.fix_body is not None:
            found.append((ol.created_ns, "E", ol.broker, f"{ol.client_id}:{ol.ListID}".encode(), ol.fix_body))
        if ol.cancel_body is not None and ol.pending == "cancel":
            found.append((ol.updated_ns, "K", ol.broker, f"{ol.client_id}:{ol.ListID}".encode(), ol.cancel_body))
    found.sort()  # in the order they were accepted
    return [(broker, (mt, broker, wire_id, body, ns)) for ns, mt, broker, wire_id, body in found]
