"""The gateway's order path in one process, without sockets: a group of ``GROUP`` new
orders through ``RestApp.__rsgi__`` (authentication, throttle, decode, checks, mapping
to FIX, the record, its journal write, the hand-over of the NewOrderSingle to the FIX
link and the 202 answer, all in the request's own callback), as granian would call it.

This is the CPU an order costs the gateway's event loop beyond what any HTTP server
costs, measured without the noise of HTTP, TCP and a second process; divide a round
by ``GROUP`` for the cost of one order. The link counts what it is handed (the FIX
session's own cost is in ``test_session_send_bench.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _gateway_inproc import in_process_gateway

GROUP = 32  # concurrent requests, as the gateway gate's closed loop keeps in flight


def test_order_path_in_process(benchmark: Any, tmp_path: Path) -> None:
    with in_process_gateway(tmp_path) as gw:
        benchmark.group = "gateway-order-path"
        benchmark.extra_info["orders_per_round"] = GROUP
        statuses = benchmark.pedantic(gw.post_orders, args=(GROUP,), rounds=300, warmup_rounds=20, iterations=1)
        assert statuses == [202] * GROUP
        assert gw.link.sent == next(gw.ids) - 1  # every order answered 202 was handed to the link
        assert gw.gateway.journal.commits >= gw.link.sent  # one journal record per order, at least
