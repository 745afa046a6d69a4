"""The end-to-end benchmark's round-trip client (a process of its own).

One keep-alive HTTP/1.1 connection (the raw client of the gateway benchmarks,
``bench/_gateway_load.py``) and one WebSocket subscriber (picows) on uvloop. For each
order: POST it, wait for the 202 and for the first report on the stream that names its
ClOrdID, then the next: the time from writing the POST to reading that frame is one
sample. Orders are never in flight together, so each sample is one order's round trip.

``python -m bench.e2e.client REST_PORT WS_URL KEY N WARMUP TAG`` prints one JSON line:
``{"post_to_report_us": [...], "post_to_202_us": [...], "missing": M}`` (``KEY`` ``-`` for
none; the first ``WARMUP`` orders are not counted; ``missing``: measured orders whose
report did not come within the timeout).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import msgspec
import uvloop

from bench._gateway_load import ORDER, _head, _HttpConn

REPORT_TIMEOUT = 5.0  # seconds for one order's 202 and report

_decode = msgspec.json.decode


def report_clordid(payload: bytes) -> str | None:
    """ClOrdID of the ExecutionReport in a pushed frame, or None (other frames).

    The gateway pushes ``{"type": "message", "message": {"Header": {"MsgType": "8", ...},
    "Body": {"ClOrdID": ...}}}``; the naive peer and the bare handler push
    ``{"type": "report", "ClOrdID": ...}``.
    """
    try:
        frame = _decode(payload)
    except msgspec.DecodeError:
        return None
    if not isinstance(frame, dict):
        return None
    kind = frame.get("type")
    if kind == "message":
        msg = frame.get("message") or {}
        if (msg.get("Header") or {}).get("MsgType") != "8":
            return None
        return (msg.get("Body") or {}).get("ClOrdID")
    if kind == "report":
        return frame.get("ClOrdID")
    return None


async def round_trips(rest_port: int, ws_url: str, key: str | None, n: int, warmup: int,
                      tag: str) -> dict[str, Any]:
    """``warmup`` + ``n`` orders one after the other; the samples of the last ``n``."""
    from picows import WSListener, WSMsgType, ws_connect

    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future[int]] = {}

    class Reader(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != WSMsgType.TEXT:
                return
            now = time.perf_counter_ns()
            fut = waiting.pop(report_clordid(frame.get_payload_as_bytes()) or "", None)
            if fut is not None and not fut.done():
                fut.set_result(now)

    answer: asyncio.Future[tuple[int, int]] = loop.create_future()

    def on_done(_conn: _HttpConn, status: int) -> None:
        if not answer.done():
            answer.set_result((time.perf_counter_ns(), status))

    ws, _ = await ws_connect(Reader, ws_url, extra_headers={"X-API-Key": key} if key else None)
    _, conn = await loop.create_connection(lambda: _HttpConn(on_done), "127.0.0.1", rest_port)
    await conn.ready
    head = _head(rest_port, key)
    to_report: list[float] = []
    to_202: list[float] = []
    missing = 0
    try:
        for i in range(warmup + n):
            cl = f"{tag}-{i}"
            report = waiting[cl] = loop.create_future()
            answer = loop.create_future()
            t0 = time.perf_counter_ns()
            conn.post(head, ORDER % cl.encode())
            t_202, status = await asyncio.wait_for(answer, REPORT_TIMEOUT)
            if status != 202:
                raise RuntimeError(f"order {cl} answered {status}, not 202")
            try:
                t_report = await asyncio.wait_for(report, REPORT_TIMEOUT)
            except TimeoutError:
                waiting.pop(cl, None)
                if i >= warmup:
                    missing += 1
                continue
            if i >= warmup:
                to_report.append((t_report - t0) / 1e3)
                to_202.append((t_202 - t0) / 1e3)
    finally:
        ws.disconnect()
        if conn.transport is not None:
            conn.transport.close()
    return {"post_to_report_us": to_report, "post_to_202_us": to_202, "missing": missing}


def main(argv: list[str]) -> int:
    if len(argv) != 6:
        print("usage: python -m bench.e2e.client REST_PORT WS_URL KEY N WARMUP TAG", file=sys.stderr)
        return 2
    port, url, key, n, warmup, tag = argv
    res = uvloop.run(round_trips(int(port), url, None if key == "-" else key, int(n), int(warmup), tag))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
