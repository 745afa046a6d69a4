"""Order gateway: REST orders/s into FIX against a bare granian handler, and latencies at a fixed rate.

Processes (see ``_gateway_load.py``): the gateway (FIX initiator to a hub double in
this process), a trivial granian RSGI + msgspec handler, and the load in processes of
their own: ``wrk`` with ``gateway_orders.lua`` (unique ClOrdIDs) when installed, else
a Python keep-alive client. The server under test is pinned to one CPU, the load to
the other(s). Throughput: best of ``GATEWAY_BENCH_ROUNDS`` alternating runs of
``GATEWAY_BENCH_SECONDS`` each at every concurrency of ``THROUGHPUT_CONNECTIONS``,
so each server is measured at its ceiling (every 202 checked to have reached the hub).
Latency: an open-loop client posts ``GATEWAY_BENCH_RATE`` orders/s for
``GATEWAY_BENCH_LATENCY_SECONDS``: to the bare handler, then to the gateway with the
hub only taking the orders (each server pinned as above), then to the gateway with
the hub acknowledging each with an ExecutionReport New and a picows subscriber
reading the pushes (gateway unpinned).

Figures (``extra_info`` and printed): ``gateway_orders_per_s``, ``baseline_req_per_s``,
``ratio``; ``bare_post_to_answer`` and ``post_to_answer`` (POST sent -> answer read, the
bare handler and the gateway with orders not answered), ``rest_to_fix`` (POST sent ->
NewOrderSingle read by the hub, orders not answered), ``rest_to_fix_acked`` (the same
with every order answered), ``er_to_ws`` (ExecutionReport written by the hub ->
WebSocket frame read), ``post_to_ws``, as p50/p99/p99.9 in µs;
``bare_cpu_us_per_request`` and ``gateway_cpu_us_per_order`` (each server's CPU time
per request at that rate); ``gateway_orders_per_s_acked`` (closed loop with every order
acknowledged and pushed, gateway unpinned).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gateway_load  # noqa: E402

ROUNDS = int(os.environ.get("GATEWAY_BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("GATEWAY_BENCH_SECONDS", "3"))
RATE = float(os.environ.get("GATEWAY_BENCH_RATE", "5000"))
LATENCY_SECONDS = float(os.environ.get("GATEWAY_BENCH_LATENCY_SECONDS", "4"))


def test_gateway_rest_to_fix(benchmark: Any, tmp_path: Path) -> None:
    result: dict[str, Any] = {}

    def once() -> None:
        result.update(asyncio.run(asyncio.wait_for(
            _gateway_load.run(tmp_path, ROUNDS, SECONDS, latency_rate=RATE, latency_seconds=LATENCY_SECONDS,
                              acked=True), 600)))

    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print("\norder gateway:", json.dumps(result))
    assert result["latency_samples"] > 0.9 * RATE * LATENCY_SECONDS
    assert result["bare_post_to_answer_p99_us"] is not None and result["post_to_answer_p99_us"] is not None
