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

from fastfix.engine import Application, RejectMessage, UnsupportedMessageType
from fastfix.tags import (
    ACCOUNT,
    ACCOUNT_TYPE,
    AFFECTED_ORDER_ID,
    AVG_PX,
    CHECK_SUM,
    CL_ORD_ID,
    CUM_QTY,
    CXL_QTY,
    CXL_REJ_REASON,
    CXL_REJ_RESPONSE_TO,
    EXEC_ID,
    EXEC_INST,
    EXEC_RESTATEMENT_REASON,
    EXEC_TRANS_TYPE,
    EXEC_TYPE,
    LAST_FRAGMENT,
    LAST_PX,
    LAST_QTY,
    LEAVES_QTY,
    LIST_ID,
    LIST_ORDER_STATUS,
    LIST_STATUS_TEXT,
    LIST_STATUS_TYPE,
    MASS_CANCEL_REJECT_REASON,
    MASS_CANCEL_REQUEST_TYPE,
    MASS_CANCEL_RESPONSE,
    NO_AFFECTED_ORDERS,
    NO_ORDERS,
    NO_RELATED_SYM,
    NO_RPTS,
    ON_BEHALF_OF_TO_DELIVER_TO,
    ORD_REJ_REASON,
    ORD_STATUS,
    ORD_TYPE,
    ORDER_CAPACITY,
    ORDER_ID,
    ORDER_QTY,
    ORIG_CL_ORD_ID,
    PRICE,
    RPT_SEQ,
    SECURITY_ID,
    SECURITY_LIST_REQUEST_TYPE,
    SECURITY_REQ_ID,
    SECURITY_REQUEST_RESULT,
    SECURITY_REQUEST_TYPE,
    SECURITY_RESPONSE_ID,
    SECURITY_RESPONSE_TYPE,
    SIDE,
    SUBSCRIPTION_REQUEST_TYPE,
    SYMBOL,
    TEXT,
    TIME_IN_FORCE,
    TOT_NO_ORDERS,
    TOT_NO_RELATED_SYM,
    TOTAL_AFFECTED_ORDERS,
    TRAD_SES_MODE,
    TRAD_SES_REQ_ID,
    TRAD_SES_STATUS,
    TRAD_SES_STATUS_REJ_REASON,
    TRADING_SESSION_ID,
    TRADING_SESSION_SUB_ID,
    TRANSACT_TIME,
    UNSOLICITED_INDICATOR,
)
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
_ECHO_TAGS = (ACCOUNT, ACCOUNT_TYPE, ORDER_CAPACITY)


def wire_fields(fields: Fields) -> Fields:
    """``fields`` with every text value back to the bytes it was read from.

    Values read from FIX are decoded as Latin-1 (one character per byte, so any bytes a
    client uses for its identifiers, UTF-8 Korean or EUC-KR alike, round-trip exactly);
    this turns them back into those bytes before the codec, which would write text as
    UTF-8. Groups are converted entry by entry.
    """
    out: Fields = []
    for tag, value in fields:
        if type(value) is str and not value.isascii():
            try:
                value = value.encode("latin-1")
            except UnicodeEncodeError:  # not read from FIX: real text
                value = value.encode("utf-8")
        elif type(value) is list:
            value = [wire_fields(entry) for entry in value]
        out.append((tag, value))
    return out


def _route(msg: Any) -> Fields:
    """A message that came through a hub names its origin in OnBehalfOf*; the answer is
    addressed back with DeliverTo* (the session moves these into the header)."""
    return [(out, v) for tag, out in ON_BEHALF_OF_TO_DELIVER_TO if (v := msg.get(tag))]


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
    text: str | bytes = ""
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
        fields = wire_fields(fields)
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
        sym = get(SYMBOL)
        if sym:
            return sym.decode("latin-1")
        sec = get(SECURITY_ID)  # e.g. an ISIN with IDSource 4
        if sec:
            return sec.decode("latin-1")
        raise self._bad(SYMBOL, _REQUIRED_MISSING)

    def _qty(self, raw: bytes | None, tag: int = ORDER_QTY) -> int:
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
            raise self._bad(PRICE) from None
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
            raise self._bad(ORD_TYPE, _REQUIRED_MISSING)
        raise _Reject(
            Reason.ORDER_TYPE_NOT_ALLOWED, f"unsupported OrdType {ord_type.decode('latin-1')}"
        )

    def _tif(self, raw: bytes | None) -> TimeInForce:
        if not raw:
            return TimeInForce.DAY
        tif = _TIF.get(raw)
        if tif is None:
            raise _Reject(
                Reason.CONDITION_NOT_ALLOWED, f"unsupported TimeInForce {raw.decode('latin-1')}"
            )
        return tif

    def _side(self, raw: bytes | None) -> Side:
        if not raw:
            raise self._bad(SIDE, _REQUIRED_MISSING)
        side = _SIDES.get(raw)
        if side is None:
            raise _Reject(Reason.INVALID_SIDE, REASON_TEXT[Reason.INVALID_SIDE])
        return side

    # ------------------------------------------------------------------ new orders

    def _new_order_single(self, msg: Any, session_id: Any) -> None:
        clordid = self._req(msg, CL_ORD_ID).decode("latin-1")
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
            session_id, "NONE", clordid, (get(SYMBOL) or get(SECURITY_ID) or b"").decode("latin-1"),
            Side.BUY, OrdType.LIMIT, TimeInForce.DAY, 0, None, echo, route, list_id,
        )
        try:
            info.side = self._side(get(SIDE))
            info.qty = self._qty(get(ORDER_QTY))
            info.symbol = self._symbol(get)
            info.ord_type = self._order_type(get(ORD_TYPE), get(EXEC_INST))
            if get(TIME_IN_FORCE) == b"7":  # At the Close: a closing-price order
                if info.ord_type not in (OrdType.LIMIT, OrdType.MARKET):
                    raise _Reject(Reason.ORDER_TYPE_NOT_ALLOWED,
                                  "TimeInForce 7 (At the Close) takes OrdType 1 or 2 only")
                keep_price = info.ord_type is OrdType.LIMIT
                info.ord_type, info.tif = OrdType.CLOSE_PRICE, TimeInForce.DAY
            else:
                keep_price = False
                info.tif = self._tif(get(TIME_IN_FORCE))
            info.price = self._price(get(PRICE))
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

    def _reject_new(self, info: _OrderInfo, reason: Reason | None, text: str | bytes) -> None:
        info.status = "8"
        info.text = text
        info.rej_code = self._rej_code(info.session_id, reason)
        fields = self._report_base(info, "8", "8", info.qty, 0, 0)
        fields.append((ORD_REJ_REASON, info.rej_code))
        fields.append((TEXT, text))
        self._send(info.session_id, "8", fields)

    # ------------------------------------------------------------------ cancel / replace

    def _lookup(self, msg: Any, session_id: Any) -> _OrderInfo | None:
        known = self._by_clordid.get(session_id, {})
        orig = msg.get(ORIG_CL_ORD_ID)
        if orig:
            info = known.get(orig.decode("latin-1"))
            if info is not None:
                return info
        oid = msg.get(ORDER_ID)
        if oid:
            engine_id = self._by_order_id.get(oid.decode("latin-1"))
            if engine_id is not None:
                info = self._by_order.get(engine_id)
                if info is not None and info.session_id == session_id:
                    return info
        return None

    def _cancel_reject(
        self, msg: Any, session_id: Any, info: _OrderInfo | None, code: int, text: str | bytes, replace: bool
    ) -> None:
        fields: Fields = [
            (ORDER_ID, info.order_id if info else "NONE"),
            (CL_ORD_ID, (msg.get(CL_ORD_ID) or b"NONE").decode("latin-1")),
            (ORIG_CL_ORD_ID, (msg.get(ORIG_CL_ORD_ID) or b"NONE").decode("latin-1")),
            (ORD_STATUS, info.status if info else "8"),
        ]
        if info and info.list_id:
            fields.append((LIST_ID, info.list_id))
        fields += [(CXL_REJ_RESPONSE_TO, "2" if replace else "1"), (CXL_REJ_REASON, code), (TEXT, text)]
        fields += _route(msg)
        self._send(session_id, "9", fields)

    def _cancel_request(self, msg: Any, session_id: Any) -> None:
        clordid = self._req(msg, CL_ORD_ID).decode("latin-1")
        self._req(msg, ORIG_CL_ORD_ID)
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
        clordid = self._req(msg, CL_ORD_ID).decode("latin-1")
        self._req(msg, ORIG_CL_ORD_ID)
        live = self._live_order(msg, session_id, self._lookup(msg, session_id), clordid, True)
        if live is None:
            return
        info, engine_id = live
        try:
            qty = self._qty(msg.get(ORDER_QTY)) if msg.get(ORDER_QTY) else None
            price = self._price(msg.get(PRICE))
            if msg.get(ORD_TYPE) and info.ord_type is not OrdType.CLOSE_PRICE and \
                    self._order_type(msg.get(ORD_TYPE), msg.get(EXEC_INST)) is not info.ord_type:
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
        clordid = self._req(msg, CL_ORD_ID).decode("latin-1")
        known = self._by_clordid.get(session_id, {})
        info = known.get(clordid)
        if info is None:
            oid = msg.get(ORDER_ID)
            engine_id = self._by_order_id.get(oid.decode("latin-1")) if oid else None
            cand = self._by_order.get(engine_id) if engine_id is not None else None
            info = cand if cand is not None and cand.session_id == session_id else None
        is44 = self._is44(session_id)
        if info is None:
            fields: Fields = [(ORDER_ID, "NONE"), (CL_ORD_ID, clordid), (EXEC_ID, self._exec_id())]
            if not is44:
                fields.append((EXEC_TRANS_TYPE, "3"))
            fields += [(EXEC_TYPE, "I" if is44 else "8"), (ORD_STATUS, "8"), (SYMBOL, self._symbol(msg.get)),
                       (SIDE, (msg.get(SIDE) or b"1").decode("latin-1")),
                       (LEAVES_QTY, 0), (CUM_QTY, 0), (AVG_PX, 0), (TEXT, REASON_TEXT[Reason.UNKNOWN_ORDER])]
            fields += _route(msg)
            self._send(session_id, "8", fields)
            return
        fields = self._report_base(info, "I" if is44 else info.status, info.status, info.leaves_qty,
                                   info.cum_qty, info.value)
        if not is44:
            fields[fields.index((EXEC_TRANS_TYPE, "0"))] = (EXEC_TRANS_TYPE, "3")  # status
        if info.text:
            fields.append((TEXT, info.text))
        self._send(session_id, "8", fields)

    # ------------------------------------------------------------------ lists

    def _new_order_list(self, msg: Any, session_id: Any) -> None:
        list_id = self._req(msg, LIST_ID).decode("latin-1")
        entries = _group_entries(msg.fields(), NO_ORDERS, CL_ORD_ID)
        key = (session_id, list_id)
        if key in self._lists:
            self._list_status(_ListInfo(list_id, session_id, route=_route(msg)), "7",
                              text="duplicate ListID")
            return
        if not entries:
            raise self._bad(NO_ORDERS, _REQUIRED_MISSING)
        lst = self._lists[key] = _ListInfo(list_id, session_id, route=_route(msg))
        for entry in entries:
            values: dict[int, bytes] = {}
            for tag, value in entry:
                values.setdefault(tag, value)
            clordid = values[11].decode("latin-1")
            info = self._enter(values.get, session_id, clordid, list_id, lst.route)
            if info.list_id == list_id:  # not a duplicate of an earlier order's ClOrdID
                lst.clordids.append(clordid)
        self._list_status(lst, None)

    def _list_cancel_request(self, msg: Any, session_id: Any) -> None:
        list_id = self._req(msg, LIST_ID).decode("latin-1")
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
                (CL_ORD_ID, clordid),
                (CUM_QTY, info.cum_qty),
                (ORD_STATUS, info.status),
                (LEAVES_QTY, info.leaves_qty),
                (CXL_QTY, info.qty - info.cum_qty - info.leaves_qty if info.status != "8" else info.qty),
                (AVG_PX, average_price(info.value, info.cum_qty)),
            ]
            if info.status == "8" and info.rej_code is not None:
                entry.append((ORD_REJ_REASON, info.rej_code))
            if info.text:
                entry.append((TEXT, info.text))
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
            (LIST_ID, lst.list_id),
            (LIST_STATUS_TYPE, "2"),  # response
            (NO_RPTS, 1),
            (LIST_ORDER_STATUS, order_status),
            (RPT_SEQ, lst.rpt_seq),
        ]
        if text:
            fields.append((LIST_STATUS_TEXT, text))
        fields += [(TRANSACT_TIME, self._now()), (TOT_NO_ORDERS, len(group)), (NO_ORDERS, group)]
        fields += lst.route
        self._send(lst.session_id, "N", fields)

    # ------------------------------------------------------------------ mass cancel

    def _mass_cancel(self, msg: Any, session_id: Any) -> None:
        """OrderMassCancelRequest (q): cancel the sender's matching live orders.

        A request that came through a hub (OnBehalfOf* set) only reaches the orders
        that came the same way for the same party and sub-id.
        """
        clordid = self._req(msg, CL_ORD_ID).decode("latin-1")
        kind = self._req(msg, MASS_CANCEL_REQUEST_TYPE).decode("latin-1")
        side_raw, account, route = msg.get(SIDE), msg.get(ACCOUNT), _route(msg)
        symbol = (msg.get(SYMBOL) or msg.get(SECURITY_ID) or b"").decode("latin-1")
        inst = lookup(symbol, self.market.instruments) if symbol else None
        report: Fields = [(CL_ORD_ID, clordid), (ORDER_ID, self._exec_id()),
                          (MASS_CANCEL_REQUEST_TYPE, kind)]
        reject = None
        if kind not in ("1", "7"):
            reject = ("0", f"MassCancelRequestType {kind} not supported: 1 (security) or 7 (all orders)")
        elif kind == "1" and inst is None:
            reject = ("1", f"unknown security '{symbol}'" if symbol else
                      "MassCancelRequestType 1 needs Symbol (55) or SecurityID (48)")
        elif side_raw and side_raw not in _SIDES:
            reject = ("99", f"invalid Side {side_raw.decode('latin-1')}")
        if reject is not None:
            report += [(MASS_CANCEL_RESPONSE, "0"), (MASS_CANCEL_REJECT_REASON, reject[0]),
                       (TOTAL_AFFECTED_ORDERS, 0), (TRANSACT_TIME, self._now()), (TEXT, reject[1]), *route]
            self._send(session_id, "r", report)
            return
        side = _SIDES[side_raw] if side_raw else None
        targets: list[tuple[int, _OrderInfo]] = []
        for engine_id, info in self._by_order.items():
            if info.session_id != session_id or self.market.order(engine_id) is None:
                continue
            if kind == "1" and inst is not None and info.symbol != inst.code:
                continue
            if side is not None and info.side is not side:
                continue
            if account and (ACCOUNT, account) not in info.echo:
                continue
            if route and sorted(info.route) != sorted(route):
                continue  # someone else's order behind the same hub session
            targets.append((engine_id, info))
        report += [(MASS_CANCEL_RESPONSE, kind), (TOTAL_AFFECTED_ORDERS, len(targets))]
        if targets:
            affected = [[(ORIG_CL_ORD_ID, info.clordid), (AFFECTED_ORDER_ID, info.order_id)] for _, info in targets]
            report.append((NO_AFFECTED_ORDERS, affected))
        if inst is not None:
            report.append((SYMBOL, inst.code))
        if side_raw:
            report.append((SIDE, side_raw))
        report += [(TRANSACT_TIME, self._now()), *route]
        self._send(session_id, "r", report)
        for engine_id, info in targets:
            self._emit(self.market.cancel(engine_id), info)

    # ------------------------------------------------------------------ reference data

    def _response_id(self) -> str:
        return f"{self._prefix}-R{next(self._responses)}"

    def _security_list(self, msg: Any, session_id: Any) -> None:
        """SecurityListRequest (x) -> SecurityList (y): all instruments (559=4) or one (559=0)."""
        req_id = self._req(msg, SECURITY_REQ_ID)
        kind = self._req(msg, SECURITY_LIST_REQUEST_TYPE)
        fields: Fields = [(SECURITY_REQ_ID, req_id), (SECURITY_RESPONSE_ID, self._response_id())]
        instruments = list(self.market.instruments.values())
        text = ""
        if kind == b"0":
            symbol = (msg.get(SYMBOL) or msg.get(SECURITY_ID) or b"").decode("latin-1")
            inst = lookup(symbol, self.market.instruments) if symbol else None
            instruments = [inst] if inst is not None else []
            result = 0 if inst is not None else 2
            text = "" if inst is not None else f"no instrument '{symbol}'"
        elif kind == b"4":
            result = 0
        else:
            instruments, result = [], 1
            text = f"SecurityListRequestType {kind.decode('latin-1')} not supported: 0 (symbol) or 4 (all)"
        fields += [(SECURITY_REQUEST_RESULT, result), (TOT_NO_RELATED_SYM, len(instruments)),
                   (LAST_FRAGMENT, "Y")]
        if instruments:
            entries = [reference.security_list_entry(self.market, i) for i in instruments]
            fields.append((NO_RELATED_SYM, entries))
        if text:
            fields.append((TEXT, text))
        self._send(session_id, "y", fields + _route(msg))

    def _security_definition(self, msg: Any, session_id: Any) -> None:
        """SecurityDefinitionRequest (c) -> SecurityDefinition (d) of one instrument."""
        req_id = self._req(msg, SECURITY_REQ_ID)
        kind = self._req(msg, SECURITY_REQUEST_TYPE)
        symbol = (msg.get(SYMBOL) or msg.get(SECURITY_ID) or b"").decode("latin-1")
        inst = lookup(symbol, self.market.instruments) if symbol else None
        fields: Fields = [(SECURITY_REQ_ID, req_id), (SECURITY_RESPONSE_ID, self._response_id())]
        if kind not in (b"0", b"1"):
            fields += [(SECURITY_RESPONSE_TYPE, 6),
                       (TEXT, f"SecurityRequestType {kind.decode('latin-1')} not supported: "
                              "0 or 1 with Symbol (55) or SecurityID (48)")]
        elif inst is None:
            fields += [(SECURITY_RESPONSE_TYPE, 6),
                       (TEXT, f"unknown instrument '{symbol}'" if symbol else
                              "Symbol (55) or SecurityID (48) is required")]
        else:
            fields += [(SECURITY_RESPONSE_TYPE, 1), *reference.security_definition(self.market, inst)]
        self._send(session_id, "d", fields + _route(msg))

    def _session_status_request(self, msg: Any, session_id: Any) -> None:
        """TradingSessionStatusRequest (g): one TradingSessionStatus (h) per session, or the one named.

        Changes go to every logged-on session whatever the SubscriptionRequestType."""
        req_id = self._req(msg, TRAD_SES_REQ_ID)
        route = _route(msg)
        if msg.get(SUBSCRIPTION_REQUEST_TYPE) == b"2":
            return  # nothing to stop: changes are sent to every session
        states = reference.session_states(self.market)
        wanted = msg.get(TRADING_SESSION_ID)
        if wanted is not None:
            name = wanted.decode("latin-1")
            if name not in states:
                self._send(session_id, "h", [
                    (TRAD_SES_REQ_ID, req_id), (TRADING_SESSION_ID, name), (TRAD_SES_MODE, 2),
                    (TRAD_SES_STATUS, 6), (TRAD_SES_STATUS_REJ_REASON, 1),
                    (TEXT, f"unknown TradingSessionID '{name}': {', '.join(reference.SESSIONS)}"), *route,
                ])
                return
            states = {name: states[name]}
        for name, (status, sub) in states.items():
            self._send(session_id, "h", [
                (TRAD_SES_REQ_ID, req_id), (TRADING_SESSION_ID, name), (TRADING_SESSION_SUB_ID, sub),
                (TRAD_SES_MODE, 2), (UNSOLICITED_INDICATOR, "N"), (TRAD_SES_STATUS, status), *route,
            ])
        for vi in self.market.vi.values():
            self._send(session_id, "h", [(TRAD_SES_REQ_ID, req_id), *self._volatility_fields(vi), *route])

    def _volatility_fields(self, ev: VolatilityInterruption | VolatilityEnded) -> Fields:
        rules = self.market.volatility or VolatilityRules()
        return reference.volatility_status(ev, rules.static_percent, rules.dynamic_percent)

    def _announce_sessions(self) -> None:
        """An unsolicited TradingSessionStatus for each session whose state changed."""
        states = reference.session_states(self.market)
        for name, state in states.items():
            if self._sessions.get(name) != state:
                status, sub = state
                self._broadcast_status([(TRADING_SESSION_ID, name), (TRADING_SESSION_SUB_ID, sub),
                                        (TRAD_SES_MODE, 2), (TRAD_SES_STATUS, status)])
        self._sessions = states

    def _broadcast_status(self, fields: Fields) -> None:
        for sid in list(self.logged_on):
            self._send(sid, "h", [*fields[:3], (UNSOLICITED_INDICATOR, "Y"), *fields[3:]])

    # ------------------------------------------------------------------ reports

    def _report_base(
        self, info: _OrderInfo, exec_type: str, status: str, leaves: int, cum: int, value: int,
        clordid: str | None = None,
    ) -> Fields:
        is44 = self._is44(info.session_id)
        fields: Fields = [
            (ORDER_ID, info.order_id),
            (CL_ORD_ID, clordid or info.clordid),
            (EXEC_ID, self._exec_id()),
        ]
        if not is44:
            fields.append((EXEC_TRANS_TYPE, "0"))
        fields += [(EXEC_TYPE, exec_type), (ORD_STATUS, status), (SYMBOL, info.symbol),
                   (SIDE, _SIDE_CODE[info.side])]
        fields.append((ORDER_QTY, info.qty))
        fields.append((ORD_TYPE, _ORD_TYPE_CODE[info.ord_type]))
        if info.price is not None:
            fields.append((PRICE, info.price))
        if info.ord_type is OrdType.CLOSE_PRICE:
            fields.append((TIME_IN_FORCE, "7"))
        elif info.tif is not TimeInForce.DAY:
            fields.append((TIME_IN_FORCE, _TIF_CODE[info.tif]))
        if info.list_id:
            fields.append((LIST_ID, info.list_id))
        fields += [(LEAVES_QTY, leaves), (CUM_QTY, cum), (AVG_PX, average_price(value, cum)),
                   (TRANSACT_TIME, self._now())]
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
                    self._reject_new(ctx, ev.reason, reference.own_text(ev.text))
                continue
            if isinstance(ev, CancelRejected):
                if ctx is not None and request is not None:
                    code = 1 if ev.reason is Reason.UNKNOWN_ORDER else (99 if self._is44(ctx.session_id) else 2)
                    self._cancel_reject(request, ctx.session_id, ctx, code, reference.own_text(ev.text), ev.replace)
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
                    fields.insert(2, (ORIG_CL_ORD_ID, old))
                self._send(info.session_id, "8", fields)
            elif isinstance(ev, Expired):
                code = "C" if ev.reason is Reason.END_OF_DAY else "4"
                self._update(info, code, ev.qty, ev.cum_qty, 0, ev.value)
                info.text = ev.reason and REASON_TEXT[ev.reason]
                fields = self._report_base(info, code, code, 0, ev.cum_qty, ev.value)
                fields.append((TEXT, info.text))
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
                fields.insert(2, (ORIG_CL_ORD_ID, old))
                self._send(info.session_id, "8", fields)
            elif isinstance(ev, Converted):
                status = self._status(ev.qty, ev.cum_qty, ev.leaves_qty)
                self._update(info, status, ev.qty, ev.cum_qty, ev.leaves_qty, ev.value)
                fields = self._report_base(info, "D", status, ev.leaves_qty, ev.cum_qty, ev.value)
                fields.append((EXEC_RESTATEMENT_REASON, 8 if self._is44(info.session_id) else 4))  # exchange option
                fields.append((TEXT, "conditional limit order converted to market for the closing auction"))
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
        fields += [(LAST_PX, trade.price), (LAST_QTY, trade.qty)]
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
        if not inside or tag == CHECK_SUM:
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
