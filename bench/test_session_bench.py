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
import statistics
import time
from typing import Any

import pytest
import uvloop

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
