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
from fastfix.session import HEADER_TAGS
from server.broker.config import BrokerConfig
from server.broker.inquiries import InquiryMixin
from server.broker.ledger import BrokerOrder, Ledger, Refusal
from server.exchange.instruments import lookup
from server.krx import price_limits

__all__ = ["BrokerApplication"]

log = logging.getLogger("fastfix.broker")

Fields = list[tuple[int, Any]]
_TRAILER = frozenset({10, 89, 93})
_DONE_STATUS = frozenset({b"2", b"3", b"4", b"8", b"C"})  # filled, done for day, cancelled, rejected, expired
_LIMIT_TYPES = frozenset({b"2", b"I"})


def _s(v: bytes | None) -> str:
    return v.decode("ascii", "replace") if v else ""


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
    return msg.get(43) == b"Y" or msg.get(97) == b"Y"


def _body(msg: Any) -> Fields:
    return [f for f in msg.fields() if f[0] not in HEADER_TAGS and f[0] not in _TRAILER]


def _adapt(fields: Fields, msg_type: str, src: str, dst: str) -> Fields:
    """``fields`` of ``msg_type`` written in ``src`` FIX, as ``dst`` FIX has them."""
    if src == dst:
        return fields
    out = list(fields)
    if msg_type == "8":
        tags = dict(out)
        exec_type = tags.get(150)
        status = tags.get(39)
        if dst >= "FIX.4.3":
            out = [f for f in out if f[0] != 20]
            if exec_type in (b"1", b"2"):  # partial fill / fill -> Trade
                out = [(150, "F") if f[0] == 150 else f for f in out]
        else:
            trans = "3" if exec_type == b"I" else "0"
            if exec_type in (b"F", b"I") and status:
                out = [(150, status) if f[0] == 150 else f for f in out]
            if 20 not in tags:
                out.insert(next((i for i, f in enumerate(out) if f[0] == 150), len(out)), (20, trans))
    if msg_type == "D" and dst < "FIX.4.3" and not any(f[0] == 21 for f in out):
        out.append((21, "1"))  # HandlInst is required before FIX 4.3: automated, no intervention
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
        self.send(self.exchange_sid, msg_type, _adapt(fields, msg_type, self._hub_begin, self._ex_begin))

    def _to_client(self, origin: str, sub: str, msg_type: str, fields: Fields, src: str | None = None,
                   maybe_sent: bool = False) -> None:
        out = _adapt(fields, msg_type, src or self._hub_begin, self._hub_begin)
        if maybe_sent:  # relaying a resend: we may have relayed it before our last restart
            out.append((97, "Y"))
        out.append((128, origin))
        if sub:
            out.append((129, sub))
        self.send(self.hub_sid, msg_type, out)

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
        qty = _s(req.get(38)) or "0"
        fields: Fields = [(37, "NONE"), (11, _s(req.get(11))), (17, self.ledger.next_id(f"{self.comp_id}-R")),
                          (150, "8"), (39, "8")]
        if self._hub_begin < "FIX.4.3":
            fields.insert(3, (20, "0"))
        if req.get(1):
            fields.append((1, _s(req.get(1))))
        fields += [(55, _s(req.get(55)) or "?"), (54, _s(req.get(54)) or "1"), (38, qty)]
        for tag in (40, 44):
            if req.get(tag):
                fields.append((tag, _s(req.get(tag))))
        if list_id:
            fields.append((66, list_id))
        fields += [(151, 0), (14, 0), (6, 0), (60, utc_timestamp()), (103, self._rej_code(refusal.kind)),
                   (58, refusal.text)]
        log.info("refused %s from %s: %s", _s(req.get(11)), origin, refusal.text)
        self._to_client(origin, sub, "8", fields)

    def _cancel_reject(self, origin: str, sub: str, msg: Any, code: int, text: str,
                       order: BrokerOrder | None) -> None:
        # A known order is named as it stands (its OrderID, its last OrdStatus: 2 when filled).
        status = (order.status or ("0" if order.open else "4")) if order else "8"
        fields: Fields = [(37, (order.order_id or "NONE") if order else "NONE"), (11, _s(msg.get(11))),
                          (41, _s(msg.get(41))), (39, status),
                          (434, "2" if msg.msg_type == b"G" else "1"), (102, code), (58, text)]
        self._to_client(origin, sub, "9", fields)

    def _check_new(self, origin: str, req: dict[int, bytes], extra_cash: int = 0,
                   extra_shares: int = 0, sub: str = "") -> tuple[Refusal | None, int, int]:
        """(refusal, qty, price held per share) for one new order."""
        symbol = _s(req.get(55) or req.get(48))
        ref = self._reference_price(symbol)
        if ref is None:
            return Refusal("unknown-symbol", f"unknown symbol {symbol!r}"), 0, 0
        qty = _int(req.get(38))
        if not qty:
            return Refusal("other", f"invalid OrderQty {_s(req.get(38))!r}"), 0, 0
        side = _s(req.get(54))
        price = _int(req.get(44)) if req.get(40) in _LIMIT_TYPES else None
        if not price:
            price = price_limits(ref)[1]  # market-like: what it may cost at worst today
        refusal = self.ledger.check_order(origin, _s(req.get(1)) or None, lookup(symbol).code, side,  # type: ignore[union-attr]
                                          qty, price, extra_cash, extra_shares, advisor=sub)
        return refusal, qty, price

    def _new_broker_order(self, origin: str, sub: str, req: dict[int, bytes], qty: int, price: int,
                          client_list: str = "") -> BrokerOrder:
        bid = self.ledger.next_id(f"{self.comp_id}-")
        symbol = lookup(_s(req.get(55) or req.get(48)))
        order = BrokerOrder(key=bid, origin=origin, origin_sub=sub, client_clordid=_s(req.get(11)),
                            broker_clordid=bid, account=_s(req.get(1)), symbol=symbol.code if symbol else "",
                            side=_s(req.get(54)), qty=qty, reserve_price=price, client_list_id=client_list,
                            ord_type=_s(req.get(40)), price=_int(req.get(44)) or 0)
        self.ledger.add_order(order)
        self.ledger.add_request(bid, order, order.client_clordid)
        return order

    # ------------------------------------------------------------------ from the hub

    def _from_hub(self, msg: Any) -> None:
        origin = _s(msg.get(115))
        if not origin:
            raise BusinessReject(5, 115, "OnBehalfOfCompID (115) required: the broker answers the origin")
        sub = _s(msg.get(116))
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
        if self.ledger.find(origin, _s(req.get(11))) is not None:
            if _resent(msg):
                return  # a resend of an order already taken (and answered): deduplicated by ClOrdID
            self._reject_order(origin, sub, req, Refusal("other", f"duplicate ClOrdID {_s(req.get(11))!r}"))
            return
        refusal, qty, price = self._check_new(origin, req, sub=sub)
        refusal = refusal or self._exchange_down()
        if refusal is not None:
            self._reject_order(origin, sub, req, refusal)
            return
        order = self._new_broker_order(origin, sub, req, qty, price)
        fields = [(11, order.broker_clordid) if f[0] == 11 else f for f in _body(msg)]
        self._to_exchange("D", fields)

    def _cancel_replace(self, msg: Any, origin: str, sub: str) -> None:
        if _resent(msg) and self.ledger.find(origin, _s(msg.get(11))) is not None:
            return  # a resend of a request already taken
        order = self.ledger.find(origin, _s(msg.get(41)))
        if order is None:
            self._cancel_reject(origin, sub, msg, 1, f"unknown order {_s(msg.get(41))!r}", None)
            return
        if order.origin_sub != sub:
            self._cancel_reject(origin, sub, msg, 1, f"order {_s(msg.get(41))!r} belongs to another advisor", None)
            return
        if not order.open:
            self._cancel_reject(origin, sub, msg, 0, "too late: the order is done", order)
            return
        if self.ledger.find(origin, _s(msg.get(11))) is not None:
            self._cancel_reject(origin, sub, msg, 99 if self._hub_begin >= "FIX.4.3" else 2,
                                f"duplicate ClOrdID {_s(msg.get(11))!r}", order)
            return
        if not self.up["exchange"]:
            self._cancel_reject(origin, sub, msg, 2, "the broker's exchange session is not available", order)
            return
        if msg.msg_type == b"G":
            new_qty = _int(msg.get(38)) or order.qty
            new_price = _int(msg.get(44)) or order.reserve_price
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
        self.ledger.add_request(bid, order, _s(msg.get(11)))
        fields: Fields = []
        for tag, value in _body(msg):
            if tag == 11:
                value = bid
            elif tag == 41:
                value = order.broker_clordid
            elif tag == 66:
                continue  # ours differs; the exchange finds the order by OrigClOrdID
            fields.append((tag, value))
        self._to_exchange(msg.msg_type.decode(), fields)

    def _new_list(self, msg: Any, origin: str, sub: str) -> None:
        body = _body(msg)
        client_list = _s(msg.get(66))
        if _resent(msg) and self.ledger.lists_by_client.get((origin, client_list)):
            return  # a resend of a list already taken
        entries = _group_entries(body, 73, 11)
        account_default = msg.get(1)
        extra_cash: dict[str, int] = {}
        extra_shares: dict[tuple[str, str], int] = {}
        checked: list[tuple[dict[int, bytes], int, int]] = []
        refusal: Refusal | None = None
        for entry in entries:
            if 1 not in entry and account_default:
                entry[1] = account_default
            acct = _s(entry.get(1))
            sym = _s(entry.get(55))
            r, qty, price = self._check_new(origin, entry, extra_cash.get(acct, 0),
                                            extra_shares.get((acct, sym), 0), sub)
            if r is not None:
                refusal = r
                break
            if entry.get(54) == b"1":
                extra_cash[acct] = extra_cash.get(acct, 0) + qty * price
            else:
                extra_shares[(acct, sym)] = extra_shares.get((acct, sym), 0) + qty
            checked.append((entry, qty, price))
        if refusal is None and self.ledger.lists_by_client.get((origin, client_list)):
            refusal = Refusal("other", f"duplicate ListID {client_list!r}")
        refusal = refusal or (None if entries else Refusal("other", "NewOrderList without orders"))
        refusal = refusal or self._exchange_down()
        if refusal is not None:
            # All or nothing: a basket the account cannot carry is refused whole.
            for entry in entries:
                self._reject_order(origin, sub, entry, refusal, client_list)
            self._list_reject(origin, sub, client_list, refusal.text,
                              [(_s(e.get(11)), _s(e.get(38)) or "0") for e in entries])
            return
        broker_list = self.ledger.next_id(f"{self.comp_id}-L")
        self.ledger.add_list(broker_list, origin, sub, client_list)
        ids = iter([self._new_broker_order(origin, sub, e, q, p, client_list).broker_clordid
                    for e, q, p in checked])
        fields: Fields = []
        inside = False
        for tag, value in body:
            if tag == 66:
                value = broker_list
            elif tag == 73:
                inside = True
            elif tag == 11 and inside:
                value = next(ids)
            fields.append((tag, value))
        self._to_exchange("E", fields)

    def _list_reject(self, origin: str, sub: str, client_list: str, text: str,
                     orders: list[tuple[str, str]]) -> None:
        group = [[(11, cl), (14, 0), (39, "8"), (151, 0), (84, qty), (6, 0)] for cl, qty in orders]
        fields: Fields = [(66, client_list), (429, "2"), (82, 1), (431, "7"), (83, 1), (444, text),
                          (60, utc_timestamp()), (68, len(group)), (73, group)]
        self._to_client(origin, sub, "N", fields)

    def _list_cancel(self, msg: Any, origin: str, sub: str) -> None:
        client_list = _s(msg.get(66))
        broker_list = self.ledger.lists_by_client.get((origin, client_list))
        if broker_list is not None and self.ledger.lists[broker_list][1] != sub:
            self._list_reject(origin, sub, client_list, f"list {client_list!r} belongs to another advisor", [])
            return
        if broker_list is None or not self.up["exchange"]:
            text = f"unknown ListID {client_list!r}" if broker_list is None else \
                "the broker's exchange session is not available"
            self._list_reject(origin, sub, client_list, text, [])
            return
        self._to_exchange("K", [(66, broker_list) if f[0] == 66 else f for f in _body(msg)])

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
            log.warning("exchange rejected a message of ours: %s", _s(msg.get(58)))
        else:
            raise UnsupportedMessageType()

    def _report(self, msg: Any) -> None:
        found = self.ledger.for_request(_s(msg.get(11)))
        if found is None:
            log.warning("report for an unknown ClOrdID %r: ignored", _s(msg.get(11)))
            return
        order, client_id = found
        orig = self.ledger.for_request(_s(msg.get(41))) if msg.get(41) else None
        if msg.msg_type == b"8":
            self._apply(order, msg, client_id)
        fields: Fields = []
        for tag, value in _body(msg):
            if tag == 11:
                value = client_id
            elif tag == 41:
                if orig is None or orig[1] == client_id:
                    continue  # (a mass cancel's cancels answer under the order's own ClOrdID)
                value = orig[1]
            elif tag == 66:
                value = order.client_list_id or value
            fields.append((tag, value))
        self._to_client(order.origin, order.origin_sub, msg.msg_type.decode(), fields, self._ex_begin,
                        _resent(msg))

    def _apply(self, order: BrokerOrder, msg: Any, client_id: str) -> None:
        """Move cash and shares for a fill; track replaces and the end of the order."""
        before = (order.status, order.order_id)
        if msg.get(39):
            order.status = _s(msg.get(39))
        if msg.get(37) and msg.get(37) != b"NONE":
            order.order_id = _s(msg.get(37))
        cum = _int(msg.get(14))
        if cum is not None and cum > order.cum_qty:
            px = _int(msg.get(31))
            if px is None:
                px = order.reserve_price
            self.ledger.fill(order, cum - order.cum_qty, px)
        exec_type = msg.get(150)
        if exec_type == b"5":  # replaced: the new identity, quantity and price
            order.client_clordid = client_id
            order.broker_clordid = _s(msg.get(11))
            order.qty = _int(msg.get(38)) or order.qty
            order.reserve_price = _int(msg.get(44)) or order.reserve_price
            order.price = _int(msg.get(44)) or order.price
            self.ledger.save(order)
        elif exec_type == b"4":
            order.client_clordid = client_id
            order.broker_clordid = _s(msg.get(11))
        if msg.get(39) in _DONE_STATUS and order.open:
            self.ledger.done(order)
        elif (order.status, order.order_id) != before:
            self.ledger.save(order)  # kept for OrderStatusRequest answers

    def _list_status(self, msg: Any) -> None:
        broker_list = _s(msg.get(66))
        info = self.ledger.lists.get(broker_list)
        if info is None:
            log.warning("ListStatus for an unknown ListID %r: ignored", broker_list)
            return
        origin, sub, client_list = info
        fields: Fields = []
        for tag, value in _body(msg):
            if tag == 66:
                value = client_list
            elif tag == 11:
                found = self.ledger.for_request(_s(value))
                if found is not None:
                    value = found[1]
            fields.append((tag, value))
        self._to_client(origin, sub, "N", fields, self._ex_begin, _resent(msg))
