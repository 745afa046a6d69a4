"""The replicated journal on a three-node JetStream cluster: R3, de-duplication, fencing."""

from __future__ import annotations

import uuid

import pytest
from _nats_cluster import NatsCluster
from helpers import run

from server.gateway.cluster.journal import (
    CommandLog,
    Fenced,
    SessionLog,
    connect,
    ensure_stream,
    session_token,
)


def _stream() -> str:
    return "T" + uuid.uuid4().hex[:10].upper()


async def setup_journal(cluster: NatsCluster) -> tuple[object, object, str, str]:
    nc = await connect(cluster.urls, "test")
    js = nc.jetstream()
    stream = _stream()
    prefix = await ensure_stream(js, stream, 3)
    return nc, js, stream, prefix


def test_stream_is_replicated_on_three_nodes(nats_cluster: NatsCluster) -> None:
    async def main() -> None:
        nc, js, stream, prefix = await setup_journal(nats_cluster)
        info = await js.stream_info(stream)
        assert info.config.num_replicas == 3
        assert prefix == stream.lower()
        await ensure_stream(js, stream, 3)  # a second instance finds it as it is
        await nc.close()

    run(main(), 60)


def test_retried_command_is_stored_once(nats_cluster: NatsCluster) -> None:
    async def main() -> None:
        nc, js, stream, prefix = await setup_journal(nats_cluster)
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
        nc, js, stream, prefix = await setup_journal(nats_cluster)
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
