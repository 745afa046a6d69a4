"""Hops of an order through the gateway: event-loop passes and thread changes.

The gateway (``trace_loop_passes = true``) runs in front of the hub double, one
client subscribed to its stream. Orders go one at a time: POST, wait for the
order's first report on the stream, read ``GET /v1/orders/{id}/trace``. The
benchmark times that round trip; ``extra_info`` has, per path, the loop passes
and thread changes counted by the gateway itself:

* ``rest_to_fix``: from the RSGI handler receiving the request to the FIX
  message written (the body read, validation, journal write, FIX write);
* ``er_to_ws``: from a report read off the FIX socket to its frame written to
  the WebSocket (journal write, state change, push).

Crossings that belong to granian itself (its HTTP threads handing the request
to the loop, and the answer back) are outside both paths: one each way, as for
any RSGI application.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench._gateway_load import ws_reader
from bench.loadgen.target import LabTarget

ORDERS = 40


async def _one(port: int, key: str, reader: Any, i: int, reports_before: int) -> dict[str, Any]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = json.dumps({"ClOrdID": f"hop-{i}-{time.time_ns()}", "DeliverToCompID": "BRKA", "Symbol": "005930",
                           "Side": "1", "OrderQty": "10", "OrdType": "2", "Price": "70000"}).encode()
        cl = json.loads(body)["ClOrdID"]
        w.write(b"POST /v1/orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-api-key: %b\r\n"
                b"content-length: %d\r\n\r\n%b" % (key.encode(), len(body), body))
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 202"), head
        n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await r.readexactly(n)
        deadline = time.monotonic() + 10
        while len(reader.frames) <= reports_before and time.monotonic() < deadline:
            await asyncio.sleep(0.0005)
        assert len(reader.frames) > reports_before, "no report on the stream"
        for _ in range(200):  # the trace is written as the frame goes out
            w.write(b"GET /v1/orders/%b/trace HTTP/1.1\r\nhost: x\r\nx-api-key: %b\r\n\r\n" % (cl.encode(), key.encode()))
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            trace = json.loads(await r.readexactly(n))
            if trace["hop_counts"]["er_to_ws"] is not None:
                return trace
            await asyncio.sleep(0.005)
        raise AssertionError(f"no complete trace for {cl}: {trace}")
    finally:
        w.close()


def test_order_hops(benchmark: Any, tmp_path: Path) -> None:
    traces: list[dict[str, Any]] = []
    with LabTarget(tmp_path, clients=1, gateway_extra="trace_loop_passes = true\n") as target:
        port = int(target.info["rest_url"].rsplit(":", 1)[1])
        ws_port = int(target.info["ws_url"].split(":")[2].split("/")[0])
        key = target.info["keys"][0]
        loop = asyncio.new_event_loop()
        reader = loop.run_until_complete(ws_reader(ws_port, key))
        counter = iter(range(10**6))

        def one() -> None:
            i = next(counter)
            traces.append(loop.run_until_complete(_one(port, key, reader, i, len(reader.frames))))

        try:
            benchmark.pedantic(one, rounds=ORDERS, iterations=1, warmup_rounds=3)
        finally:
            reader.transport.disconnect()
            loop.close()
    for path in ("rest_to_fix", "er_to_ws"):
        counts = [t["hop_counts"][path] for t in traces]
        passes = [c["loop_passes"] for c in counts]
        changes = [c["thread_changes"] for c in counts]
        benchmark.extra_info[f"{path}_loop_passes_median"] = statistics.median(passes)
        benchmark.extra_info[f"{path}_loop_passes_max"] = max(passes)
        benchmark.extra_info[f"{path}_thread_changes_max"] = max(changes)
    # Run to completion: a report is journaled and pushed in the callback that read it.
    assert benchmark.extra_info["er_to_ws_loop_passes_max"] == 0
    assert benchmark.extra_info["er_to_ws_thread_changes_max"] == 0
    assert benchmark.extra_info["rest_to_fix_thread_changes_max"] == 0
