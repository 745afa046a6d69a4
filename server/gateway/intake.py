"""Intake: a REST request becomes a journaled FIX message, in one callback.

One path for every request type (NewOrderSingle D, OrderCancelReplaceRequest G,
OrderCancelRequest F, NewOrderList E, ListCancelRequest K):

1. throttle (the client's token bucket);
2. decode the JSON body (a FIX-JSON Body, or a message with Header and Body);
3. identify: the request's identifier, and an identical retry answered again;
4. route: the broker (D, E: DeliverToCompID or the client's only broker; G, F, K:
   the order's broker) and its FIX session (503 when it is down);
5. check and map: pre-trade checks, defaults, the dictionary-driven mapping to an
   encoded FIX body; every problem at once in a 422;
6. accept: stage the records, :meth:`Journal.commit` (the durable point), hand
   the body to the FIX session, answer 202.

Steps particular to each type are the ``_prepare_*`` methods. Nothing between
the request's arrival and its answer waits for a later loop pass or another
thread (except when the hub stops reading: then a request waits for the socket
before step 1).

Wire identifiers: the hub and brokers see ``<client id>:<ClOrdID>`` (the same
for ListID), so two clients may use the same ClOrdID and every report names the
client it belongs to. Client ClOrdIDs cannot contain ``:`` or ``~`` (``~`` marks
identifiers the gateway generates, e.g. for a cancel sent with DELETE).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from fastfix.jsonfix import decode_error_text
from fastfix.tags import ACCOUNT
from server.gateway._intake import check_id as _check_id
from server.gateway._intake import fill_defaults as _put_defaults
from server.gateway._intake import iso as _iso
from server.gateway._intake import namespace as _namespace
from server.gateway._intake import order_answer as _order_answer
from server.gateway._intake import order_record as _order_record
from server.gateway.auth import TokenBucket
from server.gateway.checks import check_order_fields, to_decimal
from server.gateway.config import BrokerConfig, ClientConfig, GatewayConfig
from server.gateway.errors import ApiError, FieldProblem
from server.gateway.fix_out import FixOut, LinkDown, session_down
from server.gateway.journal import Journal
from server.gateway.metrics import Metrics
from server.gateway.orders import CARRIED_FIELDS, Order, OrderList, reject_order
from server.gateway.state import OrderState
from server.gateway.tracing import Tracer
from server.gateway.views import list_view, order_view

__all__ = ["Intake", "Mapper", "MappingFailed", "list_answer"]

log = logging.getLogger("fastfix.gateway")

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder(float_hook=Decimal)


class MappingFailed(Exception):
    """The JSON body is not a valid FIX message body; ``problems`` lists every error."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = problems


class Mapper(Protocol):
    """Dictionary-driven FIX <-> JSON conversion (``server.gateway.mapping``)."""

    def to_body(self, msg_type: str, body: dict[str, Any]) -> bytes:
        """The validated body as encoded FIX fields (raises :class:`MappingFailed`)."""
        ...

    def body_json(self, msg: Any) -> bytes:
        """The Body object of a received message as FIX-JSON."""
        ...

    def fields_of(self, msg_type: str, group: str | None = None) -> frozenset[str]: ...


def _now_ns() -> int:
    return time.time_ns()


def _body_hash(kind: str, body: bytes) -> str:
    """Fingerprint of a request (kind and exact body) telling an identical retry from a
    different request reusing an identifier: 128 bits of BLAKE2b."""
    return hashlib.blake2b(kind.encode() + b"\x00" + body, digest_size=16).hexdigest()


def list_answer(ol: OrderList) -> bytes:
    """The 202 answer of a NewOrderList (see ``order_answer``)."""
    return _json.encode({"ListID": ol.ListID, "state": "PendingNew", "broker": ol.broker,
                         "created": _iso(ol.created_ns),
                         "orders": [{"ClOrdID": cl, "state": "PendingNew", "OrdStatus": "A"} for cl in ol.members]})


class Intake:
    """Requests in: validated, journaled and handed to FIX in the callback that read them."""

    def __init__(self, cfg: GatewayConfig, state: OrderState, journal: Journal, fix_out: FixOut,
                 mapper: Mapper, metrics: Metrics, tracer: Tracer) -> None:
        self.cfg = cfg
        self.state = state
        self.journal = journal
        self.fix_out = fix_out
        self.mapper = mapper
        self.metrics = metrics
        self.tracer = tracer
        self.buckets = {c.id: TokenBucket(c.rate, c.burst) for c in cfg.clients.values()}
        self.failed: BaseException | None = None  # a journal write failed: nothing more is taken
        # Called between the journal write and the FIX write (crash tests kill the process here).
        self.after_journal: Callable[[str], None] | None = None
        self._gen_ids = itertools.count(1)
        self._all_brokers = list(cfg.brokers)  # routing targets of clients without a broker list
        # The FIX sessions requests go out on, named once (listing the link's sessions builds
        # a record of each: not for every request).
        self._sessions = sorted({fix_out.session_of(b) for b in cfg.brokers.values()})
        # (MsgType, group) of each message the gateway sends -> whether it has TransactTime and
        # HandlInst, which _fill_defaults sets when a request leaves them out
        self._default_flags: dict[tuple[str, str | None], tuple[bool, bool]] = {}
        for key in (("D", None), ("G", None), ("F", None), ("E", None), ("E", "NoOrders"), ("K", None),
                    ("q", None)):
            try:
                names = mapper.fields_of(*key)
            except KeyError:  # a message this FIX version has not (FIX 4.2: no mass cancel)
                continue
            self._default_flags[key] = ("TransactTime" in names, "HandlInst" in names)
        # Symbol -> today's (lower, upper) price limits (the inquiries stage keeps it up to date)
        self.price_limits: dict[str, tuple[Decimal, Decimal]] = {}
        # Fields an order keeps for its replaces: those a replace request can carry too.
        replace_fields = mapper.fields_of("G")
        self._carried = tuple(n for n in CARRIED_FIELDS if n in replace_fields)

    # ------------------------------------------------------------------ shared steps
    async def _admit(self, client: ClientConfig, throttle: bool = True) -> None:
        """Step 1, and the wait for a hub that stopped reading (before anything is staged)."""
        if self.failed is not None:
            raise ApiError(503, "journal_failed", "the gateway cannot write its journal; it takes no "
                           "requests until restarted", headers=[("retry-after", "5")])
        wait = self.buckets[client.id].take() if throttle else 0
        if wait > 0:
            self.metrics.rejected.labels("throttled").inc()
            raise ApiError(429, "throttled", f"request rate above {client.rate:g}/s for this client",
                           headers=[("retry-after", str(max(1, int(wait + 0.999))))])
        for session in self._sessions:
            if self.fix_out.blocked(session):
                await self.fix_out.writable(session)

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

    def _broker_of(self, broker_id: str) -> BrokerConfig:
        broker = self.cfg.brokers.get(broker_id)
        if broker is None:
            raise ApiError(409, "order_closed", f"broker {broker_id} is no longer configured")
        return broker

    @staticmethod
    def _check_account(client: ClientConfig, entry: dict[str, Any]) -> None:
        if "Account" not in entry and len(client.accounts) == 1:
            entry["Account"] = client.accounts[0]
        acct = entry.get("Account")
        if client.accounts and isinstance(acct, str) and acct not in client.accounts:
            raise ApiError(403, "forbidden", f"account {acct} is not allowed for this client")

    def _tick_for(self, broker: BrokerConfig | None) -> str:
        return (broker.tick_size if broker else None) or self.cfg.tick_size

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

    def _replay(self, existing: Order | OrderList, body_hash: str, what: str) -> bytes:
        """The answer to a request whose identifier is already taken: for the same body sent
        again (an idempotent retry), the original answer while the request stands; when the
        gateway itself refused it after accepting it (its session went down), that refusal,
        so a retry never reads as accepted. 409 for a different body."""
        if not existing.body_hash or existing.body_hash != body_hash:  # no hash: a list member
            raise ApiError(409, "duplicate_id", f"{what} was already used by this client with a different request")
        self.metrics.idempotent.inc()
        if isinstance(existing, OrderList):
            if existing.ListOrderStatus == "7" and existing.fix_body is not None:
                raise ApiError(409, "rejected", f"{what} was rejected by the gateway: {existing.Text}; "
                               "send the list again with a new ListID")
            return list_answer(existing)
        if existing.OrdStatus == "8" and existing.fix_body is not None:  # refused before any report
            raise ApiError(409, "rejected", f"{what} was rejected by the gateway: {existing.Text}; "
                           "send the order again with a new ClOrdID")
        return _order_answer(existing)

    def _accept(self, session: str, msg_type: str, wire: bytes, broker_id: str,
                fail: Callable[[str], None], trace: Any = None, client_id: str = "",
                closed: Callable[[], list[Order | OrderList]] | None = None) -> None:
        """Step 6: the staged records become durable (one journal write), then the message
        goes to the FIX session. A session found down here: the records say why (``fail``),
        the request is answered 503, and the records it closed (``closed()``) leave memory
        once projected."""
        tracer = self.tracer
        try:
            self.journal.commit()
        except Exception as exc:
            self.failed = exc
            log.critical("journal write failed; refusing requests until restarted", exc_info=True)
            raise ApiError(503, "journal_failed", "the gateway could not write its journal",
                           headers=[("retry-after", "5")]) from None
        tracer.persisted(trace)
        if self.after_journal is not None:
            self.after_journal(msg_type)
        try:
            self.fix_out.send(session, msg_type, wire, broker_id, client_id)
        except LinkDown:
            fail("FIX session to the hub is not logged on")
            position = self.journal.commit()
            if closed is not None:
                for record in closed():
                    if isinstance(record, OrderList):
                        self.state.closed_list(record, position)
                    elif record.terminal:
                        self.state.closed(record, position)
            self.metrics.rejected.labels("session_down").inc()
            raise session_down(session) from None
        tracer.fix_written(trace)
        self.metrics.orders.labels(msg_type).inc()

    def _check_limits(self, entry: dict[str, Any], path: str, problems: list[FieldProblem]) -> None:
        """A limit price outside the instrument's daily limits (when they are known)."""
        limits = self.price_limits.get(entry.get("Symbol"))  # type: ignore[arg-type]
        if limits is None or "Price" not in entry:
            return
        price = to_decimal(entry["Price"])
        if price is not None and not limits[0] <= price <= limits[1]:
            problems.append(FieldProblem("Price", f"outside today's price limits {limits[0]}..{limits[1]}",
                                         f"{path}.Price"))

    def _carry(self, body: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """The fields of ``body`` a later replace repeats when it leaves them out."""
        return tuple((n, v if type(v) is str else str(v)) for n in self._carried if (v := body.get(n)) is not None)

    def _invalid(self, what: str, problems: list[FieldProblem], code: str = "invalid_order") -> ApiError:
        self.metrics.rejected.labels("invalid").inc()
        return ApiError(422, code, f"the {what} is not valid", problems)

    # ------------------------------------------------------------------ D
    async def new_order(self, client: ClientConfig, raw: bytes, received_ns: int = 0) -> bytes:
        await self._admit(client)
        header, body = self._decode_body(raw)
        problems: list[FieldProblem] = []
        cid = client.id
        cl = _check_id(body.get("ClOrdID"), "ClOrdID", "$.ClOrdID", problems)
        body_hash = _body_hash("D", raw)
        existing = self.state.get_order(cid, cl) if cl is not None else None
        if existing is not None:
            return self._replay(existing, body_hash, f"ClOrdID {cl}")
        broker = self._route(client, header, body, problems)
        self._check_account(client, body)
        check_order_fields(body, client, self._tick_for(broker), "$", problems)
        if self.price_limits:
            self._check_limits(body, "$", problems)
        self._fill_defaults(body, "D")
        wire = self._map("D", body, cid, problems)
        if problems or cl is None or broker is None:
            raise self._invalid("order", problems)
        session = self.fix_out.session_for(broker)
        order = _order_record(body, cid, cl, broker.id, "D", _now_ns(), OrdStatus="A",
                              body_hash=body_hash, fix_body=wire)
        carried = self._carry(body)
        if carried:
            order.carried = carried
        self.state.remember(order)
        self.journal.put_order(order)

        def fail(reason: str) -> None:
            reject_order(order, reason, _now_ns())
            self.journal.put_order(order)

        self._accept(session, "D", wire, broker.id, fail, self.tracer.start(cid, cl, received_ns), cid,
                     lambda: [order])
        order.fix_body = None  # the session's store has it now (the journal keeps it for a restart)
        return _order_answer(order)

    # ------------------------------------------------------------------ G
    async def replace_order(self, client: ClientConfig, orig_id: str, raw: bytes) -> bytes:
        await self._admit(client)
        header, body = self._decode_body(raw)
        problems: list[FieldProblem] = []
        orig = self.state.get_order(client.id, orig_id)
        if orig is None:
            raise ApiError(404, "not_found", f"no order {orig_id}")
        cl = _check_id(body.get("ClOrdID"), "ClOrdID", "$.ClOrdID", problems)
        body_hash = _body_hash("G" + orig_id, raw)
        existing = self.state.get_order(client.id, cl) if cl is not None else None
        if existing is not None:
            return self._replay(existing, body_hash, f"ClOrdID {cl}")
        if body.get("OrigClOrdID", orig_id) != orig_id:
            problems.append(FieldProblem("OrigClOrdID", "must match the order in the path", "$.OrigClOrdID"))
        if orig.terminal:
            raise ApiError(409, "order_closed", f"order {orig_id} is {orig.state}")
        if orig.pending:
            raise ApiError(409, "request_pending", f"a {orig.pending} request is pending on order {orig_id}")
        body.pop("DeliverToCompID", None)
        broker = self._broker_of(orig.broker)
        for key in ("Symbol", "Side", "Account"):  # what the order is: a new order changes it
            if key in body and body[key] != getattr(orig, key) and getattr(orig, key):
                problems.append(FieldProblem(key, f"cannot change on a replace (the order's is "
                                             f"{getattr(orig, key)!r}): cancel and send a new order",
                                             f"$.{key}"))
        # Unchanged fields come from the order, as FIX requires them on a replace (a field left
        # out of a replace is removed from the order: ExecInst, TimeInForce... are repeated).
        for key, value in (("Symbol", orig.Symbol), ("Side", orig.Side), ("OrdType", orig.OrdType),
                           ("Account", orig.Account), ("OrderQty", orig.OrderQty), ("Price", orig.Price),
                           ("ListID", orig.ListID), *orig.carried):
            if key not in body and value is not None and value != "":
                body[key] = value
        body["OrigClOrdID"] = orig_id
        self._check_account(client, body)
        check_order_fields(body, client, self._tick_for(broker), "$", problems)
        if self.price_limits:
            self._check_limits(body, "$", problems)
        self._fill_defaults(body, "G")
        wire = self._map("G", body, client.id, problems)
        if problems or cl is None:
            raise self._invalid("replace request", problems)
        session = self.fix_out.session_for(broker)
        now = _now_ns()
        new = _order_record(body, client.id, cl, broker.id, "G", now, ListID=orig.ListID,
                            OrigClOrdID=orig_id, OrdStatus="E", CumQty=orig.CumQty, AvgPx=orig.AvgPx,
                            LeavesQty=orig.LeavesQty, OrderID=orig.OrderID,
                            body_hash=body_hash, fix_body=wire, carried=self._carry(body))
        orig.pending = "replace"
        orig.updated_ns = now
        self.state.remember(new)
        self.journal.put_order(new)
        self.journal.put_order(orig)

        def fail(reason: str) -> None:
            reject_order(new, reason, _now_ns())
            orig.pending = None
            self.journal.put_order(new)
            self.journal.put_order(orig)

        self._accept(session, "G", wire, broker.id, fail, client_id=client.id, closed=lambda: [new])
        new.fix_body = None
        return _order_answer(new)

    # ------------------------------------------------------------------ F
    async def cancel_order(self, client: ClientConfig, orig_id: str, raw: bytes, throttle: bool = True) -> bytes:
        """OrderCancelRequest; ``throttle=False`` for the gateway's own cancels (on disconnect)."""
        await self._admit(client, throttle=throttle)
        body: dict[str, Any] = {}
        if raw.strip():
            _, body = self._decode_body(raw)
        problems: list[FieldProblem] = []
        orig = self.state.get_order(client.id, orig_id)
        if orig is None:
            raise ApiError(404, "not_found", f"no order {orig_id}")
        if "ClOrdID" in body:
            cl = _check_id(body.get("ClOrdID"), "ClOrdID", "$.ClOrdID", problems)
            if cl is not None:
                hit = self.state.get_alias(client.id, cl)
                if hit is not None or self.state.get_order(client.id, cl) is not None:
                    if hit == (orig_id, "cancel"):
                        return _json.encode({**order_view(orig), "CancelClOrdID": cl})
                    raise ApiError(409, "duplicate_id", f"ClOrdID {cl} was already used by this client")
        else:
            cl = f"{orig_id}~c{next(self._gen_ids)}.{_now_ns() % 1_000_000_000}"
        if orig.pending == "cancel":
            return _json.encode(order_view(orig))
        if orig.terminal:
            raise ApiError(409, "order_closed", f"order {orig_id} is {orig.state}")
        # A cancel may follow a pending replace (FIX: it names the last accepted ClOrdID, this one).
        broker = self._broker_of(orig.broker)
        req: dict[str, Any] = {"ClOrdID": cl or "", "OrigClOrdID": orig_id, "Symbol": orig.Symbol,
                               "Side": orig.Side, "OrderQty": orig.OrderQty}
        for key, value in (("Account", orig.Account), ("ListID", orig.ListID), ("OrderID", orig.OrderID)):
            if value:
                req[key] = value
        if "Text" in body:
            req["Text"] = body["Text"]
        self._fill_defaults(req, "F")
        wire = self._map("F", req, client.id, problems)
        if problems or cl is None:
            raise self._invalid("cancel request", problems, "invalid_request")
        session = self.fix_out.session_for(broker)
        was_pending = orig.pending
        orig.pending = "cancel"
        orig.cancel_ids += (cl,)
        orig.cancel_body = wire
        orig.updated_ns = _now_ns()
        self.state.add_alias(client.id, cl, orig_id, "cancel")
        self.journal.put_alias(client.id, cl, orig_id, "cancel")
        self.journal.put_order(orig)

        def fail(reason: str) -> None:
            orig.pending = was_pending
            orig.cancel_body = None
            orig.Text = reason
            self.journal.put_order(orig)

        # The answer shows the order as accepted.
        answer = _json.encode({**order_view(orig), "CancelClOrdID": cl})
        self._accept(session, "F", wire, broker.id, fail, client_id=client.id)
        orig.cancel_body = None
        return answer

    # ------------------------------------------------------------------ E
    async def new_list(self, client: ClientConfig, raw: bytes) -> bytes:
        await self._admit(client)
        header, body = self._decode_body(raw)
        problems: list[FieldProblem] = []
        list_id = _check_id(body.get("ListID"), "ListID", "$.ListID", problems)
        body_hash = _body_hash("E", raw)
        existing_list = self.state.get_list(client.id, list_id) if list_id is not None else None
        if existing_list is not None:
            return self._replay(existing_list, body_hash, f"ListID {list_id}")
        broker = self._route(client, header, body, problems)
        tick = self._tick_for(broker)
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
                elif self.state.get_order(client.id, cl) is not None:
                    raise ApiError(409, "duplicate_id", f"ClOrdID {cl} was already used by this client")
                members.append(cl)
            self._check_account(client, entry)
            entry.setdefault("ListSeqNo", str(i + 1))
            check_order_fields(entry, client, tick, path, problems)
            if self.price_limits:
                self._check_limits(entry, path, problems)
        body.setdefault("TotNoOrders", str(len(entries)))
        body.setdefault("BidType", "3")  # no bidding process
        self._fill_defaults(body, "E")
        for entry in entries:
            if isinstance(entry, dict):
                self._fill_defaults(entry, "E", "NoOrders")
        wire = self._map("E", body, client.id, problems)
        if problems or list_id is None or broker is None:
            raise self._invalid("order list", problems)
        session = self.fix_out.session_for(broker)
        now = _now_ns()
        ol = OrderList(client_id=client.id, ListID=list_id, broker=broker.id, members=members,
                       created_ns=now, updated_ns=now, body_hash=body_hash, fix_body=wire)
        orders = [_order_record(entry, client.id, cl, broker.id, "E", now, ListID=list_id, OrdStatus="A",
                                carried=self._carry(entry))
                  for entry, cl in zip(entries, members, strict=True)]
        self.state.remember_list(ol)
        self.journal.put_list(ol)
        for o in orders:
            self.state.remember(o)
            self.journal.put_order(o)

        def fail(reason: str) -> None:
            ol.ListOrderStatus = "7"
            ol.Text = reason
            self.journal.put_list(ol)
            for o in orders:
                reject_order(o, reason, _now_ns())
                self.journal.put_order(o)

        self._accept(session, "E", wire, broker.id, fail, client_id=client.id, closed=lambda: [ol, *orders])
        ol.fix_body = None
        return list_answer(ol)

    # ------------------------------------------------------------------ K
    async def cancel_list(self, client: ClientConfig, list_id: str, raw: bytes) -> bytes:
        await self._admit(client)
        ol = self.state.get_list(client.id, list_id)
        if ol is None:
            raise ApiError(404, "not_found", f"no order list {list_id}")
        if ol.pending == "cancel":
            return _json.encode(list_view(ol, self.state))
        if ol.ListOrderStatus in ("6", "7") or all(
            (o := self.state.get_order(client.id, m)) is not None and o.terminal for m in ol.members
        ):
            raise ApiError(409, "order_closed", f"order list {list_id} is done")
        broker = self._broker_of(ol.broker)
        problems: list[FieldProblem] = []
        req: dict[str, Any] = {}
        if raw.strip():  # the request's own fields (Text, TransactTime, ...), checked by the mapper
            _, req = self._decode_body(raw)
            if req.get("ListID", list_id) != list_id:
                problems.append(FieldProblem("ListID", "must match the list in the path", "$.ListID"))
        req["ListID"] = list_id
        self._fill_defaults(req, "K")
        wire = self._map("K", req, client.id, problems)
        if problems:
            raise self._invalid("list cancel request", problems, "invalid_request")
        session = self.fix_out.session_for(broker)
        ol.pending = "cancel"
        ol.cancel_body = wire
        ol.updated_ns = _now_ns()
        self.journal.put_list(ol)

        def fail(reason: str) -> None:
            ol.pending = None
            ol.cancel_body = None
            ol.Text = reason
            self.journal.put_list(ol)

        answer = _json.encode(list_view(ol, self.state))  # as accepted (see cancel_order)
        self._accept(session, "K", wire, broker.id, fail, client_id=client.id)
        ol.cancel_body = None
        return answer

    # ------------------------------------------------------------------ H
    async def status_order(self, client: ClientConfig, cl: str) -> bytes:
        """OrderStatusRequest (H): the broker answers with an ExecutionReport (ExecType I),
        pushed on the stream; it refreshes the order's state."""
        await self._admit(client)
        order = self.state.get_order(client.id, cl)
        if order is None:
            raise ApiError(404, "not_found", f"no order {cl}")
        broker = self._broker_of(order.broker)
        req_id = f"{cl}~s{next(self._gen_ids)}.{_now_ns() % 1_000_000_000}"
        req: dict[str, Any] = {"ClOrdID": cl, "Symbol": order.Symbol, "Side": order.Side, "OrdStatusReqID": req_id}
        if order.OrderID:
            req["OrderID"] = order.OrderID
        if order.Account:
            req["Account"] = order.Account
        problems: list[FieldProblem] = []
        names = self.mapper.fields_of("H")
        wire = self._map("H", {k: v for k, v in req.items() if k in names}, client.id, problems)
        if problems:
            raise self._invalid("order status request", problems, "invalid_request")
        session = self.fix_out.session_for(broker)
        self._accept(session, "H", wire, broker.id, lambda reason: None, client_id=client.id)
        answer = order_view(order)
        if "OrdStatusReqID" in names:
            answer["OrdStatusReqID"] = req_id
        return _json.encode(answer)

    # ------------------------------------------------------------------ q
    async def mass_cancel(self, client: ClientConfig, raw: bytes) -> bytes:
        """OrderMassCancelRequest (q) to one broker: the client's open orders there, of one
        Symbol (MassCancelRequestType 1) or all (7), optionally of one Side or Account."""
        await self._admit(client)
        header, body = self._decode_body(raw)
        problems: list[FieldProblem] = []
        if "broker" in body:
            body["DeliverToCompID"] = body.pop("broker")
        broker = self._route(client, header, body, problems)
        cl = body.get("ClOrdID")
        if cl is None:
            cl = body["ClOrdID"] = f"~m{next(self._gen_ids)}.{_now_ns() % 1_000_000_000}"
        else:
            cl = _check_id(cl, "ClOrdID", "$.ClOrdID", problems)
        account = body.pop("Account", None)
        if account is not None:
            if not isinstance(account, str) or not account:
                problems.append(FieldProblem("Account", "a non-empty string", "$.Account"))
            elif client.accounts and account not in client.accounts:
                raise ApiError(403, "forbidden", f"account {account} is not allowed for this client")
        body.setdefault("MassCancelRequestType", "1" if "Symbol" in body else "7")
        if body["MassCancelRequestType"] not in ("1", "7"):
            problems.append(FieldProblem("MassCancelRequestType", "1 (one Symbol) or 7 (all orders)",
                                         "$.MassCancelRequestType"))
        elif body["MassCancelRequestType"] == "1" and "Symbol" not in body:
            problems.append(FieldProblem("Symbol", "required for MassCancelRequestType 1", "$.Symbol"))
        if ("q", None) not in self._default_flags:
            raise ApiError(501, "not_supported", f"{self.fix_out.link.begin_string} has no OrderMassCancelRequest")
        self._fill_defaults(body, "q")
        wire = self._map("q", body, client.id, problems)
        if problems or broker is None or cl is None:
            raise self._invalid("mass cancel request", problems, "invalid_request")
        if account is not None:
            # FIX 4.4 has no Account on q: the venue reads the FIX 5.0 member at body level.
            wire += b"%d=%s\x01" % (ACCOUNT, account.encode())
        session = self.fix_out.session_for(broker)
        self._accept(session, "q", wire, broker.id, lambda reason: None, client_id=client.id)
        out: dict[str, Any] = {"ClOrdID": cl, "broker": broker.id,
                               "MassCancelRequestType": body["MassCancelRequestType"], "state": "Sent"}
        for key in ("Symbol", "Side"):
            if key in body:
                out[key] = body[key]
        if account is not None:
            out["Account"] = account
        return _json.encode(out)
