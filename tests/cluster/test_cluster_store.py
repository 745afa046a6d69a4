"""The fastfix MessageStore kept in a FIX session's JetStream log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from _nats_cluster import NatsCluster

from fastfix.errors import StoreError
from server.gateway.cluster.journal import SessionLog, connect, ensure_stream
from server.gateway.cluster.store import Bridge, JetStreamStore

_CONNECTIONS: list = []


@pytest.fixture
def bridge() -> Iterator[Bridge]:
    b = Bridge()
    yield b
    while _CONNECTIONS:
        b.call(_CONNECTIONS.pop().close(), 10)
    b.close()


def _open(bridge: Bridge, cluster: NatsCluster, stream: str | None = None) -> tuple[JetStreamStore, str, list]:
    async def make() -> tuple[SessionLog, str, object]:
        nc = await connect(cluster.urls, "test")
        js = nc.jetstream()
        name = stream or "S" + uuid.uuid4().hex[:10].upper()
        prefix = await ensure_stream(js, name, 3)
        return SessionLog(js, name, prefix, "FIX.4.4:GW->HUB"), name, nc

    log, name, nc = bridge.call(make(), 30)
    _CONNECTIONS.append(nc)
    failures: list[BaseException] = []
    store = JetStreamStore(log, bridge, on_failure=failures.append)
    store.replay(bridge.call(log.open(), 30))
    return store, name, failures


def test_state_survives_into_the_next_owner(nats_cluster: NatsCluster, bridge: Bridge) -> None:
    a, stream, _ = _open(bridge, nats_cluster)
    a.take_over("gw-a", 1)
    a.incr_next_sender_seq()  # Logon: 1
    a.save_sent(2, b"order-2")
    a.save_sent(3, b"order-3")
    a.incr_next_sender_seq()  # Heartbeat: 4
    for _ in range(5):
        a.incr_next_target_seq()
    a.flush()
    a.append(("I", 7, b"report-7", [[], [], [], [], [], []]))
    b, _, _ = _open(bridge, nats_cluster, stream)
    assert (b.next_sender_seq, b.next_target_seq) == (5, 8)
    assert b.get_range(1, 0) == [(2, b"order-2"), (3, b"order-3")]
    assert b.get_range(3, 3) == [(3, b"order-3")]
    assert (b.owner, b.epoch) == ("gw-a", 1) and [s for s, _, _ in b.inbound] == [7]
    b.take_over("gw-b", 2)
    b.reset()
    c, _, _ = _open(bridge, nats_cluster, stream)
    assert (c.next_sender_seq, c.next_target_seq, c.get_range(1, 0)) == (1, 1, [])
    assert c.creation_time == b.creation_time.replace(microsecond=b.creation_time.microsecond)


def test_old_owner_is_fenced_and_stops(nats_cluster: NatsCluster, bridge: Bridge) -> None:
    a, stream, failures = _open(bridge, nats_cluster)
    a.take_over("gw-a", 1)
    a.save_sent(1, b"one")
    b, _, _ = _open(bridge, nats_cluster, stream)
    b.take_over("gw-b", 2)
    with pytest.raises(StoreError, match="journal append failed"):
        a.save_sent(2, b"two")
    assert len(failures) == 1 and a.failed is not None
    with pytest.raises(StoreError, match="refused an earlier append"):
        a.incr_next_sender_seq()  # nothing more, even if the fence would let it through
    a.flush()  # a failed store writes nothing at the end of a read either
    b.save_sent(2, b"two-by-b")
    c, _, _ = _open(bridge, nats_cluster, stream)
    assert c.get_range(1, 0) == [(1, b"one"), (2, b"two-by-b")]


def test_bridge_times_out(bridge: Bridge) -> None:
    with pytest.raises(TimeoutError):
        bridge.call(asyncio.sleep(5), 0.1)
