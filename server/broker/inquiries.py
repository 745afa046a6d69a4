"""The broker's answers to questions and bulk requests from the buy side.

Everything here is scoped to one advisor: the buy side's CompID (OnBehalfOfCompID
115 at the broker) and the advisor's sub-id (OnBehalfOfSubID 116, from the
gateway's SenderSubID 50). An advisor sees and cancels only its own orders and
only the accounts it owns (:meth:`~server.broker.ledger.Ledger.check_account`).

- OrderStatusRequest (H) -> ExecutionReport ExecType I (150=I), from the ledger;
- OrderMassCancelRequest (q) -> one OrderCancelRequest (F) to the exchange per
  matching open order, and an OrderMassCancelReport (r) listing them; the
  cancel ExecutionReports follow as the exchange answers;
- RequestForPositions (AN) -> RequestForPositionsAck (AO), then one
  PositionReport (AP) per holding;
- CollateralInquiry (BB) -> CollateralReport (BA), or CollateralInquiryAck (BG)
  when refused;
- SecurityListRequest (x), SecurityDefinitionRequest (c) and
  TradingSessionStatusRequest (g) go to the exchange under the broker's own
  request ids, and the answers (y, d, h) come back to the requester;
  TradingSessionStatus changes reach every advisor that subscribed (263=1).

The mixin expects the attributes and helpers of
:class:`~server.broker.app.BrokerApplication` (``ledger``, ``cfg``, ``comp_id``,
``_to_client`` ...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastfix.codec import utc_timestamp
from fastfix.session import HEADER_TAGS
from server.broker.ledger import BrokerOrder, Refusal
from server.exchange.clock import SEOUL
from server.exchange.instruments import lookup
from server.exchange.matching import average_price

__all__ = ["InquiryMixin"]

Fields = list[tuple[int, Any]]

# The request id field of each relayed reference-data request and of its answers.
_REQ_ID = {b"x": 320, b"c": 320, b"g": 335, b"y": 320, b"d": 320, b"h": 335}
_LIMIT_TYPES = frozenset({"2", "I"})
_MAX_RELAYED = 1024  # relayed requests remembered for their answers


def _s(v: bytes | None) -> str:
    return v.decode("ascii", "replace") if v else ""


def _parties(msg: Any, advisor: str, origin: str) -> list[Fields]:
    """The request's Parties (453) group as entries; the advisor as client id when it has none."""
    entries: list[Fields] = []
    inside = False
    for tag, value in msg.fields():
        if tag == 453:
            inside = True
            continue
        if not inside:
            continue
        if tag == 448:
            entries.append([(448, value)])
        elif tag in (447, 452) and entries:
            entries[-1].append((tag, value))
        else:
            break
    return entries or [[(448, advisor or origin), (452, 3)]]  # 3 = client id


def _sells(side: str) -> bool:
    return side in ("2", "5", "6")


class InquiryMixin:
    """Order status, mass cancel, positions, collateral and reference data for the hub session."""

    ledger: Any
    cfg: Any
    comp_id: str
    up: dict[str, bool]
    hub_sid: Any
    exchange_sid: Any
    # Provided by the application class (annotations only: nothing is defined here).
    _to_client: Callable[..., None]
    _to_exchange: Callable[[str, Fields], None]
    _reference_price: Callable[[str], int | None]
    send: Callable[..., Any]

    def _inquiry_state(self) -> None:
        # Our request id -> (origin, advisor, the client's request id), for relayed requests.
        self._ref_requests: dict[str, tuple[str, str, str]] = {}
        # (origin, advisor) -> the client's TradSesReqID, for TradingSessionStatus updates.
        self._session_subscribers: dict[tuple[str, str], str] = {}
        self._ref_counter = 0

    @staticmethod
    def _body(msg: Any) -> Fields:
        return [f for f in msg.fields() if f[0] not in HEADER_TAGS and f[0] not in (10, 89, 93)]

    def _is44(self) -> bool:
        return bool(self.hub_sid.begin_string >= "FIX.4.3")

    def _business_reject(self, origin: str, sub: str, msg: Any, ref_tag: int, reason: int, text: str) -> None:
        """BusinessMessageReject (j) about ``msg``, addressed back through the hub."""
        # No RefSeqNum: our inbound sequence number means nothing on the requester's session.
        fields: Fields = [(372, msg.msg_type)]
        ref = msg.get(ref_tag)
        if ref:
            fields.append((379, ref))
        fields += [(380, reason), (58, text)]
        self._to_client(origin, sub, "j", fields)

    # ------------------------------------------------------------------ order status (H)

    def _order_status(self, msg: Any, origin: str, sub: str) -> None:
        """ExecutionReport 150=I with the order's state as the broker knows it."""
        clordid = _s(msg.get(11))
        order: BrokerOrder | None = self.ledger.find(origin, clordid)
        if order is not None and order.origin_sub != sub:
            order = None  # another advisor's order is unknown to this one
        is44 = self._is44()
        status = order.status if order is not None else "8"
        fields: Fields = [(37, (order.order_id or "NONE") if order else "NONE"), (11, clordid),
                          (17, self.ledger.next_id(f"{self.comp_id}-S"))]
        if not is44:
            fields.append((20, "3"))  # ExecTransType status
        fields += [(150, "I" if is44 else status), (39, status)]
        if msg.get(790):
            fields.append((790, msg.get(790)))
        if order is None:
            inst = lookup(_s(msg.get(55) or msg.get(48)))
            fields += [(55, inst.code if inst else (_s(msg.get(55)) or "?")), (54, _s(msg.get(54)) or "1"),
                       (151, 0), (14, 0), (6, 0), (60, utc_timestamp()),
                       (58, f"unknown order {clordid!r}")]
            self._to_client(origin, sub, "8", fields)
            return
        fields += [(1, order.account), (55, order.symbol), (54, order.side), (38, order.qty)]
        if order.ord_type:
            fields.append((40, order.ord_type))
        if order.price and order.ord_type in _LIMIT_TYPES:
            fields.append((44, order.price))
        if order.client_list_id:
            fields.append((66, order.client_list_id))
        fields += [(151, order.leaves), (14, order.cum_qty), (6, average_price(order.value, order.cum_qty)),
                   (60, utc_timestamp())]
        self._to_client(origin, sub, "8", fields)

    # ------------------------------------------------------------------ mass cancel (q)

    def _mass_cancel(self, msg: Any, origin: str, sub: str) -> None:
        clordid = _s(msg.get(11))
        kind = _s(msg.get(530))
        side = _s(msg.get(54))
        account = _s(msg.get(1))
        symbol = _s(msg.get(55) or msg.get(48))
        inst = lookup(symbol) if symbol else None

        def report(response: str, extra: Fields) -> None:
            fields: Fields = [(11, clordid), (37, self.ledger.next_id(f"{self.comp_id}-M")), (530, kind),
                              (531, response), *extra]
            if inst is not None:
                fields.append((55, inst.code))
            if side:
                fields.append((54, side))
            fields.append((60, utc_timestamp()))
            self._to_client(origin, sub, "r", fields)

        def refuse(reason: str, text: str) -> None:
            report("0", [(532, reason), (533, 0), (58, text)])

        if kind not in ("1", "7"):
            refuse("0", f"MassCancelRequestType {kind!r} not supported: 1 (security) or 7 (all orders)")
            return
        if kind == "1" and inst is None:
            refuse("1", f"unknown security {symbol!r}" if symbol else
                   "MassCancelRequestType 1 needs Symbol (55) or SecurityID (48)")
            return
        if side and side not in ("1", "2", "5", "6"):
            refuse("99", f"invalid Side {side!r}")
            return
        if account:
            refusal: Refusal | None = self.ledger.check_account(origin, account, sub)
            if refusal is not None:
                refuse("99", refusal.text)
                return
        if not self.up["exchange"]:
            refuse("99", "the broker's exchange session is not available")
            return
        orders = [o for o in self.ledger.open_orders(origin, sub)
                  if (inst is None or kind == "7" or o.symbol == inst.code)
                  and (not side or o.side == side or (_sells(side) and not o.is_buy))
                  and (not account or o.account == account)]
        now = utc_timestamp()
        for o in orders:
            bid = self.ledger.next_id(f"{self.comp_id}-")
            # The cancel answers under the order's own ClOrdID: the mass cancel has no per-order id.
            self.ledger.add_request(bid, o, o.client_clordid)
            cancel: Fields = [(41, o.broker_clordid), (11, bid), (1, o.account), (55, o.symbol), (54, o.side),
                              (60, now), (38, o.qty)]
            self._to_exchange("F", cancel)
        group = [[(41, o.client_clordid), (535, o.order_id or "NONE")] for o in orders]
        extra: Fields = [(533, len(orders))]
        if group:
            extra.append((534, group))
        report(kind, extra)

    # ------------------------------------------------------------------ positions (AN)

    def _positions(self, msg: Any, origin: str, sub: str) -> None:
        req_id = _s(msg.get(710))
        account = _s(msg.get(1))
        acct_type = _s(msg.get(581)) or "1"
        parties = _parties(msg, sub, origin)
        refusal = self.ledger.check_account(origin, account, sub)
        ack: Fields = [(721, self.ledger.next_id(f"{self.comp_id}-P")), (710, req_id)]
        if refusal is None and _s(msg.get(724)) not in ("0", ""):
            refusal = Refusal("other", f"PosReqType {_s(msg.get(724))!r} not supported: 0 (positions) only")
        symbol = _s(msg.get(55) or msg.get(48))
        wanted = lookup(symbol) if symbol else None
        if refusal is None and symbol and wanted is None:
            refusal = Refusal("unknown-symbol", f"unknown symbol {symbol!r}")
        if refusal is not None:
            result = {"not-owner": 3, "unknown-account": 1, "unknown-symbol": 1}.get(refusal.kind, 4)
            ack += [(727, 0), (728, result), (729, 2), (453, parties), (1, account or "?"), (581, acct_type),
                    (58, refusal.text)]
            self._to_client(origin, sub, "AO", ack)
            return
        acc = self.ledger.accounts[account]
        holdings = sorted((code, qty) for code, qty in acc.holdings.items()
                          if qty and (wanted is None or code == wanted.code))
        ack += [(727, len(holdings)), (728, 0 if holdings else 2), (729, 0), (453, parties), (1, account),
                (581, acct_type)]
        self._to_client(origin, sub, "AO", ack)
        business_date = datetime.now(SEOUL).strftime("%Y%m%d")
        for code, qty in holdings:
            inst = lookup(code)
            ref = self._reference_price(code) or 0
            base = inst.base_price if inst else ref
            self._to_client(origin, sub, "AP", [
                (721, self.ledger.next_id(f"{self.comp_id}-P")), (710, req_id), (724, "0"),
                (727, len(holdings)), (728, 0), (715, business_date), (453, parties), (1, account),
                (581, acct_type), (55, code), (48, inst.isin if inst else code), (22, "4"), (15, "KRW"),
                (730, ref), (731, 2), (734, base),
                (702, [[(703, "FIN"), (704, qty), (705, 0)]]),
                (753, [[(707, "FMTM"), (708, qty * ref)]]),
            ])

    # ------------------------------------------------------------------ collateral (BB)

    def _collateral(self, msg: Any, origin: str, sub: str) -> None:
        inquiry = _s(msg.get(909))
        account = _s(msg.get(1))
        refusal = self.ledger.check_account(origin, account, sub)
        if refusal is not None:
            fields: Fields = [(909, inquiry or "NONE"), (945, 4),
                              (946, 9 if refusal.kind == "not-owner" else 99)]
            if account:
                fields.append((1, account))
            fields.append((58, refusal.text))
            self._to_client(origin, sub, "BG", fields)
            return
        acc = self.ledger.accounts[account]
        held = self.ledger.held_cash(account)
        value = sum(q * (self._reference_price(code) or 0) for code, q in acc.holdings.items())
        fields = [(908, self.ledger.next_id(f"{self.comp_id}-C"))]
        if inquiry:
            fields.append((909, inquiry))
        fields += [(910, 3), (911, 1), (912, "Y"), (1, account), (15, "KRW"),
                   (899, acc.cash - held),  # MarginExcess: buying power (cash not held by open buys)
                   (900, acc.cash + value),  # TotalNetValue: cash plus holdings at reference prices
                   (901, held),  # CashOutstanding: cash held by open buy orders
                   (922, acc.cash)]  # EndCash: cash balance now
        self._to_client(origin, sub, "BA", fields)

    # ------------------------------------------------------------------ reference data (x, c, g)

    def _relay_request(self, msg: Any, origin: str, sub: str) -> None:
        """Send a reference-data request on to the exchange under our own request id."""
        tag = _REQ_ID[msg.msg_type]
        if not msg.get(tag):
            self._business_reject(origin, sub, msg, tag, 5, f"tag {tag} (request id) is required")
            return
        if not self.up["exchange"]:
            self._business_reject(origin, sub, msg, tag, 4, "the broker's exchange session is not available")
            return
        if msg.msg_type == b"x" and self.exchange_sid.begin_string < "FIX.4.3":
            self._business_reject(origin, sub, msg, tag, 3, "SecurityListRequest is not available: the broker "
                                  "speaks FIX 4.2 to the exchange")
            return
        client_id = _s(msg.get(tag))
        if msg.msg_type == b"g":
            sub_type = msg.get(263)
            if sub_type == b"1":
                self._session_subscribers[(origin, sub)] = client_id
            elif sub_type == b"2":
                self._session_subscribers.pop((origin, sub), None)
                return  # nothing to answer: updates stop
        self._ref_counter += 1
        ours = f"{self.comp_id}-Q{self._ref_counter}"
        self._ref_requests[ours] = (origin, sub, client_id)
        while len(self._ref_requests) > _MAX_RELAYED:
            # A TradingSessionStatusRequest has several answers and no last one: forget the oldest.
            del self._ref_requests[next(iter(self._ref_requests))]
        fields = [(tag, ours) if f[0] == tag else f for f in self._body(msg)]
        if msg.msg_type == b"g":
            fields = [(263, "0") if f[0] == 263 else f for f in fields]  # we subscribe for everyone
        self.send(self.exchange_sid, msg.msg_type.decode(), fields)

    def _relay_answer(self, msg: Any) -> None:
        """SecurityList, SecurityDefinition, TradingSessionStatus from the exchange, to whom asked."""
        tag = _REQ_ID[msg.msg_type]
        ours = _s(msg.get(tag))
        body = self._body(msg)
        found = self._ref_requests.get(ours) if ours else None
        if found is not None:
            origin, sub, client_id = found
            if msg.msg_type == b"d" or (msg.msg_type == b"y" and msg.get(893) != b"N"):
                del self._ref_requests[ours]  # the (last) answer
            self._to_client(origin, sub, msg.msg_type.decode(),
                            [(tag, client_id) if f[0] == tag else f for f in body])
            return
        if msg.msg_type == b"h" and not ours:
            # An unsolicited change: to every advisor that asked for updates.
            for (origin, sub), client_id in self._session_subscribers.items():
                self._to_client(origin, sub, "h", [(335, client_id), *body])
