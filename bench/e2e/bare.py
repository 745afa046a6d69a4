"""The floor of the end-to-end benchmark: granian (RSGI) + picows, nothing else.

Every ``POST /v1/orders`` is decoded (msgspec), answered 202 and followed by one text
frame on each WebSocket subscriber of ``/v1/stream`` with the order's ClOrdID: the
same two transports as the gateway (granian for REST, picows for the stream, one
uvloop loop), without storage, FIX or validation. What is left of the round trip is
what this machine costs any Python server.

``python -m bench.e2e.bare`` prints ``{"rest": PORT, "ws": PORT, "pid": PID}`` once both
listen (ports chosen by the OS, loopback only) and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from typing import Any

import msgspec
import uvloop
from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server
from picows import WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server


class Order(msgspec.Struct):
    """The fields of the benchmark's order body (the rest are ignored)."""

    ClOrdID: str
    Symbol: str
    Side: str
    OrdType: str
    OrderQty: str
    Price: str | None = None
    DeliverToCompID: str | None = None


_decode = msgspec.json.Decoder(Order).decode
_encode = msgspec.json.Encoder().encode
_HEADERS = [("content-type", "application/json")]
_subscribers: set[WSTransport] = set()


class _Subscriber(WSListener):  # type: ignore[misc]
    def on_ws_connected(self, transport: WSTransport) -> None:
        _subscribers.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        _subscribers.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def _factory(request: WSUpgradeRequest) -> _Subscriber | None:
    return _Subscriber() if request.path.split(b"?", 1)[0] == b"/v1/stream" else None


async def app(scope: Any, proto: Any) -> None:
    """RSGI handler: 202 for a decodable order (400 otherwise), then one frame per subscriber."""
    try:
        order = _decode(await proto())
    except msgspec.DecodeError as e:
        proto.response_bytes(400, _HEADERS, _encode({"error": str(e)}))
        return
    proto.response_bytes(202, _HEADERS, _encode({"ClOrdID": order.ClOrdID, "state": "PendingNew"}))
    frame = _encode({"type": "report", "ClOrdID": order.ClOrdID, "ExecType": "0"})
    for t in _subscribers:
        t.send(WSMsgType.TEXT, frame)


class _Granian(Server):
    """granian's embedded server on a socket bound here (port 0 works)."""

    def __init__(self, target: Any, sock: socket.socket) -> None:
        super().__init__(target, address="127.0.0.1", port=sock.getsockname()[1], interface=Interfaces.RSGI,
                         log_level=LogLevels.warning, log_access=False, backlog=1024, websockets=False)
        self._own_sock = sock

    def _init_shared_socket(self) -> None:
        from granian._granian import SocketHolder

        self._shd = SocketHolder(self._own_sock.detach(), False, self.backlog)
        self._sfd = self._shd.get_fd()
        self._ssp = None


async def main() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ws = await ws_create_server(_factory, "127.0.0.1", 0)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    rest_port = sock.getsockname()[1]
    server = _Granian(app, sock)
    task = loop.create_task(server.serve())
    for _ in range(500):  # granian binds inside serve(): announce once it accepts
        if task.done():
            task.result()
        try:
            _, w = await asyncio.open_connection("127.0.0.1", rest_port)
            w.close()
            break
        except OSError:
            await asyncio.sleep(0.01)
    print(json.dumps({"rest": rest_port, "ws": ws.sockets[0].getsockname()[1], "pid": os.getpid()}), flush=True)
    await stop.wait()
    server.stop()
    await asyncio.wait_for(task, 10)
    ws.close()


if __name__ == "__main__":
    uvloop.run(main())
