"""Reports in: what the hub sends back changes orders and becomes client events.

ExecutionReport (8), OrderCancelReject (9), ListStatus (N) and
BusinessMessageReject (j) update the order state and are published as events.
Everything one read from the hub carried is journaled in one record when the
read is done (:meth:`ReportsIn.read_done`), then its events are pushed: a report
is journaled, applied and pushed in the callback that read it (a long read in
records of at most ``MAX_REPORTS_PER_RECORD`` reports).

The last inbound sequence number goes into the same record (the link's resume
point): after a crash the FIX session asks the hub again for what was read but
not journaled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastfix.tags import (
    BUSINESS_REJECT_REF_ID,
    CL_ORD_ID,
    CXL_REJ_REASON,
    CXL_REJ_RESPONSE_TO,
    LIST_ID,
    LIST_ORDER_STATUS,
    LIST_STATUS_TEXT,
    LIST_STATUS_TYPE,
    ON_BEHALF_OF_COMP_ID,
    ORD_STATUS,
    ORIG_CL_ORD_ID,
    REF_MSG_TYPE,
    REF_SEQ_NUM,
    SESSION_REJECT_REASON,
    SYMBOL,
    TARGET_SUB_ID,
    TEXT,
    TRAD_SES_STATUS,
    TRADING_SESSION_ID,
    TRADING_SESSION_SUB_ID,
)
from server.gateway._reports import text_fields as _text_fields
from server.gateway.config import GatewayConfig
from server.gateway.fanout import Fanout
from server.gateway.journal import Journal
from server.gateway.link import InboundMessage, Link
from server.gateway.metrics import Metrics
from server.gateway.orders import (
    ER_TAGS,
    Order,
    OrderList,
    apply_cancel_reject,
    apply_report,
    reject_order,
)
from server.gateway.state import OrderState, list_done
from server.gateway.tracing import Tracer

__all__ = ["ReportsIn"]

log = logging.getLogger("fastfix.gateway")

# Reports of one read journaled together, at most: a hub that sends a burst (after a
# reconnect, or when it fell behind) gets its first reports pushed without waiting for the
# whole burst; a record for every 64 reports keeps the write cost per report small.
MAX_REPORTS_PER_RECORD = 64

# Fields read from an OrderCancelReject and from a TradingSessionStatus.
_CXL_REJ_TAGS = (CL_ORD_ID, ORD_STATUS, ORIG_CL_ORD_ID, TEXT, CXL_REJ_REASON, CXL_REJ_RESPONSE_TO)
_TRAD_SES_TAGS = (SYMBOL, TARGET_SUB_ID, ON_BEHALF_OF_COMP_ID, TRADING_SESSION_ID, TRAD_SES_STATUS,
                  TRADING_SESSION_SUB_ID, TEXT)


def _now_ns() -> int:
    return time.time_ns()


class ReportsIn:
    """Applies reports from the hub to the order state and publishes them."""

    def __init__(self, cfg: GatewayConfig, state: OrderState, journal: Journal, fanout: Fanout,
                 link: Link, metrics: Metrics, tracer: Tracer) -> None:
        self.cfg = cfg
        self.state = state
        self.journal = journal
        self.fanout = fanout
        self.link = link
        self.metrics = metrics
        self.tracer = tracer
        self._in_read = 0  # reports staged since the last journal record
        self.on_failure = lambda exc: None  # told when the journal refuses a write
        # TradingSessionStatus (h) last seen: (Symbol or "", TradingSessionID) -> its fields
        self.trading_sessions: dict[tuple[str, str], dict[str, str | int]] = {}
        # Answers to the gateway's own inquiries (positions, collateral, reference data), by MsgType.
        self.answers: dict[bytes, Callable[[InboundMessage], None]] = {}
        self.inquiries: Any = None  # the inquiries stage: told of business rejects naming its requests
        # Called before a read's reports are journaled (crash tests kill the process here).
        self.before_journal: Callable[[], None] | None = None

    def _split(self, value: bytes | None) -> tuple[str, str] | None:
        """``<client>:<id>`` on the wire -> (client, id) for a configured client."""
        if not value:
            return None
        text = value.decode("latin-1")
        client_id, sep, ident = text.partition(":")
        if not sep or client_id not in self.cfg.clients:
            return None
        return client_id, ident

    def on_message(self, msg: InboundMessage, session: str) -> None:
        """A report from the hub: apply it and stage its event (pushed at :meth:`read_done`)."""
        self.tracer.inbound_ns = time.perf_counter_ns()
        mark = self.link.inbound_mark(session, msg)
        if mark is not None:  # journaled with this message's effects: a restart resumes after it
            self.journal.put_resume_point(session, mark)
        mt = msg.msg_type
        self.metrics.fix_in.labels(mt.decode()).inc()
        try:
            if mt == b"8":
                self._execution_report(msg)
            elif mt == b"9":
                self._cancel_reject(msg)
            elif mt == b"N":
                self._list_status(msg)
            elif mt == b"j":
                self._business_reject(msg, session)
            elif mt == b"3":
                self._session_reject(msg, session)
            elif mt == b"r":
                self._by_request_id(msg, CL_ORD_ID)
            elif mt == b"h":
                self._session_status(msg)
            elif mt in self.answers:
                self.answers[mt](msg)
        except Exception:  # one bad report must not stop the stream of the others
            log.exception("failed to process inbound %s", mt)
            self.metrics.unroutable.inc()
        self._in_read += 1
        if self._in_read >= MAX_REPORTS_PER_RECORD:
            self.read_done()  # a long read: its first reports do not wait for the last ones

    def read_done(self) -> None:
        """End of one read from the hub: one journal record for all of it, then the pushes."""
        self._in_read = 0
        if self.before_journal is not None and self.journal.staged:
            self.before_journal()
        try:
            position = self.journal.commit()
        except Exception as exc:
            self.fanout.drop_staged()
            self.on_failure(exc)
            raise  # the FIX connection drops; the hub resends after a restart (resume point)
        self.fanout.flush(position)
        self.state.evict_projected()

    # ------------------------------------------------------------------ per type
    def _store(self, order: Order) -> None:
        self.journal.put_order(order)
        if order.terminal:
            self.state.closed(order, self.journal.position + 1)  # the record this read will write

    def _store_list(self, ol: OrderList) -> None:
        self.journal.put_list(ol)
        if list_done(ol):
            self.state.closed_list(ol, self.journal.position + 1)

    def _execution_report(self, msg: InboundMessage) -> None:
        ids = self._split(msg.get(CL_ORD_ID))
        if ids is None:
            self.metrics.unroutable.inc()
            log.warning("ExecutionReport for an unknown client: ClOrdID %r", msg.get(CL_ORD_ID))
            return
        client_id, cl = ids
        state = self.state
        er = _text_fields(msg, ER_TAGS)
        orig_ids = self._split(msg.get(ORIG_CL_ORD_ID))
        orig_cl = orig_ids[1] if orig_ids and orig_ids[0] == client_id else None
        now = _now_ns()
        order = state.get_order(client_id, cl)
        if order is None:
            alias = state.get_alias(client_id, cl)
            if alias is not None:
                order = state.get_order(client_id, alias[0])
            elif orig_cl is not None:
                order = state.get_order(client_id, orig_cl)
        if order is None:
            log.warning("ExecutionReport for unknown order %s of %s", cl, client_id)
            self.fanout.publish(client_id, msg, now)
            return
        original = (state.get_order(client_id, order.OrigClOrdID)
                    if order.MsgType == "G" and order.OrigClOrdID else None)
        res, original_changed = apply_report(order, original, er, now)
        if original_changed and original is not None:
            self._store(original)
        if res.duplicate:
            self.metrics.duplicates.inc()
            return
        order.fix_body = None  # the hub has it: nothing to send again after a restart
        self._store(order)
        if res.execution is not None:
            self.journal.put_execution(order, res.execution)
        if order.terminal:
            self._maybe_close_list(client_id, order)
        self.fanout.publish(client_id, msg, now)

    def _maybe_close_list(self, client_id: str, order: Order) -> None:
        if order.ListID is None:
            return
        ol = self.state.lists.get((client_id, order.ListID))
        if ol is None:
            return
        if all((o := self.state.get_order(client_id, m)) is not None and o.terminal for m in ol.members):
            ol.ListOrderStatus = ol.ListOrderStatus if ol.ListOrderStatus in ("6", "7") else "6"
            ol.pending = None
            ol.updated_ns = _now_ns()
            self._store_list(ol)

    def _cancel_reject(self, msg: InboundMessage) -> None:
        ids = self._split(msg.get(CL_ORD_ID)) or self._split(msg.get(ORIG_CL_ORD_ID))
        if ids is None:
            self.metrics.unroutable.inc()
            return
        client_id, cl = ids
        f = _text_fields(msg, _CXL_REJ_TAGS)
        now = _now_ns()
        orig_ids = self._split(msg.get(ORIG_CL_ORD_ID))
        order = None
        if orig_ids is not None and orig_ids[0] == client_id:
            order = self.state.get_order(client_id, orig_ids[1])
        if f.get(CXL_REJ_RESPONSE_TO) == "2":
            new = self.state.get_order(client_id, cl)
            if new is not None and new.MsgType == "G" and not new.terminal:
                reject_order(new, f.get(TEXT, "replace rejected"), now)
                self._store(new)
        if order is not None:
            pending = order.pending
            apply_cancel_reject(order, f, now)
            if f.get(CXL_REJ_RESPONSE_TO) == "2" and pending == "cancel":
                order.pending = pending  # the replace failed; the cancel sent after it still stands
            order.fix_body = None
            self._store(order)
        self.fanout.publish(client_id, msg, now)

    def _list_status(self, msg: InboundMessage) -> None:
        ids = self._split(msg.get(LIST_ID))
        if ids is None:
            self.metrics.unroutable.inc()
            return
        client_id, list_id = ids
        ol = self.state.get_list(client_id, list_id)
        if ol is not None:
            f = _text_fields(msg, (LIST_STATUS_TYPE, LIST_ORDER_STATUS, LIST_STATUS_TEXT))
            if ol.pending == "cancel" and f.get(LIST_ORDER_STATUS) == "7" and self._list_live(client_id, ol):
                # The broker refused the ListCancelRequest (unknown list, exchange down...): the
                # list and its orders stay as they were, and the client may try again.
                ol.pending = None
                ol.cancel_body = None
                ol.Text = f.get(LIST_STATUS_TEXT, "list cancel refused")
                ol.updated_ns = _now_ns()
                self.journal.put_list(ol)
                self.fanout.publish(client_id, msg, _now_ns())
                return
            ol.ListStatusType = f.get(LIST_STATUS_TYPE, ol.ListStatusType)
            ol.ListOrderStatus = f.get(LIST_ORDER_STATUS, ol.ListOrderStatus)
            if ol.ListOrderStatus in ("6", "7") or ol.ListStatusType == "5":
                ol.pending = None
            ol.fix_body = None
            ol.updated_ns = _now_ns()
            self._store_list(ol)
        self.fanout.publish(client_id, msg, _now_ns())

    def _by_request_id(self, msg: InboundMessage, tag: int) -> None:
        """A message about one client's request (``tag`` holds its namespaced id): pushed to it."""
        ids = self._split(msg.get(tag))
        if ids is None:
            self.metrics.unroutable.inc()
            return
        self.fanout.publish(ids[0], msg, _now_ns())

    def _session_status(self, msg: InboundMessage) -> None:
        """TradingSessionStatus (h): kept for the instrument views, pushed to the advisor it
        names (TargetSubID 57) or, when it names none, to every client of that broker."""
        f = _text_fields(msg, _TRAD_SES_TAGS)
        session_id = f.get(TRADING_SESSION_ID, "")
        entry = {"TradingSessionID": session_id, "TradSesStatus": f.get(TRAD_SES_STATUS, ""),
                 "TradingSessionSubID": f.get(TRADING_SESSION_SUB_ID, ""), "Text": f.get(TEXT, ""),
                 "broker": f.get(ON_BEHALF_OF_COMP_ID, ""),
                 "updated_ns": _now_ns()}
        self.trading_sessions[(f.get(SYMBOL, ""), session_id)] = entry
        now = _now_ns()
        advisor = f.get(TARGET_SUB_ID)
        if advisor in self.cfg.clients:
            self.fanout.publish(advisor, msg, now)
            return
        broker = f.get(ON_BEHALF_OF_COMP_ID, "")
        for cid, client in self.cfg.clients.items():
            if not client.brokers or broker in client.brokers:
                self.fanout.publish(cid, msg, now)

    def _list_live(self, client_id: str, ol: OrderList) -> bool:
        """Whether the broker has taken the list: a ListStatus or a report about a member came."""
        if ol.ListOrderStatus not in (None, "7"):
            return True
        return any((o := self.state.get_order(client_id, m)) is not None and o.OrdStatus != "A"
                   for m in ol.members)

    def _business_reject(self, msg: InboundMessage, session: str = "") -> None:
        ref_raw = msg.get(BUSINESS_REJECT_REF_ID)
        if self.inquiries is not None and ref_raw and self.inquiries.refused(
                ref_raw.decode("latin-1"), (msg.get(TEXT) or b"business message rejected").decode("latin-1")):
            return
        ids = self._split(ref_raw)
        if ids is None and msg.get(REF_SEQ_NUM):
            # No client identifier in BusinessRejectRefID: the hub's own rejects name our
            # MsgSeqNum (RefSeqNum 45), which the session's store maps back to the request.
            self._session_reject(msg, session)
            return
        if ids is None:
            self.metrics.unroutable.inc()
            log.warning("BusinessMessageReject without a routable BusinessRejectRefID: %r",
                        msg.get(BUSINESS_REJECT_REF_ID))
            return
        client_id, ref = ids
        ref_type = (msg.get(REF_MSG_TYPE) or b"").decode("latin-1")
        text = (msg.get(TEXT) or b"business message rejected").decode("latin-1")
        now = _now_ns()
        self._refused(client_id, ref, ref_type, text, now)
        self.fanout.publish(client_id, msg, now)

    def _session_reject(self, msg: InboundMessage, session: str) -> None:
        """A session-level Reject (35=3) names the refused message by its MsgSeqNum only: the
        session's store says which request that was; it fails as a business reject would."""
        try:
            ref_seq = int(msg.get(REF_SEQ_NUM) or b"0")
        except ValueError:
            ref_seq = 0
        sent = self.link.sent_message(session, ref_seq)
        mt = sent.msg_type.decode("latin-1") if sent is not None else ""
        ids = None
        if sent is not None:
            ids = self._split(sent.get(LIST_ID) if mt in ("E", "K") else sent.get(CL_ORD_ID))
        if ids is None:
            self.metrics.unroutable.inc()
            log.warning("session-level Reject of %s seq %d: no order of a client", mt or "a message", ref_seq)
            return
        client_id, ref = ids
        text = (msg.get(TEXT) or b"").decode("latin-1")
        reason = (msg.get(SESSION_REJECT_REASON) or b"").decode("latin-1")
        text = f"rejected by the hub: {text or 'session-level reject'}" + (f" (SessionRejectReason {reason})"
                                                                          if reason else "")
        now = _now_ns()
        self._refused(client_id, ref, mt, text, now)
        self.fanout.publish(client_id, msg, now, {("ListID" if mt in ("E", "K") else "ClOrdID"): ref,
                                                  "MsgType": mt})

    def _refused(self, client_id: str, ref: str, ref_type: str, text: str, now: int) -> None:
        """The hub or the broker refused a request (``ref`` its ClOrdID or ListID)."""
        state = self.state
        if ref_type in ("D", "G"):
            o = state.get_order(client_id, ref)
            if o is not None and not o.terminal:
                reject_order(o, text, now)
                self._store(o)
                if o.OrigClOrdID:
                    old = state.get_order(client_id, o.OrigClOrdID)
                    if old is not None and old.pending == "replace":
                        old.pending = None
                        self.journal.put_order(old)
        elif ref_type == "F":
            alias = state.get_alias(client_id, ref)
            o = state.get_order(client_id, alias[0]) if alias else None
            if o is not None:
                o.pending = None
                o.Text = text
                self.journal.put_order(o)
        elif ref_type in ("E", "K"):
            ol = state.get_list(client_id, ref)
            if ol is not None:
                ol.pending = None
                ol.Text = text
                ol.fix_body = None
                if ref_type == "E":
                    ol.ListOrderStatus = "7"
                    for m in ol.members:
                        o = state.get_order(client_id, m)
                        if o is not None and not o.terminal:
                            reject_order(o, text, now)
                            self._store(o)
                self._store_list(ol)
