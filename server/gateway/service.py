"""The gateway's order path, wired in one place.

An order passes through these stages (one module each):

========== ================ =====================================================
stage      module           what it does
========== ================ =====================================================
intake     ``intake.py``    throttle, decode, route, check, map (D, G, F, E, K)
journal    ``journal.py``   the durable point: one append per callback
FIX out    ``fix_out.py``   the FIX message to its session, in the same callback
reports in ``reports.py``   reports from the hub change orders, become events
fan-out    ``fanout.py``    per-client event numbers, pushed once journaled
projection ``projection.py`` SQLite behind the journal, by a projector process
recovery   ``recovery.py``  the state rebuilt from the journal at start-up
views      ``views.py``     the JSON shapes and the reads
========== ================ =====================================================

:class:`Gateway` builds the stages and connects them; ``app.py`` (REST) and
``ws.py`` (the stream) call it. Everything runs on the one event loop (the
projection is written by a projector process), so no locks.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import msgspec

from server.gateway.config import ClientConfig, GatewayConfig
from server.gateway.fanout import Fanout, Subscriber
from server.gateway.fix_out import FixOut
from server.gateway.inquiries import Inquiries
from server.gateway.intake import Intake, Mapper, MappingFailed
from server.gateway.journal import Journal, JournalFile
from server.gateway.link import InboundMessage, Link
from server.gateway.metrics import Metrics
from server.gateway.orders import Order, OrderList
from server.gateway.presence import Presence
from server.gateway.projection import EventRow, OrderFilter, Projection
from server.gateway.recovery import recover
from server.gateway.reports import ReportsIn
from server.gateway.state import OrderState
from server.gateway.tracing import Tracer
from server.gateway.views import Views, order_view

__all__ = ["Gateway", "Mapper", "MappingFailed", "Subscriber", "journal_dir", "order_view"]

log = logging.getLogger("fastfix.gateway")
_json = msgspec.json.Encoder()


def journal_dir(cfg: GatewayConfig) -> Path:
    """The journal's directory: configured, or beside the database (``gateway.journal``)."""
    return cfg.journal if cfg.journal is not None else cfg.database.with_suffix(".journal")


HOUSEKEEPING_INTERVAL = 0.2  # seconds between evictions of what the projection holds


class Gateway:
    """Orders, routing, state and event streams of all clients."""

    def __init__(self, cfg: GatewayConfig, link: Link, mapper: Mapper, metrics: Metrics) -> None:
        self.cfg = cfg
        self.link = link
        self.mapper = mapper
        self.metrics = metrics
        self.tracer = Tracer()  # per-order hop timestamps (server/gateway/tracing.pyx)
        metrics.registry.register(self.tracer)
        self.journal_file = JournalFile(journal_dir(cfg), cfg.sync)
        self.projection = Projection(cfg.database, cfg.sync)
        self.journal = Journal(self.journal_file, self.projection.number)
        self.state = OrderState(self.projection)
        prefixes = {cid: cid.encode() + b":" for cid in cfg.clients}
        self.fanout = Fanout(self.journal, self.projection, mapper.body_json, prefixes, metrics, self.tracer)
        self.fix_out = FixOut(cfg, link, metrics)
        self.intake = Intake(cfg, self.state, self.journal, self.fix_out, mapper, metrics, self.tracer)
        self.reports = ReportsIn(cfg, self.state, self.journal, self.fanout, link, metrics, self.tracer)
        self.views = Views(self.state)
        self.inquiries = Inquiries(cfg, self.fix_out, mapper)
        self.reports.answers = self.inquiries.handlers()
        self.reports.inquiries = self.inquiries
        self.inquiries.sessions = self.reports.trading_sessions
        self.intake.price_limits = self.inquiries.price_limits
        self.presence = Presence(cfg, self.state, self.journal, self.fanout, self.intake.cancel_order)
        self._housekeeping: asyncio.TimerHandle | None = None
        self.reports.on_failure = self._journal_failed
        link.on_message = self.reports.on_message
        link.on_read_end = self.reports.read_done
        link.on_state = self.on_link_state
        link.on_resume_point = self._first_resume_point
        # The request API (app.py): the stages' own methods.
        self.new_order = self.intake.new_order
        self.replace_order = self.intake.replace_order
        self.cancel_order = self.intake.cancel_order
        self.new_list = self.intake.new_list
        self.cancel_list = self.intake.cancel_list
        self.status_order = self.intake.status_order
        self.mass_cancel = self.intake.mass_cancel
        self.positions = self.inquiries.positions
        self.balance = self.inquiries.balance
        self.instruments_view = self.inquiries.instruments_view
        self.order_detail = self.views.order_detail
        self.list_detail = self.views.list_detail
        self.search_orders = self.views.search_orders
        self.subscribe = self.fanout.subscribe
        self.unsubscribe = self.fanout.unsubscribe
        self.events_since = self.fanout.events_since
        self.read_events = self.fanout.read_events

    # ------------------------------------------------------------------ lifecycle
    def recover(self) -> None:
        """Open the journal and the projection, rebuild the state; start the projection's writer
        (call on the event loop, before the link starts)."""
        recover(self.journal_file, self.projection, self.state, self.fanout, self.link, self.fix_out)
        self.projection.start(self.journal_file)
        if self.cfg.trace_loop_passes:
            self.tracer.count_passes(asyncio.get_running_loop())
        self._housekeeping = asyncio.get_running_loop().call_later(HOUSEKEEPING_INTERVAL, self._housekeep)

    def _housekeep(self) -> None:
        """What the projection has caught up with leaves memory even when no report comes."""
        self.projection.check_projector()
        self.state.evict_projected()
        self.fanout.trim()
        self.metrics.projection_lag.set(self.projection.lag)
        self._housekeeping = asyncio.get_running_loop().call_later(HOUSEKEEPING_INTERVAL, self._housekeep)

    def stream_opened(self, client_id: str, conn: Any) -> None:
        """A stream connection of the client is authenticated (cancel on disconnect counts it)."""
        self.presence.opened(client_id, conn, bool(getattr(conn, "cancel_on_disconnect", False)))

    def stream_closed(self, client_id: str, conn: Any) -> None:
        self.presence.closed(client_id, conn)

    async def close(self) -> None:
        self.presence.stop()
        self.tracer.stop_counting()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        self.journal.commit()
        self.journal_file.close()
        await self.projection.close()

    def _first_resume_point(self, session: str, mark: str) -> None:
        self.journal.put_resume_point(session, mark)
        self.journal.commit()

    def _journal_failed(self, exc: BaseException) -> None:
        self.intake.failed = exc
        log.critical("journal write failed; refusing requests until restarted", exc_info=exc)

    def on_link_state(self, session: str, up: bool) -> None:
        log.info("FIX session %s %s", session, "logged on" if up else "down")
        self.metrics.session_up.labels(session).set(1 if up else 0)
        if up:
            self.fix_out.on_logon(session)
            self.inquiries.subscribe_sessions(session)

    # ------------------------------------------------------------------ shared reads
    @property
    def seq(self) -> dict[str, int]:
        """Last event sequence number per client."""
        return self.fanout.seq

    @property
    def orders(self) -> dict[tuple[str, str], Order]:
        return self.state.orders

    @property
    def aliases(self) -> dict[tuple[str, str], tuple[str, str]]:
        return self.state.aliases

    @property
    def lists(self) -> dict[tuple[str, str], OrderList]:
        return self.state.lists

    def get_order(self, client_id: str, cl_ord_id: str) -> Order | None:
        return self.state.get_order(client_id, cl_ord_id)

    def on_message(self, msg: InboundMessage, session: str) -> None:
        """One report as if read alone from the hub (tests and the loopback link)."""
        self.reports.on_message(msg, session)
        self.reports.read_done()

    def ready(self) -> bool:
        return self.intake.failed is None and any(s.logged_on for s in self.link.sessions())

    def brokers_view(self, client: ClientConfig) -> bytes:
        allowed = client.brokers or list(self.cfg.brokers)
        sessions = {s.name: s for s in self.link.sessions()}
        out = []
        for bid in allowed:
            b = self.cfg.brokers[bid]
            name = self.fix_out.session_of(b)
            s = sessions.get(name)
            out.append({"id": b.id, "name": b.name, "DeliverToCompID": b.id,
                        "tick_size": b.tick_size or self.cfg.tick_size,
                        "session": msgspec.structs.asdict(s) if s is not None else {"name": name,
                                                                                     "logged_on": False}})
        return _json.encode({"brokers": out})


__all__ += ["EventRow", "OrderFilter"]
