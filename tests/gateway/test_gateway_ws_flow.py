"""WebSocket stream connection logic (replay, live, gaps, slow consumers) with a fake transport."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from picows import WSCloseCode

from server.gateway.auth import Authenticator
from server.gateway.config import ClientConfig
from server.gateway.metrics import Metrics
from server.gateway.projection import EventRow
from server.gateway.ws import StreamServer, _Connection


class FakeUnderlying:
    def __init__(self, sent: list[dict[str, Any]]) -> None:
        self.buffered = 0
        self.sent = sent
        self.writes = 0

    def write(self, data: bytes) -> None:
        """Frames written in one go: each a final, unmasked text frame (RFC 6455 §5.2)."""
        self.writes += 1
        i = 0
        while i < len(data):
            assert data[i] == 0x81 and data[i + 1] & 0x80 == 0  # FIN + text, no mask (server side)
            size, i = data[i + 1], i + 2
            if size == 126:
                size, i = int.from_bytes(data[i:i + 2], "big"), i + 2
            elif size == 127:
                size, i = int.from_bytes(data[i:i + 8], "big"), i + 8
            assert i + size <= len(data), "frame longer than the write"
            self.sent.append(json.loads(data[i:i + size]))
            i += size

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high = high

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.underlying_transport = FakeUnderlying(self.sent)
        self.closed: tuple[Any, bytes] | None = None
        self.disconnected = False

    def send(self, msg_type: Any, data: bytes) -> None:
        self.sent.append(json.loads(data))

    def send_close(self, code: Any, reason: bytes = b"") -> None:
        self.closed = (code, reason)

    def disconnect(self, graceful: bool = True) -> None:
        self.disconnected = True


class FakeGateway:
    def __init__(self, n: int) -> None:
        self.log = [EventRow(i, json.dumps({"type": "message", "seq": i}).encode()) for i in range(1, n + 1)]
        self.seq = {"a": n}
        self.subs: set[Any] = set()
        self.metrics = Metrics()

    def events_since(self, client_id: str, seq: int, limit: int) -> list[EventRow]:
        return [r for r in self.log if r.seq > seq][:limit]

    async def read_events(self, client_id: str, seq: int, limit: int) -> list[EventRow]:
        await asyncio.sleep(0)  # as the gateway's reader thread: the read is awaited
        return self.events_since(client_id, seq, limit)

    def subscribe(self, client_id: str, sub: Any) -> None:
        self.subs.add(sub)

    def unsubscribe(self, client_id: str, sub: Any) -> None:
        self.subs.discard(sub)

    def stream_opened(self, client_id: str, conn: Any) -> None:
        pass

    def stream_closed(self, client_id: str, conn: Any) -> None:
        pass

    def append(self) -> EventRow:
        seq = self.seq["a"] + 1
        self.seq["a"] = seq
        row = EventRow(seq, json.dumps({"type": "message", "seq": seq}).encode())
        self.log.append(row)
        return row


CLIENT = ClientConfig(id="a", api_key_sha256="0" * 64)


def make(n: int, since: int | None, limit: int = 1 << 20) -> tuple[FakeGateway, _Connection, FakeTransport]:
    gw = FakeGateway(n)
    server = StreamServer(gw, Authenticator({}), heartbeat=0.5, buffer_limit=limit, replay_batch=4)  # type: ignore[arg-type]
    conn = _Connection(server, CLIENT, since)
    t = FakeTransport()
    conn.on_ws_connected(t)  # type: ignore[arg-type]
    return gw, conn, t


async def settle(conn: _Connection) -> None:
    for _ in range(100):
        if conn.live or conn.closed:
            return
        await asyncio.sleep(0)
    raise AssertionError("replay did not finish")


def seqs(t: FakeTransport) -> list[int]:
    return [m["seq"] for m in t.sent if m["type"] == "message"]


def test_replay_then_live_without_gaps_or_duplicates() -> None:
    async def go() -> None:
        gw, conn, t = make(10, since=3)
        assert t.sent[0] == {"type": "subscribed", "client": "a", "since": 3, "last_seq": 10}
        # events logged and pushed while the replay runs are not sent twice
        row = gw.append()
        conn.deliver([(row.seq, row.data)])
        await settle(conn)
        row2 = gw.append()
        conn.deliver([(row.seq, row.data)])  # a late duplicate push
        conn.deliver([(row2.seq, row2.data)])
        assert seqs(t) == list(range(4, 13))
    asyncio.run(go())


def test_gap_in_live_pushes_is_filled_from_the_log() -> None:
    async def go() -> None:
        gw, conn, t = make(2, since=0)
        await settle(conn)
        a, b = gw.append(), gw.append()
        conn.deliver([(b.seq, b.data)])  # a.seq was never pushed to this connection
        await settle(conn)
        assert seqs(t) == [1, 2, 3, 4]
        del a
    asyncio.run(go())


def test_live_only_without_since() -> None:
    async def go() -> None:
        gw, conn, t = make(5, since=None)
        await settle(conn)
        row = gw.append()
        conn.deliver([(row.seq, row.data)])
        assert seqs(t) == [6]
    asyncio.run(go())


def test_events_of_one_commit_go_out_in_one_write() -> None:
    """Several live events are framed together (any payload size) and written once; a late
    duplicate is skipped; a gap stops the batch there and the rest comes from the log."""

    async def go() -> None:
        gw, conn, t = make(0, since=None)
        await settle(conn)
        rows = [gw.append() for _ in range(3)]
        big = gw.append()
        big.data = json.dumps({"type": "message", "seq": big.seq, "pad": "x" * 70_000}).encode()
        gw.log[-1] = big
        conn.deliver([(r.seq, r.data) for r in rows] + [(big.seq, big.data)])
        assert seqs(t) == [1, 2, 3, 4] and t.underlying_transport.writes == 1
        assert len(t.sent[-1]["pad"]) == 70_000
        mid = gw.append()
        medium = gw.append()
        medium.data = json.dumps({"type": "message", "seq": medium.seq, "pad": "y" * 300}).encode()
        gw.log[-1] = medium
        conn.deliver([(rows[2].seq, rows[2].data), (mid.seq, mid.data), (medium.seq, medium.data)])
        assert seqs(t) == [1, 2, 3, 4, 5, 6] and t.underlying_transport.writes == 2
        a, b, c = gw.append(), gw.append(), gw.append()
        conn.deliver([(a.seq, a.data), (c.seq, c.data)])  # b was never pushed to this connection
        await settle(conn)
        assert seqs(t) == list(range(1, 10))
        del b
    asyncio.run(go())


def test_a_real_client_reads_the_frames_of_one_write() -> None:
    """Over a socket, a picows client reads each event of a batched write as its own message."""
    from picows.websockets.asyncio.client import connect

    from server.gateway.auth import hash_key

    async def go() -> None:
        gw = FakeGateway(0)
        client = ClientConfig(id="a", api_key_sha256=hash_key("key-a"))
        server = StreamServer(gw, Authenticator({"a": client}), heartbeat=5, buffer_limit=1 << 20,  # type: ignore[arg-type]
                              replay_batch=4)
        port = await server.start("127.0.0.1", 0)
        try:
            ws = await connect(f"ws://127.0.0.1:{port}/v1/stream", additional_headers={"X-API-Key": "key-a"})
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "subscribed"
            conn = next(iter(server.connections))
            for _ in range(200):  # the replay of the (empty) log finishes on the loop
                if conn.live:
                    break
                await asyncio.sleep(0.005)
            rows = [gw.append() for _ in range(3)]
            rows[1].data = json.dumps({"type": "message", "seq": rows[1].seq, "pad": "z" * 1000}).encode()
            conn.deliver([(r.seq, r.data) for r in rows])
            got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in rows]
            assert [m["seq"] for m in got] == [1, 2, 3] and len(got[1]["pad"]) == 1000
            await ws.close()
        finally:
            await server.stop()
    asyncio.run(go())


def test_since_beyond_the_log_is_refused() -> None:
    gw, conn, t = make(5, since=9)
    assert t.closed is not None and t.closed[0] == WSCloseCode.POLICY_VIOLATION and t.disconnected
    assert "since=9" in t.sent[-1]["reason"]


def test_slow_consumer_is_dropped_with_the_resume_point() -> None:
    async def go() -> None:
        gw, conn, t = make(0, since=0, limit=1000)
        await settle(conn)
        row = gw.append()
        t.underlying_transport.buffered = 5000  # the client stopped reading
        conn.deliver([(row.seq, row.data)])
        assert t.closed is not None and t.closed[0] == WSCloseCode.TRY_AGAIN_LATER
        assert b"since=" in t.closed[1] and t.disconnected
        assert t.sent[-1]["type"] == "error" and t.sent[-1]["seq"] == 1
        later = gw.append()
        conn.deliver([(later.seq, later.data)])
        assert seqs(t) == [1]
        assert b'gateway_ws_dropped_total{reason="slow consumer"} 1.0' in gw.metrics.render()
    asyncio.run(go())


def test_replay_waits_for_the_client_then_gives_up() -> None:
    async def go() -> None:
        gw, conn, t = make(20, since=0)
        conn.pause_writing()  # the transport's buffer is above its high-water mark
        for _ in range(10):
            await asyncio.sleep(0)
        assert seqs(t) == [1, 2, 3, 4]  # one batch, then it waits
        conn.resume_writing()
        await settle(conn)
        assert seqs(t) == list(range(1, 21))
        gw2, slow, t2 = make(20, since=0)
        slow.pause_writing()
        for _ in range(300):
            if slow.closed:
                break
            await asyncio.sleep(0.01)
        assert t2.closed is not None and t2.closed[0] == WSCloseCode.TRY_AGAIN_LATER
    asyncio.run(go())


def test_heartbeat_when_idle() -> None:
    async def go() -> None:
        gw, conn, t = make(0, since=None)
        await settle(conn)
        conn.heartbeat(conn.last_activity + 0.1)
        assert t.sent[-1]["type"] == "subscribed"  # not idle long enough
        conn.heartbeat(conn.last_activity + 10)
        assert t.sent[-1]["type"] == "heartbeat" and t.sent[-1]["seq"] == 0
    asyncio.run(go())
