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
:class:`~server.broker.fix_app.BrokerApplication` (``ledger``, ``cfg``, ``comp_id``,
``_to_client`` ...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastfix.codec import utc_timestamp
from fastfix.tags import (
    ACCOUNT,
    ACCOUNT_TYPE,
    AFFECTED_ORDER_ID,
    AVG_PX,
    BUSINESS_REJECT_REASON,
    BUSINESS_REJECT_REF_ID,
    CASH_OUTSTANDING,
    CL_ORD_ID,
    CLEARING_BUSINESS_DATE,
    COLL_INQUIRY_ID,
    COLL_INQUIRY_RESULT,
    COLL_INQUIRY_STATUS,
    COLL_RPT_ID,
    COLL_STATUS,
    CUM_QTY,
    CURRENCY,
    END_CASH,
    EXEC_ID,
    EXEC_TRANS_TYPE,
    EXEC_TYPE,
    HEADER_TAGS,
    LAST_FRAGMENT,
    LAST_RPT_REQUESTED,
    LEAVES_QTY,
    LIST_ID,
    LONG_QTY,
    MARGIN_EXCESS,
    MASS_CANCEL_REJECT_REASON,
    MASS_CANCEL_REQUEST_TYPE,
    MASS_CANCEL_RESPONSE,
    NO_AFFECTED_ORDERS,
    NO_PARTY_IDS,
    NO_POS_AMT,
    NO_POSITIONS,
    ORD_STATUS,
    ORD_STATUS_REQ_ID,
    ORD_TYPE,
    ORDER_ID,
    ORDER_QTY,
    ORIG_CL_ORD_ID,
    PARTY_ID,
    PARTY_ID_SOURCE,
    PARTY_ROLE,
    POS_AMT,
    POS_AMT_TYPE,
    POS_MAINT_RPT_ID,
    POS_REQ_ID,
    POS_REQ_RESULT,
    POS_REQ_STATUS,
    POS_REQ_TYPE,
    POS_TYPE,
    PRICE,
    PRIOR_SETTL_PRICE,
    REF_MSG_TYPE,
    SECURITY_ID,
    SECURITY_ID_SOURCE,
    SECURITY_REQ_ID,
    SETTL_PRICE,
    SETTL_PRICE_TYPE,
    SHORT_QTY,
    SIDE,
    SUBSCRIPTION_REQUEST_TYPE,
    SYMBOL,
    TEXT,
    TOT_NUM_REPORTS,
    TOTAL_AFFECTED_ORDERS,
    TOTAL_NET_VALUE,
    TOTAL_NUM_POS_REPORTS,
    TRAD_SES_REQ_ID,
    TRAILER_TAGS,
    TRANSACT_TIME,
)
from server.broker.ledger import BrokerOrder, Refusal
from server.exchange.clock import SEOUL
from server.exchange.instruments import lookup
from server.exchange.matching import average_price

__all__ = ["InquiryMixin"]

Fields = list[tuple[int, Any]]

# The request id field of each relayed reference-data request and of its answers.
_REQ_ID = {b"x": SECURITY_REQ_ID, b"c": SECURITY_REQ_ID, b"y": SECURITY_REQ_ID, b"d": SECURITY_REQ_ID,
           b"g": TRAD_SES_REQ_ID, b"h": TRAD_SES_REQ_ID}
_LIMIT_TYPES = frozenset({"2", "I"})
_MAX_RELAYED = 1024  # relayed requests remembered for their answers


def _s(v: bytes | None) -> str:
    """A FIX value as text, one character per byte (Latin-1), like the application's own
    helper: identifiers in any bytes come back exactly once the answer is written."""
    return v.decode("latin-1") if v else ""


def _parties(msg: Any, advisor: str, origin: str) -> list[Fields]:
    """The request's Parties (453) group as entries; the advisor as client id when it has none."""
    entries: list[Fields] = []
    inside = False
    for tag, value in msg.fields():
        if tag == NO_PARTY_IDS:
            inside = True
            continue
        if not inside:
            continue
        if tag == PARTY_ID:
            entries.append([(PARTY_ID, value)])
        elif (tag == PARTY_ID_SOURCE or tag == PARTY_ROLE) and entries:
            entries[-1].append((tag, value))
        else:
            break
    return entries or [[(PARTY_ID, advisor or origin), (PARTY_ROLE, 3)]]  # 3 = client id


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
        return [f for f in msg.fields() if f[0] not in HEADER_TAGS and f[0] not in TRAILER_TAGS]

    def _is44(self) -> bool:
        return bool(self.hub_sid.begin_string >= "FIX.4.3")

    def _business_reject(self, origin: str, sub: str, msg: Any, ref_tag: int, reason: int, text: str) -> None:
        """BusinessMessageReject (j) about ``msg``, addressed back through the hub."""
        # No RefSeqNum: our inbound sequence number means nothing on the requester's session.
        fields: Fields = [(REF_MSG_TYPE, msg.msg_type)]
        ref = msg.get(ref_tag)
        if ref:
            fields.append((BUSINESS_REJECT_REF_ID, ref))
        fields += [(BUSINESS_REJECT_REASON, reason), (TEXT, text)]
        self._to_client(origin, sub, "j", fields)

    # ------------------------------------------------------------------ order status (H)

    def _order_status(self, msg: Any, origin: str, sub: str) -> None:
        """ExecutionReport 150=I with the order's state as the broker knows it."""
        clordid = _s(msg.get(CL_ORD_ID))
        order: BrokerOrder | None = self.ledger.find(origin, clordid)
        if order is not None and order.origin_sub != sub:
            order = None  # another advisor's order is unknown to this one
        is44 = self._is44()
        status = order.status if order is not None else "8"
        fields: Fields = [(ORDER_ID, (order.order_id or "NONE") if order else "NONE"),
                          (CL_ORD_ID, clordid), (EXEC_ID, self.ledger.next_id(f"{self.comp_id}-S"))]
        if not is44:
            fields.append((EXEC_TRANS_TYPE, "3"))  # status
        fields += [(EXEC_TYPE, "I" if is44 else status), (ORD_STATUS, status)]
        if msg.get(ORD_STATUS_REQ_ID):
            fields.append((ORD_STATUS_REQ_ID, msg.get(ORD_STATUS_REQ_ID)))
        if order is None:
            inst = lookup(_s(msg.get(SYMBOL) or msg.get(SECURITY_ID)))
            fields += [(SYMBOL, inst.code if inst else (_s(msg.get(SYMBOL)) or "?")),
                       (SIDE, _s(msg.get(SIDE)) or "1"), (LEAVES_QTY, 0), (CUM_QTY, 0), (AVG_PX, 0),
                       (TRANSACT_TIME, utc_timestamp()), (TEXT, f"unknown order '{clordid}'")]
            self._to_client(origin, sub, "8", fields)
            return
        fields += [(ACCOUNT, order.account), (SYMBOL, order.symbol), (SIDE, order.side),
                   (ORDER_QTY, order.qty)]
        if order.ord_type:
            fields.append((ORD_TYPE, order.ord_type))
        if order.price and order.ord_type in _LIMIT_TYPES:
            fields.append((PRICE, order.price))
        if order.client_list_id:
            fields.append((LIST_ID, order.client_list_id))
        fields += [(LEAVES_QTY, order.leaves), (CUM_QTY, order.cum_qty),
                   (AVG_PX, average_price(order.value, order.cum_qty)), (TRANSACT_TIME, utc_timestamp())]
        self._to_client(origin, sub, "8", fields)

    # ------------------------------------------------------------------ mass cancel (q)

    def _mass_cancel(self, msg: Any, origin: str, sub: str) -> None:
        clordid = _s(msg.get(CL_ORD_ID))
        kind = _s(msg.get(MASS_CANCEL_REQUEST_TYPE))
        side = _s(msg.get(SIDE))
        account = _s(msg.get(ACCOUNT))
        symbol = _s(msg.get(SYMBOL) or msg.get(SECURITY_ID))
        inst = lookup(symbol) if symbol else None

        def report(response: str, extra: Fields) -> None:
            fields: Fields = [(CL_ORD_ID, clordid), (ORDER_ID, self.ledger.next_id(f"{self.comp_id}-M")),
                              (MASS_CANCEL_REQUEST_TYPE, kind), (MASS_CANCEL_RESPONSE, response), *extra]
            if inst is not None:
                fields.append((SYMBOL, inst.code))
            if side:
                fields.append((SIDE, side))
            fields.append((TRANSACT_TIME, utc_timestamp()))
            self._to_client(origin, sub, "r", fields)

        def refuse(reason: str, text: str) -> None:
            report("0", [(MASS_CANCEL_REJECT_REASON, reason), (TOTAL_AFFECTED_ORDERS, 0), (TEXT, text)])

        if kind not in ("1", "7"):
            refuse("0", f"MassCancelRequestType '{kind}' not supported: 1 (security) or 7 (all orders)")
            return
        if kind == "1" and inst is None:
            refuse("1", f"unknown security '{symbol}'" if symbol else
                   "MassCancelRequestType 1 needs Symbol (55) or SecurityID (48)")
            return
        if side and side not in ("1", "2", "5", "6"):
            refuse("99", f"invalid Side '{side}'")
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
            cancel: Fields = [(ORIG_CL_ORD_ID, o.broker_clordid), (CL_ORD_ID, bid), (ACCOUNT, o.account),
                              (SYMBOL, o.symbol), (SIDE, o.side), (TRANSACT_TIME, now), (ORDER_QTY, o.qty)]
            self._to_exchange("F", cancel)
        group = [[(ORIG_CL_ORD_ID, o.client_clordid), (AFFECTED_ORDER_ID, o.order_id or "NONE")]
                 for o in orders]
        extra: Fields = [(TOTAL_AFFECTED_ORDERS, len(orders))]
        if group:
            extra.append((NO_AFFECTED_ORDERS, group))
        report(kind, extra)

    # ------------------------------------------------------------------ positions (AN)

    def _positions(self, msg: Any, origin: str, sub: str) -> None:
        req_id = _s(msg.get(POS_REQ_ID))
        account = _s(msg.get(ACCOUNT))
        acct_type = _s(msg.get(ACCOUNT_TYPE)) or "1"
        parties = _parties(msg, sub, origin)
        refusal = self.ledger.check_account(origin, account, sub)
        ack: Fields = [(POS_MAINT_RPT_ID, self.ledger.next_id(f"{self.comp_id}-P")), (POS_REQ_ID, req_id)]
        if refusal is None and _s(msg.get(POS_REQ_TYPE)) not in ("0", ""):
            refusal = Refusal("other", f"PosReqType '{_s(msg.get(POS_REQ_TYPE))}' not supported: "
                                       "0 (positions) only")
        symbol = _s(msg.get(SYMBOL) or msg.get(SECURITY_ID))
        wanted = lookup(symbol) if symbol else None
        if refusal is None and symbol and wanted is None:
            refusal = Refusal("unknown-symbol", f"unknown symbol '{symbol}'")
        if refusal is not None:
            result = {"not-owner": 3, "unknown-account": 1, "unknown-symbol": 1}.get(refusal.kind, 4)
            ack += [(TOTAL_NUM_POS_REPORTS, 0), (POS_REQ_RESULT, result), (POS_REQ_STATUS, 2),
                    (NO_PARTY_IDS, parties), (ACCOUNT, account or "?"), (ACCOUNT_TYPE, acct_type),
                    (TEXT, refusal.text)]
            self._to_client(origin, sub, "AO", ack)
            return
        acc = self.ledger.accounts[account]
        holdings = sorted((code, qty) for code, qty in acc.holdings.items()
                          if qty and (wanted is None or code == wanted.code))
        ack += [(TOTAL_NUM_POS_REPORTS, len(holdings)), (POS_REQ_RESULT, 0 if holdings else 2),
                (POS_REQ_STATUS, 0), (NO_PARTY_IDS, parties), (ACCOUNT, account), (ACCOUNT_TYPE, acct_type)]
        self._to_client(origin, sub, "AO", ack)
        business_date = datetime.now(SEOUL).strftime("%Y%m%d")
        for code, qty in holdings:
            inst = lookup(code)
            ref = self._reference_price(code) or 0
            base = inst.base_price if inst else ref
            self._to_client(origin, sub, "AP", [
                (POS_MAINT_RPT_ID, self.ledger.next_id(f"{self.comp_id}-P")), (POS_REQ_ID, req_id),
                (POS_REQ_TYPE, "0"), (TOTAL_NUM_POS_REPORTS, len(holdings)), (POS_REQ_RESULT, 0),
                (CLEARING_BUSINESS_DATE, business_date), (NO_PARTY_IDS, parties), (ACCOUNT, account),
                (ACCOUNT_TYPE, acct_type), (SYMBOL, code), (SECURITY_ID, inst.isin if inst else code),
                (SECURITY_ID_SOURCE, "4"), (CURRENCY, "KRW"),
                (SETTL_PRICE, ref), (SETTL_PRICE_TYPE, 2), (PRIOR_SETTL_PRICE, base),
                (NO_POSITIONS, [[(POS_TYPE, "FIN"), (LONG_QTY, qty), (SHORT_QTY, 0)]]),
                (NO_POS_AMT, [[(POS_AMT_TYPE, "FMTM"), (POS_AMT, qty * ref)]]),
            ])

    # ------------------------------------------------------------------ collateral (BB)

    def _collateral(self, msg: Any, origin: str, sub: str) -> None:
        inquiry = _s(msg.get(COLL_INQUIRY_ID))
        account = _s(msg.get(ACCOUNT))
        refusal = self.ledger.check_account(origin, account, sub)
        if refusal is not None:
            fields: Fields = [(COLL_INQUIRY_ID, inquiry or "NONE"), (COLL_INQUIRY_STATUS, 4),
                              (COLL_INQUIRY_RESULT, 9 if refusal.kind == "not-owner" else 99)]
            if account:
                fields.append((ACCOUNT, account))
            fields.append((TEXT, refusal.text))
            self._to_client(origin, sub, "BG", fields)
            return
        acc = self.ledger.accounts[account]
        held = self.ledger.held_cash(account)
        value = sum(q * (self._reference_price(code) or 0) for code, q in acc.holdings.items())
        fields = [(COLL_RPT_ID, self.ledger.next_id(f"{self.comp_id}-C"))]
        if inquiry:
            fields.append((COLL_INQUIRY_ID, inquiry))
        fields += [(COLL_STATUS, 3), (TOT_NUM_REPORTS, 1), (LAST_RPT_REQUESTED, "Y"), (ACCOUNT, account),
                   (CURRENCY, "KRW"),
                   (MARGIN_EXCESS, acc.cash - held),  # buying power: cash not held by open buys
                   (TOTAL_NET_VALUE, acc.cash + value),  # cash plus holdings at reference prices
                   (CASH_OUTSTANDING, held),  # cash held by open buy orders
                   (END_CASH, acc.cash)]  # cash balance now
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
            sub_type = msg.get(SUBSCRIPTION_REQUEST_TYPE)
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
            # We subscribe for everyone.
            fields = [(SUBSCRIPTION_REQUEST_TYPE, "0") if f[0] == SUBSCRIPTION_REQUEST_TYPE else f
                      for f in fields]
        self.send(self.exchange_sid, msg.msg_type.decode(), fields)

    def _relay_answer(self, msg: Any) -> None:
        """SecurityList, SecurityDefinition, TradingSessionStatus from the exchange, to whom asked."""
        tag = _REQ_ID[msg.msg_type]
        ours = _s(msg.get(tag))
        body = self._body(msg)
        found = self._ref_requests.get(ours) if ours else None
        if found is not None:
            origin, sub, client_id = found
            if msg.msg_type == b"d" or (msg.msg_type == b"y" and msg.get(LAST_FRAGMENT) != b"N"):
                del self._ref_requests[ours]  # the (last) answer
            self._to_client(origin, sub, msg.msg_type.decode(),
                            [(tag, client_id) if f[0] == tag else f for f in body])
            return
        if msg.msg_type == b"h" and not ours:
            # An unsolicited change: to every advisor that asked for updates.
            for (origin, sub), client_id in self._session_subscribers.items():
                self._to_client(origin, sub, "h", [(TRAD_SES_REQ_ID, client_id), *body])
