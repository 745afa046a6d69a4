"""Cluster mode figures on a three-node JetStream cluster started by the benchmark.

``test_journal_append``: one append to a FIX session's log as the session engine waits
for it before a socket write (``JetStreamStore.save_sent``: through the bridge thread to
an R3 stream and back). Beside ``test_journal_file_append`` (the embedded journal's
``write``), the difference is what cluster mode adds to each order on its way out.

``test_failover``: SIGKILL of the owner process -> the standby's logon at the hub ->
the first order submitted after the kill received by the hub (lease term 2 s).

``test_orders_per_second``: orders submitted as journal commands by one or two accepting
instances (NATS connections), pipelined, until the hub has received all of them through
the owner; ``extra_info`` has orders/s.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _nats_cluster import NatsCluster
from test_cluster_failover import Scenario, _order

from server.gateway.cluster.journal import SessionLog, connect, ensure_stream
from server.gateway.cluster.owner import submit
from server.gateway.cluster.store import Bridge, JetStreamStore
from server.gateway.journal import JournalFile

RAW = b"8=FIX.4.4\x019=150\x0135=D\x01" + b"x" * 250


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    c = NatsCluster(tmp_path_factory.mktemp("nats"))
    c.start()
    try:
        asyncio.run(c.wait_ready())
        yield c
    finally:
        c.stop()


def test_journal_append(benchmark: Any, cluster: NatsCluster) -> None:
    bridge = Bridge()
    try:
        async def open_log() -> tuple[Any, SessionLog]:
            nc = await connect(cluster.urls, "bench")
            js = nc.jetstream()
            stream = "B" + uuid.uuid4().hex[:8].upper()
            log = SessionLog(js, stream, await ensure_stream(js, stream, 3), "FIX.4.4:GW->HUB")
            await log.open()
            return nc, log

        nc, log = bridge.call(open_log(), 30)
        store = JetStreamStore(log, bridge)
        store.take_over("bench", 1)
        seq = iter(range(1, 10**9))
        benchmark(lambda: store.save_sent(next(seq), RAW))
        bridge.call(nc.close(), 10)
    finally:
        bridge.close()


def test_journal_file_append(benchmark: Any, tmp_path: Path) -> None:
    f = JournalFile(tmp_path / "j")
    f.open()
    benchmark(f.append, RAW)
    f.close()


def test_failover(benchmark: Any, cluster: NatsCluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    loop = asyncio.new_event_loop()
    scenarios: list[Scenario] = []

    async def ready() -> Scenario:
        sc = Scenario(cluster, tmp_path_factory.mktemp("failover"))
        await sc.__aenter__()
        scenarios.append(sc)
        sc.owners.start("gw-a")
        await sc.until(lambda: len(sc.hub.logons) >= 1, 30, "the first logon")
        sc.owners.start("gw-b")
        await sc.produce(["WARM"])
        await sc.until(lambda: "WARM" in sc.at_hub(), 30, "the first order")
        return sc

    async def fail_over(sc: Scenario) -> None:
        sc.owners.signal("gw-a", signal.SIGKILL)
        await sc.produce(["AFTER"])
        await sc.until(lambda: "AFTER" in sc.at_hub(), 30, "an order after the kill")

    def setup() -> tuple[tuple[Scenario], dict[str, Any]]:
        return (loop.run_until_complete(ready()),), {}

    try:
        benchmark.pedantic(lambda sc: loop.run_until_complete(fail_over(sc)), setup=setup, rounds=3,
                           iterations=1)
    finally:
        for sc in scenarios:
            loop.run_until_complete(sc.__aexit__(None, None, None))
        loop.close()


@pytest.mark.parametrize("instances", [1, 2])
def test_orders_per_second(benchmark: Any, cluster: NatsCluster, tmp_path_factory: pytest.TempPathFactory,
                           instances: int) -> None:
    n = 300
    loop = asyncio.new_event_loop()
    rounds = iter(range(1000))

    async def main() -> float:
        async with Scenario(cluster, tmp_path_factory.mktemp("rate")) as sc:
            sc.owners.start("gw-a")
            await sc.until(lambda: len(sc.hub.logons) >= 1, 30, "the first logon")
            conns = [await connect(cluster.urls, f"acceptor-{i}") for i in range(instances)]
            try:
                from server.gateway.cluster.journal import CommandLog

                logs = [CommandLog(c.jetstream(), sc.prefix) for c in conns]
                r = next(rounds)
                keys = [f"R{r}-{i}" for i in range(n)]
                started = time.perf_counter()
                await asyncio.gather(*(submit(logs[i % instances], _order(k)) for i, k in enumerate(keys)))
                await sc.until(lambda: sc.at_hub() >= set(keys), 60, "every order at the hub")
                return n / (time.perf_counter() - started)
            finally:
                for c in conns:
                    await c.close()

    rates: list[float] = []
    try:
        benchmark.pedantic(lambda: rates.append(loop.run_until_complete(main())), rounds=2, iterations=1)
    finally:
        loop.close()
    benchmark.extra_info["orders_per_second"] = round(max(rates))
