"""The replicated journal on a three-node JetStream cluster: R3, de-duplication, fencing."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from _nats_cluster import NatsCluster
from helpers import run

from server.gateway.cluster.journal import (
    CommandLog,
    Fenced,
    JournalUnavailable,
    SessionLog,
    connect,
    ensure_stream,
    session_token,
)


def _stream() -> str:
    return "T" + uuid.uuid4().hex[:10].upper()


async def _setup(cluster: NatsCluster) -> tuple[object, object, str, str]:
    nc = await connect(cluster.urls, "test")
    js = nc.jetstream()
    stream = _stream()
    prefix = await ensure_stream(js, stream, 3)
    return nc, js, stream, prefix


def test_stream_is_replicated_on_three_nodes(nats_cluster: NatsCluster) -> None:
    async def main() -> None:
        nc, js, stream, prefix = await _setup(nats_cluster)
        info = await js.stream_info(stream)
        assert info.config.num_replicas == 3
        assert prefix == stream.lower()
        await ensure_stream(js, stream, 3)  # a second instance finds it as it is
        await nc.close()

    run(main(), 60)


def test_retried_command_is_stored_once(nats_cluster: NatsCluster) -> None:
    async def main() -> None:
        nc, js, stream, prefix = await _setup(nats_cluster)
        cmds = CommandLog(js, prefix)
        seq1, dup1 = await cmds.append("acme", "D", "ord-1", {"ClOrdID": "ord-1"})
        seq2, dup2 = await cmds.append("acme", "D", "ord-1", {"ClOrdID": "ord-1"})
        seq3, dup3 = await cmds.append("acme", "D", "ord-2", {"ClOrdID": "ord-2"})
        assert (dup1, dup2, dup3) == (False, True, False)
        assert seq2 == seq1 and seq3 == seq1 + 1
        assert (await js.stream_info(stream)).state.messages == 2
        await nc.close()

    run(main(), 60)


def test_session_log_replays_and_fences_a_second_writer(nats_cluster: NatsCluster) -> None:
    async def main() -> None:
        nc, js, stream, prefix = await _setup(nats_cluster)
        name = "FIX.4.4:GW->HUB"
        assert "." not in session_token(name) and ">" not in session_token(name)
        old = SessionLog(js, stream, prefix, name)
        assert await old.open() == []
        await old.append(("E", "gw-a", 1))
        await old.append(("O", 1, b"8=FIX.4.4\x01"))
        # A new owner opens the log: it sees everything, and from now on the old owner is fenced.
        new = SessionLog(js, stream, prefix, name)
        records = [r for _, r in await new.open()]
        assert records == [("E", "gw-a", 1), ("O", 1, b"8=FIX.4.4\x01")]
        await new.append(("E", "gw-b", 2))
        with pytest.raises(Fenced):
            await old.append(("O", 2, b"late"))
        await new.append(("O", 2, b"fresh"))
        assert [r for _, r in await SessionLog(js, stream, prefix, name).open()][-2:] == [
            ("E", "gw-b", 2), ("O", 2, b"fresh")]
        await nc.close()

    run(main(), 60)


def test_one_node_down_is_served_two_down_refuse(nats_cluster: NatsCluster) -> None:
    async def main() -> None:
        nc, js, stream, prefix = await _setup(nats_cluster)
        log = SessionLog(js, stream, prefix, "S1", timeout=1.0)
        await log.open()
        acked = [await log.append(("O", 1, b"a"))]
        nats_cluster.kill(2)
        for _ in range(30):  # the leader may have been on node 2: a new one is elected
            try:
                acked.append(await log.append(("O", 2, b"b")))
                break
            except JournalUnavailable:
                await asyncio.sleep(0.2)
        else:
            pytest.fail("no append acknowledged with one node down")
        nats_cluster.kill(1)
        with pytest.raises(JournalUnavailable):
            for _ in range(3):  # the first may still reach a leader that has not noticed yet
                await log.append(("O", 3, b"c"))
        nats_cluster.start(1)
        nats_cluster.start(2)
        await nats_cluster.wait_ready()
        records: list = []
        for _ in range(50):  # until the stream has a leader again
            try:
                records = await SessionLog(js, stream, prefix, "S1").open()
                break
            except Exception:  # noqa: BLE001 - leaderless for a moment after restart
                await asyncio.sleep(0.2)
        seqs = [s for s, _ in records]
        assert all(s in seqs for s in acked), (acked, seqs)  # nothing acknowledged is lost
        await nc.close()

    run(main(), 120)
