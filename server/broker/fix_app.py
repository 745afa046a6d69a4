"""The broker's FIX application: client orders from the hub, orders to the exchange.

Two sessions, both initiated by the broker: one to the STP-HUB (buy sides reach
the broker through it, each request carrying its origin in OnBehalfOfCompID 115)
and one to the exchange.

From the hub: NewOrderSingle (D), OrderCancelRequest (F), OrderCancelReplaceRequest
(G), NewOrderList (E) and ListCancelRequest (K); the questions and bulk requests
of :mod:`server.broker.inquiries` (H, q, AN, BB, x, c, g). Each new order passes
the account checks of :class:`~server.broker.ledger.Ledger` (known account open
to that buy side and owned by the advisor named in OnBehalfOfSubID 116, cash for
a buy, shares for a sell) or is refused
with an ExecutionReport (150=8, 39=8) carrying OrdRejReason (103) and the reason
in Text. Accepted requests go to the exchange under the broker's own ClOrdIDs and
ListIDs (clients' identifiers are only unique per client); the exchange's
ExecutionReports, OrderCancelRejects and ListStatus come back translated to the
client's ClOrdID/OrigClOrdID/ListID, addressed to the origin with DeliverToCompID
(128) and DeliverToSubID (129). Fills move cash and shares.

The two sessions may speak different FIX versions (e.g. FIX 4.4 to the hub, FIX
4.2 to the exchange): fields the other version does not define for the message
are left out, and ExecType/ExecTransType are converted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from fastfix.codec import utc_timestamp
from fastfix.engine import Application, BusinessReject, UnsupportedMessageType
from fastfix.log import printable
from fastfix.tags import (
    ACCOUNT,
    AVG_PX,
    CL_ORD_ID,
    CUM_QTY,
    CXL_QTY,
    CXL_REJ_REASON,
    CXL_REJ_RESPONSE_TO,
    DELIVER_TO_COMP_ID,
    DELIVER_TO_SUB_ID,
    EXEC_ID,
    EXEC_TRANS_TYPE,
    EXEC_TYPE,
    HANDL_INST,
    HEADER_TAGS,
    LAST_PX,
    LEAVES_QTY,
    LIST_ID,
    LIST_ORDER_STATUS,
    LIST_STATUS_TEXT,
    LIST_STATUS_TYPE,
    NO_ORDERS,
    NO_RPTS,
    ON_BEHALF_OF_COMP_ID,
    ON_BEHALF_OF_SUB_ID,
    ORD_REJ_REASON,
    ORD_STATUS,
    ORD_TYPE,
    ORDER_ID,
    ORDER_QTY,
    ORIG_CL_ORD_ID,
    POSS_DUP_FLAG,
    POSS_RESEND,
    PRICE,
    RPT_SEQ,
    SECURITY_ID,
    SIDE,
    SYMBOL,
    TEXT,
    TOT_NO_ORDERS,
    TRAILER_TAGS,
    TRANSACT_TIME,
)
from server.broker.config import BrokerConfig
from server.broker.inquiries import InquiryMixin
from server.broker.ledger import BrokerOrder, Ledger, Refusal
from server.exchange.fix_app import wire_fields
from server.exchange.instruments import lookup
from server.krx import price_limits

__all__ = ["BrokerApplication"]

log = logging.getLogger("fastfix.broker")

Fields = list[tuple[int, Any]]
_DONE_STATUS = frozenset({b"2", b"3", b"4", b"8", b"C"})  # filled, done for day, cancelled, rejected, expired
_LIMIT_TYPES = frozenset({b"2", b"I"})


def _s(v: bytes | None) -> str:
    """A FIX value as text, one character per byte (Latin-1): identifiers in any bytes
    (UTF-8 Korean, EUC-KR...) come back exactly through :func:`wire_fields`."""
    return v.decode("latin-1") if v else ""


def _shown(text: str) -> str:
    """Text made of :func:`_s` values, for a log line (UTF-8, control characters escaped)."""
    return printable(text.encode("latin-1", "replace"))


def _int(v: bytes | None) -> int | None:
    if not v:
        return None
    try:
        d = Decimal(v.decode("ascii"))
    except (InvalidOperation, UnicodeDecodeError):
        return None
    return int(d) if d == d.to_integral_value() and d >= 0 else None


@cache
def _allowed_tags(begin: str, msg_type: str) -> frozenset[int] | None:
    """Every body tag (groups included) the dictionary of ``begin`` defines for ``msg_type``."""
    from fastfix.dictionary import DataDictionary

    try:
        mdef = DataDictionary.load(begin).message(msg_type)
    except Exception:  # noqa: BLE001 - unknown version or type: no filtering
        return None
    tags: set[int] = set()

    def walk(members: Any) -> None:
        for m in members:
            tags.add(m.tag)
            if m.group is not None:
                walk(m.group.members)

    walk(mdef.members)
    return frozenset(tags)


def _resent(msg: Any) -> bool:
    """PossDupFlag or PossResend: the sender may have sent this message before."""
    return msg.get(POSS_DUP_FLAG) == b"Y" or msg.get(POSS_RESEND) == b"Y"


def _body(msg: Any) -> Fields:
    return [f for f in msg.fields() if f[0] not in HEADER_TAGS and f[0] not in TRAILER_TAGS]


def _adapt(fields: Fields, msg_type: str, src: str, dst: str) -> Fields:
    """``fields`` of ``msg_type`` written in ``src`` FIX, as ``dst`` FIX has them."""
    if src == dst:
        return fields
    out = list(fields)
    if msg_type == "8":
        tags = dict(out)
        exec_type = tags.get(EXEC_TYPE)
        status = tags.get(ORD_STATUS)
        if dst >= "FIX.4.3":
            out = [f for f in out if f[0] != EXEC_TRANS_TYPE]
            if exec_type in (b"1", b"2"):  # partial fill / fill -> Trade
                out = [(EXEC_TYPE, "F") if f[0] == EXEC_TYPE else f for f in out]
        else:
            trans = "3" if exec_type == b"I" else "0"
            if exec_type in (b"F", b"I") and status:
                out = [(EXEC_TYPE, status) if f[0] == EXEC_TYPE else f for f in out]
            if EXEC_TRANS_TYPE not in tags:
                at = next((i for i, f in enumerate(out) if f[0] == EXEC_TYPE), len(out))
                out.insert(at, (EXEC_TRANS_TYPE, trans))
    if msg_type == "D" and dst < "FIX.4.3" and not any(f[0] == HANDL_INST for f in out):
        out.append((HANDL_INST, "1"))  # HandlInst is required before FIX 4.3: automated, no intervention
    allowed = _allowed_tags(dst, msg_type)
    if allowed is not None:
        out = [f for f in out if f[0] in allowed or f[0] >= 5000]
    return out


def _group_entries(fields: Fields, count_tag: int, delimiter: int) -> list[dict[int, bytes]]:
    """The entries of one repeating group as dicts (first occurrence of each tag)."""
    entries: list[dict[int, bytes]] = []
    inside = False
    for tag, value in fields:
        if tag == count_tag and not inside:
            inside = True
            continue
        if not inside:
            continue
        if tag == delimiter:
            entries.append({})
        if entries:
            entries[-1].setdefault(tag, value)
    return entries


class BrokerApplication(InquiryMixin, Application):
    """Application of the broker's two initiator sessions (hub and exchange)."""

    def __init__(self, cfg: BrokerConfig, ledger: Ledger) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self._inquiry_state()
        self.hub_sid: Any = None
        self.exchange_sid: Any = None
        self.comp_id = ""
        self.up: dict[str, bool] = {"hub": False, "exchange": False}
        #: called with ``up`` after every logon/logout
        self.on_change: Callable[[dict[str, bool]], None] = lambda up: None

    # ------------------------------------------------------------------ session hooks

    def on_create(self, session_id: Any) -> None:
        if session_id.target_comp_id == self.cfg.hub:
            self.hub_sid = session_id
            self.comp_id = session_id.sender_comp_id
        elif session_id.target_comp_id == self.cfg.exchange:
            self.exchange_sid = session_id

    def _state(self, session_id: Any, up: bool) -> None:
        side = "hub" if session_id == self.hub_sid else "exchange"
        self.up[side] = up
        log.info("%s session %s %s", side, session_id, "logged on" if up else "logged out")
        self.on_change(dict(self.up))

    def on_logon(self, session_id: Any) -> None:
        self._state(session_id, True)

    def on_logout(self, session_id: Any) -> None:
        self._state(session_id, False)

    def from_app(self, msg: Any, session_id: Any) -> None:
        if session_id == self.hub_sid:
            self._from_hub(msg)
        elif session_id == self.exchange_sid:
            self._from_exchange(msg)

    # ------------------------------------------------------------------ helpers

    @property
    def _hub_begin(self) -> str:
        return self.hub_sid.begin_string

    @property
    def _ex_begin(self) -> str:
        return self.exchange_sid.begin_string

    def _to_exchange(self, msg_type: str, fields: Fields) -> None:
        self.send(self.exchange_sid, msg_type,
                  wire_fields(_adapt(fields, msg_type, self._hub_begin, self._ex_begin)))

    def _to_client(self, origin: str, sub: str, msg_type: str, fields: Fields, src: str | None = None,
                   maybe_sent: bool = False) -> None:
        out = _adapt(fields, msg_type, src or self._hub_begin, self._hub_begin)
        if maybe_sent:  # relaying a resend: we may have relayed it before our last restart
            out.append((POSS_RESEND, "Y"))
        out.append((DELIVER_TO_COMP_ID, origin))
        if sub:
            out.append((DELIVER_TO_SUB_ID, sub))
        self.send(self.hub_sid, msg_type, wire_fields(out))

    def _reference_price(self, symbol: str) -> int | None:
        inst = lookup(symbol)
        if inst is None:
            return None
        return self.cfg.reference_prices.get(inst.code, inst.base_price)

    def _rej_code(self, kind: str) -> int:
        is44 = self._hub_begin >= "FIX.4.3"
        if kind in ("cash", "holdings"):
            return 3  # order exceeds limit
        if kind in ("unknown-account", "not-owner"):
            return 15 if is44 else 0  # unknown account(s)
        if kind == "unknown-symbol":
            return 1
        if kind == "exchange-down":
            return 2  # exchange closed
        return 99 if is44 else 0

    def _reject_order(self, origin: str, sub: str, req: dict[int, bytes], refusal: Refusal,
                      list_id: str = "") -> None:
        """ExecutionReport 150=8/39=8 for a request the broker refuses itself."""
        qty = _s(req.get(ORDER_QTY)) or "0"
        fields: Fields = [(ORDER_ID, "NONE"), (CL_ORD_ID, _s(req.get(CL_ORD_ID))),
                          (EXEC_ID, self.ledger.next_id(f"{self.comp_id}-R")),
                          (EXEC_TYPE, "8"), (ORD_STATUS, "8")]
        if self._hub_begin < "FIX.4.3":
            fields.insert(3, (EXEC_TRANS_TYPE, "0"))
        if req.get(ACCOUNT):
            fields.append((ACCOUNT, _s(req.get(ACCOUNT))))
        fields += [(SYMBOL, _s(req.get(SYMBOL)) or "?"), (SIDE, _s(req.get(SIDE)) or "1"), (ORDER_QTY, qty)]
        for tag in (ORD_TYPE, PRICE):
            if req.get(tag):
                fields.append((tag, _s(req.get(tag))))
        if list_id:
            fields.append((LIST_ID, list_id))
        fields += [(LEAVES_QTY, 0), (CUM_QTY, 0), (AVG_PX, 0), (TRANSACT_TIME, utc_timestamp()),
                   (ORD_REJ_REASON, self._rej_code(refusal.kind)), (TEXT, refusal.text)]
        log.info("refused %s from %s: %s", printable(req.get(CL_ORD_ID)), _shown(origin), _shown(refusal.text))
        self._to_client(origin, sub, "8", fields)

    def _cancel_reject(self, origin: str, sub: str, msg: Any, code: int, text: str,
                       order: BrokerOrder | None) -> None:
        # A known order is named as it stands (its OrderID, its last OrdStatus: 2 when filled).
        status = (order.status or ("0" if order.open else "4")) if order else "8"
        fields: Fields = [(ORDER_ID, (order.order_id or "NONE") if order else "NONE"),
                          (CL_ORD_ID, _s(msg.get(CL_ORD_ID))), (ORIG_CL_ORD_ID, _s(msg.get(ORIG_CL_ORD_ID))),
                          (ORD_STATUS, status), (CXL_REJ_RESPONSE_TO, "2" if msg.msg_type == b"G" else "1"),
                          (CXL_REJ_REASON, code), (TEXT, text)]
        self._to_client(origin, sub, "9", fields)

    def _check_new(self, origin: str, req: dict[int, bytes], extra_cash: int = 0,
                   extra_shares: int = 0, sub: str = "") -> tuple[Refusal | None, int, int]:
        """(refusal, qty, price held per share) for one new order."""
        symbol = _s(req.get(SYMBOL) or req.get(SECURITY_ID))
        ref = self._reference_price(symbol)
        if ref is None:
            return Refusal("unknown-symbol", f"unknown symbol '{symbol}'"), 0, 0
        qty = _int(req.get(ORDER_QTY))
        if not qty:
            return Refusal("other", f"invalid OrderQty '{_s(req.get(ORDER_QTY))}'"), 0, 0
        side = _s(req.get(SIDE))
        price = _int(req.get(PRICE)) if req.get(ORD_TYPE) in _LIMIT_TYPES else None
        if not price:
            price = price_limits(ref)[1]  # market-like: what it may cost at worst today
        refusal = self.ledger.check_order(origin, _s(req.get(ACCOUNT)) or None, lookup(symbol).code, side,  # type: ignore[union-attr]
                                          qty, price, extra_cash, extra_shares, advisor=sub)
        return refusal, qty, price

    def _new_broker_order(self, origin: str, sub: str, req: dict[int, bytes], qty: int, price: int,
                          client_list: str = "") -> BrokerOrder:
        bid = self.ledger.next_id(f"{self.comp_id}-")
        symbol = lookup(_s(req.get(SYMBOL) or req.get(SECURITY_ID)))
        order = BrokerOrder(key=bid, origin=origin, origin_sub=sub, client_clordid=_s(req.get(CL_ORD_ID)),
                            broker_clordid=bid, account=_s(req.get(ACCOUNT)), symbol=symbol.code if symbol else "",
                            side=_s(req.get(SIDE)), qty=qty, reserve_price=price, client_list_id=client_list,
                            ord_type=_s(req.get(ORD_TYPE)), price=_int(req.get(PRICE)) or 0)
        self.ledger.add_order(order)
        self.ledger.add_request(bid, order, order.client_clordid)
        return order

    # ------------------------------------------------------------------ from the hub

    def _from_hub(self, msg: Any) -> None:
        origin = _s(msg.get(ON_BEHALF_OF_COMP_ID))
        if not origin:
            raise BusinessReject(5, ON_BEHALF_OF_COMP_ID, "OnBehalfOfCompID (115) required: the broker answers the origin")
        sub = _s(msg.get(ON_BEHALF_OF_SUB_ID))
        mt = msg.msg_type
        if mt == b"D":
            self._new_order(msg, origin, sub)
        elif mt == b"F" or mt == b"G":
            self._cancel_replace(msg, origin, sub)
        elif mt == b"E":
            self._new_list(msg, origin, sub)
        elif mt == b"K":
            self._list_cancel(msg, origin, sub)
        elif mt == b"H":
            self._order_status(msg, origin, sub)
        elif mt == b"q":
            self._mass_cancel(msg, origin, sub)
        elif mt == b"AN":
            self._positions(msg, origin, sub)
        elif mt == b"BB":
            self._collateral(msg, origin, sub)
        elif mt in (b"x", b"c", b"g"):
            self._relay_request(msg, origin, sub)
        else:
            raise UnsupportedMessageType()

    def _exchange_down(self) -> Refusal | None:
        if not self.up["exchange"]:
            return Refusal("exchange-down", "the broker's exchange session is not available")
        return None

    def _new_order(self, msg: Any, origin: str, sub: str) -> None:
        req = dict(reversed(_body(msg)))  # first occurrence wins
        if self.ledger.find(origin, _s(req.get(CL_ORD_ID))) is not None:
            if _resent(msg):
                return  # a resend of an order already taken (and answered): deduplicated by ClOrdID
            self._reject_order(origin, sub, req, Refusal("other", f"duplicate ClOrdID '{_s(req.get(CL_ORD_ID))}'"))
            return
        refusal, qty, price = self._check_new(origin, req, sub=sub)
        refusal = refusal or self._exchange_down()
        if refusal is not None:
            self._reject_order(origin, sub, req, refusal)
            return
        order = self._new_broker_order(origin, sub, req, qty, price)
        fields = [(CL_ORD_ID, order.broker_clordid) if f[0] == CL_ORD_ID else f for f in _body(msg)]
        self._to_exchange("D", fields)

    def _cancel_replace(self, msg: Any, origin: str, sub: str) -> None:
        if _resent(msg) and self.ledger.find(origin, _s(msg.get(CL_ORD_ID))) is not None:
            return  # a resend of a request already taken
        order = self.ledger.find(origin, _s(msg.get(ORIG_CL_ORD_ID)))
        if order is None:
            self._cancel_reject(origin, sub, msg, 1, f"unknown order '{_s(msg.get(ORIG_CL_ORD_ID))}'", None)
            return
        if order.origin_sub != sub:
            self._cancel_reject(origin, sub, msg, 1, f"order '{_s(msg.get(ORIG_CL_ORD_ID))}' belongs to another advisor", None)
            return
        if not order.open:
            self._cancel_reject(origin, sub, msg, 0, "too late: the order is done", order)
            return
        if self.ledger.find(origin, _s(msg.get(CL_ORD_ID))) is not None:
            self._cancel_reject(origin, sub, msg, 99 if self._hub_begin >= "FIX.4.3" else 2,
                                f"duplicate ClOrdID '{_s(msg.get(CL_ORD_ID))}'", order)
            return
        if not self.up["exchange"]:
            self._cancel_reject(origin, sub, msg, 2, "the broker's exchange session is not available", order)
            return
        if msg.msg_type == b"G":
            new_qty = _int(msg.get(ORDER_QTY)) or order.qty
            new_price = _int(msg.get(PRICE)) or order.reserve_price
            leaves_after = max(new_qty - order.cum_qty, 0)
            if order.is_buy:
                extra = leaves_after * new_price - order.leaves * order.reserve_price
                have = self.ledger.available_cash(order.account)
                if extra > have:
                    self._cancel_reject(origin, sub, msg, 2, f"insufficient cash: the replace needs {extra:,} KRW "
                                        f"more, {have:,} KRW available", order)
                    return
            else:
                extra = leaves_after - order.leaves
                have = self.ledger.available_shares(order.account, order.symbol)
                if extra > have:
                    self._cancel_reject(origin, sub, msg, 2, f"insufficient holdings: the replace sells {extra:,} "
                                        f"more {order.symbol}, {have:,} available", order)
                    return
        bid = self.ledger.next_id(f"{self.comp_id}-")
        self.ledger.add_request(bid, order, _s(msg.get(CL_ORD_ID)))
        fields: Fields = []
        for tag, value in _body(msg):
            if tag == CL_ORD_ID:
                value = bid
            elif tag == ORIG_CL_ORD_ID:
                value = order.broker_clordid
            elif tag == LIST_ID:
                continue  # ours differs; the exchange finds the order by OrigClOrdID
            fields.append((tag, value))
        self._to_exchange(msg.msg_type.decode(), fields)

    def _new_list(self, msg: Any, origin: str, sub: str) -> None:
        body = _body(msg)
        client_list = _s(msg.get(LIST_ID))
        if _resent(msg) and self.ledger.lists_by_client.get((origin, client_list)):
            return  # a resend of a list already taken
        entries = _group_entries(body, NO_ORDERS, CL_ORD_ID)
        account_default = msg.get(ACCOUNT)
        extra_cash: dict[str, int] = {}
        extra_shares: dict[tuple[str, str], int] = {}
        checked: list[tuple[dict[int, bytes], int, int]] = []
        refusal: Refusal | None = None
        for entry in entries:
            if ACCOUNT not in entry and account_default:
                entry[1] = account_default
            acct = _s(entry.get(ACCOUNT))
            sym = _s(entry.get(SYMBOL))
            r, qty, price = self._check_new(origin, entry, extra_cash.get(acct, 0),
                                            extra_shares.get((acct, sym), 0), sub)
            if r is not None:
                refusal = r
                break
            if entry.get(SIDE) == b"1":
                extra_cash[acct] = extra_cash.get(acct, 0) + qty * price
            else:
                extra_shares[(acct, sym)] = extra_shares.get((acct, sym), 0) + qty
            checked.append((entry, qty, price))
        if refusal is None and self.ledger.lists_by_client.get((origin, client_list)):
            refusal = Refusal("other", f"duplicate ListID '{client_list}'")
        refusal = refusal or (None if entries else Refusal("other", "NewOrderList without orders"))
        refusal = refusal or self._exchange_down()
        if refusal is not None:
            # All or nothing: a basket the account cannot carry is refused whole.
            for entry in entries:
                self._reject_order(origin, sub, entry, refusal, client_list)
            self._list_reject(origin, sub, client_list, refusal.text,
                              [(_s(e.get(CL_ORD_ID)), _s(e.get(ORDER_QTY)) or "0") for e in entries])
            return
        broker_list = self.ledger.next_id(f"{self.comp_id}-L")
        self.ledger.add_list(broker_list, origin, sub, client_list)
        ids = iter([self._new_broker_order(origin, sub, e, q, p, client_list).broker_clordid
                    for e, q, p in checked])
        fields: Fields = []
        inside = False
        for tag, value in body:
            if tag == LIST_ID:
                value = broker_list
            elif tag == NO_ORDERS:
                inside = True
            elif tag == CL_ORD_ID and inside:
                value = next(ids)
            fields.append((tag, value))
        self._to_exchange("E", fields)

    def _list_reject(self, origin: str, sub: str, client_list: str, text: str,
                     orders: list[tuple[str, str]]) -> None:
        group = [[(CL_ORD_ID, cl), (CUM_QTY, 0), (ORD_STATUS, "8"), (LEAVES_QTY, 0), (CXL_QTY, qty),
                  (AVG_PX, 0)] for cl, qty in orders]
        fields: Fields = [(LIST_ID, client_list), (LIST_STATUS_TYPE, "2"), (NO_RPTS, 1),
                          (LIST_ORDER_STATUS, "7"), (RPT_SEQ, 1), (LIST_STATUS_TEXT, text),
                          (TRANSACT_TIME, utc_timestamp()), (TOT_NO_ORDERS, len(group)),
                          (NO_ORDERS, group)]
        self._to_client(origin, sub, "N", fields)

    def _list_cancel(self, msg: Any, origin: str, sub: str) -> None:
        client_list = _s(msg.get(LIST_ID))
        broker_list = self.ledger.lists_by_client.get((origin, client_list))
        if broker_list is not None and self.ledger.lists[broker_list][1] != sub:
            self._list_reject(origin, sub, client_list, f"list '{client_list}' belongs to another advisor", [])
            return
        if broker_list is None or not self.up["exchange"]:
            text = f"unknown ListID '{client_list}'" if broker_list is None else \
                "the broker's exchange session is not available"
            self._list_reject(origin, sub, client_list, text, [])
            return
        self._to_exchange("K", [(LIST_ID, broker_list) if f[0] == LIST_ID else f for f in _body(msg)])

    # ------------------------------------------------------------------ from the exchange

    def _from_exchange(self, msg: Any) -> None:
        mt = msg.msg_type
        if mt == b"8" or mt == b"9":
            self._report(msg)
        elif mt == b"N":
            self._list_status(msg)
        elif mt in (b"y", b"d", b"h"):
            self._relay_answer(msg)
        elif mt == b"j":
            log.warning("exchange rejected a message of ours: %s", printable(msg.get(TEXT)))
        else:
            raise UnsupportedMessageType()

    def _report(self, msg: Any) -> None:
        found = self.ledger.for_request(_s(msg.get(CL_ORD_ID)))
        if found is None:
            log.warning("report for an unknown ClOrdID '%s': ignored", printable(msg.get(CL_ORD_ID)))
            return
        order, client_id = found
        orig = self.ledger.for_request(_s(msg.get(ORIG_CL_ORD_ID))) if msg.get(ORIG_CL_ORD_ID) else None
        if msg.msg_type == b"8":
            self._apply(order, msg, client_id)
        fields: Fields = []
        for tag, value in _body(msg):
            if tag == CL_ORD_ID:
                value = client_id
            elif tag == ORIG_CL_ORD_ID:
                if orig is None or orig[1] == client_id:
                    continue  # (a mass cancel's cancels answer under the order's own ClOrdID)
                value = orig[1]
            elif tag == LIST_ID:
                value = order.client_list_id or value
            fields.append((tag, value))
        self._to_client(order.origin, order.origin_sub, msg.msg_type.decode(), fields, self._ex_begin,
                        _resent(msg))

    def _apply(self, order: BrokerOrder, msg: Any, client_id: str) -> None:
        """Move cash and shares for a fill; track replaces and the end of the order."""
        before = (order.status, order.order_id)
        if msg.get(ORD_STATUS):
            order.status = _s(msg.get(ORD_STATUS))
        if msg.get(ORDER_ID) and msg.get(ORDER_ID) != b"NONE":
            order.order_id = _s(msg.get(ORDER_ID))
        cum = _int(msg.get(CUM_QTY))
        if cum is not None and cum > order.cum_qty:
            px = _int(msg.get(LAST_PX))
            if px is None:
                px = order.reserve_price
            self.ledger.fill(order, cum - order.cum_qty, px)
        exec_type = msg.get(EXEC_TYPE)
        if exec_type == b"5":  # replaced: the new identity, quantity and price
            order.client_clordid = client_id
            order.broker_clordid = _s(msg.get(CL_ORD_ID))
            order.qty = _int(msg.get(ORDER_QTY)) or order.qty
            order.reserve_price = _int(msg.get(PRICE)) or order.reserve_price
            order.price = _int(msg.get(PRICE)) or order.price
            self.ledger.save(order)
        elif exec_type == b"4":
            order.client_clordid = client_id
            order.broker_clordid = _s(msg.get(CL_ORD_ID))
        if msg.get(ORD_STATUS) in _DONE_STATUS and order.open:
            self.ledger.done(order)
        elif (order.status, order.order_id) != before:
            self.ledger.save(order)  # kept for OrderStatusRequest answers

    def _list_status(self, msg: Any) -> None:
        broker_list = _s(msg.get(LIST_ID))
        info = self.ledger.lists.get(broker_list)
        if info is None:
            log.warning("ListStatus for an unknown ListID '%s': ignored", _shown(broker_list))
            return
        origin, sub, client_list = info
        fields: Fields = []
        for tag, value in _body(msg):
            if tag == LIST_ID:
                value = client_list
            elif tag == CL_ORD_ID:
                found = self.ledger.for_request(_s(value))
                if found is not None:
                    value = found[1]
            fields.append((tag, value))
        self._to_client(origin, sub, "N", fields, self._ex_begin, _resent(msg))
