"""The WebSocket push of one commit's events: ``GROUP`` events of one client handed to a live
stream connection of the gateway (``server.gateway.ws``) and read by a picows client over
loopback, on one uvloop loop.

``batched`` is the gateway's way (``_Connection.deliver``: the events framed together, one
socket write); ``per_frame`` sends the same events with picows one frame at a time (a
system call each), the way the stream pushed them before. Divide a round by ``GROUP`` for
one event; the difference is what the batching saves per event at that batch size."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from server.gateway.auth import Authenticator, hash_key
from server.gateway.config import ClientConfig
from server.gateway.metrics import Metrics
from server.gateway.ws import StreamServer

GROUP = 32
KEY = "bench-ws-key"
# An acknowledgement as the stream pushes it (about 400 bytes).
EVENT = msgspec.json.encode({"type": "message", "seq": 0, "ts": "2026-11-26T09:00:00.000000Z", "message": {
    "Header": {"BeginString": "FIX.4.4", "MsgType": "8", "SenderCompID": "HUB", "TargetCompID": "GATEWAY",
               "MsgSeqNum": "12", "SendingTime": "20261126-09:00:00.000"},
    "Body": {"OrderID": "O1", "ClOrdID": "o-1", "ExecID": "X1", "ExecType": "0", "OrdStatus": "0",
             "Symbol": "005930", "Side": "1", "OrderQty": "10", "OrdType": "2", "Price": "70000",
             "LeavesQty": "10", "CumQty": "0", "AvgPx": "0", "TransactTime": "20261126-09:00:00.000"}}})


class _Log:
    """What the stream server asks of the gateway, for a client with an empty event log."""

    def __init__(self) -> None:
        self.seq = {"c": 0}
        self.metrics = Metrics()

    def events_since(self, client_id: str, seq: int, limit: int) -> list[Any]:
        return []

    async def read_events(self, client_id: str, seq: int, limit: int) -> list[Any]:
        return []

    def subscribe(self, client_id: str, sub: Any) -> None:
        pass

    def unsubscribe(self, client_id: str, sub: Any) -> None:
        pass

    def stream_opened(self, client_id: str, conn: Any) -> None:
        pass

    def stream_closed(self, client_id: str, conn: Any) -> None:
        pass


class _Reader(WSListener):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.frames = 0
        self.want = 0
        self.done: asyncio.Future[None] | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.frames += 1
            if self.done is not None and self.frames >= self.want and not self.done.done():
                self.done.set_result(None)


@pytest.mark.parametrize("how", ["batched", "per_frame"])
def test_ws_push_of_one_commit(benchmark: Any, how: str) -> None:
    loop = uvloop.new_event_loop()
    client = ClientConfig(id="c", api_key_sha256=hash_key(KEY))
    server = StreamServer(_Log(), Authenticator({"c": client}), heartbeat=30, buffer_limit=1 << 24,  # type: ignore[arg-type]
                          replay_batch=100)

    async def start() -> tuple[Any, _Reader, WSTransport]:
        port = await server.start("127.0.0.1", 0)
        transport, reader = await ws_connect(_Reader, f"ws://127.0.0.1:{port}/v1/stream",
                                             extra_headers={"X-API-Key": KEY})
        for _ in range(1000):  # subscribed, and the (empty) replay done
            conns = list(server.connections)
            if conns and conns[0].live and reader.frames >= 1:
                return conns[0], reader, transport
            await asyncio.sleep(0.001)
        raise TimeoutError("stream not live")

    conn, reader, transport = loop.run_until_complete(start())
    state = {"seq": 0}

    async def push() -> None:
        first = state["seq"] + 1
        state["seq"] += GROUP
        reader.want = reader.frames + GROUP
        reader.done = loop.create_future()
        if how == "batched":
            conn.deliver([(s, EVENT) for s in range(first, first + GROUP)])
        else:
            for _ in range(GROUP):
                conn.transport.send(WSMsgType.TEXT, EVENT)
        await asyncio.wait_for(reader.done, 10)

    try:
        benchmark(lambda: loop.run_until_complete(push()))
        assert reader.frames == 1 + state["seq"]  # the subscribed frame, then every event once
    finally:
        transport.disconnect()
        loop.run_until_complete(server.stop())
        loop.close()
