"""FIX sessions over loopback: round-trip latency and one-way throughput.

- raw asyncio echo of the same bytes (the floor any FIX engine sits on; for ratio gates);
- fastfix initiator <-> fastfix acceptor: NewOrderSingle -> ExecutionReport ping-pong,
  and pipelined one-way NewOrderSingle throughput;
- fastfix initiator <-> QuickFIX C++ ``executor`` ping-pong.

Each benchmark round is a batch of round trips; per-message percentiles
(``p50_us``, ``p99_us``, from ``time.perf_counter_ns`` per round trip) and rates are
in ``extra_info`` (``--benchmark-json`` keeps them).
Targets: p50 <= 40 us, p99 <= 80 us, >= 100,000 messages/s one way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import uvloop

from fastfix.settings import SessionID, SessionSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from quickfix_peer import SKIP_REASON, QuickFixPeer, available  # noqa: E402

BATCH = 2000  # round trips per benchmark round
ROUNDS = 5
WARMUP = 500

# Sizes of a typical NewOrderSingle and its ExecutionReport.
NOS = (
    b"8=FIX.4.4\x019=178\x0135=D\x0134=1\x0149=GW\x0152=20240102-00:00:00.000\x0156=HUB\x01"
    b"11=ORD-0000000001\x011=ACCT-1\x0121=1\x0155=005930\x0154=1\x0160=20240102-00:00:00.000\x01"
    b"38=100\x0140=2\x0144=71500\x0159=0\x01128=BROKER1\x01207=XKRX\x0110=123\x01"
)
ER = NOS + b"6=71500\x0114=100\x0117=EXEC-000000001\x0131=71500\x0132=100\x01"


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    n = len(s)
    return {
        "round_trips": n,
        "p50_us": round(s[n // 2] / 1000, 2),
        "p90_us": round(s[int(n * 0.90)] / 1000, 2),
        "p99_us": round(s[int(n * 0.99)] / 1000, 2),
        "max_us": round(s[-1] / 1000, 2),
        "mean_us": round(statistics.fmean(s) / 1000, 2),
    }


class _LatencyRecorder:
    """Runs batches of ping-pongs on one loop and keeps every round-trip time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, one_round_trip: Any):
        self.loop = loop
        self.one = one_round_trip
        self.samples: list[int] = []

    async def _batch(self, n: int, keep: bool) -> None:
        one = self.one
        clock = time.perf_counter_ns
        samples = self.samples
        for _ in range(n):
            t0 = clock()
            await one()
            if keep:
                samples.append(clock() - t0)

    def warmup(self) -> None:
        self.loop.run_until_complete(asyncio.wait_for(self._batch(WARMUP, False), 60))

    def run_batch(self) -> None:
        self.loop.run_until_complete(asyncio.wait_for(self._batch(BATCH, True), 60))


# ---------------------------------------------------------------- raw asyncio echo


class _EchoServer(asyncio.Protocol):
    """Answers every complete NOS-sized request with an ER-sized reply."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.pending = 0

    def data_received(self, data: bytes) -> None:
        self.pending += len(data)
        while self.pending >= len(NOS):
            self.pending -= len(NOS)
            self.t.write(ER)  # type: ignore[attr-defined]


class _EchoClient(asyncio.Protocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None
        self.pending = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.pending += len(data)
        if self.pending >= len(ER) and self.waiter is not None:
            self.pending -= len(ER)
            self.waiter.set_result(None)
            self.waiter = None


@pytest.fixture
def loop():
    lp = uvloop.new_event_loop()
    try:
        yield lp
    finally:
        lp.close()


def test_raw_asyncio_echo_ping_pong(benchmark, loop: asyncio.AbstractEventLoop):
    """The same bytes over the same loopback without FIX: the floor for the figures below."""

    async def setup():
        server = await loop.create_server(_EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, client = await loop.create_connection(_EchoClient, "127.0.0.1", port)
        return server, client

    server, client = loop.run_until_complete(setup())

    async def one() -> None:
        fut = loop.create_future()
        client.waiter = fut
        client.t.write(NOS)
        await fut

    rec = _LatencyRecorder(loop, one)
    try:
        rec.warmup()
        benchmark.pedantic(rec.run_batch, rounds=ROUNDS, iterations=1)
    finally:
        client.t.close()
        server.close()
        loop.run_until_complete(server.wait_closed())
    benchmark.extra_info.update(_percentiles(rec.samples), batch=BATCH, peer="raw-echo")
    assert len(rec.samples) == BATCH * ROUNDS


# ---------------------------------------------------------------- fastfix sessions

THROUGHPUT_MESSAGES = 20_000
INI = SessionID("FIX.4.4", "CLIENT", "EXEC")


def _order_fields(clordid: str) -> list[tuple[int, Any]]:
    return [(11, clordid), (1, "ACCT-1"), (21, "1"), (55, "005930"), (54, "1"),
            (60, dt.datetime(2024, 1, 2, tzinfo=dt.UTC)), (38, 100), (40, "2"), (44, 71500)]  # fmt: skip


def _initiator_settings(port: int, tmp: Path, sync: str = "N") -> SessionSettings:
    return SessionSettings.from_dict(
        [{"BeginString": "FIX.4.4", "SenderCompID": "CLIENT", "TargetCompID": "EXEC"}],
        default={"ConnectionType": "initiator", "SocketConnectHost": "127.0.0.1",
                 "SocketConnectPort": port, "HeartBtInt": 30, "ReconnectInterval": 1,
                 "FileStorePath": str(tmp / "ini-store"), "FileStoreSync": sync},
    )  # fmt: skip


def _acceptor_settings(tmp: Path, sync: str = "N") -> SessionSettings:
    return SessionSettings.from_dict(
        [{"BeginString": "FIX.4.4", "SenderCompID": "EXEC", "TargetCompID": "CLIENT"}],
        default={"ConnectionType": "acceptor", "SocketAcceptAddress": "127.0.0.1",
                 "SocketAcceptPort": 0, "FileStorePath": str(tmp / "acc-store"),
                 "FileStoreSync": sync},
    )  # fmt: skip


def _apps():
    engine = pytest.importorskip("fastfix.engine")

    class Exec(engine.Application):
        """Answers each NewOrderSingle with a filled ExecutionReport, or just counts."""

        def __init__(self, answer: bool = True) -> None:
            self.answer = answer
            self.count = 0
            self.target = 0
            self.done: asyncio.Future[None] | None = None
            self.seq = 0

        def from_app(self, msg: Any, session_id: Any) -> None:
            self.count += 1
            if self.answer:
                self.seq += 1
                self.send(session_id, "8", [
                    (37, b"O%d" % self.seq), (17, b"E%d" % self.seq), (150, b"F"), (39, b"2"),
                    (11, msg[11]), (55, msg[55]), (54, msg[54]), (38, msg[38]), (32, msg[38]),
                    (31, msg[44]), (151, 0), (14, msg[38]), (6, msg[44]),
                ])  # fmt: skip
            elif self.count >= self.target and self.done is not None and not self.done.done():
                self.done.set_result(None)

    class Client(engine.Application):
        def __init__(self) -> None:
            self.logged_on = asyncio.Event()
            self.waiter: asyncio.Future[Any] | None = None

        def on_logon(self, session_id: Any) -> None:
            self.logged_on.set()

        def from_app(self, msg: Any, session_id: Any) -> None:
            w = self.waiter
            if w is not None:
                self.waiter = None
                w.set_result(msg)

    return engine, Exec, Client


def _ping(loop: asyncio.AbstractEventLoop, client: Any, session: Any) -> Any:
    fields = _order_fields("ORD-1")

    async def one() -> None:
        fut = loop.create_future()
        client.waiter = fut
        session.send("D", fields)
        await fut

    return one


@pytest.mark.parametrize("sync", ["N", "batch"])
def test_fastfix_to_fastfix_ping_pong(benchmark, loop: asyncio.AbstractEventLoop, tmp_path: Path, sync: str):
    """NewOrderSingle -> ExecutionReport between two fastfix engines on one loop (file stores)."""
    engine, Exec, Client = _apps()
    acc_app, client = Exec(), Client()
    acc = engine.Acceptor(_acceptor_settings(tmp_path, sync), acc_app)

    async def setup():
        await acc.start()
        ini = engine.Initiator(_initiator_settings(acc.port, tmp_path, sync), client)
        await ini.start()
        await asyncio.wait_for(client.logged_on.wait(), 10)
        return ini

    ini = loop.run_until_complete(setup())
    rec = _LatencyRecorder(loop, _ping(loop, client, ini.session(INI)))
    try:
        rec.warmup()
        benchmark.pedantic(rec.run_batch, rounds=ROUNDS, iterations=1)
    finally:
        loop.run_until_complete(ini.stop())
        loop.run_until_complete(acc.stop())
    benchmark.extra_info.update(_percentiles(rec.samples), batch=BATCH, peer="fastfix", sync=sync)


@pytest.mark.parametrize("sync", ["N", "batch"])
def test_fastfix_one_way_throughput(benchmark, loop: asyncio.AbstractEventLoop, tmp_path: Path, sync: str):
    """Pipelined NewOrderSingles, initiator -> acceptor, counted by the acceptor's application."""
    engine, Exec, Client = _apps()
    acc_app, client = Exec(answer=False), Client()
    acc = engine.Acceptor(_acceptor_settings(tmp_path, sync), acc_app)

    async def setup():
        await acc.start()
        ini = engine.Initiator(_initiator_settings(acc.port, tmp_path, sync), client)
        await ini.start()
        await asyncio.wait_for(client.logged_on.wait(), 10)
        return ini

    ini = loop.run_until_complete(setup())
    fields = _order_fields("ORD-1")
    rates: list[float] = []

    async def burst() -> None:
        acc_app.target = acc_app.count + THROUGHPUT_MESSAGES
        acc_app.done = loop.create_future()
        t0 = time.perf_counter_ns()
        for _ in range(THROUGHPUT_MESSAGES):
            await ini.send(INI, "D", fields)
        await asyncio.wait_for(acc_app.done, 60)
        rates.append(THROUGHPUT_MESSAGES / ((time.perf_counter_ns() - t0) / 1e9))

    try:
        benchmark.pedantic(lambda: loop.run_until_complete(burst()), rounds=3, iterations=1)
    finally:
        loop.run_until_complete(ini.stop())
        loop.run_until_complete(acc.stop())
    benchmark.extra_info.update(
        messages_per_round=THROUGHPUT_MESSAGES,
        msgs_per_s_median=round(statistics.median(rates)),
        msgs_per_s_best=round(max(rates)),
        peer="fastfix",
        sync=sync,
    )


@pytest.mark.skipif(not available("executor"), reason=SKIP_REASON)
def test_fastfix_to_quickfix_executor_ping_pong(benchmark, loop: asyncio.AbstractEventLoop, tmp_path: Path):
    """NewOrderSingle -> ExecutionReport against QuickFIX C++'s executor (another process)."""
    engine, _, Client = _apps()
    client = Client()
    peer = QuickFixPeer("executor", [("FIX.4.4", "EXEC", "CLIENT")], workdir=tmp_path / "qf")
    peer.start()
    try:
        ini = engine.Initiator(_initiator_settings(peer.port, tmp_path), client)
        loop.run_until_complete(ini.start())
        loop.run_until_complete(asyncio.wait_for(client.logged_on.wait(), 10))
        rec = _LatencyRecorder(loop, _ping(loop, client, ini.session(INI)))
        try:
            rec.warmup()
            benchmark.pedantic(rec.run_batch, rounds=ROUNDS, iterations=1)
        finally:
            loop.run_until_complete(ini.stop())
    finally:
        peer.close()
    benchmark.extra_info.update(_percentiles(rec.samples), batch=BATCH, peer="quickfix-executor")
