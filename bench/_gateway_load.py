"""Load harness of the order gateway benchmarks (``test_gateway_bench.py``, ``gateway_gate.py``).

Processes: the gateway (FIX initiator) and, for comparison, a trivial granian
RSGI + msgspec handler, each in a process of its own; the load (``wrk`` with
``gateway_orders.lua``, or a Python client when wrk is missing) in another;
this process runs the FIX hub double (a fastfix acceptor that takes the
orders) and the WebSocket reader. On a machine with two or more CPUs the
server under test (all its threads) is pinned to the last CPU and everything
else to the others, so the gateway and the bare handler get the same single
core in the same run (``GATEWAY_BENCH_PIN=0`` leaves placement to the OS).

``python bench/_gateway_load.py rate PORT KEY RATE SECONDS TAG`` is the open-loop
client of the latency phase: POSTs at a fixed rate, then prints one JSON line
with the send time (``time.perf_counter_ns``, CLOCK_MONOTONIC, comparable across
processes) of each ClOrdID.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from server._service import stop_process

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:  # bench.loadgen, when this file runs as a script
    sys.path.insert(0, str(REPO))
LUA = BENCH / "gateway_orders.lua"
KEY = "key-bench-0123456789"
CONNECTIONS = 32
# Closed-loop throughput is a server's ceiling only with enough requests in flight, and the
# bare handler needs more than the gateway: pinned to one core it answered 18-25k requests/s
# over 32 connections and 31-42k over 128 or 256 (granian answers more of them per thread
# wake-up), while the gateway went from 10-14k to 10-15k. Each server is measured at every
# level and keeps its best, so the ratio compares ceilings.
THROUGHPUT_CONNECTIONS = (32, 128)
MAX_OPEN = 256  # connections the fixed-rate client may open when the server falls behind

BASELINE = r'''
import socket, msgspec, uvloop
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
HDR = [("content-type", "application/json")]

async def app(scope, proto):
    o = dec.decode(await proto())
    proto.response_bytes(202, HDR, enc.encode({"ClOrdID": o.ClOrdID, "state": "PendingNew"}))

class S(Server):
    def _init_shared_socket(self):
        self._shd = SocketHolder(sock.detach(), False, 1024); self._sfd = self._shd.get_fd(); self._ssp = None

sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(1024)
print(sock.getsockname()[1], flush=True)
async def main():
    await S(app, port=sock.getsockname()[1], interface=Interfaces.RSGI, log_level=LogLevels.warning).serve()
uvloop.run(main())
'''

ORDER = (b'{"ClOrdID":"%s","DeliverToCompID":"BRKA","Symbol":"005930","Side":"1","OrdType":"2",'
         b'"OrderQty":"10","Price":"70000"}')


# --------------------------------------------------------------------------- CPUs


_START_CPUS = frozenset(os.sched_getaffinity(0))  # before run() narrows this process to the load CPUs


def cpu_plan() -> tuple[set[int] | None, set[int] | None]:
    """(CPUs of the server under test, CPUs of the load), or (None, None) to leave it to the OS
    (``GATEWAY_BENCH_PIN=0``, or a single CPU)."""
    if os.environ.get("GATEWAY_BENCH_PIN", "1") == "0":
        return None, None
    cpus = sorted(_START_CPUS)
    if len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of ``pid`` (granian starts threads of its own)."""
    if cpus is None:
        return
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


# --------------------------------------------------------------------------- hub double


def _hub_classes() -> Any:
    from fastfix.engine import Application

    class SinkHub(Application):
        """Takes the gateway's orders: counts them; when ``track``, stamps each ClOrdID's
        arrival; when ``ack``, answers each with an ExecutionReport New (stamped as sent)."""

        def __init__(self) -> None:
            self.count = 0
            self.track = False
            self.ack = False
            self.t_fix: dict[bytes, int] = {}
            self.t_er: dict[bytes, int] = {}
            self._ids = 0

        def from_app(self, msg: Any, session_id: Any) -> None:
            if msg.msg_type != b"D":
                return
            self.count += 1
            if self.track:
                self.t_fix[msg[11]] = time.perf_counter_ns()
            if self.ack:
                # Sent on the next loop pass, outside the engine's read batch, so the
                # stamp is taken right before the bytes reach the socket.
                asyncio.get_running_loop().call_soon(
                    self._answer, session_id, msg[11], msg[128], msg[55], msg[54], msg[38], msg[40],
                    msg.get(44))

        def _answer(self, sid: Any, cl: bytes, broker: bytes, sym: bytes, side: bytes, qty: bytes,
                    ord_type: bytes, px: bytes | None) -> None:
            self._ids += 1
            fields: list[tuple[int, Any]] = [
                (115, broker), (37, b"O%d" % self._ids), (11, cl), (17, b"X%d" % self._ids), (150, b"0"),
                (39, b"0"), (55, sym), (54, side), (38, qty), (40, ord_type)]
            if px is not None:
                fields.append((44, px))
            fields += [(151, qty), (14, b"0"), (6, b"0"), (60, b"20240102-09:00:00")]
            if self.track:
                self.t_er[cl] = time.perf_counter_ns()
            assert self.engine is not None
            self.engine.session(sid).send("8", fields)

    return SinkHub


def hub_settings() -> Any:
    from fastfix.settings import SessionSettings

    return SessionSettings.from_string("""
[DEFAULT]
ConnectionType=acceptor
SocketAcceptPort=0
SocketAcceptAddress=127.0.0.1
StartTime=00:00:00
EndTime=00:00:00
HeartBtInt=30
UseDataDictionary=N
[SESSION]
BeginString=FIX.4.4
SenderCompID=HUB
TargetCompID=GATEWAY
""")


def gateway_fix_settings(hub_port: int, sync: str | None = None, target: str = "HUB") -> str:
    """QuickFIX-style settings of the gateway's FIX initiator to the hub double on ``hub_port``
    (``sync``: its FileStoreSync, else the store's default; ``target``: the peer's CompID)."""
    return f"""[DEFAULT]
ConnectionType=initiator
SocketConnectHost=127.0.0.1
SocketConnectPort={hub_port}
StartTime=00:00:00
EndTime=00:00:00
HeartBtInt=30
ReconnectInterval=1
FileStorePath=fixstore
{f"FileStoreSync={sync}" if sync else ""}
[SESSION]
BeginString=FIX.4.4
SenderCompID=GATEWAY
TargetCompID={target}
"""


def gateway_files(workdir: Path, hub_port: int, target: str = "HUB") -> Path:
    """Gateway TOML + FIX settings for one client ``bench`` and broker BRKA (reached through the
    only FIX session, to the peer ``target``); returns the TOML path."""
    (workdir / "gw.cfg").write_text(gateway_fix_settings(hub_port, sync="batch", target=target))
    toml = workdir / "gw.toml"
    toml.write_text(f"""
[gateway]
rest_port = 0
ws_port = 0
link = "fix"
fix_settings = "gw.cfg"
database = "gw.db"
ports_file = "ports.json"
tick_size = "krx"
log_level = "warning"

[[brokers]]
id = "BRKA"
name = "Broker A"

[[clients]]
id = "bench"
api_key_sha256 = "{hashlib.sha256(KEY.encode()).hexdigest()}"
rate = 10000000
burst = 10000000
""")
    return toml


class Server:
    """A server process under test (gateway or bare handler) and its REST port."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, ws_port: int = 0) -> None:
        self.proc = proc
        self.port = port
        self.ws_port = ws_port

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc.stdout is not None:  # the bare handler's port line
            self.proc.stdout.close()


async def start_gateway(workdir: Path, hub_port: int, cpus: set[int] | None,
                        env: dict[str, str] | None = None, target: str = "HUB") -> Server:
    toml = gateway_files(workdir, hub_port, target)
    ports = workdir / "ports.json"
    ports.unlink(missing_ok=True)
    log = open(workdir / "gateway.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "fastfix.cli", "gateway", "--config", str(toml)],
                            cwd=workdir, stdout=log, stderr=log,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    log.close()
    for _ in range(3000):
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {(workdir / 'gateway.log').read_text()[-2000:]}")
        if ports.exists():
            try:
                p = json.loads(ports.read_text())
                srv = Server(proc, p["rest"], p["ws"])
                break
            except (ValueError, KeyError):
                pass
        await asyncio.sleep(0.01)
    else:
        proc.kill()
        raise TimeoutError("gateway did not start")
    pin(proc.pid, cpus)
    return srv


async def start_baseline(cpus: set[int] | None) -> Server:
    """The trivial granian RSGI + msgspec handler (``BASELINE``), answering, pinned to ``cpus``."""
    proc = subprocess.Popen([sys.executable, "-c", BASELINE], stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
        srv = Server(proc, int(line))
        # granian starts its threads after printing the port: pinned once it answers
        await wait_ready(srv.port, "/", any_status=True)
    except BaseException:
        stop_process(proc)
        raise
    pin(proc.pid, cpus)
    return srv


async def wait_ready(port: int, path: str = "/readyz", timeout: float = 15.0, any_status: bool = False) -> None:
    """Until ``path`` answers 200 (or anything, with ``any_status``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            line = await asyncio.wait_for(r.readline(), 2)
            w.close()
            if line.startswith(b"HTTP/") and (any_status or line.split()[1:2] == [b"200"]):
                return
        except (OSError, TimeoutError, IndexError):
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"port {port} not ready")


# --------------------------------------------------------------------------- closed-loop load


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


async def wrk(port: int, seconds: float, tag: str, key: str | None, cpus: set[int] | None,
              connections: int = CONNECTIONS) -> dict[str, Any]:
    """One wrk run; returns its JSON summary with ``rate`` = 202 answers per second."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(LUA),
            f"http://127.0.0.1:{port}", "--", tag] + ([key] if key else [])
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    if cpus is not None:
        pin(proc.pid, cpus)
    out, err = await proc.communicate()
    lines = [ln for ln in out.decode().splitlines() if ln.startswith('{"wrk"')]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed: {out.decode()[-1000:]} {err.decode()[-1000:]}")
    res = json.loads(lines[-1])
    res["rate"] = res["accepted"] / res["seconds"]
    return res


async def py_load(port: int, seconds: float, tag: str, key: str | None, cpus: set[int] | None,
                  connections: int = CONNECTIONS) -> dict[str, Any]:
    """The same closed loop without wrk: a Python client process (slower: the client may limit)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / "_gateway_load.py"), "closed", str(port), key or "-", str(seconds), tag,
        str(connections), stdout=asyncio.subprocess.PIPE, cwd=REPO)
    if cpus is not None:
        pin(proc.pid, cpus)
    out, _ = await proc.communicate()
    res = json.loads(out.decode().strip().splitlines()[-1])
    res["rate"] = res["accepted"] / res["seconds"]
    return res


async def closed_loop(port: int, seconds: float, tag: str, key: str | None, cpus: set[int] | None,
                      connections: int = CONNECTIONS) -> dict[str, Any]:
    if have_wrk():
        return await wrk(port, seconds, tag, key, cpus, connections)
    return await py_load(port, seconds, tag, key, cpus, connections)


async def closed_loop_cpu(srv: Server, seconds: float, tag: str, key: str | None,
                          cpus: set[int] | None, connections: int = CONNECTIONS) -> dict[str, Any]:
    """:func:`closed_loop` against ``srv``, with the server's CPU during it (``res["cpu"]``, see
    ``bench.loadgen.run.cpu_split``): the process, and its event-loop thread apart."""
    from bench.loadgen.run import cpu_seconds, cpu_split

    pid = srv.proc.pid
    before = (cpu_seconds(pid), cpu_seconds(pid, pid))
    t0 = time.perf_counter()
    res = await closed_loop(srv.port, seconds, tag, key, cpus, connections)
    after = (cpu_seconds(pid), cpu_seconds(pid, pid))
    res["cpu"] = cpu_split(before, after, time.perf_counter() - t0, res["accepted"])
    return res


# --------------------------------------------------------------------------- Python clients


class _HttpConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time (Content-Length answers)."""

    def __init__(self, on_done: Any) -> None:
        self.on_done = on_done
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            i = head.lower().find(b"content-length:")
            n = int(head[i + 15:].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(self.buf) < end + 4 + n:
                return
            status = int(head[9:12])
            self.buf = self.buf[end + 4 + n:]
            self.on_done(self, status)

    def post(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(head + b"%d\r\n\r\n" % len(body) + body)


def _head(port: int, key: str | None) -> bytes:
    h = f"POST /v1/orders HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
    if key:
        h += f"x-api-key: {key}\r\n"
    return (h + "content-length: ").encode()


async def _connect(port: int, n: int, on_done: Any) -> list[_HttpConn]:
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(n):
        _, c = await loop.create_connection(lambda: _HttpConn(on_done), "127.0.0.1", port)
        await c.ready
        conns.append(c)
    return conns


async def _closed(port: int, key: str | None, seconds: float, tag: str, connections: int) -> dict[str, Any]:
    head = _head(port, key)
    counts = {"accepted": 0, "other": 0}
    seq = iter(range(1 << 62))
    deadline = 0.0

    def on_done(c: _HttpConn, status: int) -> None:
        counts["accepted" if status == 202 else "other"] += 1
        if time.perf_counter() < deadline:
            c.post(head, ORDER % f"{tag}-{next(seq)}".encode())
        else:
            stopped.add(c)
            if len(stopped) == len(conns):
                done.set_result(None)

    stopped: set[_HttpConn] = set()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    conns = await _connect(port, connections, on_done)
    t0 = time.perf_counter()
    deadline = t0 + seconds
    for c in conns:
        c.post(head, ORDER % f"{tag}-{next(seq)}".encode())
    await asyncio.wait_for(done, seconds + 30)
    return {"requests": counts["accepted"] + counts["other"], "accepted": counts["accepted"],
            "other_status": counts["other"], "seconds": time.perf_counter() - t0}


async def _rate(port: int, key: str | None, rate: float, seconds: float, tag: str) -> dict[str, Any]:
    """Open loop: request i is due at t0 + i/rate; sent on a free connection (a new one is
    opened if all are busy, so a slow server cannot slow the sender down). Paced to the
    microsecond (``bench.loadgen.pacer``), so orders arrive evenly spaced, not in bursts."""
    from bench.loadgen.pacer import Pacer

    loop = asyncio.get_running_loop()
    head = _head(port, key)
    free: list[_HttpConn] = []
    counts = {"accepted": 0, "other": 0}
    sent: dict[str, int] = {}
    total = int(rate * seconds)

    answered: dict[str, int] = {}
    in_flight: dict[_HttpConn, str] = {}

    def on_done(c: _HttpConn, status: int) -> None:
        counts["accepted" if status == 202 else "other"] += 1
        answered[in_flight.pop(c)] = time.perf_counter_ns()
        free.append(c)

    free.extend(await _connect(port, 16, on_done))
    opened, late = 16, 0
    pacer = Pacer()
    t0 = time.perf_counter()
    t0_ns = time.perf_counter_ns()
    interval_ns = 1e9 / rate
    i = 0
    deadline = time.perf_counter() + seconds * 3 + 10
    try:
        while i < total and time.perf_counter() < deadline:
            due = min(total, int((time.perf_counter_ns() - t0_ns) / interval_ns) + 1)
            while i < due:
                if not free:
                    if opened >= MAX_OPEN:
                        late += 1  # the server is this far behind: wait for an answer (bounded)
                        break
                    _, c = await loop.create_connection(lambda: _HttpConn(on_done), "127.0.0.1", port)
                    await c.ready
                    free.append(c)
                    opened += 1
                c = free.pop()
                if c.transport is None:
                    continue
                cl = f"{tag}{i}"
                in_flight[c] = cl
                sent[cl] = time.perf_counter_ns()
                c.post(head, ORDER % cl.encode())
                i += 1
            # all due sent: until the next due time; else (no free connection) a millisecond on
            await pacer.until(t0_ns + int(i * interval_ns) if i >= due else time.perf_counter_ns() + 1_000_000)
    finally:
        pacer.close()
    for _ in range(1000):
        if counts["accepted"] + counts["other"] >= total:
            break
        await asyncio.sleep(0.01)
    return {"sent": sent, "answered": answered, "accepted": counts["accepted"], "other_status": counts["other"],
            "seconds": time.perf_counter() - t0, "late_ticks": late}


async def fixed_rate(port: int, key: str, rate: float, seconds: float, tag: str,
                     cpus: set[int] | None) -> dict[str, Any]:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BENCH / "_gateway_load.py"), "rate", str(port), key, str(rate), str(seconds),
            tag, f.name, cwd=REPO)
        if cpus is not None:
            pin(proc.pid, cpus)
        try:
            rc = await asyncio.wait_for(proc.wait(), seconds * 3 + 60)
        except TimeoutError:
            proc.kill()
            raise
        if rc != 0:
            raise RuntimeError(f"fixed-rate client failed ({rc})")
        return json.loads(Path(f.name).read_bytes())


# --------------------------------------------------------------------------- WebSocket reader


async def ws_reader(port: int, key: str) -> Any:
    """A picows subscriber that stamps each pushed frame; ``.frames`` is [(ns, bytes)]."""
    from picows import WSListener, WSMsgType, ws_connect

    class Reader(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.frames: list[tuple[int, bytes]] = []

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                self.frames.append((time.perf_counter_ns(), frame.get_payload_as_bytes()))

    transport, reader = await ws_connect(Reader, f"ws://127.0.0.1:{port}/v1/stream",
                                         extra_headers={"X-API-Key": key})
    reader.transport = transport
    return reader


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))] if s else float("nan")


# --------------------------------------------------------------------------- scenario


def _deltas(start: dict[str, int], end: dict[str, int]) -> list[float]:
    """Microseconds from ``start`` to ``end`` of each key in both."""
    return [(end[k] - t) / 1e3 for k, t in start.items() if k in end]


def _percentiles(out: dict[str, Any], name: str, values: list[float]) -> None:
    for p in (0.5, 0.99, 0.999):
        v = pct(values, p)
        out[f"{name}_p{str(p * 100).rstrip('0').rstrip('.').replace('.', '')}_us"] = None if v != v else round(v)


async def _timed_rate(srv: Server, key: str | None, rate: float, seconds: float, tag: str,
                      cpus: set[int] | None) -> tuple[dict[str, Any], float]:
    """A fixed-rate run against ``srv`` and the server's CPU time per request during it (µs)."""
    from bench.loadgen.run import cpu_seconds

    before = cpu_seconds(srv.proc.pid)
    res = await fixed_rate(srv.port, key or "-", rate, seconds, tag, cpus)
    after = cpu_seconds(srv.proc.pid)
    requests = max(1, len(res["answered"]))
    return res, (round((after - before) / requests * 1e6, 1) if before is not None and after is not None
                 else float("nan"))


async def run(workdir: Path, rounds: int = 3, seconds: float = 3.0, latency_rate: float = 0.0,
              latency_seconds: float = 3.0, acked: bool = False,
              gateway_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Throughput of the gateway and of the bare handler (best of ``rounds`` alternating runs),
    then, if ``latency_rate``, latencies at that fixed rate with every order acknowledged."""
    from fastfix.engine import Acceptor

    server_cpus, load_cpus = cpu_plan()
    if load_cpus is not None:
        os.sched_setaffinity(0, load_cpus)
    hub = _hub_classes()()
    acceptor = Acceptor(hub_settings(), hub, host="127.0.0.1", port=0)
    await acceptor.start()
    gw: Server | None = None
    base: Server | None = None
    out: dict[str, Any] = {"client": "wrk" if have_wrk() else "python",
                           "connections": list(THROUGHPUT_CONNECTIONS),
                           "pinned": server_cpus is not None}
    try:
        gw = await start_gateway(workdir, acceptor.port, server_cpus, gateway_env)
        await wait_ready(gw.port)
        base = await start_baseline(server_cpus)
        run_id = f"{os.getpid()}x{int(time.time())}"
        await closed_loop(gw.port, 1, f"w{run_id}", KEY, load_cpus)  # warm-up
        await closed_loop(base.port, 1, "w", None, load_cpus)
        gw_rates: list[float] = []
        base_rates: list[float] = []
        gw_best: dict[int, float] = {}
        base_best: dict[int, float] = {}
        for r in range(rounds):
            for conns in THROUGHPUT_CONNECTIONS:
                before = hub.count
                res = await closed_loop_cpu(gw, seconds, f"t{r}c{conns}{run_id}", KEY, load_cpus, conns)
                for _ in range(200):  # the last orders may still be on their way to the hub
                    if hub.count - before >= res["accepted"]:
                        break
                    await asyncio.sleep(0.01)
                if res["other_status"] or res.get("socket_errors"):
                    raise RuntimeError(f"gateway answered other than 202: {res}")
                if hub.count - before < res["accepted"]:
                    raise RuntimeError(f"hub got {hub.count - before} orders for {res['accepted']} answers")
                if not gw_rates or res["rate"] > max(gw_rates):
                    out["gateway_cpu"] = res["cpu"]  # of the best run, as the figure kept
                    out["gateway_connections"] = conns
                gw_rates.append(res["rate"])
                gw_best[conns] = max(gw_best.get(conns, 0.0), res["rate"])
                bres = await closed_loop_cpu(base, seconds, "b", None, load_cpus, conns)
                if not base_rates or bres["rate"] > max(base_rates):
                    out["baseline_cpu"] = bres["cpu"]
                    out["baseline_connections"] = conns
                base_rates.append(bres["rate"])
                base_best[conns] = max(base_best.get(conns, 0.0), bres["rate"])
        out["gateway_orders_per_s_runs"] = [round(x) for x in gw_rates]
        out["baseline_req_per_s_runs"] = [round(x) for x in base_rates]
        out["gateway_orders_per_s_by_connections"] = {c: round(v) for c, v in gw_best.items()}
        out["baseline_req_per_s_by_connections"] = {c: round(v) for c, v in base_best.items()}
        out["gateway_orders_per_s"] = round(max(gw_rates))
        out["baseline_req_per_s"] = round(max(base_rates))
        out["ratio"] = round(max(gw_rates) / max(base_rates), 3)
        if latency_rate:
            # The bare handler first, at the same rate with the same client and placement:
            # what this machine gives a trivial handler (its thread wake-ups, the client),
            # the floor beside which the gateway's latencies read.
            res, cpu_us = await _timed_rate(base, None, latency_rate, latency_seconds, "b", load_cpus)
            _percentiles(out, "bare_post_to_answer", _deltas(res["sent"], res["answered"]))
            out["bare_cpu_us_per_request"] = cpu_us
        base.stop()
        base = None
        if latency_rate:
            # Orders only: the gateway keeps its core, load and hub stay on the other, as when
            # they run on other machines (unpinned, a trivial handler's own p99 reached 10 ms here).
            hub.track = True
            reader = await ws_reader(gw.ws_port, KEY)
            prefix = b"bench:"
            # 1) orders only (the hub does not answer): POST sent -> 202 read, -> NewOrderSingle at the hub
            hub.ack = False
            res, cpu_us = await _timed_rate(gw, KEY, latency_rate, latency_seconds, f"n{run_id}-", load_cpus)
            out["gateway_cpu_us_per_order"] = cpu_us
            _percentiles(out, "post_to_answer", _deltas(res["sent"], res["answered"]))
            await asyncio.sleep(0.2)
            sent = {prefix + k.encode(): v for k, v in res["sent"].items()}
            _percentiles(out, "rest_to_fix", [(hub.t_fix[k] - sent[k]) / 1e3 for k in sent if k in hub.t_fix])
            # 2) every order acknowledged (ExecutionReport New) and pushed on the WebSocket: the
            # gateway on all CPUs (on one, the reports' work on top of the orders' fills it at 5,000/s)
            _unpin(gw)
            load_cpus = None
            hub.ack = True
            reader.frames.clear()
            res, _ = await _timed_rate(gw, KEY, latency_rate, latency_seconds, f"l{run_id}-", load_cpus)
            await asyncio.sleep(0.2)
            t_ws: dict[bytes, int] = {}
            for ns, data in reader.frames:
                frame = json.loads(data)
                if frame.get("type") == "message":
                    t_ws[prefix + frame["message"]["Body"]["ClOrdID"].encode()] = ns
            sent = {prefix + k.encode(): v for k, v in res["sent"].items()}
            keys = [k for k in sent if k in hub.t_fix and k in hub.t_er and k in t_ws]
            out["latency_rate"] = latency_rate
            out["latency_samples"] = len(keys)
            out["latency_sent"] = len(sent)
            out["latency_client_late_ticks"] = res.get("late_ticks", 0)
            _percentiles(out, "rest_to_fix_acked", [(hub.t_fix[k] - sent[k]) / 1e3 for k in keys])
            _percentiles(out, "er_to_ws", [(t_ws[k] - hub.t_er[k]) / 1e3 for k in keys])
            _percentiles(out, "post_to_ws", [(t_ws[k] - sent[k]) / 1e3 for k in keys])
            reader.transport.disconnect()
        if acked:
            # Every order acknowledged and pushed, closed loop, the gateway on all CPUs (the hub
            # and the clients share them).
            _unpin(gw)
            load_cpus = None
            hub.ack = True
            reader = await ws_reader(gw.ws_port, KEY)
            res = await closed_loop(gw.port, seconds, f"a{run_id}", KEY, load_cpus)
            out["gateway_orders_per_s_acked"] = round(res["rate"])
            reader.transport.disconnect()
    finally:
        for s in (gw, base):
            if s is not None:
                s.stop()
        await acceptor.stop()
        os.sched_setaffinity(0, _START_CPUS)
    return out


def _unpin(srv: Server) -> None:
    """The server and this process (the load's parent) back on every CPU."""
    if srv.proc.poll() is None:
        pin(srv.proc.pid, set(_START_CPUS))
    os.sched_setaffinity(0, _START_CPUS)


def _main(argv: list[str]) -> None:
    import uvloop

    mode = argv[0]
    if mode == "run":  # a quick look: python bench/_gateway_load.py run DIR [ROUNDS SECONDS RATE]
        import tempfile

        d = Path(tempfile.mkdtemp(dir=argv[1] if argv[1] != "-" else None))
        nums = [float(a) for a in argv[2:]] + [3, 3, 5000][len(argv) - 2:]
        print(json.dumps(uvloop.run(run(d, int(nums[0]), nums[1], nums[2], acked=True)), indent=1))
        return
    port, key = int(argv[1]), argv[2]
    k = None if key == "-" else key
    if mode == "closed":
        res = uvloop.run(_closed(port, k, float(argv[3]), argv[4], int(argv[5])))
    else:
        res = uvloop.run(_rate(port, k, float(argv[3]), float(argv[4]), argv[5]))
        Path(argv[6]).write_text(json.dumps(res))
        return
    print(json.dumps(res))


if __name__ == "__main__":
    _main(sys.argv[1:])
