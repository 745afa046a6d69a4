"""The order path of the gateway: requests in, FIX out, reports back, events pushed.

:class:`Gateway` holds no HTTP or WebSocket code: ``app.py`` turns requests
into calls here and ``ws.py`` subscribes connections to the per-client event
streams. Everything runs on the one event loop, so no locks.

Wire identifiers: the hub and brokers see ``<client id>:<ClOrdID>`` (and the
same for ListID), so two clients may use the same ClOrdID and every report
names the client it belongs to. The prefix is removed before anything is shown
to the client. Client identifiers cannot contain ``:``; client ClOrdIDs cannot
contain ``:`` or ``~`` (``~`` marks identifiers the gateway generates, e.g.
for a cancel sent with DELETE).

Ordering of an accepted order: validate, persist as PendingNew (group commit),
hand to the FIX session, answer 202. Ordering of an inbound report: update the
order, append the event to the client's log (same commit), push to the
client's WebSocket connections once durable.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import signal
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from fastfix.jsonfix import decode_error_text
from server.gateway._intake import check_id as _check_id
from server.gateway._intake import fill_defaults as _put_defaults
from server.gateway._intake import iso as _iso
from server.gateway._intake import namespace as _namespace
from server.gateway._intake import order_answer as _order_answer
from server.gateway._intake import order_record as _order_record
from server.gateway._reports import envelope as _event_envelope
from server.gateway._reports import text_fields as _text_fields
from server.gateway.auth import TokenBucket
from server.gateway.checks import check_order_fields
from server.gateway.config import BrokerConfig, ClientConfig, GatewayConfig
from server.gateway.errors import ApiError, FieldProblem
from server.gateway.link import InboundMessage, Link, LinkDown
from server.gateway.metrics import Metrics
from server.gateway.orders import (
    ER_TAGS,
    Order,
    apply_cancel_reject,
    apply_execution_report,
    apply_replaced,
    reject_order,
)
from server.gateway.store import EventRow, GatewayStore, OrderFilter, OrderList
from server.gateway.tracing import Tracer

__all__ = ["Gateway", "Mapper", "MappingFailed", "Subscriber", "order_view"]

log = logging.getLogger("fastfix.gateway")

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder(float_hook=Decimal)


class MappingFailed(Exception):
    """The JSON body is not a valid FIX message body; ``problems`` lists every error."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = problems


class Mapper(Protocol):
    """Dictionary-driven FIX <-> JSON conversion (``server.gateway.fixjson``)."""

    def to_body(self, msg_type: str, body: dict[str, Any]) -> bytes:
        """The validated body as encoded FIX fields (raises :class:`MappingFailed`)."""
        ...

    def body_json(self, msg: InboundMessage) -> bytes:
        """The Body object of a received message as FIX-JSON."""
        ...

    def fields_of(self, msg_type: str, group: str | None = None) -> frozenset[str]: ...


class Subscriber(Protocol):
    """A live event stream (a WebSocket connection) of one client."""

    def deliver(self, events: list[tuple[int, bytes]]) -> None:
        """The client's events of one commit, ``(seq, data)`` in sequence order."""


def _now_ns() -> int:
    return time.time_ns()


class _Outgoing:
    """A message waiting for its commit, then handed to the FIX session with the rest of that commit."""

    __slots__ = ("session", "msg_type", "body", "header", "trace", "record", "error")

    def __init__(self, session: str, msg_type: str, body: bytes, header: tuple[tuple[int, Any], ...],
                 trace: list[Any] | None, record: Order | OrderList | None) -> None:
        self.session = session
        self.msg_type = msg_type
        self.body = body
        self.header = header
        self.trace = trace
        self.record = record  # the order or list keeping this body for a restart (see handed_over)
        self.error: BaseException | None = None

    def handed_over(self) -> None:
        """The session has stored the message: its record need not keep the body in memory
        (``cancel_body`` for a cancel or list cancel, ``fix_body`` for an order or list)."""
        if self.record is not None:
            if self.msg_type in ("F", "K"):
                self.record.cancel_body = None
            else:
                self.record.fix_body = None


def order_view(o: Order, executions: list[Any] | None = None) -> dict[str, Any]:
    """The JSON shape of an order in REST answers (FIX-JSON names, string values)."""
    out: dict[str, Any] = {
        "ClOrdID": o.ClOrdID,
        "state": o.state,
        "OrdStatus": o.OrdStatus,
        "broker": o.broker,
        "Symbol": o.Symbol,
        "Side": o.Side,
        "OrdType": o.OrdType,
        "OrderQty": o.OrderQty,
        "CumQty": o.CumQty,
        "LeavesQty": o.LeavesQty,
        "AvgPx": o.AvgPx,
        "created": _iso(o.created_ns),
        "updated": _iso(o.updated_ns),
    }
    for key in ("Price", "Account", "ListID", "OrigClOrdID", "ReplacedBy", "OrderID", "Text", "pending"):
        value = getattr(o, key)
        if value is not None:
            out[key] = value
    if executions is not None:
        out["executions"] = [msgspec.structs.asdict(e) for e in executions]
        for e in out["executions"]:
            e["received"] = _iso(e.pop("received_ns"))
            if not e.get("stale"):
                e.pop("stale", None)
            for k in [k for k, v in e.items() if v is None]:
                del e[k]
    return out


def _body_hash(kind: str, body: bytes) -> str:
    """Fingerprint of a request (kind and exact body) telling an identical retry from a
    different request reusing an identifier: 128 bits of BLAKE2b."""
    return hashlib.blake2b(kind.encode() + b"\x00" + body, digest_size=16).hexdigest()


def _list_answer(ol: OrderList) -> bytes:
    """The 202 answer of a NewOrderList (see :func:`_order_answer`)."""
    return _json.encode({"ListID": ol.ListID, "state": "PendingNew", "broker": ol.broker,
                         "created": _iso(ol.created_ns),
                         "orders": [{"ClOrdID": cl, "state": "PendingNew", "OrdStatus": "A"} for cl in ol.members]})


def _by_session(outs: list[_Outgoing]) -> list[list[_Outgoing]]:
    groups: dict[str, list[_Outgoing]] = {}
    for o in outs:
        groups.setdefault(o.session, []).append(o)
    return list(groups.values())


class Gateway:
    """Orders, routing, state and event streams of all clients."""

    def __init__(self, cfg: GatewayConfig, store: GatewayStore, link: Link, mapper: Mapper,
                 metrics: Metrics) -> None:
        self.cfg = cfg
        self.store = store
        self.link = link
        self.mapper = mapper
        self.metrics = metrics
        self.tracer = Tracer()  # per-order hop timestamps (server/gateway/tracing.py)
        metrics.registry.register(self.tracer)
        self.orders: dict[tuple[str, str], Order] = {}
        self.lists: dict[tuple[str, str], OrderList] = {}
        self.aliases: dict[tuple[str, str], tuple[str, str]] = {}
        self.seq: dict[str, int] = {}  # last event sequence number assigned, per client
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.buckets = {c.id: TokenBucket(c.rate, c.burst) for c in cfg.clients.values()}
        self._gen_ids = itertools.count(1)
        self._all_brokers = list(cfg.brokers)  # routing targets of clients without a broker list
        # (MsgType, group) of each message the gateway sends -> whether it has TransactTime and
        # HandlInst, which _fill_defaults sets when a request leaves them out
        self._default_flags: dict[tuple[str, str | None], tuple[bool, bool]] = {}
        for key in (("D", None), ("G", None), ("F", None), ("E", None), ("E", "NoOrders"), ("K", None)):
            names = mapper.fields_of(*key)
            self._default_flags[key] = ("TransactTime" in names, "HandlInst" in names)
        # After-commit callbacks (one bound method each: the store groups items by callback).
        self._send_committed_cb = self._send_committed
        self._push_cb = self._push_committed
        # Orders that reached a terminal state, with their updated_ns: dropped from memory once
        # that state is committed (reads then come from the store), so memory holds open orders only.
        self._forget_cb = self._forget_closed
        # client -> its namespace on the wire, b"<client>:" (events strip it from identifiers)
        self._prefixes = {cid: cid.encode() + b":" for cid in cfg.clients}
        self._broker_headers: dict[str, tuple[tuple[int, Any], ...]] = {}
        # session -> messages committed but perhaps never handed to it (see _find_unsent)
        self._unsent: dict[str, list[tuple[str, str, bytes, bytes, int]]] = {}
        # Test hook: die right after a commit, before its orders reach the FIX session.
        self._crash_after_persist = os.environ.get("FASTFIX_GATEWAY_CRASH_AFTER_PERSIST") == "1"
        link.on_message = self.on_message
        link.on_state = self.on_link_state
        link.on_resume_point = store.put_resume_point

    # ------------------------------------------------------------------ start-up
    def recover(self) -> None:
        """Load what is still open and the event counters from the store."""
        self.seq = dict(self.store.last_seqs())
        self.link.resume_points = self.store.resume_points()
        for o in self.store.open_orders():
            self.orders[(o.client_id, o.ClOrdID)] = o
        for ol in self.store.open_lists():
            self.lists[(ol.client_id, ol.ListID)] = ol
        self._find_unsent()
        log.info("recovered %d open orders, %d open lists", len(self.orders), len(self.lists))

    # ------------------------------------------------------------------ lookups
    def get_order(self, client_id: str, cl_ord_id: str) -> Order | None:
        key = (client_id, cl_ord_id)
        o = self.orders.get(key)
        if o is None:
            o = self.store.get_order(client_id, cl_ord_id)  # no database read for a ClOrdID never stored
            if o is not None and not o.terminal:
                self.orders[(client_id, cl_ord_id)] = o
        return o

    def _remember(self, client_id: str, cl_ord_id: str, order: Order) -> None:
        self.orders[(client_id, cl_ord_id)] = order

    def get_list(self, client_id: str, list_id: str) -> OrderList | None:
        ol = self.lists.get((client_id, list_id))
        if ol is None:
            ol = self.store.get_list(client_id, list_id)
            if ol is not None:
                self.lists[(client_id, list_id)] = ol
        return ol

    def get_alias(self, client_id: str, alias: str) -> tuple[str, str] | None:
        hit = self.aliases.get((client_id, alias))
        if hit is None:
            hit = self.store.get_alias(client_id, alias)
            if hit is not None:
                self.aliases[(client_id, alias)] = hit
        return hit

    def broker_session(self, broker: BrokerConfig) -> str:
        return broker.session or self.link.default_session()

    def ready(self) -> bool:
        return any(s.logged_on for s in self.link.sessions())

    # ------------------------------------------------------------------ request helpers
    def _throttle(self, client: ClientConfig) -> None:
        wait = self.buckets[client.id].take()
        if wait > 0:
            self.metrics.rejected.labels("throttled").inc()
            raise ApiError(429, "throttled", f"request rate above {client.rate:g}/s for this client",
                           headers=[("retry-after", str(max(1, int(wait + 0.999))))])

    @staticmethod
    def _decode_body(body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        """(Header, Body) of a request: a bare FIX-JSON Body, or a message with Header and Body."""
        try:
            data = _decode.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # the latter: msgspec < 0.23, not UTF-8
            raise ApiError(400, "bad_json", f"request body is not valid JSON: {decode_error_text(exc, body)}"
                           ) from None
        except RecursionError:  # msgspec raises it for deep nesting, before any field is read
            raise ApiError(400, "bad_json", "request body is not valid JSON: nested too deeply") from None
        except ArithmeticError:  # decimal.InvalidOperation: an exponent beyond Decimal's range
            raise ApiError(400, "bad_json", "request body is not valid JSON: a number is out of range") from None
        if not isinstance(data, dict):
            raise ApiError(400, "bad_json", "request body must be a JSON object (a FIX-JSON Body)")
        if "Body" in data and isinstance(data["Body"], dict):
            header = data.get("Header") or {}
            if not isinstance(header, dict):
                raise ApiError(400, "bad_json", "Header must be a JSON object")
            return header, dict(data["Body"])
        return {}, data

    def _route(self, client: ClientConfig, header: dict[str, Any], body: dict[str, Any],
               problems: list[FieldProblem]) -> BrokerConfig | None:
        """The broker named by DeliverToCompID (Body or Header), checked against the client's list."""
        broker_id = body.pop("DeliverToCompID", None) or header.get("DeliverToCompID")
        allowed = client.brokers or self._all_brokers
        if broker_id is None:
            if len(allowed) == 1:
                broker_id = allowed[0]
            else:
                problems.append(FieldProblem("DeliverToCompID", "required: the broker to route to",
                                             "$.DeliverToCompID"))
                return None
        if not isinstance(broker_id, str) or broker_id not in self.cfg.brokers:
            problems.append(FieldProblem("DeliverToCompID", f"unknown broker {broker_id!r}",
                                         "$.DeliverToCompID"))
            return None
        if broker_id not in allowed:
            raise ApiError(403, "forbidden", f"broker {broker_id} is not allowed for this client")
        return self.cfg.brokers[broker_id]

    def _check_account(self, client: ClientConfig, entry: dict[str, Any]) -> None:
        if "Account" not in entry and len(client.accounts) == 1:
            entry["Account"] = client.accounts[0]
        acct = entry.get("Account")
        if client.accounts and isinstance(acct, str) and acct not in client.accounts:
            raise ApiError(403, "forbidden", f"account {acct} is not allowed for this client")

    def _session_for(self, broker: BrokerConfig) -> str:
        session = self.broker_session(broker)
        if not self.link.is_up(session) and not self.cfg.queue_when_down:
            self.metrics.rejected.labels("session_down").inc()
            raise ApiError(503, "session_down", f"the FIX session to the hub ({session}) is not logged on",
                           headers=[("retry-after", "1")])
        return session

    def _tick_for(self, broker: BrokerConfig) -> str:
        return broker.tick_size or self.cfg.tick_size

    def _map(self, msg_type: str, body: dict[str, Any], client_id: str, problems: list[FieldProblem]) -> bytes:
        """The FIX body as sent: validated, encoded once, identifiers namespaced by client."""
        _namespace(body, client_id + ":")
        try:
            return self.mapper.to_body(msg_type, body)
        except MappingFailed as exc:
            # One problem per field: the gateway's own check says it more precisely.
            seen = {p.path for p in problems}
            for p in exc.problems:
                if p.path not in seen:
                    problems.append(p)
            for p in problems:  # the client never sees its identifiers' wire prefix
                if client_id + ":" in p.reason:
                    p.reason = p.reason.replace(client_id + ":", "")
            return b""

    def _fill_defaults(self, body: dict[str, Any], msg_type: str, group: str | None = None) -> None:
        """TransactTime (now) and HandlInst (1, automated) where the message has them and they are absent."""
        _put_defaults(body, *self._default_flags[(msg_type, group)])

    async def _replay(self, existing: Order | OrderList, body_hash: str, what: str) -> bytes:
        """The answer to a request whose identifier is already taken: the original answer
        for the same body sent again (idempotent retry), 409 for a different one."""
        if not existing.body_hash or existing.body_hash != body_hash:  # no hash: a list member
            raise ApiError(409, "duplicate_id", f"{what} was already used by this client with a different request")
        self.metrics.idempotent.inc()
        await self.store.commit()  # the original answer was given once it was durable
        return _list_answer(existing) if isinstance(existing, OrderList) else _order_answer(existing)

    def _broker_header(self, broker_id: str) -> tuple[tuple[int, Any], ...]:
        """Header fields routing a message to the broker (DeliverToCompID)."""
        hdr = self._broker_headers.get(broker_id)
        if hdr is None:
            hdr = self._broker_headers[broker_id] = ((128, broker_id),)
        return hdr

    async def _persist_and_send(self, session: str, msg_type: str, body: bytes, broker_id: str,
                                on_fail: Callable[[str], None], trace: Any = None,
                                record: Order | OrderList | None = None) -> None:
        """Wait for the group commit holding this request's writes; the message goes to the FIX
        session right after that commit, in one write with the other messages of the commit.
        ``record`` (the order or list that keeps the body for a restart) then drops
        it from memory: the session has stored the message, and the database keeps the body
        until the record is written again (see _find_unsent)."""
        if self.link.write_paused(session):  # the hub is not reading: do not pile up more
            await self.link.writable(session)
        out = _Outgoing(session, msg_type, body, self._broker_header(broker_id), trace, record)
        self.store.after_commit(self._send_committed_cb, out)
        await self.store.commit()
        err = out.error
        if err is not None:
            if not isinstance(err, LinkDown):
                raise err
            on_fail("FIX session to the hub is not logged on")
            await self.store.commit()
            self.metrics.rejected.labels("session_down").inc()
            raise ApiError(503, "session_down", f"the FIX session to the hub ({session}) is not logged on",
                           headers=[("retry-after", "1")]) from None
        self.metrics.fix_out.labels(msg_type).inc()

    def _send_committed(self, outs: list[_Outgoing]) -> None:
        """After-commit callback: hand the commit's messages to their sessions (one write each)."""
        if self._crash_after_persist:
            os.kill(os.getpid(), signal.SIGKILL)
        t0 = time.perf_counter()
        tracer = self.tracer
        session = outs[0].session
        groups = [outs] if all(o.session == session for o in outs) else _by_session(outs)
        for group in groups:
            for o in group:
                tracer.persisted(o.trace)
            try:
                self.link.send_bodies(group[0].session, [(o.msg_type, o.body, o.header) for o in group])
            except Exception as exc:  # LinkDown (answered 503) or a bug (500): each waiter raises it
                if not isinstance(exc, LinkDown):
                    log.exception("handing %d messages to FIX failed", len(group))
                for o in group:
                    o.error = exc
                continue
            for o in group:
                tracer.fix_written(o.trace)
                o.handed_over()
        self.metrics.send_seconds.observe(time.perf_counter() - t0)

    # ------------------------------------------------------------------ POST /v1/orders
    async def new_order(self, client: ClientConfig, raw: bytes, received_ns: int = 0) -> bytes:
        self._throttle(client)
        header, body = self._decode_body(raw)
        problems: list[FieldProblem] = []
        cid = client.id
        cl = _check_id(body.get("ClOrdID"), "ClOrdID", "$.ClOrdID", problems)
        body_hash = _body_hash("D", raw)
        existing = self.get_order(cid, cl) if cl is not None else None
        if existing is not None:
            return await self._replay(existing, body_hash, f"ClOrdID {cl}")
        broker = self._route(client, header, body, problems)
        self._check_account(client, body)
        check_order_fields(body, client, self._tick_for(broker) if broker else self.cfg.tick_size, "$",
                           problems)
        self._fill_defaults(body, "D")
        wire = self._map("D", body, cid, problems)
        if problems or cl is None or broker is None:
            self.metrics.rejected.labels("invalid").inc()
            raise ApiError(422, "invalid_order", "the order is not valid", problems)
        session = self._session_for(broker)
        order = _order_record(body, cid, cl, broker.id, "D", _now_ns(), OrdStatus="A",
                              body_hash=body_hash, fix_body=wire)
        answer = _order_answer(order)
        self._remember(cid, cl, order)
        self.store.put_order(order)

        def fail(reason: str) -> None:
            reject_order(order, reason, _now_ns())
            self.store.put_order(order)

        await self._persist_and_send(session, "D", wire, broker.id, fail, self.tracer.start(cid, cl, received_ns),
                                     order)
        self.metrics.orders.labels("D").inc()
        return answer

    # ------------------------------------------------------------------ POST /v1/orders/{id}/replace
    async def replace_order(self, client: ClientConfig, orig_id: str, raw: bytes) -> bytes:
        self._throttle(client)
        header, body = self._decode_body(raw)
        problems: list[FieldProblem] = []
        orig = self.get_order(client.id, orig_id)
        if orig is None:
            raise ApiError(404, "not_found", f"no order {orig_id}")
        cl = _check_id(body.get("ClOrdID"), "ClOrdID", "$.ClOrdID", problems)
        body_hash = _body_hash("G" + orig_id, raw)
        existing = self.get_order(client.id, cl) if cl is not None else None
        if existing is not None:
            return await self._replay(existing, body_hash, f"ClOrdID {cl}")
        if body.get("OrigClOrdID", orig_id) != orig_id:
            problems.append(FieldProblem("OrigClOrdID", "must match the order in the path", "$.OrigClOrdID"))
        if orig.terminal:
            raise ApiError(409, "order_closed", f"order {orig_id} is {orig.state}")
        if orig.pending:
            raise ApiError(409, "request_pending", f"a {orig.pending} request is pending on order {orig_id}")
        body.pop("DeliverToCompID", None)
        broker = self.cfg.brokers.get(orig.broker)
        if broker is None:
            raise ApiError(409, "order_closed", f"broker {orig.broker} is no longer configured")
        # Unchanged fields come from the order, as FIX requires them on a replace.
        for key, value in (("Symbol", orig.Symbol), ("Side", orig.Side), ("OrdType", orig.OrdType),
                           ("Account", orig.Account), ("OrderQty", orig.OrderQty), ("Price", orig.Price),
                           ("ListID", orig.ListID)):
            if key not in body and value is not None and value != "":
                body[key] = value
        body["OrigClOrdID"] = orig_id
        self._check_account(client, body)
        check_order_fields(body, client, self._tick_for(broker), "$", problems)
        self._fill_defaults(body, "G")
        wire = self._map("G", body, client.id, problems)
        if problems or cl is None:
            self.metrics.rejected.labels("invalid").inc()
            raise ApiError(422, "invalid_order", "the replace request is not valid", problems)
        session = self._session_for(broker)
        now = _now_ns()
        new = _order_record(body, client.id, cl, broker.id, "G", now, ListID=orig.ListID,
                            OrigClOrdID=orig_id, OrdStatus="E", CumQty=orig.CumQty, AvgPx=orig.AvgPx,
                            LeavesQty=orig.LeavesQty, OrderID=orig.OrderID,
                            body_hash=body_hash, fix_body=wire)
        answer = _order_answer(new)
        orig.pending = "replace"
        orig.updated_ns = now
        self._remember(client.id, cl, new)
        self.store.put_order(new)
        self.store.put_order(orig)

        def fail(reason: str) -> None:
            reject_order(new, reason, _now_ns())
            orig.pending = None
            self.store.put_order(new)
            self.store.put_order(orig)

        await self._persist_and_send(session, "G", wire, broker.id, fail, record=new)
        self.metrics.orders.labels("G").inc()
        return answer

    # ------------------------------------------------------------------ cancel (POST .../cancel, DELETE)
    async def cancel_order(self, client: ClientConfig, orig_id: str, raw: bytes) -> bytes:
        self._throttle(client)
        body: dict[str, Any] = {}
        if raw.strip():
            _, body = self._decode_body(raw)
        problems: list[FieldProblem] = []
        orig = self.get_order(client.id, orig_id)
        if orig is None:
            raise ApiError(404, "not_found", f"no order {orig_id}")
        if "ClOrdID" in body:
            cl = _check_id(body.get("ClOrdID"), "ClOrdID", "$.ClOrdID", problems)
            if cl is not None:
                hit = self.get_alias(client.id, cl)
                if hit is not None or self.get_order(client.id, cl) is not None:
                    if hit == (orig_id, "cancel"):
                        return _json.encode({**order_view(orig), "CancelClOrdID": cl})
                    raise ApiError(409, "duplicate_id", f"ClOrdID {cl} was already used by this client")
        else:
            cl = f"{orig_id}~c{next(self._gen_ids)}.{_now_ns() % 1_000_000_000}"
        if orig.pending == "cancel":
            return _json.encode(order_view(orig))
        if orig.terminal:
            raise ApiError(409, "order_closed", f"order {orig_id} is {orig.state}")
        if orig.pending:
            raise ApiError(409, "request_pending", f"a {orig.pending} request is pending on order {orig_id}")
        broker = self.cfg.brokers.get(orig.broker)
        if broker is None:
            raise ApiError(409, "order_closed", f"broker {orig.broker} is no longer configured")
        req: dict[str, Any] = {"ClOrdID": cl or "", "OrigClOrdID": orig_id, "Symbol": orig.Symbol,
                               "Side": orig.Side, "OrderQty": orig.OrderQty}
        if orig.Account:
            req["Account"] = orig.Account
        if orig.ListID:
            req["ListID"] = orig.ListID
        if orig.OrderID:
            req["OrderID"] = orig.OrderID
        for key in ("Text",):
            if key in body:
                req[key] = body[key]
        self._fill_defaults(req, "F")
        wire = self._map("F", req, client.id, problems)
        if problems or cl is None:
            raise ApiError(422, "invalid_request", "the cancel request is not valid", problems)
        session = self._session_for(broker)
        now = _now_ns()
        orig.pending = "cancel"
        orig.cancel_ids += (cl,)
        orig.cancel_body = wire
        orig.updated_ns = now
        self.aliases[(client.id, cl)] = (orig_id, "cancel")
        self.store.put_alias(client.id, cl, orig_id, "cancel")
        self.store.put_order(orig)

        def fail(reason: str) -> None:
            orig.pending = None
            orig.cancel_body = None
            orig.Text = reason
            self.store.put_order(orig)

        # The answer shows the order as accepted: its report may be processed before this resumes.
        answer = _json.encode({**order_view(orig), "CancelClOrdID": cl})
        await self._persist_and_send(session, "F", wire, broker.id, fail, record=orig)
        self.metrics.orders.labels("F").inc()
        return answer

    # ------------------------------------------------------------------ POST /v1/order-lists
    async def new_list(self, client: ClientConfig, raw: bytes) -> bytes:
        self._throttle(client)
        header, body = self._decode_body(raw)
        problems: list[FieldProblem] = []
        list_id = _check_id(body.get("ListID"), "ListID", "$.ListID", problems)
        body_hash = _body_hash("E", raw)
        existing_list = self.get_list(client.id, list_id) if list_id is not None else None
        if existing_list is not None:
            return await self._replay(existing_list, body_hash, f"ListID {list_id}")
        broker = self._route(client, header, body, problems)
        tick = self._tick_for(broker) if broker else self.cfg.tick_size
        entries = body.get("NoOrders")
        members: list[str] = []
        if not isinstance(entries, list) or not entries:
            problems.append(FieldProblem("NoOrders", "required: a non-empty array of orders", "$.NoOrders"))
            entries = []
        for i, entry in enumerate(entries):
            path = f"$.NoOrders[{i}]"
            if not isinstance(entry, dict):
                problems.append(FieldProblem("NoOrders", "each entry must be an object", path))
                continue
            cl = _check_id(entry.get("ClOrdID"), "ClOrdID", f"{path}.ClOrdID", problems)
            if cl is not None:
                if cl in members:
                    problems.append(FieldProblem("ClOrdID", "used twice in this list", f"{path}.ClOrdID"))
                elif self.get_order(client.id, cl) is not None:
                    raise ApiError(409, "duplicate_id", f"ClOrdID {cl} was already used by this client")
                members.append(cl)
            self._check_account(client, entry)
            entry.setdefault("ListSeqNo", str(i + 1))
            check_order_fields(entry, client, tick, path, problems)
        body.setdefault("TotNoOrders", str(len(entries)))
        body.setdefault("BidType", "3")  # no bidding process
        self._fill_defaults(body, "E")
        for entry in entries:
            if isinstance(entry, dict):
                self._fill_defaults(entry, "E", "NoOrders")
        wire = self._map("E", body, client.id, problems)
        if problems or list_id is None or broker is None:
            self.metrics.rejected.labels("invalid").inc()
            raise ApiError(422, "invalid_order", "the order list is not valid", problems)
        session = self._session_for(broker)
        now = _now_ns()
        ol = OrderList(client_id=client.id, ListID=list_id, broker=broker.id, members=members,
                       created_ns=now, updated_ns=now, body_hash=body_hash, fix_body=wire)
        orders = []
        for entry, cl in zip(entries, members, strict=True):
            o = _order_record(entry, client.id, cl, broker.id, "E", now, ListID=list_id, OrdStatus="A")
            orders.append(o)
        answer = _list_answer(ol)
        self.lists[(client.id, list_id)] = ol
        self.store.put_list(ol)
        for o in orders:
            self._remember(client.id, o.ClOrdID, o)
            self.store.put_order(o)

        def fail(reason: str) -> None:
            ol.ListOrderStatus = "7"
            ol.Text = reason
            self.store.put_list(ol)
            for o in orders:
                reject_order(o, reason, _now_ns())
                self.store.put_order(o)

        await self._persist_and_send(session, "E", wire, broker.id, fail, record=ol)
        self.metrics.orders.labels("E").inc()
        return answer

    # ------------------------------------------------------------------ POST /v1/order-lists/{id}/cancel
    async def cancel_list(self, client: ClientConfig, list_id: str, raw: bytes) -> bytes:
        self._throttle(client)
        ol = self.get_list(client.id, list_id)
        if ol is None:
            raise ApiError(404, "not_found", f"no order list {list_id}")
        if ol.pending == "cancel":
            return _json.encode(self.list_view(ol))
        if ol.ListOrderStatus in ("6", "7") or all(
            (o := self.get_order(client.id, m)) is not None and o.terminal for m in ol.members
        ):
            raise ApiError(409, "order_closed", f"order list {list_id} is done")
        broker = self.cfg.brokers.get(ol.broker)
        if broker is None:
            raise ApiError(409, "order_closed", f"broker {ol.broker} is no longer configured")
        problems: list[FieldProblem] = []
        req: dict[str, Any] = {"ListID": list_id}
        self._fill_defaults(req, "K")
        wire = self._map("K", req, client.id, problems)
        if problems:
            raise ApiError(422, "invalid_request", "the list cancel request is not valid", problems)
        session = self._session_for(broker)
        ol.pending = "cancel"
        ol.cancel_body = wire
        ol.updated_ns = _now_ns()
        self.store.put_list(ol)

        def fail(reason: str) -> None:
            ol.pending = None
            ol.cancel_body = None
            ol.Text = reason
            self.store.put_list(ol)

        answer = _json.encode(self.list_view(ol))  # as accepted (see cancel_order)
        await self._persist_and_send(session, "K", wire, broker.id, fail, record=ol)
        self.metrics.orders.labels("K").inc()
        return answer

    # ------------------------------------------------------------------ reads
    async def order_detail(self, client: ClientConfig, cl: str) -> bytes:
        # Reads see committed data: wait for writes in flight so the answer is consistent.
        await self.store.commit()
        o = self.get_order(client.id, cl)
        if o is None:
            raise ApiError(404, "not_found", f"no order {cl}")
        return _json.encode(order_view(o, self.store.executions(client.id, cl)))

    def list_view(self, ol: OrderList) -> dict[str, Any]:
        out: dict[str, Any] = {"ListID": ol.ListID, "broker": ol.broker, "created": _iso(ol.created_ns),
                               "updated": _iso(ol.updated_ns)}
        for key in ("ListStatusType", "ListOrderStatus", "Text", "pending"):
            value = getattr(ol, key)
            if value is not None:
                out[key] = value
        orders = []
        for cl in ol.members:
            o = self.get_order(ol.client_id, cl)
            if o is not None:
                orders.append(order_view(o))
        out["orders"] = orders
        return out

    def list_detail(self, client: ClientConfig, list_id: str) -> bytes:
        ol = self.get_list(client.id, list_id)
        if ol is None:
            raise ApiError(404, "not_found", f"no order list {list_id}")
        return _json.encode(self.list_view(ol))

    async def search_orders(self, client: ClientConfig, flt: OrderFilter) -> list[Order]:
        await self.store.commit()
        found = self.store.list_orders(client.id, flt)
        # The in-memory copy may be newer than the last commit.
        return [self.orders.get((o.client_id, o.ClOrdID), o) for o in found]

    def brokers_view(self, client: ClientConfig) -> bytes:
        allowed = client.brokers or self._all_brokers
        sessions = {s.name: s for s in self.link.sessions()}
        out = []
        for bid in allowed:
            b = self.cfg.brokers[bid]
            name = self.broker_session(b)
            s = sessions.get(name)
            out.append({"id": b.id, "name": b.name, "DeliverToCompID": b.id,
                        "tick_size": self._tick_for(b),
                        "session": msgspec.structs.asdict(s) if s is not None else {"name": name,
                                                                                     "logged_on": False}})
        return _json.encode({"brokers": out})

    # ------------------------------------------------------------------ inbound FIX
    def on_link_state(self, session: str, up: bool) -> None:
        log.info("FIX session %s %s", session, "logged on" if up else "down")
        self.metrics.session_up.labels(session).set(1 if up else 0)
        if up and session in self._unsent:
            self._send_unsent(session, self._unsent.pop(session))

    def _find_unsent(self) -> None:
        """Orders, lists and cancels committed (their 202 was ready) whose FIX message may never
        have reached the session: the process died between the commit and the hand-over. Their
        records still hold the body as sent (``fix_body``, cleared by the first report;
        ``cancel_body``, which counts while the cancel is pending); whether the session has
        them is decided at logon, against its store (:meth:`_send_unsent`)."""
        found: list[tuple[int, str, str, bytes, bytes, str]] = []
        for o in self.orders.values():
            if o.terminal:
                continue
            if o.fix_body is not None and o.MsgType in ("D", "G"):
                found.append((o.created_ns, o.MsgType, o.broker, f"{o.client_id}:{o.ClOrdID}".encode(),
                              o.fix_body, o.client_id))
            if o.cancel_body is not None and o.pending == "cancel" and o.cancel_ids:
                found.append((o.updated_ns, "F", o.broker, f"{o.client_id}:{o.cancel_ids[-1]}".encode(),
                              o.cancel_body, o.client_id))
        for ol in self.lists.values():
            if ol.fix_body is not None:
                found.append((ol.created_ns, "E", ol.broker, f"{ol.client_id}:{ol.ListID}".encode(),
                              ol.fix_body, ol.client_id))
            if ol.cancel_body is not None and ol.pending == "cancel":
                found.append((ol.updated_ns, "K", ol.broker, f"{ol.client_id}:{ol.ListID}".encode(),
                              ol.cancel_body, ol.client_id))
        found.sort()  # in the order they were accepted
        for created_ns, mt, broker_id, wire_id, body, _ in found:
            broker = self.cfg.brokers.get(broker_id)
            if broker is None:
                log.warning("%s %s: broker %s is no longer configured; not sent", mt, wire_id, broker_id)
                continue
            self._unsent.setdefault(self.broker_session(broker), []).append(
                (mt, broker_id, wire_id, body, created_ns))

    def _send_unsent(self, session: str, items: list[tuple[str, str, bytes, bytes, int]]) -> None:
        """At logon: send what the session's store shows it never had. When the store cannot
        tell (kept in memory, or reset since the order was accepted), send with PossResend=Y
        so the counterparty checks for a duplicate."""
        record = self.link.sent_ids(session)
        msgs = []
        for mt, broker_id, wire_id, body, created_ns in items:
            if record is not None and (mt, wire_id) in record[0]:
                continue  # handed over before the stop: the FIX resend protocol covers it
            certain = record is not None and created_ns >= record[1]
            header = self._broker_header(broker_id)
            if not certain:
                header = header + ((97, "Y"),)
            msgs.append((mt, body, header))
            self.metrics.recovered.labels("N" if certain else "Y").inc()
            log.warning("%s %s was committed but never handed to FIX before the last stop: sending it%s",
                        mt, wire_id.decode(errors="replace"), "" if certain else " with PossResend=Y")
        if msgs:
            try:
                self.link.send_bodies(session, msgs)
            except Exception:  # noqa: BLE001 - keep the session up; the orders stay for the next logon
                log.exception("sending %d recovered messages failed", len(msgs))
                self._unsent[session] = items

    def _split(self, value: bytes | None) -> tuple[str, str] | None:
        if not value:
            return None
        text = value.decode("latin-1")
        client_id, sep, ident = text.partition(":")
        if not sep or client_id not in self.cfg.clients:
            return None
        return client_id, ident

    def on_message(self, msg: InboundMessage, session: str) -> None:
        """A report from the hub: update state, log the event, push it when durable."""
        self.tracer.inbound_ns = time.perf_counter_ns()
        mark = self.link.inbound_mark(session, msg)
        if mark is not None:  # committed with this message's effects: a restart resumes after it
            self.store.put_resume_point(session, mark)
        mt = msg.msg_type
        self.metrics.fix_in.labels(mt.decode()).inc()
        try:
            if mt == b"8":
                self._on_execution_report(msg)
            elif mt == b"9":
                self._on_cancel_reject(msg)
            elif mt == b"N":
                self._on_list_status(msg)
            elif mt == b"j":
                self._on_business_reject(msg)
        except Exception:  # one bad report must not stop the stream of the others
            log.exception("failed to process inbound %s", mt)
            self.metrics.unroutable.inc()

    def _on_execution_report(self, msg: InboundMessage) -> None:
        ids = self._split(msg.get(11))
        if ids is None:
            self.metrics.unroutable.inc()
            log.warning("ExecutionReport for an unknown client: ClOrdID %r", msg.get(11))
            return
        client_id, cl = ids
        er = _text_fields(msg, ER_TAGS)
        orig_ids = self._split(msg.get(41))
        orig_cl = orig_ids[1] if orig_ids and orig_ids[0] == client_id else None
        now = _now_ns()
        order = self.get_order(client_id, cl)
        if order is None:
            alias = self.get_alias(client_id, cl)
            if alias is not None:
                order = self.get_order(client_id, alias[0])
            elif orig_cl is not None:
                order = self.get_order(client_id, orig_cl)
        if order is None:
            log.warning("ExecutionReport for unknown order %s of %s", cl, client_id)
            self._publish(client_id, msg, now)
            return
        exec_type = er.get(150, "")
        if exec_type == "5" and order.MsgType == "G" and order.OrigClOrdID:
            old = self.get_order(client_id, order.OrigClOrdID)
            if old is not None:
                res = apply_replaced(old, order, er, now)
                if not res.duplicate:
                    self.store.put_order(old)
                    if old.terminal:
                        self.store.after_commit(self._forget_cb, ((client_id, old.ClOrdID), old.updated_ns))
            else:
                res = apply_execution_report(order, er, now)
        else:
            res = apply_execution_report(order, er, now)
            if exec_type == "E" and order.MsgType == "G" and order.OrigClOrdID:
                old = self.get_order(client_id, order.OrigClOrdID)
                if old is not None:
                    old.pending = "replace"
            if exec_type == "8" and order.MsgType == "G" and order.OrigClOrdID:
                old = self.get_order(client_id, order.OrigClOrdID)
                if old is not None and old.pending == "replace":
                    old.pending = None
                    self.store.put_order(old)
        if res.duplicate:
            self.metrics.duplicates.inc()
            return
        order.fix_body = None  # the hub has it: nothing to send again after a restart
        self.store.put_order(order)
        if res.execution is not None:
            self.store.put_execution(order, res.execution)
        if order.terminal:
            self.store.after_commit(self._forget_cb, ((client_id, order.ClOrdID), order.updated_ns))
            self._maybe_close_list(client_id, order)
        self._publish(client_id, msg, now)

    def _maybe_close_list(self, client_id: str, order: Order) -> None:
        if order.ListID is None:
            return
        ol = self.lists.get((client_id, order.ListID))
        if ol is None:
            return
        if all((o := self.get_order(client_id, m)) is not None and o.terminal for m in ol.members):
            ol.ListOrderStatus = ol.ListOrderStatus if ol.ListOrderStatus in ("6", "7") else "6"
            ol.pending = None
            ol.updated_ns = _now_ns()
            self.store.put_list(ol)

    def _on_cancel_reject(self, msg: InboundMessage) -> None:
        ids = self._split(msg.get(11))
        if ids is None:
            ids = self._split(msg.get(41))
        if ids is None:
            self.metrics.unroutable.inc()
            return
        client_id, cl = ids
        f = _text_fields(msg, (11, 39, 41, 58, 102, 434))
        now = _now_ns()
        orig_ids = self._split(msg.get(41))
        order = None
        if orig_ids is not None and orig_ids[0] == client_id:
            order = self.get_order(client_id, orig_ids[1])
        if f.get(434) == "2":
            new = self.get_order(client_id, cl)
            if new is not None and new.MsgType == "G" and not new.terminal:
                reject_order(new, f.get(58, "replace rejected"), now)
                self.store.put_order(new)
        if order is not None:
            apply_cancel_reject(order, f, now)
            order.fix_body = None
            self.store.put_order(order)
        self._publish(client_id, msg, now)

    def _on_list_status(self, msg: InboundMessage) -> None:
        ids = self._split(msg.get(66))
        if ids is None:
            self.metrics.unroutable.inc()
            return
        client_id, list_id = ids
        ol = self.get_list(client_id, list_id)
        if ol is not None:
            f = _text_fields(msg, (429, 431, 444))
            ol.ListStatusType = f.get(429, ol.ListStatusType)
            ol.ListOrderStatus = f.get(431, ol.ListOrderStatus)
            if ol.ListOrderStatus in ("6", "7") or ol.ListStatusType == "5":
                ol.pending = None
            ol.fix_body = None
            ol.updated_ns = _now_ns()
            self.store.put_list(ol)
        self._publish(client_id, msg, _now_ns())

    def _on_business_reject(self, msg: InboundMessage) -> None:
        ids = self._split(msg.get(379))
        if ids is None:
            self.metrics.unroutable.inc()
            log.warning("BusinessMessageReject without a routable BusinessRejectRefID: %r", msg.get(379))
            return
        client_id, ref = ids
        ref_type = (msg.get(372) or b"").decode("latin-1")
        text = (msg.get(58) or b"business message rejected").decode("latin-1")
        now = _now_ns()
        if ref_type in ("D", "G"):
            o = self.get_order(client_id, ref)
            if o is not None and not o.terminal:
                reject_order(o, text, now)
                self.store.put_order(o)
                if o.OrigClOrdID:
                    old = self.get_order(client_id, o.OrigClOrdID)
                    if old is not None:
                        old.pending = None
                        self.store.put_order(old)
        elif ref_type == "F":
            alias = self.get_alias(client_id, ref)
            o = self.get_order(client_id, alias[0]) if alias else None
            if o is not None:
                o.pending = None
                o.Text = text
                self.store.put_order(o)
        elif ref_type in ("E", "K"):
            ol = self.get_list(client_id, ref)
            if ol is not None:
                ol.pending = None
                ol.Text = text
                ol.fix_body = None
                if ref_type == "E":
                    ol.ListOrderStatus = "7"
                    for m in ol.members:
                        o = self.get_order(client_id, m)
                        if o is not None and not o.terminal:
                            reject_order(o, text, now)
                            self.store.put_order(o)
                self.store.put_list(ol)
        self._publish(client_id, msg, now)

    # ------------------------------------------------------------------ event log and push
    def _envelope(self, client_id: str, msg: InboundMessage, seq: int, now: int) -> bytes:
        """The pushed event: the report as FIX-JSON, the client's namespace removed from its
        identifiers, and of the header only who answered and when (not our session's
        bookkeeping). Built as bytes: the Body comes from the codec in one pass."""
        return _event_envelope(self.mapper.body_json(msg), msg, self._prefixes[client_id], seq, now)

    def _publish(self, client_id: str, msg: InboundMessage, now: int) -> None:
        seq = self.seq.get(client_id, 0) + 1
        self.seq[client_id] = seq
        data = self._envelope(client_id, msg, seq, now)
        self.store.put_event(client_id, seq, data, now)
        self.tracer.report(client_id, msg.get(11), seq)
        # Pushed right after the commit that makes it durable (same callback, no task).
        self.store.after_commit(self._push_cb, (client_id, seq, data))

    def _push_committed(self, events: list[tuple[str, int, bytes]]) -> None:
        """After-commit callback: deliver the commit's events to live subscribers, in order."""
        subscribers = self.subscribers
        tracer = self.tracer
        by_client: dict[str, list[tuple[int, bytes]]] = {}  # each subscriber gets its events in one call
        for client_id, seq, data in events:
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
        self.metrics.events.inc(len(events))

    def _forget_closed(self, closed: list[tuple[tuple[str, str], int]]) -> None:
        """After-commit callback: drop terminal orders from memory once that state is durable."""
        for key, stamp in closed:
            o = self.orders.get(key)
            if o is not None and o.terminal and o.updated_ns == stamp:  # unchanged since: committed
                del self.orders[key]
                for cancel_id in o.cancel_ids:  # its cancel requests' ids: read from the store if needed
                    self.aliases.pop((key[0], cancel_id), None)

    def subscribe(self, client_id: str, sub: Subscriber) -> None:
        self.subscribers.setdefault(client_id, set()).add(sub)
        self.metrics.ws_clients.inc()

    def unsubscribe(self, client_id: str, sub: Subscriber) -> None:
        subs = self.subscribers.get(client_id)
        if subs is not None and sub in subs:
            subs.discard(sub)
            self.metrics.ws_clients.dec()

    def events_since(self, client_id: str, seq: int, limit: int) -> list[EventRow]:
        return self.store.events_since(client_id, seq, limit)
