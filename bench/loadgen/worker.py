"""One load process: keep-alive HTTP/1.1 connections, a schedule, WebSocket readers.

The HTTP client is a plain ``asyncio.Protocol`` on uvloop: one request in flight
per connection (no pipelining), request bytes built once per request, responses
framed by Content-Length only (the gateway always sends it). It costs a few µs
of CPU per request, which leaves the core to the gateway; ``aiohttp`` costs
about 9 times more per request and ``httpx`` far more
(``python -m bench.loadgen.clientcost`` measures them).

Schedules:

* open loop (``rate > 0``): request *i* is due at ``start + i / rate`` whatever
  happened to the others; it goes out on an idle connection or waits in a
  backlog for one. Latencies are measured from the due time (so a stalled
  gateway shows up in the figures instead of slowing the load down:
  no coordinated omission), and also from the moment the bytes were written;
* closed loop (``rate == 0``): every connection sends its next request as soon
  as it has the answer to the previous one (the throughput ceiling).

Every new order is followed to its first frame on the client's WebSocket (picows).
All times are ``time.perf_counter_ns`` (CLOCK_MONOTONIC, comparable with the
gateway's trace timestamps on the same host).
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.parse
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bench.loadgen.pacer import Pacer
from bench.loadgen.scenario import OPS, Scenario, krx_tick

__all__ = ["WorkerConfig", "Worker", "worker_main", "KINDS"]

_clock = time.perf_counter_ns
_enc = msgspec.json.Encoder()

# Latency kinds recorded per request kind: due->answer, written->answer, due->first WS frame, written->frame.
KINDS = ("rest", "rest_service", "ack", "ack_service")
_LIMIT, _MARKET, _CANCEL, _REPLACE, _LIST, _QUERY = range(len(OPS))
# request record layout
_T_DUE, _T_SENT, _OP, _CL, _CLIENT, _DATA, _EXTRA = range(7)
# ack record layout
_A_DUE, _A_SENT, _A_WS, _A_OP, _A_MEASURED, _A_CLIENT = range(6)


@dataclass
class WorkerConfig:
    scenario: Scenario
    index: int
    rest_url: str
    ws_url: str  # "" for a server without the stream (the trivial handler of the floor runs)
    keys: list[str]
    rate: float  # this process's share; 0 = closed loop
    tag: str  # makes ClOrdIDs unique across runs against one gateway
    sample: int = 2000  # orders kept for the gateway trace join
    drain_seconds: float = 10.0
    timing: dict[str, int] = field(default_factory=dict)  # start_ns, measure_ns, end_ns (set at start)


class _Http(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.t: Any = None
        self.buf = bytearray()
        self.req: list[Any] | None = None
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.w.on_lost(self)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return
            j = buf.find(b"content-length:", 0, i)
            if j < 0:  # not the lower-case spelling granian uses
                head = bytes(buf[:i]).lower()
                j = head.find(b"content-length:")
            n = 0
            if j >= 0:
                k = buf.find(b"\r\n", j, i + 2)
                n = int(buf[j + 15:k if k >= 0 else i])
            end = i + 4 + n
            if len(buf) < end:
                return
            status = int(buf[9:12])
            body = bytes(buf[i + 4:end])
            del buf[:end]
            req, self.req = self.req, None
            if req is not None:
                self.w.on_response(self, req, status, body)


class _Frame(msgspec.Struct):
    type: str
    message: _Msg | None = None


class _Msg(msgspec.Struct):
    Body: _Body | None = None


class _Body(msgspec.Struct):
    ClOrdID: str | None = None


_frame = msgspec.json.Decoder(_Frame)


class Worker:
    """Sends the scenario's requests and records what happens to them."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        sc = self.sc = cfg.scenario
        self.rng = random.Random(sc.seed * 1000 + cfg.index)
        u = urllib.parse.urlsplit(cfg.rest_url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        # request heads per client, with everything but the path and the length
        self.heads = [f"host: {self.host}\r\nx-api-key: {k}\r\ncontent-type: application/json\r\n".encode()
                      for k in cfg.keys]
        self.conns: list[_Http] = []
        self.idle: deque[_Http] = deque()
        self.backlog: deque[list[Any]] = deque()
        self.open: list[list[str]] = [[] for _ in cfg.keys]  # resting orders per client (cancel/replace targets)
        self.acks: dict[str, list[Any]] = {}
        self.lat = {k: [array("q") for _ in OPS] for k in KINDS}
        self.status: dict[str, int] = {}
        self.n = 0
        self.sent = 0
        self.answered = 0
        self.answered_in_window = 0
        self.backlog_max = 0
        self.lost = 0
        self.frames = 0
        self.pending_acks = 0
        self.running = False
        self.measure_ns = 0
        self.end_ns = 0
        self._ops = self.rng.choices(range(len(OPS)), sc.weights(), k=8192)
        self._op_i = 0
        self._inflight = 0
        self._drained: asyncio.Future[None] | None = None
        self._acked: asyncio.Future[None] | None = None
        self.ws: list[Any] = []

    # ---------------------------------------------------------------- requests
    def _next_cl(self) -> str:
        self.n += 1
        return f"{self.cfg.tag}{self.cfg.index}n{self.n}"

    def _order_body(self, cl: str, market: bool) -> dict[str, Any]:
        sc, rng = self.sc, self.rng
        sym = sc.symbols[rng.randrange(len(sc.symbols))] if len(sc.symbols) > 1 else sc.symbols[0]
        body: dict[str, Any] = {"ClOrdID": cl, "Symbol": sym.code, "Side": "1" if rng.random() < 0.5 else "2",
                                "OrderQty": str(rng.randint(*sc.qty))}
        if sc.brokers:
            body["DeliverToCompID"] = sc.brokers[rng.randrange(len(sc.brokers))]
        if sc.account:
            body["Account"] = sc.account
        if market:
            body["OrdType"] = "1"
            body["Text"] = "fill"
        else:
            tick = krx_tick(sym.price)
            body["OrdType"] = "2"
            body["Price"] = str(sym.price + tick * rng.randint(-sc.max_ticks, sc.max_ticks))
            if sc.fill_ratio and rng.random() < sc.fill_ratio:
                body["Text"] = "fill"
        return body

    def _build(self, t_due: int) -> list[Any]:
        op = self._ops[self._op_i]
        self._op_i = (self._op_i + 1) & 8191
        ci = self.rng.randrange(len(self.cfg.keys)) if len(self.cfg.keys) > 1 else 0
        opens = self.open[ci]
        if op in (_CANCEL, _REPLACE, _QUERY) and not opens:
            op = _LIMIT  # nothing resting yet: place one
        extra: Any = None
        method = b"POST"
        if op in (_LIMIT, _MARKET):
            cl = self._next_cl()
            body = self._order_body(cl, op == _MARKET)
            extra = "Text" in body  # filled by the hub double: never a cancel/replace target
            path = b"/v1/orders"
        elif op == _LIST:
            cl = self._next_cl()
            entries = []
            for k in range(self.sc.list_size):
                e = self._order_body(f"{cl}L{k}", False)
                e.pop("DeliverToCompID", None)
                entries.append(e)
            body = {"ListID": cl, "NoOrders": entries}
            if self.sc.brokers:
                body["DeliverToCompID"] = self.sc.brokers[0]
            cl = entries[0]["ClOrdID"]  # the first member's first report is the list's acknowledgement
            extra = [e["ClOrdID"] for e in entries if "Text" not in e]
            path = b"/v1/order-lists"
        else:
            k = self.rng.randrange(len(opens))
            orig = opens[k]
            if op == _QUERY:
                return [t_due, 0, op, None, ci, b"GET /v1/orders/%s HTTP/1.1\r\n" % orig.encode()
                        + self.heads[ci] + b"\r\n", orig]
            opens[k] = opens[-1]
            opens.pop()
            cl = self._next_cl()
            if op == _CANCEL:
                body = {"ClOrdID": cl}
                path = b"/v1/orders/%s/cancel" % orig.encode()
            else:  # a quantity change, the common replace (the price stays)
                body = {"ClOrdID": cl, "OrderQty": str(self.rng.randint(*self.sc.qty))}
                path = b"/v1/orders/%s/replace" % orig.encode()
            extra = orig
        payload = _enc.encode(body)
        data = b"%s %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n%s" % (method, path, self.heads[ci],
                                                                      len(payload), payload)
        measured = t_due >= self.measure_ns
        if self.cfg.ws_url:  # no stream, no acknowledgements to wait for
            self.acks[cl] = [t_due, 0, 0, op, measured, ci]
            if measured:
                self.pending_acks += 1
        return [t_due, 0, op, cl, ci, data, extra]

    def _send(self, conn: _Http, req: list[Any]) -> None:
        req[_T_SENT] = t = _clock()
        if req[_CL] is not None:
            a = self.acks.get(req[_CL])
            if a is not None:
                a[_A_SENT] = t
        conn.req = req
        data = req[_DATA]
        req[_DATA] = None
        self._inflight += 1
        self.sent += 1
        conn.t.write(data)

    def _issue(self, t_due: int) -> None:
        req = self._build(t_due)
        if self.idle:
            self._send(self.idle.pop(), req)
        else:
            self.backlog.append(req)
            if len(self.backlog) > self.backlog_max:
                self.backlog_max = len(self.backlog)

    def on_response(self, conn: _Http, req: list[Any], status: int, body: bytes) -> None:
        t = _clock()
        self._inflight -= 1
        self.answered += 1
        op = req[_OP]
        if req[_T_DUE] >= self.measure_ns:
            self.lat["rest"][op].append(t - req[_T_DUE])
            self.lat["rest_service"][op].append(t - req[_T_SENT])
            key = f"{OPS[op]}:{status}"
            self.status[key] = self.status.get(key, 0) + 1
        if self.measure_ns <= t < self.end_ns:
            self.answered_in_window += 1
        if 200 <= status < 300:
            extra = req[_EXTRA]
            if op == _LIMIT and not extra:
                self.open[req[_CLIENT]].append(req[_CL])
            elif op == _REPLACE:
                self.open[req[_CLIENT]].append(req[_CL])
            elif op == _LIST:
                self.open[req[_CLIENT]].extend(extra)
        elif req[_CL] is not None:
            a = self.acks.pop(req[_CL], None)  # refused: no report will come
            if a is not None and a[_A_MEASURED] and not a[_A_WS]:
                self._ack_done()
        if self.backlog:
            self._send(conn, self.backlog.popleft())
        elif self.running and self.cfg.rate == 0 and t < self.end_ns:
            self._send(conn, self._build(t))
        else:
            self.idle.append(conn)
            if self._inflight == 0 and self._drained is not None and not self._drained.done():
                self._drained.set_result(None)

    def on_lost(self, conn: _Http) -> None:
        self.lost += 1
        if conn.req is not None:
            self._inflight -= 1
            conn.req = None
        if conn in self.idle:
            self.idle.remove(conn)

    # ---------------------------------------------------------------- WebSocket
    def on_frame(self, payload: bytes) -> None:
        t = _clock()
        self.frames += 1
        try:
            f = _frame.decode(payload)
        except msgspec.DecodeError:
            return
        if f.message is None or f.message.Body is None or f.message.Body.ClOrdID is None:
            return
        a = self.acks.get(f.message.Body.ClOrdID)
        if a is None or a[_A_WS]:
            return
        a[_A_WS] = t
        if a[_A_MEASURED]:
            op = a[_A_OP]
            self.lat["ack"][op].append(t - a[_A_DUE])
            if a[_A_SENT]:
                self.lat["ack_service"][op].append(t - a[_A_SENT])
            self._ack_done()

    def _ack_done(self) -> None:
        self.pending_acks -= 1
        if self.pending_acks <= 0 and self._acked is not None and not self._acked.done():
            self._acked.set_result(None)

    async def _open_ws(self, key: str) -> None:
        from picows import WSListener, WSMsgType, ws_connect

        worker = self
        subscribed = asyncio.get_running_loop().create_future()

        class Listener(WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type == WSMsgType.TEXT:
                    payload = frame.get_payload_as_bytes()
                    if not subscribed.done():
                        subscribed.set_result(payload)
                    worker.on_frame(payload)

        transport, _ = await ws_connect(Listener, self.cfg.ws_url, extra_headers={"X-API-Key": key},
                                        max_frame_size=1 << 20)
        self.ws.append(transport)
        first = await asyncio.wait_for(subscribed, 10)
        if b'"subscribed"' not in first:
            raise RuntimeError(f"WebSocket subscription refused: {first[:200]!r}")

    # ---------------------------------------------------------------- run
    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.sc.connections):
            _, conn = await loop.create_connection(lambda: _Http(self), self.host, self.port)
            self.conns.append(conn)
            self.idle.append(conn)
        if self.cfg.ws_url:
            for key in self.cfg.keys:
                await self._open_ws(key)

    async def _schedule(self, start: int) -> None:
        interval = 1e9 / self.cfg.rate
        i = 0
        end = self.end_ns
        pacer = Pacer()  # not asyncio.sleep: see bench/loadgen/pacer.py
        try:
            while True:
                now = _clock()
                if now >= end:
                    return
                due = int((now - start) / interval) + 1
                while i < due:
                    t_due = start + int(i * interval)
                    if t_due >= end:
                        return
                    self._issue(t_due)
                    i += 1
                await pacer.until(start + int(i * interval))
        finally:
            pacer.close()

    async def run(self, start: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        t = self.cfg.timing
        self.measure_ns, self.end_ns = t["measure_ns"], t["end_ns"]
        await asyncio.sleep(max(0.0, (start - _clock()) / 1e9))
        self.running = True
        if self.cfg.rate > 0:
            await self._schedule(start)
        else:
            now = _clock()
            for conn in list(self.idle):
                self.idle.remove(conn)
                self._send(conn, self._build(now))
            await asyncio.sleep(max(0.0, (self.end_ns - _clock()) / 1e9))
        self.running = False
        # the backlog left at the end still goes out: those requests were due
        self._drained = loop.create_future()
        if self._inflight > 0 or self.backlog:
            try:
                await asyncio.wait_for(self._drained, self.cfg.drain_seconds)
            except TimeoutError:
                pass
        self._acked = loop.create_future()
        if self.pending_acks > 0:
            try:
                await asyncio.wait_for(self._acked, 5.0)
            except TimeoutError:
                pass
        return self.results()

    def results(self) -> dict[str, Any]:
        measured_new = [(cl, a) for cl, a in self.acks.items()
                        if a[_A_MEASURED] and a[_A_OP] in (_LIMIT, _MARKET) and a[_A_WS] and a[_A_SENT]]
        picked = self.rng.sample(measured_new, min(self.cfg.sample, len(measured_new)))
        # the client's key goes with each sample: a trace is read with the key of its order
        samples = [[cl, self.cfg.keys[a[_A_CLIENT]], a[_A_SENT], a[_A_WS]] for cl, a in picked]
        return {
            "index": self.cfg.index,
            "sent": self.sent,
            "answered": self.answered,
            "answered_in_window": self.answered_in_window,
            "status": self.status,
            "backlog_max": self.backlog_max,
            "unanswered": self._inflight + len(self.backlog),
            "missing_acks": max(self.pending_acks, 0),
            "lost_connections": self.lost,
            "frames": self.frames,
            "lat": {k: [a.tobytes() for a in arrs] for k, arrs in self.lat.items()},
            "samples": samples,
        }

    async def close(self) -> None:
        for conn in self.conns:
            if conn.t is not None:
                conn.t.close()
        for ws in self.ws:
            ws.disconnect()


def worker_main(cfg: WorkerConfig, pipe: Any) -> None:
    """Process entry point: connect, say ready, wait for the start time, run, send the results."""
    import uvloop

    async def main() -> None:
        w = Worker(cfg)
        try:
            await w.connect()
        except Exception as exc:  # reported to the parent, which stops the run
            pipe.send({"error": f"worker {cfg.index}: {type(exc).__name__}: {exc}"})
            return
        pipe.send({"ready": cfg.index})
        loop = asyncio.get_running_loop()
        timing = await loop.run_in_executor(None, pipe.recv)
        cfg.timing.update(timing)
        try:
            res = await w.run(timing["start_ns"])
        finally:
            await w.close()
        pipe.send(res)

    uvloop.run(main())
