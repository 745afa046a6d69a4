"""The stream's ops over a real WebSocket: subscribe with filters, unsubscribe, several
subscriptions on one connection, and cancel on disconnect."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from _gateway_harness import KEYS, GatewayProcess, Http, order, ws_connect
from helpers import run

A = KEYS["alpha"]
GATEWAY_EXTRA = "cancel_on_disconnect_grace = 0.3"


async def frame(ws: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame that is not a heartbeat."""
    deadline = time.monotonic() + timeout
    while True:
        f = json.loads(await asyncio.wait_for(ws.recv(), max(deadline - time.monotonic(), 0.01)))
        if f["type"] != "heartbeat":
            return f


async def frames_until(ws: Any, cond: Any, limit: int = 200) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(limit):
        out.append(await frame(ws))
        if cond(out):
            return out
    raise AssertionError(f"condition never met: {out[-5:]}")


async def send(ws: Any, obj: dict[str, Any]) -> None:
    await ws.send(json.dumps(obj))


def test_subscribe_with_filters_beside_the_whole_stream(gw: GatewayProcess) -> None:
    async def go() -> None:
        ws = await ws_connect(gw.ws, A)
        first = await frame(ws)
        assert first["type"] == "subscribed" and "id" not in first  # the whole stream, as before
        await send(ws, {"op": "subscribe", "filter": {"ClOrdID": "sub-1"}})
        ack = await frame(ws)
        assert ack["type"] == "subscribed" and ack["id"] == 1 and ack["filter"] == {"ClOrdID": "sub-1"}
        await send(ws, {"op": "subscribe", "filter": {"MsgType": ["9"]}})
        assert (await frame(ws))["id"] == 2
        async with Http(gw.rest, A) as h:
            for cl in ("sub-1", "sub-2"):
                assert (await h.call("POST", "/v1/orders", order(cl)))[0] == 202
        got = await frames_until(ws, lambda fs: sum(1 for f in fs if f.get("sub") == 1) >= 2
                                 and sum(1 for f in fs if "sub" not in f) >= 4)
        mine = [f for f in got if f.get("sub") == 1]
        assert {f["message"]["Body"]["ClOrdID"] for f in mine} == {"sub-1"}
        whole = [f for f in got if "sub" not in f and f["type"] == "message"]
        assert {f["message"]["Body"]["ClOrdID"] for f in whole} == {"sub-1", "sub-2"}
        assert not [f for f in got if f.get("sub") == 2]  # no OrderCancelReject yet
        await send(ws, {"op": "unsubscribe", "id": 1})
        assert await frame(ws) == {"type": "unsubscribed", "id": 1}
        await send(ws, {"op": "ping"})
        assert (await frame(ws))["type"] == "pong"
        await ws.close()
    run(go())


def test_explicit_subscriptions_only_with_replay(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            assert (await h.call("POST", "/v1/orders", order("exp-1")))[0] == 202
            assert (await h.call("POST", "/v1/orders", order("exp-2")))[0] == 202
        from picows.websockets.asyncio.client import connect

        # before authentication, without a key: refused and closed
        async with connect(f"ws://127.0.0.1:{gw.ws}/v1/stream?subscribe=explicit") as ws:
            await send(ws, {"op": "subscribe"})
            assert await frame(ws) == {"type": "error", "reason": "authenticate first", "seq": 0}
        ws = await connect(f"ws://127.0.0.1:{gw.ws}/v1/stream?subscribe=explicit")
        await send(ws, {"op": "subscribe", "api_key": A, "since": 0, "filter": {"ClOrdID": "exp-2"}})
        ack = await frame(ws)
        assert ack["type"] == "subscribed" and ack["id"] == 1 and ack["since"] == 0
        replayed = await frames_until(ws, lambda fs: len(fs) >= 2)
        assert {f["message"]["Body"]["ClOrdID"] for f in replayed} == {"exp-2"}
        assert all(f["sub"] == 1 for f in replayed)
        seqs = [f["seq"] for f in replayed]
        assert seqs == sorted(seqs)
        # bad filters are named, the connection stays
        await send(ws, {"op": "subscribe", "filter": {"Colour": "red", "Account": 5}})
        err = await frame(ws)
        assert err["type"] == "error" and "filter.Colour" in err["reason"] and "filter.Account" in err["reason"]
        await send(ws, {"op": "unsubscribe", "id": 7})
        assert (await frame(ws))["type"] == "error"
        await ws.close()
    run(go())


def test_cancel_on_disconnect(gw: GatewayProcess) -> None:
    async def go() -> None:
        watcher = await ws_connect(gw.ws, A)
        assert (await frame(watcher))["type"] == "subscribed"
        from picows.websockets.asyncio.client import connect

        armed = await connect(f"ws://127.0.0.1:{gw.ws}/v1/stream?cancel_on_disconnect=true",
                              additional_headers={"X-API-Key": A})
        assert (await frame(armed))["type"] == "subscribed"
        async with Http(gw.rest, A) as h:
            assert (await h.call("POST", "/v1/orders", order("cod-1")))[0] == 202
            await frames_until(watcher, lambda fs: any(f["type"] == "message"
                                                       and f["message"]["Body"].get("OrdStatus") == "0"
                                                       and f["message"]["Body"]["ClOrdID"] == "cod-1"
                                                       for f in fs))
            await armed.close()
            got = await frames_until(watcher, lambda fs: any(f.get("event", {}).get("event") == "cancel_on_disconnect"
                                                             for f in fs))
            kinds = [f["event"]["event"] for f in got if f["type"] == "event"]
            assert kinds[0] == "stream_lost" and kinds[-1] == "cancel_on_disconnect"
            cancelled = [f for f in got if f["type"] == "event"][-1]["event"]["ClOrdID"]
            assert "cod-1" in cancelled
            for _ in range(200):
                status, body = await h.call("GET", "/v1/orders/cod-1")
                if body["state"] == "Canceled":
                    break
                await asyncio.sleep(0.01)
            assert body["state"] == "Canceled"
        await watcher.close()
    run(go())
