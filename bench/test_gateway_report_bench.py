"""The gateway's report path in one process, without sockets: a group of ``GROUP``
ExecutionReports (New) from the hub, each for an open order, as one read from the FIX
socket brings them: ``ReportsIn.on_message`` for each (routing by the namespaced
ClOrdID, the order's state, the execution, the client's event as FIX-JSON in its
envelope), then ``read_done`` (one journal record for the read, and the push of its
events to a subscribed WebSocket connection).

This is the CPU a report costs the gateway's event loop between the FIX session's read
and the WebSocket write (the hop "report read → WebSocket frame written" of the trace);
divide a round by ``GROUP`` for one report. The orders are placed before each round
through the order path (not timed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _gateway_inproc import CLIENT, in_process_gateway

from fastfix.codec import encode, parse

GROUP = 32


class _Subscriber:
    """A subscribed stream that counts what it is handed, checking the sequence has no gaps."""

    def __init__(self) -> None:
        self.delivered = 0
        self.last_seq = 0

    def deliver(self, events: list[tuple[int, bytes]]) -> None:
        for seq, _ in events:
            assert seq == self.last_seq + 1, (seq, self.last_seq)
            self.last_seq = seq
        self.delivered += len(events)


def _report(order_no: int, seq: int) -> Any:
    cl = b"%s:o-%d" % (CLIENT.encode(), order_no)
    return parse(encode("FIX.4.4", "8", [
        (49, "HUB"), (56, "GATEWAY"), (34, seq), (52, "20261126-09:00:00.000"), (115, "BRKA"),
        (37, b"O%d" % order_no), (11, cl), (17, b"X%d" % order_no), (150, "0"), (39, "0"),
        (55, "005930"), (54, "1"), (38, "10"), (40, "2"), (44, "70000"), (151, "10"), (14, "0"),
        (6, "0"), (60, "20261126-09:00:00.000")]))


def test_report_path_in_process(benchmark: Any, tmp_path: Path) -> None:
    with in_process_gateway(tmp_path) as gw:
        sub = _Subscriber()
        gw.gateway.subscribe(CLIENT, sub)
        on_message = gw.gateway.reports.on_message
        read_done = gw.gateway.reports.read_done
        rounds = 0

        def place() -> tuple[tuple[list[Any]], dict[str, Any]]:
            first = next(gw.ids)  # the next GROUP orders take the numbers after this one
            assert gw.post_orders(GROUP) == [202] * GROUP
            return ([_report(first + 1 + i, first + i) for i in range(GROUP)],), {}

        def reports(msgs: list[Any]) -> None:
            nonlocal rounds
            rounds += 1
            for m in msgs:
                on_message(m, "HUB")
            read_done()

        benchmark.group = "gateway-report-path"
        benchmark.extra_info["reports_per_round"] = GROUP
        benchmark.pedantic(reports, setup=place, rounds=300, warmup_rounds=20, iterations=1)
        assert sub.delivered == rounds * GROUP  # every report logged and pushed, in sequence
        o = gw.gateway.get_order(CLIENT, "o-2")
        assert o is not None and o.OrdStatus == "0" and o.OrderID == "O2"
