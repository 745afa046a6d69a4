"""The comparison of the end-to-end benchmark: an order gateway built the usual way.

FastAPI on uvicorn (uvloop, httptools) for REST and the WebSocket stream, QuickFIX
through its Python binding for FIX, nothing stored: ``POST /v1/orders`` validates the
body with a pydantic model, sends a NewOrderSingle with ``Session.sendToTarget`` and
answers 202; each ExecutionReport that QuickFIX hands to ``fromApp`` (on its own
thread) is passed to the event loop and pushed as JSON to every subscriber of
``/v1/stream``. REST and the stream share one port.

``python -m bench.e2e.naive_peer FIX_PORT SENDER TARGET WORKDIR`` logs on to a FIX 4.4
acceptor on ``127.0.0.1:FIX_PORT`` as ``SENDER`` (to ``TARGET``), then prints
``{"rest": PORT, "ws": PORT, "pid": PID}`` and serves until SIGTERM. Needs the ``e2e``
extra (``pip install -e '.[e2e]'``).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import quickfix as fix
import quickfix44 as fix44
import uvicorn
import uvloop
from fastapi import FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

# ExecutionReport fields passed on to subscribers
_REPORT_TAGS = {"ClOrdID": 11, "OrderID": 37, "ExecID": 17, "ExecType": 150, "OrdStatus": 39, "Symbol": 55,
                "Side": 54, "OrderQty": 38, "LastQty": 32, "LastPx": 31, "LeavesQty": 151, "CumQty": 14,
                "AvgPx": 6, "Text": 58}


class Order(BaseModel):
    """A new limit or market order, as the gateway's REST API takes it."""

    ClOrdID: str
    Symbol: str
    Side: str
    OrdType: str
    OrderQty: float
    Price: float | None = None
    DeliverToCompID: str | None = None


class FixApplication(fix.Application):  # type: ignore[misc]
    """QuickFIX callbacks; ``on_report`` is called on the event loop for each ExecutionReport."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_report: Any) -> None:
        super().__init__()
        self.loop = loop
        self.on_report = on_report
        self.session_id: Any = None
        self.logged_on = threading.Event()

    def onCreate(self, session_id: Any) -> None:  # noqa: N802 - QuickFIX's names
        self.session_id = session_id

    def onLogon(self, session_id: Any) -> None:  # noqa: N802
        self.logged_on.set()

    def onLogout(self, session_id: Any) -> None:  # noqa: N802
        self.logged_on.clear()

    def toAdmin(self, message: Any, session_id: Any) -> None:  # noqa: N802
        pass

    def fromAdmin(self, message: Any, session_id: Any) -> None:  # noqa: N802
        pass

    def toApp(self, message: Any, session_id: Any) -> None:  # noqa: N802
        pass

    def fromApp(self, message: Any, session_id: Any) -> None:  # noqa: N802
        msg_type = fix.MsgType()
        message.getHeader().getField(msg_type)
        if msg_type.getValue() != fix.MsgType_ExecutionReport:
            return
        report = {name: message.getField(tag) for name, tag in _REPORT_TAGS.items() if message.isSetField(tag)}
        # QuickFIX's thread: the loop owns the WebSocket connections
        self.loop.call_soon_threadsafe(self.on_report, report)


def new_order_single(order: Order) -> Any:
    """The QuickFIX message for ``order``."""
    msg = fix44.NewOrderSingle()
    msg.setField(fix.ClOrdID(order.ClOrdID))
    msg.setField(fix.HandlInst("1"))
    msg.setField(fix.Side(order.Side))
    msg.setField(fix.TransactTime())
    msg.setField(fix.OrdType(order.OrdType))
    msg.setField(fix.Symbol(order.Symbol))
    msg.setField(fix.OrderQty(order.OrderQty))
    if order.Price is not None:
        msg.setField(fix.Price(order.Price))
    return msg


def build_app(fix_app: FixApplication, subscribers: set[WebSocket]) -> FastAPI:
    app = FastAPI(title="naive order gateway")

    @app.post("/v1/orders", status_code=202)
    async def post_order(order: Order) -> dict[str, str]:
        if not fix_app.logged_on.is_set():
            raise HTTPException(status_code=503, detail="FIX session down")
        if not fix.Session.sendToTarget(new_order_single(order), fix_app.session_id):
            raise HTTPException(status_code=503, detail="FIX session did not take the order")
        return {"ClOrdID": order.ClOrdID, "state": "PendingNew"}

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        subscribers.add(ws)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            subscribers.discard(ws)

    return app


def fix_settings(path: Path, port: int, sender: str, target: str) -> Any:
    path.write_text(f"""[DEFAULT]
ConnectionType=initiator
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
StartTime=00:00:00
EndTime=00:00:00
HeartBtInt=30
ReconnectInterval=1
UseDataDictionary=N
SocketNodelay=Y
[SESSION]
BeginString=FIX.4.4
SenderCompID={sender}
TargetCompID={target}
""")
    return fix.SessionSettings(str(path))


async def main(fix_port: int, sender: str, target: str, workdir: Path) -> None:
    loop = asyncio.get_running_loop()
    subscribers: set[WebSocket] = set()
    tasks: set[asyncio.Task[None]] = set()

    def on_report(report: dict[str, str]) -> None:
        text = json.dumps({"type": "report", **report})
        for ws in list(subscribers):
            task = loop.create_task(ws.send_text(text))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    fix_app = FixApplication(loop, on_report)
    settings = fix_settings(workdir / "naive.cfg", fix_port, sender, target)
    initiator = fix.SocketInitiator(fix_app, fix.MemoryStoreFactory(), settings)
    initiator.start()
    try:
        if not await loop.run_in_executor(None, fix_app.logged_on.wait, 30):
            raise SystemExit("naive peer: no FIX logon within 30 s")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        port = sock.getsockname()[1]
        config = uvicorn.Config(build_app(fix_app, subscribers), http="httptools", log_level="warning",
                                access_log=False, backlog=1024)
        server = uvicorn.Server(config)
        serve = loop.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if serve.done():
                serve.result()
                raise SystemExit("naive peer: uvicorn stopped during start-up")
            await asyncio.sleep(0.01)
        print(json.dumps({"rest": port, "ws": port, "pid": os.getpid()}), flush=True)
        await serve  # until SIGTERM (uvicorn's own handler)
    finally:
        initiator.stop()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: python -m bench.e2e.naive_peer FIX_PORT SENDER TARGET WORKDIR")
    uvloop.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])))
