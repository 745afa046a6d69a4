"""FIX front end of the exchange simulator: FIX orders in, ExecutionReports out.

:class:`ExchangeApplication` is a FIX acceptor application (QuickFIX-style hooks:
``from_app``, ``on_logon`` ...). It maps

- NewOrderSingle (D), OrderCancelRequest (F), OrderCancelReplaceRequest (G),
  NewOrderList (E), ListCancelRequest (K) and OrderMassCancelRequest (q) onto
  :class:`MatchingEngine` calls, and answers OrderStatusRequest (H),
  SecurityListRequest (x), SecurityDefinitionRequest (c) and
  TradingSessionStatusRequest (g) (see :mod:`.reference`);
- the engine's events onto ExecutionReports (8), OrderCancelRejects (9),
  ListStatus (N) and TradingSessionStatus (h: every session change and
  volatility interruption, to every logged-on session), for FIX 4.2 and FIX 4.4
  counterparties alike.

KRX order types travel in OrdType (40): ``2`` limit, ``1`` market, ``I`` (Funari,
limit that goes to the close as a market order) conditional limit, ``K`` (market
with leftover as limit) best limit, ``P`` (pegged) with ExecInst (18) ``P``
(market peg) best limit or ``R`` (primary peg) primary best. TimeInForce (59)
``0``/absent day, ``3`` IOC, ``4`` FOK; ``7`` (At the Close) makes a closing-price
order (시간외 종가: OrdType 1, or 2 with Price = the closing price).

Messages go out through the engine the application is attached to
(:meth:`fastfix.engine.Application.send`), or through ``sender(session_id,
msg_type, fields)`` when one is given (tests, other transports).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from server.exchange import reference
from server.exchange.book import Order, OrdType, Side, TimeInForce
from server.exchange.instruments import lookup
from server.exchange.liquidity import LiquidityProvider
from server.exchange.matching import (
    Accepted,
    Cancelled,
    CancelRejected,
    Converted,
    Event,
    Expired,
    MatchingEngine,
    NewOrder,
    Rejected,
    Replaced,
    SessionChanged,
    Trade,
    VolatilityEnded,
    VolatilityInterruption,
    VolatilityRules,
    average_price,
)
from server.exchange.rules import REASON_TEXT, Reason

try:  # The FIX engine's application base class and reject exceptions.
    from fastfix.engine import Application, RejectMessage, UnsupportedMessageType
except ImportError:  # pragma: no cover - the package always ships it
    Application = object  # type: ignore[assignment,misc]
    RejectMessage = UnsupportedMessageType = None  # type: ignore[assignment,misc]

__all__ = ["ExchangeApplication", "Sender"]

Sender = Callable[[Any, str, Sequence[tuple[int, Any]]], Any]
Fields = list[tuple[int, Any]]

_SIDES = {b"1": Side.BUY, b"2": Side.SELL, b"5": Side.SELL, b"6": Side.SELL}
_SIDE_CODE = {Side.BUY: "1", Side.SELL: "2"}
_TIF = {b"0": TimeInForce.DAY, b"3": TimeInForce.IOC, b"4": TimeInForce.FOK}
_ORD_TYPE_CODE = {
    OrdType.LIMIT: "2",
    OrdType.MARKET: "1",
    OrdType.CONDITIONAL_LIMIT: "I",
    OrdType.BEST_LIMIT: "K",
    OrdType.PRIMARY_BEST: "P",
    OrdType.CLOSE_PRICE: "2",  # a limit at the closing price, with TimeInForce 7 (At the Close)
}
_TIF_CODE = {TimeInForce.DAY: "0", TimeInForce.IOC: "3", TimeInForce.FOK: "4"}
_BEFORE_43 = frozenset(("FIX.4.0", "FIX.4.1", "FIX.4.2"))

# OrdRejReason (103). FIX 4.2 only knows 0-8, so the finer 4.4 codes fall back to 0.
_REJ_44 = {
    Reason.UNKNOWN_SYMBOL: 1,
    Reason.MARKET_CLOSED: 2,
    Reason.DUPLICATE_ORDER: 6,
    Reason.INVALID_QUANTITY: 13,
    Reason.ORDER_TYPE_NOT_ALLOWED: 11,
    Reason.CONDITION_NOT_ALLOWED: 11,
}
_REJ_42 = {Reason.UNKNOWN_SYMBOL: 1, Reason.MARKET_CLOSED: 2, Reason.DUPLICATE_ORDER: 6}

# Tags copied from an order onto its reports when present.
_ECHO_TAGS = (1, 581, 528)  # Account, AccountType, OrderCapacity

# A message that came through a hub names its origin in OnBehalfOf*; the answer is
# addressed back with DeliverTo* (the session moves these into the header).
_REVERSE_ROUTE = ((115, 128), (116, 129), (144, 145))


def _route(msg: Any) -> Fields:
    return [(out, v) for tag, out in _REVERSE_ROUTE if (v := msg.get(tag))]


# Session-level reject reasons (373).
_REQUIRED_MISSING = 1
_BAD_FORMAT = 6
_BAD_VALUE = 5


class _Reject(Exception):
    """A request the exchange answers with a report (not a session-level reject)."""

    def __init__(self, reason: Reason | None, text: str, rej_code: int | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.rej_code = rej_code


@dataclass(slots=True)
class _OrderInfo:
    """What the FIX side remembers about an order, also after it is done."""

    session_id: Any
    order_id: str
    clordid: str
    symbol: str
    side: Side
    ord_type: OrdType
    tif: TimeInForce
    qty: int
    price: int | None
    echo: Fields
    route: Fields = field(default_factory=list)
    list_id: str | None = None
    status: str = "0"
    cum_qty: int = 0
    leaves_qty: int = 0
    value: int = 0
    text: str = ""
    rej_code: int | None = None


@dataclass(slots=True)
class _ListInfo:
    list_id: str
    session_id: Any
    clordids: list[str] = field(default_factory=list)
    rpt_seq: int = 0
    route: Fields = field(default_factory=list)


class ExchangeApplication(Application):
    """FIX acceptor application in front of a :class:`MatchingEngine`."""

    def __init__(
        self,
        engine: MatchingEngine,
        liquidity: LiquidityProvider | None = None,
        sender: Sender | None = None,
    ) -> None:
        self.market = engine
        self.liquidity = liquidity
        self.sender: Sender | None = sender
        self.logged_on: set[Any] = set()
        # Per session: ClOrdID -> info (every ClOrdID ever used, for duplicates and late cancels).
        self._by_clordid: dict[Any, dict[str, _OrderInfo]] = {}
        self._by_order: dict[int, _OrderInfo] = {}  # engine order id -> info
        self._by_order_id: dict[str, int] = {}  # OrderID (37) -> engine order id
        self._lists: dict[tuple[Any, str], _ListInfo] = {}
        # Ids stay unique across restarts of the simulator: prefix with the start time.
        self._prefix = _base36(int(time.time()))
        self._exec_ids = itertools.count(1)
        self._touched: set[str] = set()  # symbols that traded while handling a message
        self._sessions = reference.session_states(engine)  # last announced, per TradingSessionID
        self._responses = itertools.count(1)

    # ------------------------------------------------------------------ session hooks

    def on_create(self, session_id: Any) -> None:
        self._by_clordid.setdefault(session_id, {})

    def on_logon(self, session_id: Any) -> None:
        self.logged_on.add(session_id)
        self._by_clordid.setdefault(session_id, {})

    def on_logout(self, session_id: Any) -> None:
        self.logged_on.discard(session_id)

    def from_app(self, msg: Any, session_id: Any) -> None:
        """Dispatch one inbound application message."""
        mt = msg.msg_type
        if mt == b"D":
            self._new_order_single(msg, session_id)
        elif mt == b"F":
            self._cancel_request(msg, session_id)
        elif mt == b"G":
            self._replace_request(msg, session_id)
        elif mt == b"E":
            self._new_order_list(msg, session_id)
        elif mt == b"K":
            self._list_cancel_request(msg, session_id)
        elif mt == b"H":
            self._status_request(msg, session_id)
        elif mt == b"q":
            self._mass_cancel(msg, session_id)
        elif mt == b"x":
            self._security_list(msg, session_id)
        elif mt == b"c":
            self._security_definition(msg, session_id)
        elif mt == b"g":
            self._session_status_request(msg, session_id)
        elif UnsupportedMessageType is not None:
            raise UnsupportedMessageType()
        if self._touched:
            # Top up the synthetic ladders of the books that just traded.
            touched, self._touched = list(self._touched), set()
            if self.liquidity is not None:
                self._emit(self.liquidity.refresh(touched), None)

    def poll(self) -> None:
        """Run due phase transitions (auctions, expiry) and top up liquidity; call each second."""
        self._emit(self.market.poll(), None)
        if self.liquidity is not None:
            self._emit(self.liquidity.refresh(), None)

    # ------------------------------------------------------------------ helpers

    def _send(self, session_id: Any, msg_type: str, fields: Fields) -> None:
        if self.sender is not None:
            self.sender(session_id, msg_type, fields)
        elif getattr(self, "engine", None) is not None:
            self.send(session_id, msg_type, fields)

    def _is44(self, session_id: Any) -> bool:
        """True for FIX 4.3 and later (ExecType F for fills, no ExecTransType)."""
        begin = getattr(session_id, "begin_string", "FIX.4.4")
        return begin not in _BEFORE_43

    def _now(self) -> datetime:
        return self.market.clock.now()

    def _exec_id(self) -> str:
        return f"{self._prefix}-{next(self._exec_ids)}"

    def _rej_code(self, session_id: Any, reason: Reason | None) -> int:
        if reason is None:
            return 99 if self._is44(session_id) else 0
        if self._is44(session_id):
            return _REJ_44.get(reason, 99)
        return _REJ_42.get(reason, 0)

    # ------------------------------------------------------------------ parsing

    @staticmethod
    def _req(msg: Any, tag: int) -> bytes:
        v = msg.get(tag)
        if v is None or v == b"":
            if RejectMessage is not None:
                raise RejectMessage(_REQUIRED_MISSING, tag)
            raise ValueError(f"required tag {tag} missing")
        return v

    @staticmethod
    def _bad(tag: int, reason: int = _BAD_FORMAT) -> Exception:
        if RejectMessage is not None:
            return RejectMessage(reason, tag)
        return ValueError(f"bad value for tag {tag}")

    def _symbol(self, get: Callable[[int], bytes | None]) -> str:
        sym = get(55)
        if sym:
            return sym.decode("ascii", "replace")
        sec = get(48)  # SecurityID, e.g. an ISIN with IDSource 4
        if sec:
            return sec.decode("ascii", "replace")
        raise self._bad(55, _REQUIRED_MISSING)

    def _qty(self, raw: bytes | None, tag: int = 38) -> int:
        if not raw:
            raise self._bad(tag, _REQUIRED_MISSING)
        try:
            d = Decimal(raw.decode("ascii"))
        except (InvalidOperation, UnicodeDecodeError):
            raise self._bad(tag) from None
        if d != d.to_integral_value():
            raise _Reject(Reason.INVALID_QUANTITY, REASON_TEXT[Reason.INVALID_QUANTITY])
        return int(d)

    def _price(self, raw: bytes | None) -> int | None:
        if not raw:
            return None
        try:
            d = Decimal(raw.decode("ascii"))
        except (InvalidOperation, UnicodeDecodeError):
            raise self._bad(44) from None
        if d != d.to_integral_value():
            # KRW prices have no decimals: a fraction can never be on the tick grid.
            raise _Reject(Reason.INVALID_TICK, REASON_TEXT[Reason.INVALID_TICK])
        return int(d)

    def _order_type(self, ord_type: bytes | None, exec_inst: bytes | None) -> OrdType:
        if ord_type == b"2":
            return OrdType.LIMIT
        if ord_type == b"1":
            return OrdType.MARKET
        if ord_type == b"I":
            return OrdType.CONDITIONAL_LIMIT
        if ord_type == b"K":
            return OrdType.BEST_LIMIT
        if ord_type == b"P":
            inst = (exec_inst or b"R").split(b" ")
            if b"P" in inst:
                return OrdType.BEST_LIMIT
            if b"R" in inst:
                return OrdType.PRIMARY_BEST
            raise _Reject(None, "pegged orders need ExecInst P (market peg) or R (primary peg)")
        if not ord_type:
            raise self._bad(40, _REQUIRED_MISSING)
        raise _Reject(
            Reason.ORDER_TYPE_NOT_ALLOWED, f"unsupported OrdType {ord_type.decode('ascii', 'replace')}"
        )

    def _tif(self, raw: bytes | None) -> TimeInForce:
        if not raw:
            return TimeInForce.DAY
        tif = _TIF.get(raw)
        if tif is None:
            raise _Reject(
                Reason.CONDITION_NOT_ALLOWED, f"unsupported TimeInForce {raw.decode('ascii', 'replace')}"
            )
        return tif

    def _side(self, raw: bytes | None) -> Side:
        if not raw:
            raise self._bad(54, _REQUIRED_MISSING)
        side = _SIDES.get(raw)
        if side is None:
            raise _Reject(Reason.INVALID_SIDE, REASON_TEXT[Reason.INVALID_SIDE])
        return side

    # ------------------------------------------------------------------ new orders

    def _new_order_single(self, msg: Any, session_id: Any) -> None:
        clordid = self._req(msg, 11).decode("ascii", "replace")
        self._enter(msg.get, session_id, clordid, None, _route(msg))

    def _enter(
        self,
        get: Callable[[int], bytes | None],
        session_id: Any,
        clordid: str,
        list_id: str | None,
        route: Fields,
    ) -> _OrderInfo:
        """Enter one order (single or list member); reports go out as the engine answers."""
        known = self._by_clordid.setdefault(session_id, {})
        echo = [(t, v) for t in _ECHO_TAGS if (v := get(t))]
        info = _OrderInfo(
            session_id, "NONE", clordid, (get(55) or get(48) or b"").decode("ascii", "replace"),
            Side.BUY, OrdType.LIMIT, TimeInForce.DAY, 0, None, echo, route, list_id,
        )
        try:
            info.side = self._side(get(54))
            info.qty = self._qty(get(38))
            info.symbol = self._symbol(get)
            info.ord_type = self._order_type(get(40), get(18))
            if get(59) == b"7":  # At the Close: a closing-price order
                if info.ord_type not in (OrdType.LIMIT, OrdType.MARKET):
                    raise _Reject(Reason.ORDER_TYPE_NOT_ALLOWED,
                                  "TimeInForce 7 (At the Close) takes OrdType 1 or 2 only")
                keep_price = info.ord_type is OrdType.LIMIT
                info.ord_type, info.tif = OrdType.CLOSE_PRICE, TimeInForce.DAY
            else:
                keep_price = False
                info.tif = self._tif(get(59))
            info.price = self._price(get(44))
            if info.ord_type is OrdType.CLOSE_PRICE:
                info.price = info.price if keep_price else None
            elif info.ord_type not in (OrdType.LIMIT, OrdType.CONDITIONAL_LIMIT):
                # Market-like orders are priced by the exchange; a price sent along is ignored.
                info.price = None
            if clordid in known:
                raise _Reject(Reason.DUPLICATE_ORDER, REASON_TEXT[Reason.DUPLICATE_ORDER])
        except _Reject as rej:
            if clordid not in known:
                known[clordid] = info
            self._reject_new(info, rej.reason, rej.text)
            return info
        known[clordid] = info
        req = NewOrder(
            info.symbol, info.side, info.qty, info.ord_type, info.price, info.tif,
            owner=session_id, client_ref=clordid,
        )
        self._emit(self.market.submit(req), info)
        return info

    def _reject_new(self, info: _OrderInfo, reason: Reason | None, text: str) -> None:
        info.status = "8"
        info.text = text
        info.rej_code = self._rej_code(info.session_id, reason)
        fields = self._report_base(info, "8", "8", info.qty, 0, 0)
        fields.append((103, info.rej_code))
        fields.append((58, text))
        self._send(info.session_id, "8", fields)

    # ------------------------------------------------------------------ cancel / replace

    def _lookup(self, msg: Any, session_id: Any) -> _OrderInfo | None:
        known = self._by_clordid.get(session_id, {})
        orig = msg.get(41)
        if orig:
            info = known.get(orig.decode("ascii", "replace"))
            if info is not None:
                return info
        oid = msg.get(37)
        if oid:
            engine_id = self._by_order_id.get(oid.decode("ascii", "replace"))
            if engine_id is not None:
                info = self._by_order.get(engine_id)
                if info is not None and info.session_id == session_id:
                    return info
        return None

    def _cancel_reject(
        self, msg: Any, session_id: Any, info: _OrderInfo | None, code: int, text: str, replace: bool
    ) -> None:
        fields: Fields = [
            (37, info.order_id if info else "NONE"),
            (11, (msg.get(11) or b"NONE").decode("ascii", "replace")),
            (41, (msg.get(41) or b"NONE").decode("ascii", "replace")),
            (39, info.status if info else "8"),
        ]
        if info and info.list_id:
            fields.append((66, info.list_id))
        fields += [(434, "2" if replace else "1"), (102, code), (58, text)]
        fields += _route(msg)
        self._send(session_id, "9", fields)

    def _cancel_request(self, msg: Any, session_id: Any) -> None:
        clordid = self._req(msg, 11).decode("ascii", "replace")
        self._req(msg, 41)
        info = self._lookup(msg, session_id)
        self._cancel_one(msg, session_id, info, clordid)

    def _live_order(self, msg: Any, session_id: Any, info: _OrderInfo | None, clordid: str,
                    replace: bool) -> tuple[_OrderInfo, int] | None:
        """The order a cancel or replace request refers to, with its engine id; or None
        after answering with an OrderCancelReject (unknown, duplicate ClOrdID, done)."""
        known = self._by_clordid.setdefault(session_id, {})
        if info is None:
            self._cancel_reject(msg, session_id, None, 1, REASON_TEXT[Reason.UNKNOWN_ORDER], replace)
            return None
        if clordid in known and known[clordid] is not info:
            self._cancel_reject(msg, session_id, info, 99 if self._is44(session_id) else 2,
                                REASON_TEXT[Reason.DUPLICATE_ORDER], replace)
            return None
        engine_id = self._by_order_id.get(info.order_id)
        if engine_id is None or self.market.order(engine_id) is None:
            verb = "replace" if replace else "cancel"
            self._cancel_reject(msg, session_id, info, 0, f"too late to {verb}: order is done", replace)
            return None
        return info, engine_id

    def _cancel_one(self, msg: Any, session_id: Any, info: _OrderInfo | None, clordid: str) -> None:
        live = self._live_order(msg, session_id, info, clordid, False)
        if live is None:
            return
        info, engine_id = live
        self._emit(self.market.cancel(engine_id), info, new_clordid=clordid, request=msg)

    def _replace_request(self, msg: Any, session_id: Any) -> None:
        clordid = self._req(msg, 11).decode("ascii", "replace")
        self._req(msg, 41)
        live = self._live_order(msg, session_id, self._lookup(msg, session_id), clordid, True)
        if live is None:
            return
        info, engine_id = live
        try:
            qty = self._qty(msg.get(38)) if msg.get(38) else None
            price = self._price(msg.get(44))
            if msg.get(40) and info.ord_type is not OrdType.CLOSE_PRICE and \
                    self._order_type(msg.get(40), msg.get(18)) is not info.ord_type:
                raise _Reject(None, "the order type cannot be changed by a replace")
        except _Reject as rej:
            self._cancel_reject(msg, session_id, info, 99 if self._is44(session_id) else 2, rej.text, True)
            return
        if info.ord_type not in (OrdType.LIMIT, OrdType.CONDITIONAL_LIMIT, OrdType.BEST_LIMIT,
                                 OrdType.PRIMARY_BEST) or self.market.order(engine_id).price is None:
            price = None
        self._emit(self.market.replace(engine_id, qty=qty, price=price, client_ref=clordid), info,
                   new_clordid=clordid, request=msg)

    def _status_request(self, msg: Any, session_id: Any) -> None:
        """OrderStatusRequest (H): the order's current state, without changing it."""
        clordid = self._req(msg, 11).decode("ascii", "replace")
        known = self._by_clordid.get(session_id, {})
        info = known.get(clordid)
        if info is None:
            oid = msg.get(37)
            engine_id = self._by_order_id.get(oid.decode("ascii", "replace")) if oid else None
            cand = self._by_order.get(engine_id) if engine_id is not None else None
            info = cand if cand is not None and cand.session_id == session_id else None
        is44 = self._is44(session_id)
        if info is None:
            fields: Fields = [(37, "NONE"), (11, clordid), (17, self._exec_id())]
            if not is44:
                fields.append((20, "3"))
            fields += [(150, "I" if is44 else "8"), (39, "8"), (55, self._symbol(msg.get)),
                       (54, (msg.get(54) or b"1").decode("ascii", "replace")),
                       (151, 0), (14, 0), (6, 0), (58, REASON_TEXT[Reason.UNKNOWN_ORDER])]
            fields += _route(msg)
            self._send(session_id, "8", fields)
            return
        fields = self._report_base(info, "I" if is44 else info.status, info.status, info.leaves_qty,
                                   info.cum_qty, info.value)
        if not is44:
            fields[fields.index((20, "0"))] = (20, "3")  # ExecTransType status
        if info.text:
            fields.append((58, info.text))
        self._send(session_id, "8", fields)

    # ------------------------------------------------------------------ lists

    def _new_order_list(self, msg: Any, session_id: Any) -> None:
        list_id = self._req(msg, 66).decode("ascii", "replace")
        entries = _group_entries(msg.fields(), 73, 11)
        key = (session_id, list_id)
        if key in self._lists:
            self._list_status(_ListInfo(list_id, session_id, route=_route(msg)), "7",
                              text="duplicate ListID")
            return
        if not entries:
            raise self._bad(73, _REQUIRED_MISSING)
        lst = self._lists[key] = _ListInfo(list_id, session_id, route=_route(msg))
        for entry in entries:
            values: dict[int, bytes] = {}
            for tag, value in entry:
                values.setdefault(tag, value)
            clordid = values[11].decode("ascii", "replace")
            info = self._enter(values.get, session_id, clordid, list_id, lst.route)
            if info.list_id == list_id:  # not a duplicate of an earlier order's ClOrdID
                lst.clordids.append(clordid)
        self._list_status(lst, None)

    def _list_cancel_request(self, msg: Any, session_id: Any) -> None:
        list_id = self._req(msg, 66).decode("ascii", "replace")
        lst = self._lists.get((session_id, list_id))
        if lst is None:
            self._list_status(_ListInfo(list_id, session_id, route=_route(msg)), "7", text="unknown ListID")
            return
        known = self._by_clordid[session_id]
        for clordid in lst.clordids:
            info = known.get(clordid)
            if info is None or info.list_id != list_id:
                continue
            engine_id = self._by_order_id.get(info.order_id)
            if engine_id is not None and self.market.order(engine_id) is not None:
                self._emit(self.market.cancel(engine_id), info)
        self._list_status(lst, None)

    def _list_status(self, lst: _ListInfo, order_status: str | None, text: str = "") -> None:
        """ListStatus (N) with one group entry per member order."""
        known = self._by_clordid.get(lst.session_id, {})
        group: list[Fields] = []
        statuses = []
        for clordid in lst.clordids:
            info = known.get(clordid)
            if info is None:
                continue
            statuses.append(info.status)
            entry: Fields = [
                (11, clordid),
                (14, info.cum_qty),
                (39, info.status),
                (151, info.leaves_qty),
                (84, info.qty - info.cum_qty - info.leaves_qty if info.status != "8" else info.qty),
                (6, average_price(info.value, info.cum_qty)),
            ]
            if info.status == "8" and info.rej_code is not None:
                entry.append((103, info.rej_code))
            if info.text:
                entry.append((58, info.text))
            group.append(entry)
        if order_status is None:
            if statuses and all(s == "8" for s in statuses):
                order_status = "7"  # reject
            elif any(s in ("0", "1") for s in statuses):
                order_status = "3"  # executing
            else:
                order_status = "6"  # all done
        lst.rpt_seq += 1
        fields: Fields = [
            (66, lst.list_id),
            (429, "2"),  # response
            (82, 1),
            (431, order_status),
            (83, lst.rpt_seq),
        ]
        if text:
            fields.append((444, text))
        fields += [(60, self._now()), (68, len(group)), (73, group)]
        fields += lst.route
        self._send(lst.session_id, "N", fields)

    # ------------------------------------------------------------------ mass cancel

    def _mass_cancel(self, msg: Any, session_id: Any) -> None:
        """OrderMassCancelRequest (q): cancel the sender's matching live orders.

        A request that came through a hub (OnBehalfOf* set) only reaches the orders
        that came the same way for the same party and sub-id.
        """
        clordid = self._req(msg, 11).decode("ascii", "replace")
        kind = self._req(msg, 530).decode("ascii", "replace")
        side_raw, account, route = msg.get(54), msg.get(1), _route(msg)
        symbol = (msg.get(55) or msg.get(48) or b"").decode("ascii", "replace")
        inst = lookup(symbol, self.market.instruments) if symbol else None
        report: Fields = [(11, clordid), (37, self._exec_id()), (530, kind)]
        reject = None
        if kind not in ("1", "7"):
            reject = ("0", f"MassCancelRequestType {kind} not supported: 1 (security) or 7 (all orders)")
        elif kind == "1" and inst is None:
            reject = ("1", f"unknown security {symbol!r}" if symbol else
                      "MassCancelRequestType 1 needs Symbol (55) or SecurityID (48)")
        elif side_raw and side_raw not in _SIDES:
            reject = ("99", f"invalid Side {side_raw.decode('ascii', 'replace')}")
        if reject is not None:
            report += [(531, "0"), (532, reject[0]), (533, 0), (60, self._now()), (58, reject[1]), *route]
            self._send(session_id, "r", report)
            return
        side = _SIDES[side_raw] if side_raw else None
        targets: list[tuple[int, _OrderInfo]] = []
        for engine_id, info in self._by_order.items():
            if info.session_id != session_id or self.market.order(engine_id) is None:
                continue
            if kind == "1" and inst is not None and info.symbol != inst.code:
                continue
            if (side is not None and info.side is not side) or (account and (1, account) not in info.echo):
                continue
            if route and sorted(info.route) != sorted(route):
                continue  # someone else's order behind the same hub session
            targets.append((engine_id, info))
        report += [(531, kind), (533, len(targets))]
        if targets:
            report.append((534, [[(41, info.clordid), (535, info.order_id)] for _, info in targets]))
        if inst is not None:
            report.append((55, inst.code))
        if side_raw:
            report.append((54, side_raw))
        report += [(60, self._now()), *route]
        self._send(session_id, "r", report)
        for engine_id, info in targets:
            self._emit(self.market.cancel(engine_id), info)

    # ------------------------------------------------------------------ reference data

    def _response_id(self) -> str:
        return f"{self._prefix}-R{next(self._responses)}"

    def _security_list(self, msg: Any, session_id: Any) -> None:
        """SecurityListRequest (x) -> SecurityList (y): all instruments (559=4) or one (559=0)."""
        req_id = self._req(msg, 320)
        kind = self._req(msg, 559)
        fields: Fields = [(320, req_id), (322, self._response_id())]
        instruments = list(self.market.instruments.values())
        text = ""
        if kind == b"0":
            symbol = (msg.get(55) or msg.get(48) or b"").decode("ascii", "replace")
            inst = lookup(symbol, self.market.instruments) if symbol else None
            instruments = [inst] if inst is not None else []
            result = 0 if inst is not None else 2
            text = "" if inst is not None else f"no instrument {symbol!r}"
        elif kind == b"4":
            result = 0
        else:
            instruments, result = [], 1
            text = f"SecurityListRequestType {kind.decode('ascii', 'replace')} not supported: 0 (symbol) or 4 (all)"
        fields += [(560, result), (393, len(instruments)), (893, "Y")]
        if instruments:
            fields.append((146, [reference.security_list_entry(self.market, i) for i in instruments]))
        if text:
            fields.append((58, text))
        self._send(session_id, "y", fields + _route(msg))

    def _security_definition(self, msg: Any, session_id: Any) -> None:
        """SecurityDefinitionRequest (c) -> SecurityDefinition (d) of one instrument."""
        req_id = self._req(msg, 320)
        kind = self._req(msg, 321)
        symbol = (msg.get(55) or msg.get(48) or b"").decode("ascii", "replace")
        inst = lookup(symbol, self.market.instruments) if symbol else None
        fields: Fields = [(320, req_id), (322, self._response_id())]
        if kind not in (b"0", b"1"):
            fields += [(323, 6), (58, f"SecurityRequestType {kind.decode('ascii', 'replace')} not supported: "
                                      "0 or 1 with Symbol (55) or SecurityID (48)")]
        elif inst is None:
            fields += [(323, 6), (58, f"unknown instrument {symbol!r}" if symbol else
                                      "Symbol (55) or SecurityID (48) is required")]
        else:
            fields += [(323, 1), *reference.security_definition(self.market, inst)]
        self._send(session_id, "d", fields + _route(msg))

    def _session_status_request(self, msg: Any, session_id: Any) -> None:
        """TradingSessionStatusRequest (g): one TradingSessionStatus (h) per session, or the one named.

        Changes go to every logged-on session whatever the SubscriptionRequestType."""
        req_id = self._req(msg, 335)
        route = _route(msg)
        if msg.get(263) == b"2":
            return  # nothing to stop: changes are sent to every session
        states = reference.session_states(self.market)
        wanted = msg.get(336)
        if wanted is not None:
            name = wanted.decode("ascii", "replace")
            if name not in states:
                self._send(session_id, "h", [(335, req_id), (336, name), (339, 2), (340, 6), (567, 1),
                                             (58, f"unknown TradingSessionID {name!r}: "
                                                  f"{', '.join(reference.SESSIONS)}"), *route])
                return
            states = {name: states[name]}
        for name, (status, sub) in states.items():
            self._send(session_id, "h", [(335, req_id), (336, name), (625, sub), (339, 2), (325, "N"),
                                         (340, status), *route])
        for vi in self.market.vi.values():
            self._send(session_id, "h", [(335, req_id), *self._volatility_fields(vi), *route])

    def _volatility_fields(self, ev: VolatilityInterruption | VolatilityEnded) -> Fields:
        rules = self.market.volatility or VolatilityRules()
        return reference.volatility_status(ev, rules.static_percent, rules.dynamic_percent)

    def _announce_sessions(self) -> None:
        """An unsolicited TradingSessionStatus for each session whose state changed."""
        states = reference.session_states(self.market)
        for name, state in states.items():
            if self._sessions.get(name) != state:
                status, sub = state
                self._broadcast_status([(336, name), (625, sub), (339, 2), (340, status)])
        self._sessions = states

    def _broadcast_status(self, fields: Fields) -> None:
        for sid in list(self.logged_on):
            self._send(sid, "h", [*fields[:3], (325, "Y"), *fields[3:]])

    # ------------------------------------------------------------------ reports

    def _report_base(
        self, info: _OrderInfo, exec_type: str, status: str, leaves: int, cum: int, value: int,
        clordid: str | None = None,
    ) -> Fields:
        is44 = self._is44(info.session_id)
        fields: Fields = [
            (37, info.order_id),
            (11, clordid or info.clordid),
            (17, self._exec_id()),
        ]
        if not is44:
            fields.append((20, "0"))
        fields += [(150, exec_type), (39, status), (55, info.symbol), (54, _SIDE_CODE[info.side])]
        fields.append((38, info.qty))
        fields.append((40, _ORD_TYPE_CODE[info.ord_type]))
        if info.price is not None:
            fields.append((44, info.price))
        if info.ord_type is OrdType.CLOSE_PRICE:
            fields.append((59, "7"))
        elif info.tif is not TimeInForce.DAY:
            fields.append((59, _TIF_CODE[info.tif]))
        if info.list_id:
            fields.append((66, info.list_id))
        fields += [(151, leaves), (14, cum), (6, average_price(value, cum)), (60, self._now())]
        fields.extend(info.echo)
        fields.extend(info.route)
        return fields

    @staticmethod
    def _status(order_qty: int, cum: int, leaves: int) -> str:
        if cum >= order_qty:
            return "2"
        return "1" if cum else "0"

    def _emit(
        self,
        events: list[Event],
        ctx: _OrderInfo | None,
        new_clordid: str | None = None,
        request: Any = None,
    ) -> None:
        """Turn engine events into reports for the sessions that own the orders."""
        for ev in events:
            if isinstance(ev, Trade):
                self._touched.add(ev.symbol)
                for fill, aggressor in ((ev.buy, ev.aggressor is Side.BUY), (ev.sell, ev.aggressor is Side.SELL)):
                    info = self._by_order.get(fill.order.order_id)
                    if info is None:
                        continue
                    self._fill_report(info, ev, fill.cum_qty, fill.leaves_qty, fill.value, aggressor)
                continue
            if isinstance(ev, Rejected):
                if ctx is not None and ev.request.client_ref == ctx.clordid:
                    self._reject_new(ctx, ev.reason, ev.text)
                continue
            if isinstance(ev, CancelRejected):
                if ctx is not None and request is not None:
                    code = 1 if ev.reason is Reason.UNKNOWN_ORDER else (99 if self._is44(ctx.session_id) else 2)
                    self._cancel_reject(request, ctx.session_id, ctx, code, ev.text, ev.replace)
                continue
            if isinstance(ev, SessionChanged):
                self._announce_sessions()
                continue
            if isinstance(ev, (VolatilityInterruption, VolatilityEnded)):
                self._broadcast_status(self._volatility_fields(ev))
                continue
            order: Order = ev.order
            if isinstance(ev, Accepted):
                if ctx is None or ev.order.client_ref != ctx.clordid or ev.order.owner != ctx.session_id:
                    continue  # someone else's order (synthetic liquidity)
                info = ctx
                info.order_id = f"{self._prefix}-{order.order_id}"
                info.price = ev.price
                self._by_order[order.order_id] = info
                self._by_order_id[info.order_id] = order.order_id
                self._update(info, "0", ev.qty, ev.cum_qty, ev.leaves_qty, ev.value)
                self._send(info.session_id, "8", self._report_base(info, "0", "0", ev.leaves_qty, 0, 0))
                continue
            info = self._by_order.get(order.order_id)
            if info is None:
                continue
            if isinstance(ev, Cancelled):
                old = info.clordid
                if new_clordid is not None and ctx is info:
                    info.clordid = new_clordid
                    self._by_clordid[info.session_id][new_clordid] = info
                self._update(info, "4", ev.qty, ev.cum_qty, 0, ev.value)
                fields = self._report_base(info, "4", "4", 0, ev.cum_qty, ev.value)
                if info.clordid != old:
                    fields.insert(2, (41, old))
                self._send(info.session_id, "8", fields)
            elif isinstance(ev, Expired):
                code = "C" if ev.reason is Reason.END_OF_DAY else "4"
                self._update(info, code, ev.qty, ev.cum_qty, 0, ev.value)
                info.text = ev.reason and REASON_TEXT[ev.reason]
                fields = self._report_base(info, code, code, 0, ev.cum_qty, ev.value)
                fields.append((58, info.text))
                self._send(info.session_id, "8", fields)
            elif isinstance(ev, Replaced):
                old = info.clordid
                if new_clordid is not None:
                    info.clordid = new_clordid
                    self._by_clordid[info.session_id][new_clordid] = info
                info.price = ev.price
                status = self._status(ev.qty, ev.cum_qty, ev.leaves_qty)
                self._update(info, status, ev.qty, ev.cum_qty, ev.leaves_qty, ev.value)
                fields = self._report_base(info, "5", status, ev.leaves_qty, ev.cum_qty, ev.value)
                fields.insert(2, (41, old))
                self._send(info.session_id, "8", fields)
            elif isinstance(ev, Converted):
                status = self._status(ev.qty, ev.cum_qty, ev.leaves_qty)
                self._update(info, status, ev.qty, ev.cum_qty, ev.leaves_qty, ev.value)
                fields = self._report_base(info, "D", status, ev.leaves_qty, ev.cum_qty, ev.value)
                fields.append((378, 8 if self._is44(info.session_id) else 4))  # exchange option
                fields.append((58, "conditional limit order converted to market for the closing auction"))
                self._send(info.session_id, "8", fields)

    def _update(self, info: _OrderInfo, status: str, qty: int, cum: int, leaves: int, value: int) -> None:
        info.status = status
        info.qty = qty
        info.cum_qty = cum
        info.leaves_qty = leaves
        info.value = value

    def _fill_report(
        self, info: _OrderInfo, trade: Trade, cum: int, leaves: int, value: int, aggressor: bool
    ) -> None:
        status = "2" if leaves == 0 and cum >= info.qty else "1"
        self._update(info, status, info.qty, cum, leaves, value)
        is44 = self._is44(info.session_id)
        exec_type = "F" if is44 else status
        fields = self._report_base(info, exec_type, status, leaves, cum, value)
        fields += [(31, trade.price), (32, trade.qty)]
        self._send(info.session_id, "8", fields)


def _group_entries(fields: list[tuple[int, bytes]], count_tag: int, delimiter: int) -> list[Fields]:
    """Split a flat field list into the entries of the repeating group ``count_tag``.

    Entries start at each ``delimiter`` tag after the count and run to the next one
    (or to the trailer); nested groups simply stay inside their entry.
    """
    entries: list[Fields] = []
    inside = False
    for tag, value in fields:
        if tag == count_tag and not inside:
            inside = True
            continue
        if not inside or tag == 10:
            continue
        if tag == delimiter:
            entries.append([])
        if entries:
            entries[-1].append((tag, value))
    return entries


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"
