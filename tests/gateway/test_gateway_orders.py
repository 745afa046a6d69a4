"""Order state machine: ExecutionReports (FIX 4.2 and 4.4) applied to the gateway's orders."""

from __future__ import annotations

import itertools

import pytest

from server.gateway.orders import (
    Order,
    apply_cancel_reject,
    apply_execution_report,
    apply_replaced,
    apply_report,
    reject_order,
)

_ids = itertools.count(1)


def order(qty: str = "100", **kw: object) -> Order:
    return Order(client_id="c", ClOrdID=kw.pop("cl", "o1"), broker="B", Symbol="005930", Side="1",
                 OrdType="2", OrderQty=qty, Price="70000", LeavesQty=qty, **kw)  # type: ignore[arg-type]


def er(exec_type: str, status: str, cum: str | None = None, leaves: str | None = None, avg: str | None = None,
       last_qty: str | None = None, last_px: str | None = None, exec_id: str | None = None,
       **extra: str) -> dict[int, str]:
    f: dict[int, str] = {17: exec_id or f"X{next(_ids)}", 150: exec_type, 39: status}
    for tag, v in ((14, cum), (151, leaves), (6, avg), (32, last_qty), (31, last_px)):
        if v is not None:
            f[tag] = v
    names = {"trans": 20, "text": 58, "qty": 38, "px": 44, "order_id": 37}
    for k, v in extra.items():
        f[names[k]] = v
    return f


def fill44(cum: str, leaves: str, last: str, px: str = "70000", avg: str = "70000", **kw: str) -> dict[int, str]:
    return er("F", "2" if leaves == "0" else "1", cum, leaves, avg, last, px, **kw)


def test_new_then_partial_then_fill_44() -> None:
    o = order()
    apply_execution_report(o, er("0", "0", "0", "100", "0", order_id="OID1"), 1)
    assert (o.state, o.OrderID, o.LeavesQty) == ("New", "OID1", "100")
    apply_execution_report(o, fill44("40", "60", "40"), 2)
    assert (o.state, o.CumQty, o.LeavesQty, o.AvgPx) == ("PartiallyFilled", "40", "60", "70000")
    apply_execution_report(o, fill44("100", "0", "60", px="70100", avg="70060"), 3)
    assert (o.state, o.CumQty, o.LeavesQty, o.AvgPx) == ("Filled", "100", "0", "70060")
    assert o.terminal and o.updated_ns == 3


def test_fix42_partial_fill_and_fill_exec_types() -> None:
    o = order()
    apply_execution_report(o, er("0", "0", "0", "100", "0", trans="0"), 1)
    apply_execution_report(o, er("1", "1", "30", "70", "70000", "30", "70000", trans="0"), 2)
    assert (o.state, o.CumQty) == ("PartiallyFilled", "30")
    apply_execution_report(o, er("2", "2", "100", "0", "70000", "70", "70000", trans="0"), 3)
    assert (o.state, o.CumQty, o.LeavesQty) == ("Filled", "100", "0")


def test_duplicate_exec_id_is_ignored() -> None:
    o = order()
    first = fill44("40", "60", "40", exec_id="E1")
    assert not apply_execution_report(o, first, 1).duplicate
    res = apply_execution_report(o, dict(first), 2)
    assert res.duplicate and res.execution is None
    assert o.CumQty == "40" and o.updated_ns == 1


def test_reordered_fills_do_not_regress() -> None:
    o = order()
    apply_execution_report(o, fill44("100", "0", "60", avg="70060"), 1)
    res = apply_execution_report(o, fill44("40", "60", "40"), 2)  # older report arriving late
    assert res.execution is not None and res.execution.stale
    assert (o.state, o.CumQty, o.LeavesQty, o.AvgPx) == ("Filled", "100", "0", "70060")


def test_late_new_after_fill_stays_partially_filled() -> None:
    o = order()
    apply_execution_report(o, fill44("40", "60", "40"), 1)
    apply_execution_report(o, er("0", "0", "0", "100", "0"), 2)  # New overtaken by the fill
    assert o.state == "PartiallyFilled" and o.CumQty == "40"


def test_unsolicited_cancel() -> None:
    o = order()
    apply_execution_report(o, er("0", "0", "0", "100", "0"), 1)
    apply_execution_report(o, fill44("30", "70", "30"), 2)
    apply_execution_report(o, er("4", "4", "30", "0", "70000", text="IOC remainder"), 3)
    assert (o.state, o.CumQty, o.LeavesQty, o.pending) == ("Canceled", "30", "0", None)


def test_solicited_cancel_goes_through_pending_cancel() -> None:
    o = order()
    apply_execution_report(o, er("0", "0", "0", "100", "0"), 1)
    o.pending = "cancel"
    apply_execution_report(o, er("6", "6", "0", "100", "0"), 2)
    assert o.state == "PendingCancel" and o.pending == "cancel"
    apply_execution_report(o, er("4", "4", "0", "0", "0"), 3)
    assert o.state == "Canceled" and o.pending is None


def test_terminal_state_is_kept_against_late_status() -> None:
    o = order()
    apply_execution_report(o, er("4", "4", "0", "0", "0"), 1)
    apply_execution_report(o, er("0", "0", "0", "100", "0"), 2)
    apply_execution_report(o, er("6", "6", "0", "100", "0"), 3)
    assert o.state == "Canceled" and o.LeavesQty == "0"


def test_late_fill_after_cancel_raises_cum_and_may_complete() -> None:
    o = order()
    apply_execution_report(o, fill44("40", "60", "40"), 1)
    apply_execution_report(o, er("4", "4", "40", "0", "70000"), 2)
    apply_execution_report(o, fill44("60", "40", "20"), 3)  # executed before the cancel took effect
    assert (o.state, o.CumQty, o.LeavesQty) == ("Canceled", "60", "0")
    apply_execution_report(o, fill44("100", "0", "40"), 4)
    assert o.state == "Filled" and o.CumQty == "100"


def test_rejected() -> None:
    o = order()
    apply_execution_report(o, er("8", "8", "0", "0", "0", text="price out of range"), 1)
    assert (o.state, o.Text, o.LeavesQty) == ("Rejected", "price out of range", "0")


def test_trade_bust_lowers_cum_qty_44() -> None:
    o = order()
    apply_execution_report(o, fill44("50", "50", "50"), 1)
    apply_execution_report(o, er("H", "0", "0", "100", "0"), 2)
    assert (o.state, o.CumQty, o.LeavesQty) == ("New", "0", "100")


def test_trade_correction_42_exec_trans_type() -> None:
    o = order()
    apply_execution_report(o, er("1", "1", "50", "50", "70000", "50", "70000", trans="0"), 1)
    apply_execution_report(o, er("1", "1", "40", "60", "70000", "40", "70000", trans="2"), 2)
    assert (o.CumQty, o.LeavesQty) == ("40", "60")


def test_status_report_does_not_regress() -> None:
    o = order()
    apply_execution_report(o, fill44("50", "50", "50"), 1)
    res = apply_execution_report(o, er("I", "0", "0", "100", "0"), 2)
    assert res.execution is not None and res.execution.stale
    assert o.CumQty == "50" and o.state == "PartiallyFilled"


def test_missing_cum_qty_is_accumulated_from_last_qty() -> None:
    o = order()
    apply_execution_report(o, er("F", "1", None, None, None, "30", "70000"), 1)
    apply_execution_report(o, er("F", "1", None, None, None, "30", "70200"), 2)
    assert (o.CumQty, o.AvgPx, o.LeavesQty) == ("60", "70100", "40")


def test_restated_changes_quantity() -> None:
    o = order()
    apply_execution_report(o, er("D", "0", "0", "80", "0", qty="80"), 1)
    assert (o.OrderQty, o.LeavesQty, o.state) == ("80", "80", "New")


def test_replace_chain_44() -> None:
    old = order()
    apply_execution_report(old, fill44("30", "70", "30", order_id="OID"), 1)
    new = order(qty="200", cl="o2", MsgType="G", OrigClOrdID="o1", OrdStatus="E")
    apply_execution_report(new, er("E", "E", "30", "70", "70000"), 2)
    assert new.state == "PendingReplace"
    apply_replaced(old, new, er("5", "1", "30", "170", "70000", qty="200", px="70100"), 3)
    assert (old.state, old.ReplacedBy, old.LeavesQty) == ("Replaced", "o2", "0")
    assert (new.state, new.OrderQty, new.Price, new.CumQty, new.LeavesQty, new.OrderID) == (
        "PartiallyFilled", "200", "70100", "30", "170", "OID")


def test_replace_42_reports_status_replaced() -> None:
    old = order()
    new = order(qty="50", cl="o2", MsgType="G", OrigClOrdID="o1", OrdStatus="E")
    apply_replaced(old, new, er("5", "5", "0", "50", "0", qty="50", trans="0"), 1)
    assert old.state == "Replaced" and new.state == "New" and new.LeavesQty == "50"


def test_replace_duplicate_is_ignored() -> None:
    old, new = order(), order(cl="o2", MsgType="G", OrigClOrdID="o1", OrdStatus="E")
    rep = er("5", "0", "0", "100", "0", exec_id="R1")
    apply_replaced(old, new, rep, 1)
    assert apply_replaced(old, new, dict(rep), 2).duplicate


def test_replace_pairing_marks_ends_and_releases_the_original() -> None:
    """apply_report pairs a replacement's reports with its original: PendingReplace marks
    the original (not stored again), Replaced ends it (stored), a rejected replacement
    releases it (stored), and a duplicate changes neither."""
    old = order(pending="replace")
    new = order(cl="o2", MsgType="G", OrigClOrdID="o1", OrdStatus="E")
    res, stored = apply_report(new, old, er("E", "E", "0", "100", "0"), 1)
    assert not stored and old.pending == "replace" and new.state == "PendingReplace"
    rej = order(cl="o3", MsgType="G", OrigClOrdID="o1", OrdStatus="E")
    res, stored = apply_report(rej, old, er("8", "8", "0", "0", "0", text="no"), 2)
    assert stored and old.pending is None and rej.state == "Rejected" and not old.terminal
    old.pending = "replace"
    rep = er("5", "0", "0", "100", "0", exec_id="R9")
    res, stored = apply_report(new, old, rep, 3)
    assert stored and old.state == "Replaced" and new.state == "New"
    res, stored = apply_report(new, old, dict(rep), 4)
    assert res.duplicate and not stored
    plain = order(cl="o4")
    res, stored = apply_report(plain, None, er("0", "0", "0", "100", "0"), 5)
    assert not stored and plain.state == "New"


def test_cancel_reject_restores_reported_status() -> None:
    o = order()
    apply_execution_report(o, fill44("30", "70", "30"), 1)
    o.pending = "cancel"
    apply_execution_report(o, er("6", "6", "30", "70", "70000"), 2)
    assert o.state == "PendingCancel"
    apply_cancel_reject(o, {39: "1", 434: "1", 58: "too late"}, 3)
    assert (o.state, o.pending, o.Text) == ("PartiallyFilled", None, "too late")


def test_cancel_reject_does_not_reopen_a_terminal_order() -> None:
    o = order()
    apply_execution_report(o, fill44("100", "0", "100"), 1)
    apply_cancel_reject(o, {39: "0", 434: "1"}, 2)
    assert o.state == "Filled"


def test_gateway_reject() -> None:
    o = order()
    reject_order(o, "session down", 5)
    assert (o.state, o.Text, o.LeavesQty, o.updated_ns) == ("Rejected", "session down", "0", 5)


@pytest.mark.parametrize("status,name", [("A", "PendingNew"), ("C", "Expired"), ("3", "DoneForDay"),
                                         ("9", "Suspended")])
def test_status_names(status: str, name: str) -> None:
    o = order()
    apply_execution_report(o, er("0" if status == "A" else status, status, "0", "0", "0"), 1)
    assert o.state == name
