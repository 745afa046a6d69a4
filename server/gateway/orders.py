"""Order state kept by the gateway, driven by ExecutionReports (FIX 4.2 and 4.4).

An :class:`Order` is the gateway's view of one client order (one ClOrdID). It
changes only through :func:`apply_execution_report` and
:func:`apply_cancel_reject`, which are pure functions of the current state and
the report's fields (``dict[int, str]``, tag -> value), so they are tested
without any network.

Robustness rules, because reports can arrive twice (PossDup resends after a
reconnect), out of order (several paths through a hub) or unsolicited (the
exchange cancels an IOC remainder, a broker cancels at end of day):

* a report whose ExecID was already applied is a duplicate and changes nothing;
* quantities only move forward: a report with a lower CumQty than already seen
  is stale; its execution is recorded but it does not regress CumQty/AvgPx/state
  (trade busts and corrections — 4.4 ExecType H/G, 4.2 ExecTransType 1/2 — are
  the one case that may lower CumQty);
* terminal states (Filled, Canceled, Rejected, Expired, Replaced, DoneForDay)
  are never left, except that a late fill still raises CumQty and may turn a
  cancel into Filled when nothing is left;
* FIX 4.2 ExecType 1/2 (partial fill / fill) and 4.4 ExecType F (trade) are the
  same thing to the gateway: a fill of LastQty at LastPx.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import msgspec

from fastfix.tags import (
    AVG_PX,
    CL_ORD_ID,
    CUM_QTY,
    CXL_REJ_RESPONSE_TO,
    EXEC_ID,
    EXEC_REF_ID,
    EXEC_TRANS_TYPE,
    EXEC_TYPE,
    LAST_PX,
    LAST_QTY,
    LEAVES_QTY,
    ORD_REJ_REASON,
    ORD_STATUS,
    ORD_TYPE,
    ORDER_ID,
    ORDER_QTY,
    ORIG_CL_ORD_ID,
    POSS_DUP_FLAG,
    POSS_RESEND,
    PRICE,
    SIDE,
    SYMBOL,
    TEXT,
    TRANSACT_TIME,
)

__all__ = [
    "CARRIED_FIELDS",
    "ORD_STATUS_NAMES",
    "TERMINAL",
    "Applied",
    "Execution",
    "Order",
    "OrderList",
    "apply_cancel_reject",
    "apply_execution_report",
    "apply_replaced",
    "apply_report",
    "reject_order",
    "state_name",
]

# OrdStatus (39) code -> name used in the REST API ("state").
ORD_STATUS_NAMES: dict[str, str] = {
    "0": "New",
    "1": "PartiallyFilled",
    "2": "Filled",
    "3": "DoneForDay",
    "4": "Canceled",
    "5": "Replaced",
    "6": "PendingCancel",
    "7": "Stopped",
    "8": "Rejected",
    "9": "Suspended",
    "A": "PendingNew",
    "B": "Calculated",
    "C": "Expired",
    "D": "AcceptedForBidding",
    "E": "PendingReplace",
}
TERMINAL = frozenset("23458C")

# Fields of an order, beyond those the record has its own attribute for, that an
# OrderCancelReplaceRequest repeats when the client leaves them out (FIX: a replace restates
# the order; a field left out is a field removed, e.g. ExecInst P of a primary-best order).
CARRIED_FIELDS = ("TimeInForce", "ExecInst", "StopPx", "ExpireDate", "ExpireTime", "MinQty", "MaxFloor",
                  "SecurityID", "SecurityIDSource", "Currency", "SettlType", "OrderCapacity")

# Tags the gateway extracts from an ExecutionReport / OrderCancelReject.
ER_TAGS = (
    AVG_PX, CL_ORD_ID, CUM_QTY, EXEC_ID, EXEC_REF_ID, EXEC_TRANS_TYPE, LAST_PX, LAST_QTY, ORDER_ID,
    ORDER_QTY, ORD_STATUS, ORD_TYPE, ORIG_CL_ORD_ID, POSS_DUP_FLAG, PRICE, SIDE, SYMBOL, TEXT,
    TRANSACT_TIME, POSS_RESEND, ORD_REJ_REASON, EXEC_TYPE, LEAVES_QTY, CXL_REJ_RESPONSE_TO,
)

_ZERO = Decimal(0)


def state_name(code: str) -> str:
    return ORD_STATUS_NAMES.get(code, code)


class Execution(msgspec.Struct, omit_defaults=True, gc=False, array_like=True):
    """One ExecutionReport as applied to an order (FIX-JSON names, string values); stored
    as an array like :class:`Order` (new fields go at the end)."""

    ExecID: str
    ExecType: str
    OrdStatus: str
    received_ns: int
    LastQty: str | None = None
    LastPx: str | None = None
    CumQty: str | None = None
    LeavesQty: str | None = None
    AvgPx: str | None = None
    TransactTime: str | None = None
    Text: str | None = None
    stale: bool = False


class Order(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False, array_like=True):
    """Gateway view of one client order. Field names follow FIX-JSON where they are FIX fields.

    ``gc=False``: orders hold only strings, numbers and lists of strings (no cycles), and a
    gateway keeps every open order in memory; the garbage collector need not walk them.
    ``array_like``: stored as a MessagePack array (values only, less than half the bytes of
    a map), so the field order is the stored format: new fields go at the end, with defaults.
    """

    client_id: str
    ClOrdID: str
    broker: str
    MsgType: str = "D"  # D: single order, E: member of a list, G: replacement of OrigClOrdID
    Symbol: str = ""
    Side: str = ""
    OrdType: str = ""
    Account: str | None = None
    OrderQty: str = "0"
    Price: str | None = None
    ListID: str | None = None
    OrigClOrdID: str | None = None
    ReplacedBy: str | None = None
    OrderID: str | None = None
    OrdStatus: str = "A"
    CumQty: str = "0"
    LeavesQty: str = "0"
    AvgPx: str = "0"
    Text: str | None = None
    pending: str | None = None  # "cancel" or "replace" while a request is in flight
    # Tuples, not lists: immutable tuples of strings are not tracked by the garbage collector,
    # lists are (two per order made full collections walk every open order: 200 ms pauses).
    cancel_ids: tuple[str, ...] = ()
    exec_ids: tuple[str, ...] = ()
    created_ns: int = 0
    updated_ns: int = 0
    body_hash: str = ""  # fingerprint of the creating request (an identical retry is answered again)
    # The FIX body as sent (D/G), kept until the first report about the order: a restart
    # finds orders committed but never handed to the FIX session by it (see Gateway.recover).
    fix_body: bytes | None = None
    num: int = 0  # the store's number of the order (in intake order), given when first stored
    # The OrderCancelRequest as sent while a cancel is pending, so that a restart finds a cancel
    # committed but never handed to the FIX session (as fix_body does for the order).
    cancel_body: bytes | None = None
    # Other fields of the request that a replace must repeat when it does not change them
    # (TimeInForce, ExecInst, ...: see CARRIED_FIELDS), as (name, text) pairs.
    carried: tuple[tuple[str, str], ...] = ()

    @property
    def state(self) -> str:
        return state_name(self.OrdStatus)

    @property
    def terminal(self) -> bool:
        return self.OrdStatus in TERMINAL


class Applied(msgspec.Struct):
    """What a report did: ``duplicate`` (ignored), else the execution recorded."""

    duplicate: bool
    execution: Execution | None = None
    changed: bool = False


# Reports repeat a few quantities and prices all day: converting the same text to Decimal
# and back to plain notation cost microseconds per report (format() of a Decimal alone
# about one). Both results are kept, in caches bounded against a peer sending endless
# new values (cleared when full).
_CACHE_MAX = 8192
_dec_cache: dict[str, Decimal | None] = {}
_fmt_cache: dict[Decimal, str] = {}


def _dec(value: str | None) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return _dec_cache[value]
    except KeyError:
        pass
    try:
        d: Decimal | None = Decimal(value)
    except InvalidOperation:
        d = None
    else:
        if not d.is_finite():
            d = None
    if len(_dec_cache) >= _CACHE_MAX:
        _dec_cache.clear()
    _dec_cache[value] = d
    return d


def _fmt(d: Decimal) -> str:
    # Plain notation without exponent or trailing zeros: "100", "70150.5". Equal values
    # (1.50 and 1.5) have the same plain notation, but for zero and minus zero (equal keys).
    if not d:
        return "-0" if d.is_signed() else "0"
    s = _fmt_cache.get(d)
    if s is None:
        s = format(d, "f")
        if "." in s:
            s = s.rstrip("0").rstrip(".")
        if len(_fmt_cache) >= _CACHE_MAX:
            _fmt_cache.clear()
        _fmt_cache[d] = s
    return s


def _set_status(order: Order, code: str) -> None:
    if code and code in ORD_STATUS_NAMES:
        order.OrdStatus = code


def apply_execution_report(order: Order, er: dict[int, str], now_ns: int) -> Applied:
    """Apply an ExecutionReport's fields ``er`` (tag -> value) to ``order`` in place.

    The caller has already matched the report to this order (ClOrdID or
    OrigClOrdID). Replacement (ExecType 5) is handled by the caller, which owns
    both orders of the chain, via :func:`apply_replaced`.
    """
    exec_id = er.get(EXEC_ID, "")
    if exec_id and exec_id in order.exec_ids:
        return Applied(duplicate=True)
    exec_type = er.get(EXEC_TYPE, "")
    trans = er.get(EXEC_TRANS_TYPE, "0")  # FIX 4.2 ExecTransType: 0 new, 1 cancel, 2 correct, 3 status
    status = er.get(ORD_STATUS, "")
    ex = Execution(
        ExecID=exec_id,
        ExecType=exec_type,
        OrdStatus=status,
        received_ns=now_ns,
        LastQty=er.get(LAST_QTY),
        LastPx=er.get(LAST_PX),
        CumQty=er.get(CUM_QTY),
        LeavesQty=er.get(LEAVES_QTY),
        AvgPx=er.get(AVG_PX),
        TransactTime=er.get(TRANSACT_TIME),
        Text=er.get(TEXT),
    )
    if exec_id:
        order.exec_ids += (exec_id,)
    order.updated_ns = now_ns
    if er.get(ORDER_ID) and er.get(ORDER_ID) != "NONE":
        order.OrderID = er[ORDER_ID]

    cum_now = _dec(order.CumQty) or _ZERO
    cum_er = _dec(er.get(CUM_QTY))
    correction = exec_type in ("G", "H") or trans in ("1", "2")
    if trans == "3" or exec_type == "I":
        # Status answers carry no new information about fills; they may still
        # tell us a state we missed (e.g. after a reconnect).
        if cum_er is not None and cum_er < cum_now:
            ex.stale = True
            return Applied(duplicate=False, execution=ex, changed=True)
    if cum_er is not None and cum_er < cum_now and not correction:
        # Older than what we know: keep it in the history, do not go back in time.
        ex.stale = True
        return Applied(duplicate=False, execution=ex, changed=True)

    if cum_er is not None:
        order.CumQty = _fmt(cum_er)
        avg = _dec(er.get(AVG_PX))
        if avg is not None:
            order.AvgPx = _fmt(avg)
    elif exec_type in ("1", "2", "F") and _dec(er.get(LAST_QTY)) is not None:
        # No CumQty (non-conformant peer): accumulate LastQty ourselves.
        last_qty = _dec(er.get(LAST_QTY)) or _ZERO
        last_px = _dec(er.get(LAST_PX)) or _ZERO
        new_cum = cum_now + last_qty
        if new_cum > 0:
            order.AvgPx = _fmt(((_dec(order.AvgPx) or _ZERO) * cum_now + last_px * last_qty) / new_cum)
        order.CumQty = _fmt(new_cum)

    if order.terminal:
        # Terminal states stay, but a late fill that completes the order wins.
        qty = _dec(order.OrderQty) or _ZERO
        if order.OrdStatus in "34C" and (_dec(order.CumQty) or _ZERO) >= qty > 0:
            order.OrdStatus = "2"
        order.LeavesQty = "0"
        return Applied(duplicate=False, execution=ex, changed=True)

    if exec_type == "D":  # restated: the broker changed quantity or price
        if er.get(ORDER_QTY):
            order.OrderQty = er[ORDER_QTY]
        if er.get(PRICE):
            order.Price = er[PRICE]

    leaves = _dec(er.get(LEAVES_QTY))
    if status in ("4", "8", "C", "3", "2"):
        order.LeavesQty = "0"
    elif leaves is not None:
        order.LeavesQty = _fmt(leaves)
    else:
        qty = _dec(order.OrderQty) or _ZERO
        order.LeavesQty = _fmt(max(qty - (_dec(order.CumQty) or _ZERO), _ZERO))

    if exec_type in ("4", "C", "8", "3") or status in TERMINAL:
        order.pending = None
    if exec_type == "6" or status == "6":
        order.pending = order.pending or "cancel"
    if status:
        cum_after = _dec(order.CumQty) or _ZERO
        if status in ("0", "A") and cum_after > 0:
            status = "1"  # a late "New" after fills: stay partially filled
        _set_status(order, status)
    if exec_type == "8" and er.get(TEXT):
        order.Text = er[TEXT]
    return Applied(duplicate=False, execution=ex, changed=True)


def apply_replaced(old: Order, new: Order, er: dict[int, str], now_ns: int) -> Applied:
    """ExecType 5 (Replaced): ``old`` ends as Replaced, ``new`` carries the order on."""
    exec_id = er.get(EXEC_ID, "")
    if exec_id and exec_id in new.exec_ids:
        return Applied(duplicate=True)
    # The replacement inherits what was already filled on the original order.
    new.CumQty, new.AvgPx, new.OrderID = old.CumQty, old.AvgPx, old.OrderID
    new.ListID = new.ListID or old.ListID
    if not old.terminal:
        old.OrdStatus = "5"
        old.LeavesQty = "0"
    old.pending = None
    old.ReplacedBy = new.ClOrdID
    old.updated_ns = now_ns
    if er.get(ORDER_QTY):
        new.OrderQty = er[ORDER_QTY]
    if er.get(PRICE):
        new.Price = er[PRICE]
    er = dict(er)
    if er.get(ORD_STATUS) == "5":
        # FIX 4.2 reports the replaced order's status as 5; the new order is live.
        er[ORD_STATUS] = "1" if (_dec(er.get(CUM_QTY)) or _ZERO) > 0 else "0"
    return apply_execution_report(new, er, now_ns)


def apply_report(order: Order, original: Order | None, er: dict[int, str], now_ns: int) -> tuple[Applied, bool]:
    """A report about ``order``; ``original`` is the order it replaces, when it is a
    replacement (MsgType G). Returns what the report did to ``order`` and whether
    ``original`` changed and must be stored too.

    The pairing: Replaced (5) ends the original and carries its fills over; PendingReplace
    (E) marks the original as having a replace in flight; a Rejected replacement (8) ends
    that.
    """
    exec_type = er.get(EXEC_TYPE, "")
    if original is None:
        return apply_execution_report(order, er, now_ns), False
    if exec_type == "5":
        res = apply_replaced(original, order, er, now_ns)
        return res, not res.duplicate
    res = apply_execution_report(order, er, now_ns)
    if exec_type == "E":
        if original.pending != "cancel":  # a cancel sent while the replace was pending stays pending
            original.pending = "replace"  # in memory only: the replace request stored it already
    elif exec_type == "8" and original.pending == "replace":
        original.pending = None
        return res, True
    return res, False


def apply_cancel_reject(order: Order, cxl: dict[int, str], now_ns: int) -> bool:
    """OrderCancelReject (35=9) for a cancel or replace of ``order``; returns True if changed.

    The request failed: the order keeps going with the OrdStatus the broker
    reports in the reject (mandatory field 39), unless we already know it ended.
    """
    order.pending = None
    order.updated_ns = now_ns
    if cxl.get(TEXT):
        order.Text = cxl[TEXT]
    status = cxl.get(ORD_STATUS, "")
    if not order.terminal and status in ORD_STATUS_NAMES and status not in ("6", "E"):
        if status in ("0", "A") and (_dec(order.CumQty) or _ZERO) > 0:
            status = "1"
        order.OrdStatus = status
    return True


def reject_order(order: Order, reason: str, now_ns: int) -> None:
    """Mark an order rejected by the gateway itself (e.g. the FIX session refused it)."""
    order.OrdStatus = "8"
    order.LeavesQty = "0"
    order.Text = reason
    order.pending = None
    order.updated_ns = now_ns


class OrderList(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False, array_like=True):
    """A NewOrderList (35=E) as the gateway tracks it (stored as an array, like Order: new
    fields go at the end)."""

    client_id: str
    ListID: str
    broker: str
    members: list[str] = []  # ClOrdIDs in list order
    ListStatusType: str | None = None  # last ListStatus (35=N) values
    ListOrderStatus: str | None = None
    Text: str | None = None
    pending: str | None = None  # "cancel" while a ListCancelRequest is in flight
    cancel_ids: tuple[str, ...] = ()  # a tuple: not tracked by the garbage collector
    created_ns: int = 0
    updated_ns: int = 0
    body_hash: str = ""
    fix_body: bytes | None = None  # the NewOrderList body as sent, until its first ListStatus/report
    cancel_body: bytes | None = None  # the ListCancelRequest as sent while a cancel is pending

