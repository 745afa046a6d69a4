"""Clients' event streams in cluster mode, served by any instance with the same cursor.

A client's events are journaled by the owner of the FIX session with each report
(``("I", seq, raw, rows)``, see ``owner.py``), numbered 1, 2, 3... per client across
owners. Every instance runs an :class:`EventFeed`: it follows the journal in stream order
and keeps the most recent events of each client in memory; older cursors are answered from
PostgreSQL (``ff_events``, written by the projection). Since the numbers come from the
journal, a client that reconnects to another instance with its last number (``since``)
gets the next event, without gap or repeat.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from server.gateway.cluster.projection import rows_of
from server.gateway.journal import EVENTS

__all__ = ["EventFeed"]

log = logging.getLogger("fastfix.gateway.cluster.feed")
_dec = msgspec.msgpack.Decoder()


class EventFeed:
    """Follows the journal; ``events_since`` and ``follow`` per client."""

    def __init__(self, js: Any, stream: str, prefix: str, postgres: str | None = None,
                 keep: int = 10_000) -> None:
        self.js = js
        self.stream = stream
        self.prefix = prefix
        self.postgres = postgres
        self.keep = keep  # events per client held in memory
        self.position = 0  # stream sequence followed so far
        self._recent: dict[str, collections.deque[tuple[int, bytes]]] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tail())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _tail(self) -> None:
        import nats.errors
        from nats.js import api

        while True:
            try:
                sub = await self.js.subscribe(
                    f"{self.prefix}.fix.>", stream=self.stream, ordered_consumer=True, idle_heartbeat=1.0,
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                    config=api.ConsumerConfig(opt_start_seq=self.position + 1))
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                log.warning("event feed: cannot follow the journal yet: %r", exc)
                await asyncio.sleep(0.5)
                continue
            try:
                while True:
                    msg = await sub.next_msg(timeout=None)
                    self._apply(msg.metadata.sequence.stream, msg.data)
                    if not sub.pending_msgs:
                        async with self._changed:
                            self._changed.notify_all()
            except nats.errors.ConnectionClosedError:
                await asyncio.sleep(0.5)
            finally:
                try:
                    await sub.unsubscribe()
                except Exception:  # noqa: BLE001 - the connection may be gone
                    pass

    def _apply(self, position: int, data: bytes) -> None:
        self.position = position
        rows = rows_of(_dec.decode(data))
        if rows is None:
            return
        for client, seq, _, event in rows[EVENTS]:
            q = self._recent.get(client)
            if q is None:
                q = self._recent[client] = collections.deque(maxlen=self.keep)
            if q and seq <= q[-1][0]:
                continue  # the journal holds each event once; never hand out a number twice
            q.append((seq, bytes(event)))

    def last(self, client: str) -> int:
        q = self._recent.get(client)
        return q[-1][0] if q else 0

    async def events_since(self, client: str, since: int, limit: int = 500) -> list[tuple[int, bytes]]:
        """The client's events numbered after ``since`` (at most ``limit``), oldest first."""
        q = self._recent.get(client)
        if q and q[0][0] <= since + 1:
            return [e for e in q if e[0] > since][:limit]
        older: list[tuple[int, bytes]] = []
        if self.postgres and (not q or q[0][0] > since + 1):
            older = await self._from_postgres(client, since, limit)
        last = older[-1][0] if older else since
        if q and len(older) < limit and q[0][0] <= last + 1:
            older += [e for e in q if e[0] > last][:limit - len(older)]
        return older

    async def _from_postgres(self, client: str, since: int, limit: int) -> list[tuple[int, bytes]]:
        import asyncpg

        conn = await asyncpg.connect(self.postgres)
        try:
            rows = await conn.fetch("SELECT seq, data FROM ff_events WHERE client_id=$1 AND seq>$2"
                                    " ORDER BY seq LIMIT $3", client, since, limit)
        except asyncpg.UndefinedTableError:
            return []
        finally:
            await conn.close()
        return [(r["seq"], bytes(r["data"])) for r in rows]

    async def follow(self, client: str, since: int) -> AsyncIterator[tuple[int, bytes]]:
        """Every event of the client after ``since``, then each new one as it is journaled."""
        while True:
            batch = await self.events_since(client, since)
            for seq, data in batch:
                if seq != since + 1:
                    raise RuntimeError(f"{client}: event {since + 1} is not available (next is {seq})")
                since = seq
                yield seq, data
            if not batch:
                if self.last(client) > since:
                    await asyncio.sleep(0.05)  # older than memory, not in PostgreSQL yet: its projection lags
                    continue
                async with self._changed:
                    if self.last(client) <= since:
                        await self._changed.wait()
