"""The loopback link: an in-process broker simulator behind the hub (no network).

It acknowledges orders and cancels or replaces them, fills market orders at once
and leaves limit orders resting, answering on a later loop pass as a counterparty
would. For demos (``link = "loopback"``) and for tests of the REST/WS side.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastfix.tags import (
    ACCOUNT,
    ACCOUNT_TYPE,
    AFFECTED_ORDER_ID,
    AVG_PX,
    BEGIN_STRING,
    BENCHMARK_PRICE,
    BENCHMARK_PRICE_TYPE,
    BODY_LENGTH,
    CASH_OUTSTANDING,
    CHECK_SUM,
    CL_ORD_ID,
    CLEARING_BUSINESS_DATE,
    COLL_INQUIRY_ID,
    COLL_RPT_ID,
    COLL_STATUS,
    CUM_QTY,
    CURRENCY,
    CXL_QTY,
    CXL_REJ_REASON,
    CXL_REJ_RESPONSE_TO,
    DELIVER_TO_COMP_ID,
    END_CASH,
    EXEC_ID,
    EXEC_TRANS_TYPE,
    EXEC_TYPE,
    LAST_FRAGMENT,
    LAST_PX,
    LAST_QTY,
    LEAVES_QTY,
    LIST_ID,
    LIST_ORDER_STATUS,
    LIST_STATUS_TYPE,
    LONG_QTY,
    MARGIN_EXCESS,
    MASS_CANCEL_REJECT_REASON,
    MASS_CANCEL_REQUEST_TYPE,
    MASS_CANCEL_RESPONSE,
    MSG_SEQ_NUM,
    MSG_TYPE,
    NO_AFFECTED_ORDERS,
    NO_ORDERS,
    NO_POS_AMT,
    NO_POSITIONS,
    NO_RELATED_SYM,
    NO_RPTS,
    NO_STIPULATIONS,
    ON_BEHALF_OF_COMP_ID,
    ORD_STATUS,
    ORD_TYPE,
    ORDER_ID,
    ORDER_QTY,
    ORIG_CL_ORD_ID,
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
    RPT_SEQ,
    SECURITY_DESC,
    SECURITY_ID,
    SECURITY_ID_SOURCE,
    SECURITY_LIST_REQUEST_TYPE,
    SECURITY_REQ_ID,
    SECURITY_REQUEST_RESULT,
    SECURITY_RESPONSE_ID,
    SECURITY_SUB_TYPE,
    SENDER_COMP_ID,
    SENDING_TIME,
    SETTL_PRICE,
    SETTL_PRICE_TYPE,
    SHORT_QTY,
    SIDE,
    STIPULATION_TYPE,
    STIPULATION_VALUE,
    SYMBOL,
    TARGET_COMP_ID,
    TEXT,
    TOT_NO_ORDERS,
    TOT_NO_RELATED_SYM,
    TOTAL_AFFECTED_ORDERS,
    TOTAL_NET_VALUE,
    TOTAL_NUM_POS_REPORTS,
    TRADING_SESSION_ID,
    TRADING_SESSION_SUB_ID,
    TRANSACT_TIME,
)
from server.gateway.link import Link, LinkDown, SessionState

__all__ = ["LoopbackLink", "body_fields"]



class _SimOrder:
    __slots__ = ("f", "cum", "order_id", "status")

    def __init__(self, f: dict[int, str], order_id: str) -> None:
        self.f = f
        self.cum = 0
        self.order_id = order_id
        self.status = "A"  # OrdStatus as last reported

    @property
    def qty(self) -> int:
        try:
            return int(Decimal(self.f.get(ORDER_QTY, "0") or "0"))
        except ArithmeticError:
            return 0


class LoopbackLink(Link):
    """In-process broker simulator behind the hub (no FIX connection).

    Behaviour, per message type: D and list members are acknowledged
    (PendingNew, then New); market orders (OrdType 1) are then filled in two
    executions at 70000; a limit order whose Price ends in 1 (e.g. 70001) is
    rejected, so demos can show a reject; other limit orders rest. F cancels,
    G replaces, K cancels every member of a list. Reports carry
    OnBehalfOfCompID = the broker, as a hub delivers them.
    """

    FILL_PRICE = "70000"

    def __init__(self, begin_string: str = "FIX.4.4", name: str = "LOOPBACK",
                 sender: str = "GATEWAY", target: str = "HUB") -> None:
        super().__init__()
        self._begin = begin_string
        self._name = name
        self._sender, self._target = sender, target
        self._up = False
        self._ids = itertools.count(1)
        self._orders: dict[str, _SimOrder] = {}  # wire ClOrdID -> open order
        self._closed: dict[str, _SimOrder] = {}  # wire ClOrdID -> filled, cancelled, replaced
        self._lists: dict[str, list[str]] = {}
        self._out_seq = 0  # MsgSeqNum the messages sent would have had
        self._sent: dict[int, tuple[str, bytes, Sequence[tuple[int, Any]]]] = {}
        #: Message types not answered (tests: an order left PendingNew, a refused request).
        self.silent: set[str] = set()

    @property
    def begin_string(self) -> str:
        return self._begin

    async def start(self) -> None:
        self._up = True
        self.on_state(self._name, True)

    async def stop(self) -> None:
        self._up = False
        self.on_state(self._name, False)

    def set_up(self, up: bool) -> None:
        """Simulate the session dropping or coming back."""
        self._up = up
        self.on_state(self._name, up)

    def sessions(self) -> list[SessionState]:
        return [SessionState(name=self._name, begin_string=self._begin, sender_comp_id=self._sender,
                             target_comp_id=self._target, logged_on=self._up,
                             state="logged_on" if self._up else "disconnected")]

    async def send(self, session: str, msg_type: str, fields: Sequence[tuple[int, Any]]) -> None:
        if not self._up:
            raise LinkDown(session)
        self._accept(msg_type, fields)

    def send_bodies(self, session: str, messages: Sequence[tuple[str, bytes, Sequence[tuple[int, Any]]]]) -> None:
        if not self._up:
            raise LinkDown(session)
        for msg_type, body, header in messages:
            self._out_seq += 1
            self._sent[self._out_seq] = (msg_type, body, header)
            if len(self._sent) > 10000:  # bounded: the oldest is forgotten
                del self._sent[next(iter(self._sent))]
            if msg_type not in self.silent:
                self._accept(msg_type, list(header) + body_fields(self._begin, msg_type, body))

    @property
    def last_seq_num(self) -> int:
        """MsgSeqNum of the last message sent."""
        return self._out_seq

    def sent_message(self, session: str, seq_num: int) -> Any:
        from fastfix.codec import encode, parse

        item = self._sent.get(seq_num)
        if item is None:
            return None
        msg_type, body, header = item
        fields = [(SENDER_COMP_ID, self._sender), (TARGET_COMP_ID, self._target), (MSG_SEQ_NUM, seq_num),
                  (SENDING_TIME, datetime.now(UTC)), *header]
        return parse(encode(self._begin, msg_type, fields + body_fields(self._begin, msg_type, body)))

    def _accept(self, msg_type: str, fields: Sequence[tuple[int, Any]]) -> None:
        f: dict[int, str] = {}
        entries: list[dict[int, str]] = []
        in_group = False
        for tag, v in fields:  # flat wire order; NoOrders (73) entries start at ClOrdID (11)
            if tag == NO_ORDERS:
                in_group = True
                continue
            if in_group and tag == CL_ORD_ID:
                entries.append({})
            (entries[-1] if in_group and entries else f)[tag] = _text(v)
        # Answer on a later loop iteration, as a real counterparty would.
        asyncio.get_running_loop().call_soon(self._answer, msg_type, f, entries)

    # simulation -------------------------------------------------------------------
    def _answer(self, msg_type: str, f: dict[int, str], entries: list[dict[int, str]]) -> None:
        if not self._up:
            return
        broker = f.get(DELIVER_TO_COMP_ID, "")
        if msg_type == "D":
            self._new(f)
        elif msg_type == "E":
            list_id = f.get(LIST_ID, "")
            self._emit("N", [(ON_BEHALF_OF_COMP_ID, broker), (LIST_ID, list_id), (LIST_STATUS_TYPE, "1"),
                             (NO_RPTS, "0"), (LIST_ORDER_STATUS, "3"), (RPT_SEQ, "1"), (TOT_NO_ORDERS, len(entries)),
                             (NO_ORDERS, [[(CL_ORD_ID, e.get(CL_ORD_ID, "")), (CUM_QTY, "0"), (ORD_STATUS, "A"),
                                           (LEAVES_QTY, e.get(ORDER_QTY, "0")), (CXL_QTY, "0"), (AVG_PX, "0")]
                                          for e in entries])])
            for e in entries:
                e[DELIVER_TO_COMP_ID] = broker
                e[LIST_ID] = list_id
                self._new(e)
            self._lists[list_id] = [e.get(CL_ORD_ID, "") for e in entries]
        elif msg_type == "F":
            self._cancel(f.get(ORIG_CL_ORD_ID, ""), f.get(CL_ORD_ID, ""), broker)
        elif msg_type == "G":
            self._replace(f)
        elif msg_type == "H":
            self._status(f)
        elif msg_type == "q":
            self._mass_cancel(f)
        elif msg_type in ("AN", "BB", "x"):
            self._inquiry(msg_type, f)
        elif msg_type == "K":
            list_id = f.get(LIST_ID, "")
            for cl in self._lists.get(list_id, []):
                self._cancel(cl, cl, broker)
            self._emit("N", [(ON_BEHALF_OF_COMP_ID, broker), (LIST_ID, list_id), (LIST_STATUS_TYPE, "5"),
                             (NO_RPTS, "0"), (LIST_ORDER_STATUS, "6"), (RPT_SEQ, "1"),
                             (TOT_NO_ORDERS, len(self._lists.get(list_id, []))), (NO_ORDERS, [])])
        self.on_read_end()  # the answers of one request arrive together, as one read would bring them

    def _er(self, o: _SimOrder, exec_type: str, status: str, leaves: int, last_qty: int = 0,
            cl: str | None = None, orig: str | None = None, text: str | None = None) -> None:
        f = o.f
        o.status = status
        if self._begin == "FIX.4.2" and exec_type == "F":
            exec_type = "2" if leaves == 0 else "1"
        fields: list[tuple[int, Any]] = [(ON_BEHALF_OF_COMP_ID, f.get(DELIVER_TO_COMP_ID, "")), (ORDER_ID, o.order_id),
                                         (CL_ORD_ID, cl or f.get(CL_ORD_ID, ""))]
        if orig:
            fields.append((ORIG_CL_ORD_ID, orig))
        fields.append((EXEC_ID, f"E{next(self._ids)}"))
        if self._begin == "FIX.4.2":
            fields.append((EXEC_TRANS_TYPE, "3" if exec_type == "I" else "0"))
            if exec_type == "I":
                exec_type = status  # FIX 4.2 has no ExecType I: a status report restates the status
        fields += [(EXEC_TYPE, exec_type), (ORD_STATUS, status)]
        if f.get(ACCOUNT):
            fields.append((ACCOUNT, f[ACCOUNT]))
        fields += [(SYMBOL, f.get(SYMBOL, "")), (SIDE, f.get(SIDE, "1")), (ORDER_QTY, f.get(ORDER_QTY, "0")),
                   (ORD_TYPE, f.get(ORD_TYPE, "2"))]
        if f.get(PRICE):
            fields.append((PRICE, f[PRICE]))
        if f.get(LIST_ID):
            fields.append((LIST_ID, f[LIST_ID]))
        if last_qty:
            fields += [(LAST_QTY, str(last_qty)),
                       (LAST_PX, self.FILL_PRICE if f.get(ORD_TYPE) == "1" else f.get(PRICE, "0"))]
        avg = (self.FILL_PRICE if f.get(ORD_TYPE) == "1" else f.get(PRICE, "0")) if o.cum else "0"
        fields += [(LEAVES_QTY, str(leaves)), (CUM_QTY, str(o.cum)), (AVG_PX, avg),
                   (TRANSACT_TIME, datetime.now(UTC))]
        if text:
            fields.append((TEXT, text))
        self._emit("8", fields)

    def _close(self, cl: str) -> None:
        o = self._orders.pop(cl, None)
        if o is not None:
            self._closed[cl] = o
            if len(self._closed) > 10000:  # bounded: the oldest is forgotten
                del self._closed[next(iter(self._closed))]

    def _new(self, f: dict[int, str]) -> None:
        o = _SimOrder(f, f"LB{next(self._ids)}")
        self._orders[f.get(CL_ORD_ID, "")] = o
        qty = o.qty
        self._er(o, "A", "A", qty)
        if f.get(ORD_TYPE) == "2" and f.get(PRICE, "").endswith("1"):
            o.cum = qty  # closed
            self._er(o, "8", "8", 0, text="price rejected by the simulator")
            o.cum = 0
            self._close(f.get(CL_ORD_ID, ""))
            return
        self._er(o, "0", "0", qty)
        if f.get(ORD_TYPE) == "1" and qty > 0:
            first = qty // 2 or qty
            o.cum = first
            self._er(o, "F", "1" if first < qty else "2", qty - first, first)
            if first < qty:
                o.cum = qty
                self._er(o, "F", "2", 0, qty - first)
            self._close(f.get(CL_ORD_ID, ""))

    def _refuse(self, orig: str, cl: str, broker: str, response_to: str) -> None:
        """OrderCancelReject: the order's own OrderID and OrdStatus when it is known (filled,
        cancelled...), NONE and 8 (Rejected) with reason 1 (unknown order) when it is not."""
        o = self._orders.get(orig) or self._closed.get(orig)
        self._emit("9", [(ON_BEHALF_OF_COMP_ID, broker), (ORDER_ID, "NONE" if o is None else o.order_id),
                         (CL_ORD_ID, cl), (ORIG_CL_ORD_ID, orig), (ORD_STATUS, "8" if o is None else o.status),
                         (CXL_REJ_RESPONSE_TO, response_to),
                         (CXL_REJ_REASON, "1" if o is None else "0"),
                         (TEXT, "unknown order" if o is None else "too late to cancel")])

    def _cancel(self, orig: str, cl: str, broker: str) -> None:
        o = self._orders.get(orig)
        if o is None or o.cum >= o.qty:
            self._refuse(orig, cl, broker, "1")
            return
        self._er(o, "6", "6", o.qty - o.cum, cl=cl, orig=orig)
        self._er(o, "4", "4", 0, cl=cl, orig=orig)
        self._close(orig)

    def _replace(self, f: dict[int, str]) -> None:
        orig, cl = f.get(ORIG_CL_ORD_ID, ""), f.get(CL_ORD_ID, "")
        o = self._orders.get(orig)
        if o is None or o.cum >= o.qty:
            self._refuse(orig, cl, f.get(DELIVER_TO_COMP_ID, ""), "2")
            return
        nf = dict(o.f)
        nf.update({k: v for k, v in f.items()
                   if k in (CL_ORD_ID, ORDER_QTY, PRICE, ORD_TYPE, SIDE, SYMBOL, ACCOUNT)})
        new = _SimOrder(nf, o.order_id)
        new.cum = o.cum
        self._orders[cl] = new
        o.status = "5"
        self._close(orig)
        self._er(new, "E", "E", new.qty - new.cum, cl=cl, orig=orig)
        self._er(new, "5", "1" if new.cum else "0", new.qty - new.cum, cl=cl, orig=orig)

    def _status(self, f: dict[int, str]) -> None:
        """OrderStatusRequest: an ExecutionReport 150=I with the order as last reported."""
        cl = f.get(CL_ORD_ID, "")
        o = self._orders.get(cl) or self._closed.get(cl)
        if o is None:
            unknown = _SimOrder({**f, ORD_TYPE: f.get(ORD_TYPE, "2")}, "NONE")
            self._er(unknown, "I", "8", 0, text=f"unknown order {cl!r}")
            return
        leaves = 0 if o.status in "2348C" else o.qty - o.cum
        self._er(o, "I", o.status, leaves)

    def _mass_cancel(self, f: dict[int, str]) -> None:
        """OrderMassCancelRequest: the report, then a cancel report for each matching open order
        of the same party (the ClOrdID namespace ``<client>:``)."""
        broker = f.get(DELIVER_TO_COMP_ID, "")
        party = f.get(CL_ORD_ID, "").partition(":")[0] + ":"
        kind = f.get(MASS_CANCEL_REQUEST_TYPE, "7")
        hits = [(cl, o) for cl, o in self._orders.items()
                if cl.startswith(party) and o.f.get(DELIVER_TO_COMP_ID, broker) == broker
                and (kind != "1" or o.f.get(SYMBOL) == f.get(SYMBOL))
                and (not f.get(SIDE) or o.f.get(SIDE) == f[SIDE])
                and (not f.get(ACCOUNT) or o.f.get(ACCOUNT) == f[ACCOUNT])]
        fields: list[tuple[int, Any]] = [(ON_BEHALF_OF_COMP_ID, broker), (CL_ORD_ID, f.get(CL_ORD_ID, "")),
                                         (ORDER_ID, f"MC{next(self._ids)}"), (MASS_CANCEL_REQUEST_TYPE, kind)]
        if kind not in ("1", "7"):
            fields += [(MASS_CANCEL_RESPONSE, "0"), (MASS_CANCEL_REJECT_REASON, "0"),
                       (TEXT, f"MassCancelRequestType {kind} not supported")]
            self._emit("r", fields)
            return
        fields += [(MASS_CANCEL_RESPONSE, kind), (TOTAL_AFFECTED_ORDERS, len(hits))]
        if hits:
            fields.append((NO_AFFECTED_ORDERS,
                           [[(ORIG_CL_ORD_ID, cl), (AFFECTED_ORDER_ID, o.order_id)] for cl, o in hits]))
        if f.get(SYMBOL):
            fields.append((SYMBOL, f[SYMBOL]))
        self._emit("r", fields)
        for cl, o in hits:
            self._er(o, "4", "4", 0, cl=cl)
            self._close(cl)

    # (Symbol, ISIN, name, base price) of the simulated listing
    LISTING = (("005930", "KR7005930003", "Samsung Electronics", 70000),
               ("000660", "KR7000660001", "SK hynix", 180000))

    def _inquiry(self, msg_type: str, f: dict[int, str]) -> None:
        """Positions (one holding of 100 shares of the first listed instrument per account),
        collateral (a fixed cash balance less what open buy orders hold) and the listing."""
        from server.krx import price_limits, tick_size

        broker = f.get(DELIVER_TO_COMP_ID, "")
        if msg_type == "AN":
            code, isin, _, base = self.LISTING[0]
            common = [(ON_BEHALF_OF_COMP_ID, broker), (POS_REQ_ID, f.get(POS_REQ_ID, "")),
                      (ACCOUNT, f.get(ACCOUNT, "")), (ACCOUNT_TYPE, f.get(ACCOUNT_TYPE, "1"))]
            self._emit("AO", [*common[:2], (POS_MAINT_RPT_ID, f"P{next(self._ids)}"), (TOTAL_NUM_POS_REPORTS, 1),
                              (POS_REQ_RESULT, "0"), (POS_REQ_STATUS, "0"), *common[2:]])
            self._emit("AP", [*common[:2], (POS_MAINT_RPT_ID, f"P{next(self._ids)}"), (POS_REQ_TYPE, "0"),
                              (TOTAL_NUM_POS_REPORTS, 1), (POS_REQ_RESULT, "0"), *common[2:],
                              (CLEARING_BUSINESS_DATE, f.get(CLEARING_BUSINESS_DATE, "")), (SYMBOL, code),
                              (SECURITY_ID, isin), (SECURITY_ID_SOURCE, "4"),
                              (SETTL_PRICE, base), (SETTL_PRICE_TYPE, "2"), (PRIOR_SETTL_PRICE, base),
                              (NO_POSITIONS, [[(POS_TYPE, "FIN"), (LONG_QTY, 100), (SHORT_QTY, 0)]]),
                              (NO_POS_AMT, [[(POS_AMT_TYPE, "FMTM"), (POS_AMT, 100 * base)]])])
        elif msg_type == "BB":
            held = sum((o.qty - o.cum) * int(Decimal(o.f.get(PRICE) or "0")) for o in self._orders.values()
                       if o.f.get(SIDE) == "1" and o.f.get(ACCOUNT) == f.get(ACCOUNT))
            cash = 100_000_000
            self._emit("BA", [(ON_BEHALF_OF_COMP_ID, broker), (COLL_RPT_ID, f"C{next(self._ids)}"),
                              (COLL_INQUIRY_ID, f.get(COLL_INQUIRY_ID, "")), (COLL_STATUS, "3"),
                              (ACCOUNT, f.get(ACCOUNT, "")), (CURRENCY, "KRW"), (MARGIN_EXCESS, cash - held),
                              (CASH_OUTSTANDING, held), (END_CASH, cash),
                              (TOTAL_NET_VALUE, cash + 100 * self.LISTING[0][3])])
        else:
            entries = []
            for code, isin, name, base in self.LISTING:
                if f.get(SECURITY_LIST_REQUEST_TYPE) == "0" and f.get(SYMBOL) != code:
                    continue
                lo, hi = price_limits(base)
                entries.append([(SYMBOL, code), (SECURITY_ID, isin), (SECURITY_ID_SOURCE, "4"), (SECURITY_DESC, name),
                                (SECURITY_SUB_TYPE, "KOSPI"),
                                (NO_STIPULATIONS, [[(STIPULATION_TYPE, "MININCR"), (STIPULATION_VALUE, tick_size(base))],
                                                   [(STIPULATION_TYPE, "PRICE"), (STIPULATION_VALUE, f"{lo}-{hi}")]]),
                                (BENCHMARK_PRICE, base), (BENCHMARK_PRICE_TYPE, "2"), (TRADING_SESSION_ID, "REGULAR"),
                                (TRADING_SESSION_SUB_ID, "CONTINUOUS")])
            self._emit("y", [(ON_BEHALF_OF_COMP_ID, broker), (SECURITY_REQ_ID, f.get(SECURITY_REQ_ID, "")),
                             (SECURITY_RESPONSE_ID, f"S{next(self._ids)}"), (SECURITY_REQUEST_RESULT, "0" if entries else "2"),
                             (TOT_NO_RELATED_SYM, len(entries)), (LAST_FRAGMENT, "Y"), (NO_RELATED_SYM, entries)])

    def _emit(self, msg_type: str, fields: list[tuple[int, Any]]) -> None:
        from fastfix.codec import encode, parse

        header: list[tuple[int, Any]] = [(SENDER_COMP_ID, self._target), (TARGET_COMP_ID, self._sender),
                                         (MSG_SEQ_NUM, next(self._ids)), (SENDING_TIME, datetime.now(UTC))]
        self.on_message(parse(encode(self._begin, msg_type, header + fields)), self._name)


def body_fields(begin_string: str, msg_type: str, body: bytes) -> list[tuple[int, bytes]]:
    """The fields of an encoded message body (framed and parsed by the codec)."""
    from fastfix.codec import checksum, parse

    payload = b"%d=%s\x01" % (MSG_TYPE, msg_type.encode()) + body
    raw = b"%d=%s\x01%d=%d\x01" % (BEGIN_STRING, begin_string.encode(), BODY_LENGTH, len(payload))
    raw += payload
    return parse(raw + b"%d=%03d\x01" % (CHECK_SUM, checksum(raw))).fields()[3:-1]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list):
        return ""
    return str(value)
