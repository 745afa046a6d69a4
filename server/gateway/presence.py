"""Cancel on disconnect: a client's open orders are cancelled when its streams are gone.

A client opts in by configuration (``cancel_on_disconnect = true`` in its ``[[clients]]``
entry: every stream connection counts) or per stream connection (``?cancel_on_disconnect=true``
on the URL, or ``"cancel_on_disconnect": true`` in the auth or subscribe op). When the
client's last such connection closes, a grace period starts (``cancel_on_disconnect_grace``
seconds); a connection that opts in again within it keeps the orders. Otherwise every open
order of the client gets an OrderCancelRequest. The drop, a return within the grace period
and the cancellations are events of the client's stream (``{"type": "event", ...}``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server.gateway.config import ClientConfig, GatewayConfig
from server.gateway.errors import ApiError
from server.gateway.fanout import Fanout
from server.gateway.journal import Journal
from server.gateway.state import OrderState

__all__ = ["Presence"]

log = logging.getLogger("fastfix.gateway")

Cancel = Callable[[ClientConfig, str, bytes, bool], Awaitable[bytes]]


class Presence:
    """Armed stream connections per client, and the grace timers."""

    def __init__(self, cfg: GatewayConfig, state: OrderState, journal: Journal, fanout: Fanout,
                 cancel: Cancel) -> None:
        self.cfg = cfg
        self.state = state
        self.journal = journal
        self.fanout = fanout
        self.cancel = cancel
        self.armed: dict[str, set[Any]] = {}  # client -> its connections that opted in
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopped = False  # the gateway is stopping: its closing streams are not drops

    def armed_by_default(self, client_id: str) -> bool:
        client = self.cfg.clients.get(client_id)
        return client is not None and client.cancel_on_disconnect

    def opened(self, client_id: str, conn: Any, opt_in: bool) -> None:
        if not (opt_in or self.armed_by_default(client_id)):
            return
        self.armed.setdefault(client_id, set()).add(conn)
        timer = self.timers.pop(client_id, None)
        if timer is not None:
            timer.cancel()
            self._event(client_id, {"event": "stream_resumed", "cancel_on_disconnect": "kept"})

    def closed(self, client_id: str, conn: Any) -> None:
        if self.stopped:
            return
        conns = self.armed.get(client_id)
        if not conns or conn not in conns:
            return
        conns.discard(conn)
        if conns:
            return
        del self.armed[client_id]
        grace = self.cfg.cancel_on_disconnect_grace
        self._event(client_id, {"event": "stream_lost", "cancel_on_disconnect": "armed", "grace_seconds": grace})
        self.timers[client_id] = asyncio.get_running_loop().call_later(grace, self._fire, client_id)

    def _event(self, client_id: str, event: dict[str, Any]) -> None:
        """A gateway event, journaled and pushed now (not waiting for a report)."""
        self.fanout.publish_event(client_id, event, time.time_ns())
        self.fanout.flush(self.journal.commit())

    def _fire(self, client_id: str) -> None:
        self.timers.pop(client_id, None)
        task = asyncio.get_running_loop().create_task(self._cancel_all(client_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _cancel_all(self, client_id: str) -> None:
        client = self.cfg.clients[client_id]
        open_ids = sorted(cl for (cid, cl), o in list(self.state.orders.items())
                          if cid == client_id and not o.terminal and o.pending != "cancel")
        sent: list[str] = []
        failed: dict[str, str] = {}
        for cl in open_ids:
            try:
                await self.cancel(client, cl, b'{"Text":"cancel on disconnect"}', False)
                sent.append(cl)
            except ApiError as exc:
                failed[cl] = exc.message
        log.warning("client %s: streams gone; cancel on disconnect sent %d cancels (%d failed)",
                    client_id, len(sent), len(failed))
        event: dict[str, Any] = {"event": "cancel_on_disconnect", "ClOrdID": sent}
        if failed:
            event["failed"] = failed
        self._event(client_id, event)

    def stop(self) -> None:
        """Before the streams close at shutdown: nothing is cancelled for it."""
        self.stopped = True
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
