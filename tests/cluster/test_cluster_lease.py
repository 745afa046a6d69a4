"""FIX session leases in a JetStream key-value bucket: CAS, silence for a term, epochs."""

from __future__ import annotations

import asyncio
import uuid

from _nats_cluster import NatsCluster
from helpers import run

from server.gateway.cluster.journal import connect
from server.gateway.cluster.lease import Lease, open_bucket


class Clock:
    """A hand-moved monotonic clock: the test decides how much time passes."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _bucket(cluster: NatsCluster) -> tuple[object, object]:
    nc = await connect(cluster.urls, "test")
    kv = await open_bucket(nc.jetstream(), "L" + uuid.uuid4().hex[:8].upper(), 3)
    return nc, kv


def test_one_owner_then_takeover_after_silent_term(nats_cluster: NatsCluster) -> None:
    async def main() -> None:
        nc, kv = await _bucket(nats_cluster)
        clock = Clock()
        a = Lease(kv, "S1", "gw-a", 3.0, 1.0, clock)
        b = Lease(kv, "S1", "gw-b", 3.0, 1.0, clock)
        results = await asyncio.gather(a.try_acquire(), b.try_acquire())
        assert sorted(results) == [False, True]  # CAS: exactly one
        owner, standby = (a, b) if results[0] else (b, a)
        assert owner.held and owner.epoch == 1 and not standby.held
        for _ in range(5):  # renewals keep the standby out, however long it waits in total
            clock.now += 1.0
            assert await owner.renew()
            assert not await standby.try_acquire()
        clock.now += 2.5  # the owner is silent: it stops counting itself the owner first ...
        assert not owner.held
        assert not await standby.try_acquire()  # ... and the standby only after a whole term
        clock.now += 0.6
        assert await standby.try_acquire()
        assert standby.epoch == 2 and (await standby.read()).owner == standby.instance
        assert not await owner.renew()  # the old owner learns it lost: CAS on an old revision
        assert not owner.held
        await nc.close()

    run(main(), 60)


def test_release_frees_at_once(nats_cluster: NatsCluster) -> None:
    async def main() -> None:
        nc, kv = await _bucket(nats_cluster)
        clock = Clock()
        a = Lease(kv, "S1", "gw-a", 3.0, 1.0, clock)
        b = Lease(kv, "S1", "gw-b", 3.0, 1.0, clock)
        assert await a.try_acquire()
        assert not await b.try_acquire()
        await a.release()
        assert await b.try_acquire() and b.epoch == 2
        await nc.close()

    run(main(), 60)
