"""Event fan-out: each client's numbered event log, pushed to its live streams.

An event (a report as FIX-JSON in its envelope) gets the client's next sequence
number and is staged in the journal with the state change that caused it. Once
that journal record is written (:meth:`Fanout.flush`, in the same callback), the
events go to the client's WebSocket connections: an event is pushed only once it
would survive a restart.

The events not yet in the projection stay in memory (:meth:`events_since` merges
them with the database), so a cursor is always served without a gap.
"""

from __future__ import annotations

import collections
from typing import Any, Protocol

import msgspec

from fastfix.tags import CL_ORD_ID
from server.gateway._intake import iso as _iso
from server.gateway._reports import envelope as _event_envelope
from server.gateway.journal import Journal
from server.gateway.link import InboundMessage
from server.gateway.metrics import Metrics
from server.gateway.projection import EventRow, Projection
from server.gateway.tracing import Tracer

__all__ = ["Fanout", "Subscriber"]

_json = msgspec.json.Encoder()


class Subscriber(Protocol):
    """A live event stream (a WebSocket connection) of one client."""

    def deliver(self, events: list[tuple[int, bytes]]) -> None:
        """The client's events of one journal record, ``(seq, data)`` in sequence order."""


class Fanout:
    """Per-client sequence numbers, subscribers and the unprojected tail of the event log."""

    def __init__(self, journal: Journal, projection: Projection, body_json: Any,
                 prefixes: dict[str, bytes], metrics: Metrics, tracer: Tracer) -> None:
        self.journal = journal
        self.projection = projection
        self._body_json = body_json  # InboundMessage -> FIX-JSON Body bytes (the mapper's)
        self._prefixes = prefixes  # client -> its wire namespace b"<client>:"
        self.metrics = metrics
        self.tracer = tracer
        self.seq: dict[str, int] = {}  # last sequence number given, per client
        self.subscribers: dict[str, set[Subscriber]] = {}
        self._staged: list[tuple[str, int, bytes]] = []
        # Events journaled but perhaps not yet projected: client -> {seq: data}, and the
        # journal position of each, oldest first, to drop them once projected.
        self._tail: dict[str, dict[int, bytes]] = {}
        self._tail_order: collections.deque[tuple[int, str, int]] = collections.deque()

    def publish(self, client_id: str, msg: InboundMessage, now: int, about: dict[str, str] | None = None) -> None:
        """Number a report for its client and stage it (pushed by :meth:`flush`). ``about``
        names what a message without the client's identifiers is about (a session-level
        Reject names only a sequence number): ``{"ClOrdID": ..., "MsgType": ...}``."""
        seq = self.seq.get(client_id, 0) + 1
        self.seq[client_id] = seq
        data = _event_envelope(self._body_json(msg), msg, self._prefixes[client_id], seq, now)
        if about is not None:
            data = data[:-1] + b',"about":' + _json.encode(about) + b"}"
        self._stage(client_id, seq, data, now, msg.get(CL_ORD_ID))

    def publish_event(self, client_id: str, event: dict[str, Any], now: int) -> None:
        """Number and stage an event of the gateway itself (not a FIX message): a stream
        connection lost, orders cancelled on disconnect. Pushed as ``{"type": "event", ...}``."""
        seq = self.seq.get(client_id, 0) + 1
        self.seq[client_id] = seq
        data = b'{"type":"event","seq":%d,"ts":"%s","event":%s}' % (seq, _iso(now).encode(), _json.encode(event))
        self._stage(client_id, seq, data, now, None)

    def _stage(self, client_id: str, seq: int, data: bytes, now: int, cl_ord_id: Any) -> None:
        self.journal.put_event(client_id, seq, data, now)
        self.tracer.report(client_id, cl_ord_id, seq)
        self._staged.append((client_id, seq, data))

    def flush(self, position: int) -> None:
        """The staged events are in the journal record at ``position``: push them, in order,
        each client's in one call per subscriber."""
        staged = self._staged
        if not staged:
            return
        self._staged = []
        tail = self._tail
        order = self._tail_order
        subscribers = self.subscribers
        tracer = self.tracer
        by_client: dict[str, list[tuple[int, bytes]]] = {}
        for client_id, seq, data in staged:
            mine_tail = tail.get(client_id)
            if mine_tail is None:
                mine_tail = tail[client_id] = {}
            mine_tail[seq] = data
            order.append((position, client_id, seq))
            subs = subscribers.get(client_id)
            tracer.pushed(client_id, seq, bool(subs))
            if subs:
                mine = by_client.get(client_id)
                if mine is None:
                    by_client[client_id] = [(seq, data)]
                else:
                    mine.append((seq, data))
        for client_id, mine in by_client.items():
            for sub in list(subscribers.get(client_id, ())):
                sub.deliver(mine)
        self.metrics.events.inc(len(staged))
        self.trim()

    def drop_staged(self) -> None:
        """The journal write failed: the staged events never happened (numbers given back)."""
        for client_id, seq, _ in reversed(self._staged):
            if self.seq.get(client_id) == seq:
                self.seq[client_id] = seq - 1
        self._staged = []

    def trim(self) -> None:
        """Forget events the projection holds (they are read from it from now on)."""
        order = self._tail_order
        applied = self.projection.applied
        tail = self._tail
        while order and order[0][0] <= applied:
            _, client_id, seq = order.popleft()
            mine = tail.get(client_id)
            if mine is not None:
                mine.pop(seq, None)
                if not mine:
                    del tail[client_id]

    def _from_memory(self, client_id: str, seq: int, limit: int) -> list[EventRow] | None:
        """The events after ``seq`` when memory holds all of them (None: the projection must be read)."""
        self.trim()
        mine = self._tail.get(client_id)
        if not mine or seq + 1 < min(mine):
            return None
        return self._append_tail([], client_id, seq, limit)

    def _append_tail(self, rows: list[EventRow], client_id: str, seq: int, limit: int) -> list[EventRow]:
        """``rows`` (read from the projection, after ``seq``) continued from memory up to ``limit``."""
        mine = self._tail.get(client_id)
        s = (rows[-1].seq if rows else seq) + 1
        while mine and s in mine and len(rows) < limit:
            rows.append(EventRow(s, mine[s]))
            s += 1
        return rows

    def events_since(self, client_id: str, seq: int, limit: int) -> list[EventRow]:
        """The client's events after ``seq`` (at most ``limit``): the projection's, then the
        newer ones it has not applied yet."""
        rows = self._from_memory(client_id, seq, limit)
        if rows is None:
            rows = self._append_tail(self.projection.events_since(client_id, seq, limit), client_id, seq, limit)
        return rows

    async def read_events(self, client_id: str, seq: int, limit: int) -> list[EventRow]:
        """:meth:`events_since`, with a read of the projection done in a reader thread (a replay
        from an old cursor reads up to ``limit`` rows; orders keep flowing meanwhile)."""
        if seq >= self.seq.get(client_id, 0):
            return []  # caught up (a live-only subscription): nothing to read
        rows = self._from_memory(client_id, seq, limit)
        if rows is None:
            proj = self.projection
            rows = await proj.in_thread(lambda conn: proj.events_since(client_id, seq, limit, conn))
            rows = self._append_tail(rows, client_id, seq, limit)  # what it had not applied yet
        return rows

    def subscribe(self, client_id: str, sub: Subscriber) -> None:
        self.subscribers.setdefault(client_id, set()).add(sub)
        self.metrics.ws_clients.inc()

    def unsubscribe(self, client_id: str, sub: Subscriber) -> None:
        subs = self.subscribers.get(client_id)
        if subs is not None and sub in subs:
            subs.discard(sub)
            self.metrics.ws_clients.dec()
