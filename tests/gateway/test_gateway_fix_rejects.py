"""A session-level Reject (35=3) from the hub over a real FIX session: the gateway's FIX
application hands it to the reports stage, which finds the refused order through the
session's message store (RefSeqNum), rejects it and pushes the Reject."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from _fix_hub import HubDouble, acceptor_settings, initiator_settings_text
from _gateway_harness import KEYS, GatewayProcess, Http, gateway_toml, order, ws_connect, ws_next
from helpers import run

from fastfix.engine import Acceptor

A = KEYS["alpha"]


class RejectingHub(HubDouble):
    """Refuses an order whose Text is ``sessreject`` with a session-level Reject."""

    def from_app(self, msg: Any, session_id: Any) -> None:
        if msg.msg_type == b"D" and msg.get(58) == b"sessreject":
            self.sid = session_id
            self._send("3", [(45, msg.seq_num), (371, 44), (372, "D"), (373, 5),
                             (58, "Value is incorrect (out of range) for this tag")])
            return
        super().from_app(msg, session_id)


def test_session_reject_over_fix_rejects_the_order(tmp_path: Path) -> None:
    async def go() -> None:
        hub = RejectingHub()
        acceptor = Acceptor(acceptor_settings(tmp_path), hub, host="127.0.0.1", port=0)
        await acceptor.start()
        loop = asyncio.get_running_loop()
        gw: GatewayProcess | None = None
        try:
            (tmp_path / "gw.cfg").write_text(initiator_settings_text(acceptor.port))
            gw = GatewayProcess(tmp_path, gateway_toml(link="fix", fix_settings="gw.cfg"))
            await loop.run_in_executor(None, gw.start)
            async with Http(gw.rest, A) as h:
                for _ in range(500):
                    if (await h.call("GET", "/readyz"))[0] == 200:
                        break
                    await asyncio.sleep(0.02)
                ws = await ws_connect(gw.ws, A, since=0)
                await ws_next(ws, "subscribed")
                assert (await h.call("POST", "/v1/orders", order("sr-1", Text="sessreject")))[0] == 202
                ev = await ws_next(ws)
                assert ev["message"]["Header"]["MsgType"] == "3"
                assert ev["about"] == {"ClOrdID": "sr-1", "MsgType": "D"}
                status, body = await h.call("GET", "/v1/orders/sr-1")
                assert status == 200 and body["state"] == "Rejected" and "out of range" in body["Text"]
                # the next order goes through as usual
                assert (await h.call("POST", "/v1/orders", order("sr-2", Text="fill")))[0] == 202
                ev = await ws_next(ws)
                assert ev["message"]["Body"]["ClOrdID"] == "sr-2"
                await ws.close()
        finally:
            if gw is not None:
                await loop.run_in_executor(None, gw.stop)
            await acceptor.stop()

    run(go())
