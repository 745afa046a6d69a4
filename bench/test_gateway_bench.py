"""Order gateway: REST orders/s into FIX, latencies REST->FIX and ER->WebSocket.

The gateway runs in its own process (FIX initiator to a hub double); this
process is the load (keep-alive HTTP/1.1 connections), the hub double (fastfix
acceptor, answers each order with an ExecutionReport New) and a WebSocket
subscriber. A trivial granian RSGI + msgspec handler, driven by the same client
in the same run, gives the ratio to a bare REST stack.

Figures (``extra_info`` and printed): ``gateway_orders_per_s``, ``baseline_req_per_s``,
``ratio``; sequential latencies ``rest_to_fix`` (POST sent -> NewOrderSingle at the
hub), ``er_to_ws`` (ExecutionReport sent by the hub -> pushed frame received),
``post_to_ws`` (POST sent -> its report on the WebSocket), as p50/p99 in µs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gateway"))

from _fix_hub import HubDouble, _Order, acceptor_settings, initiator_settings_text  # noqa: E402
from _gateway_harness import KEYS, REPO, GatewayProcess, Http, gateway_toml, order, ws_connect  # noqa: E402

from fastfix.engine import Acceptor  # noqa: E402

CONCURRENCY = 32
THROUGHPUT_ORDERS = int(os.environ.get("GATEWAY_BENCH_ORDERS", "6000"))
LATENCY_ORDERS = int(os.environ.get("GATEWAY_BENCH_LATENCY_ORDERS", "1500"))

_BASELINE = r'''
import asyncio, socket, sys, msgspec, uvloop
from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server
from granian._granian import SocketHolder

class Order(msgspec.Struct):
    ClOrdID: str
    Symbol: str
    Side: str
    OrdType: str
    OrderQty: str
    Price: str | None = None
    DeliverToCompID: str | None = None

dec = msgspec.json.Decoder(Order)
enc = msgspec.json.Encoder()

async def app(scope, proto):
    o = dec.decode(await proto())
    proto.response_bytes(202, [("content-type", "application/json")],
                         enc.encode({"ClOrdID": o.ClOrdID, "state": "PendingNew"}))

class S(Server):
    def _init_shared_socket(self):
        self._shd = SocketHolder(sock.detach(), False, 1024); self._sfd = self._shd.get_fd(); self._ssp = None

sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(1024)
print(sock.getsockname()[1], flush=True)
async def main():
    await S(app, port=sock.getsockname()[1], interface=Interfaces.RSGI, log_level=LogLevels.warning).serve()
uvloop.run(main())
'''


class _TimedHub(HubDouble):
    """Hub double that timestamps each NewOrderSingle and the report it sends back."""

    def __init__(self) -> None:
        super().__init__()
        self.t_fix: dict[str, int] = {}
        self.t_er: dict[str, int] = {}

    def _new(self, f: dict[int, str]) -> None:
        cl = f[11].partition(":")[2]
        self.t_fix[cl] = time.perf_counter_ns()
        o = self.orders[f[11]] = _Order(f, "OID")
        self.t_er[cl] = time.perf_counter_ns()
        self.er(o, "0", "0")


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


async def _load(port: int, key: str | None, n: int, prefix: str) -> float:
    """Closed-loop load: CONCURRENCY keep-alive connections, n POSTs in all; returns requests/s."""
    counter = iter(range(n))

    async def worker(w: int) -> None:
        async with Http(port, key) as h:
            for i in counter:
                body = json.dumps(order(f"{prefix}{i}")).encode()
                status, _, data = await h.raw("POST", "/v1/orders", body)
                assert status == 202, data

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    return n / (time.perf_counter() - t0)


async def _scenario(tmp: Path) -> dict[str, Any]:
    hub = _TimedHub()
    acceptor = Acceptor(acceptor_settings(tmp), hub, host="127.0.0.1", port=0)
    await acceptor.start()
    (tmp / "gw.cfg").write_text(initiator_settings_text(acceptor.port))
    clients = f"""
[[clients]]
id = "alpha"
api_key_sha256 = "{__import__('hashlib').sha256(KEYS['alpha'].encode()).hexdigest()}"
rate = 1000000
burst = 1000000
"""
    gw = GatewayProcess(tmp, gateway_toml(link="fix", fix_settings="gw.cfg", clients=clients))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, gw.start)
    base: subprocess.Popen[bytes] | None = None
    try:
        async with Http(gw.rest) as h:
            for _ in range(500):
                if (await h.call("GET", "/readyz"))[0] == 200:
                    break
                await asyncio.sleep(0.02)
        ws = await ws_connect(gw.ws, KEYS["alpha"])
        t_ws: dict[str, int] = {}
        arrived: dict[str, asyncio.Event] = {}

        async def reader() -> None:
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "message":
                    cl = frame["message"]["Body"]["ClOrdID"]
                    t_ws[cl] = time.perf_counter_ns()
                    ev = arrived.get(cl)
                    if ev is not None:
                        ev.set()

        rtask = loop.create_task(reader())
        await _load(gw.rest, KEYS["alpha"], 500, "w")  # warm-up
        gw_rate = await _load(gw.rest, KEYS["alpha"], THROUGHPUT_ORDERS, "t")

        # sequential latencies
        t_post: dict[str, int] = {}
        async with Http(gw.rest, KEYS["alpha"]) as h:
            for i in range(LATENCY_ORDERS):
                cl = f"l{i}"
                body = json.dumps(order(cl)).encode()
                ev = arrived[cl] = asyncio.Event()
                t_post[cl] = time.perf_counter_ns()
                status, _, _ = await h.raw("POST", "/v1/orders", body)
                assert status == 202
                await asyncio.wait_for(ev.wait(), 10)  # its report, before the next order
        rtask.cancel()
        await ws.close()
        keys = [k for k in t_post if k in t_ws and k in hub.t_fix]
        rest_fix = [(hub.t_fix[k] - t_post[k]) / 1e3 for k in keys]
        er_ws = [(t_ws[k] - hub.t_er[k]) / 1e3 for k in keys]
        post_ws = [(t_ws[k] - t_post[k]) / 1e3 for k in keys]

        # the bare REST stack, same client
        base = subprocess.Popen([sys.executable, "-c", _BASELINE], stdout=subprocess.PIPE, cwd=REPO)
        assert base.stdout is not None
        port = int(await loop.run_in_executor(None, base.stdout.readline))
        for _ in range(500):
            try:
                await _load(port, None, 1, "probe")
                break
            except OSError:
                await asyncio.sleep(0.02)
        await _load(port, None, 500, "w")
        base_rate = await _load(port, None, THROUGHPUT_ORDERS, "b")
    finally:
        if base is not None:
            base.send_signal(signal.SIGTERM)
            try:
                base.wait(10)
            except subprocess.TimeoutExpired:
                base.kill()
        await loop.run_in_executor(None, gw.stop)
        await acceptor.stop()
    return {
        "gateway_orders_per_s": round(gw_rate),
        "baseline_req_per_s": round(base_rate),
        "ratio": round(gw_rate / base_rate, 3),
        "rest_to_fix_p50_us": round(_pct(rest_fix, 0.5)), "rest_to_fix_p99_us": round(_pct(rest_fix, 0.99)),
        "er_to_ws_p50_us": round(_pct(er_ws, 0.5)), "er_to_ws_p99_us": round(_pct(er_ws, 0.99)),
        "post_to_ws_p50_us": round(_pct(post_ws, 0.5)), "post_to_ws_p99_us": round(_pct(post_ws, 0.99)),
        "latency_samples": len(keys),
    }


def test_gateway_rest_to_fix(benchmark: Any, tmp_path: Path) -> None:
    result: dict[str, Any] = {}

    def once() -> None:
        result.update(asyncio.run(asyncio.wait_for(_scenario(tmp_path), 600)))

    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print("\norder gateway:", json.dumps(result))
    assert result["latency_samples"] > LATENCY_ORDERS * 0.9
