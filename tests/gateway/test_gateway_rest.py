"""The gateway process end to end (REST + WebSocket) with the in-process loopback broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from _gateway_harness import (
    KEYS,
    GatewayProcess,
    Http,
    gateway_toml,
    order,
    ws_collect,
    ws_connect,
    ws_next,
)
from helpers import run

A, B, G = KEYS["alpha"], KEYS["beta"], KEYS["gamma"]
GATEWAY_EXTRA = "max_body_bytes = 8192"  # for the module's gateway, the `gw` fixture


async def wait_state(h: Http, cl: str, state: str, tries: int = 200) -> dict[str, Any]:
    for _ in range(tries):
        status, body = await h.call("GET", f"/v1/orders/{cl}")
        assert status == 200, body
        if body["state"] == state:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"{cl} never reached {state}: {body}")


def test_service_endpoints(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest) as h:
            assert (await h.call("GET", "/healthz")) == (200, {"status": "ok"})
            status, ready = await h.call("GET", "/readyz")
            assert status == 200 and ready["ready"] is True
            status, doc = await h.call("GET", "/openapi.json")
            assert status == 200 and doc["openapi"].startswith("3.1")
            nos = doc["components"]["schemas"]["NewOrderSingle"]
            assert "ClOrdID" in nos["required"] and "OrderQty" in nos["properties"]
            assert "/v1/orders/{ClOrdID}/replace" in doc["paths"]
            status, page = await h.call("GET", "/docs")  # Swagger UI over /openapi.json
            assert status == 200 and b"/docs/swagger-ui-bundle.js" in page and b"/openapi.json" in page
            status, _ = await h.call("GET", "/nope")
            assert status == 404
            status, info = await h.call("GET", "/stream-info")
            assert status == 200 and info == {"port": gw.ws, "path": "/v1/stream"}
            # the stream on the REST port: 404 naming its own port, before any key is asked for
            status, err = await h.call("GET", "/v1/stream")
            assert status == 404 and f":{gw.ws}/v1/stream" in err["message"], err
        # a WebSocket handshake sent to the REST port gets the same answer over HTTP
        r, w = await asyncio.open_connection("127.0.0.1", gw.rest)
        try:
            w.write(b"GET /v1/stream HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n")
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 404"), head
        finally:
            w.close()
        async with Http(gw.rest) as h:
            # a request first, so that the counters exist
            await h.call("GET", "/v1/brokers", headers={"X-API-Key": A})
            status, metrics = await h.call("GET", "/metrics")
            assert status == 200 and b"gateway_http_requests_total" in metrics
    run(go())


def test_authentication(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest) as h:
            status, body = await h.call("GET", "/v1/orders")
            assert status == 401 and body["error"] == "unauthorized"
            status, _ = await h.call("GET", "/v1/orders", headers={"X-API-Key": "wrong"})
            assert status == 401
            status, body = await h.call("GET", "/v1/brokers", headers={"Authorization": f"Bearer {B}"})
            assert status == 200
            assert [b["id"] for b in body["brokers"]] == ["BRKA"]
            assert body["brokers"][0]["session"]["logged_on"] is True
    run(go())


def test_new_order_accepted_and_filled(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            status, body = await h.call("POST", "/v1/orders", order("mkt-1", OrdType="1", Price=None, OrderQty=10))
            assert status == 202, body
            assert body["ClOrdID"] == "mkt-1" and body["state"] == "PendingNew" and body["broker"] == "BRKA"
            o = await wait_state(h, "mkt-1", "Filled")
            assert (o["CumQty"], o["LeavesQty"], o["AvgPx"], o["Account"]) == ("10", "0", "70000", "ACC1")
            types = [e["ExecType"] for e in o["executions"]]
            assert types == ["A", "0", "F", "F"]
    run(go())


def test_validation_lists_every_error(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            bad = order("bad-1", OrderQty="-5", Price="70010", Side="Z", Bogus="x")
            status, body = await h.call("POST", "/v1/orders", bad)
            assert status == 422, body
            fields = {(e["field"], e["path"]) for e in body["errors"]}
            assert {("OrderQty", "$.OrderQty"), ("Price", "$.Price"), ("Side", "$.Side"),
                    ("Bogus", "$.Bogus")} <= fields
            status, body = await h.call("POST", "/v1/orders", order("bad-2", Price=None))
            assert status == 422 and [e["field"] for e in body["errors"]] == ["Price"]
            assert "required" in body["errors"][0]["reason"]
            status, body = await h.call("POST", "/v1/orders", order("bad-3", OrderQty="200000"))
            assert status == 422 and "maximum" in body["errors"][0]["reason"]
            status, body = await h.call("POST", "/v1/orders", order("bad-4", Price="100000", OrderQty="20000"))
            assert status == 422 and "notional" in body["errors"][0]["reason"]
            status, body = await h.call("POST", "/v1/orders", order("bad:5"))
            assert status == 422 and body["errors"][0]["field"] == "ClOrdID"
            status, body = await h.call("POST", "/v1/orders", order("bad-6", DeliverToCompID="NOPE"))
            assert status == 422 and body["errors"][0]["field"] == "DeliverToCompID"
            status, body = await h.call("POST", "/v1/orders", b"{not json")
            assert status == 400 and body["error"] == "bad_json"
            status, body = await h.call("POST", "/v1/orders", b"[1,2]")
            assert status == 400
            status, body = await h.call("POST", "/v1/orders", b"x" * 9000)
            assert status == 413
            status, body = await h.call("GET", "/v1/orders/bad-1")
            assert status == 404  # nothing was stored
    run(go())


def test_whole_message_with_header_routing(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            body = order("hdr-1", DeliverToCompID=None)
            status, resp = await h.call("POST", "/v1/orders", {"Header": {"DeliverToCompID": "BRKB"}, "Body": body})
            assert status == 202 and resp["broker"] == "BRKB"
            # beta has a single broker: routing may be left out
        async with Http(gw.rest, B) as h:
            status, resp = await h.call("POST", "/v1/orders", order("hdr-2", DeliverToCompID=None))
            assert status == 202 and resp["broker"] == "BRKA"
    run(go())


def test_forbidden_broker_and_account(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, B) as h:
            status, body = await h.call("POST", "/v1/orders", order("fb-1", DeliverToCompID="BRKB"))
            assert status == 403 and "BRKB" in body["message"]
        async with Http(gw.rest, A) as h:
            status, body = await h.call("POST", "/v1/orders", order("fb-2", Account="OTHER"))
            assert status == 403 and "OTHER" in body["message"]
    run(go())


def test_idempotent_retry_and_conflict(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            body = json.dumps(order("idem-1")).encode()
            s1, r1 = await h.call("POST", "/v1/orders", body)
            s2, r2 = await h.call("POST", "/v1/orders", body)
            assert (s1, s2) == (202, 202) and r1 == r2
            s3, r3 = await h.call("POST", "/v1/orders", order("idem-1", OrderQty="11"))
            assert s3 == 409 and r3["error"] == "duplicate_id"
            status, o = await h.call("GET", "/v1/orders/idem-1")
            assert o["OrderQty"] == "10"
    run(go())


def test_throttle(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, G) as h:
            codes = []
            for i in range(4):
                status, body = await h.call("POST", "/v1/orders", order(f"thr-{i}"))
                codes.append(status)
            assert codes[:2] == [202, 202] and 429 in codes[2:]
            _, headers, _ = await h.raw("POST", "/v1/orders", json.dumps(order("thr-x")).encode())
            assert int(headers["retry-after"]) >= 1
    run(go())


def test_cancel_and_replace(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            assert (await h.call("POST", "/v1/orders", order("cx-1")))[0] == 202
            await wait_state(h, "cx-1", "New")
            status, body = await h.call("POST", "/v1/orders/cx-1/cancel", {"ClOrdID": "cx-1-c"})
            assert status == 202 and body["CancelClOrdID"] == "cx-1-c"
            await wait_state(h, "cx-1", "Canceled")
            status, body = await h.call("DELETE", "/v1/orders/cx-1")
            assert status == 409 and body["error"] == "order_closed"
            # DELETE without a body: the gateway names the cancel request
            assert (await h.call("POST", "/v1/orders", order("cx-2")))[0] == 202
            await wait_state(h, "cx-2", "New")
            assert (await h.call("DELETE", "/v1/orders/cx-2"))[0] == 202
            await wait_state(h, "cx-2", "Canceled")
            # replace: new ClOrdID, new quantity and price; the rest comes from the order
            assert (await h.call("POST", "/v1/orders", order("rp-1")))[0] == 202
            await wait_state(h, "rp-1", "New")
            status, body = await h.call("POST", "/v1/orders/rp-1/replace",
                                        {"ClOrdID": "rp-2", "OrderQty": "20", "Price": "70100"})
            assert status == 202 and body["state"] == "PendingReplace", body
            new = await wait_state(h, "rp-2", "New")
            assert (new["OrderQty"], new["Price"], new["OrigClOrdID"]) == ("20", "70100", "rp-1")
            old = await wait_state(h, "rp-1", "Replaced")
            assert old["ReplacedBy"] == "rp-2"
            status, body = await h.call("POST", "/v1/orders/rp-2/replace", {"ClOrdID": "rp-3", "Price": "70150"})
            assert status == 422 and body["errors"][0]["field"] == "Price"  # off the tick grid
            assert (await h.call("POST", "/v1/orders/nope/cancel", {}))[0] == 404
            assert (await h.call("POST", "/v1/orders/nope/replace", {"ClOrdID": "z"}))[0] == 404
            assert (await h.call("PUT", "/v1/orders/rp-2"))[0] == 405
    run(go())


def test_order_list_and_list_cancel(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            body = {"ListID": "L1", "DeliverToCompID": "BRKA", "NoOrders": [
                {"ClOrdID": "L1-a", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "5",
                 "Price": "70000"},
                {"ClOrdID": "L1-b", "Symbol": "000660", "Side": "2", "OrdType": "2", "OrderQty": "3",
                 "Price": "180000"}]}
            status, resp = await h.call("POST", "/v1/order-lists", body)
            assert status == 202, resp
            assert [o["ClOrdID"] for o in resp["orders"]] == ["L1-a", "L1-b"]
            await wait_state(h, "L1-b", "New")
            status, lst = await h.call("GET", "/v1/order-lists/L1")
            assert status == 200 and lst["ListOrderStatus"] == "3"
            assert [o["state"] for o in lst["orders"]] == ["New", "New"]
            status, _ = await h.call("POST", "/v1/order-lists/L1/cancel")
            assert status == 202
            await wait_state(h, "L1-a", "Canceled")
            await wait_state(h, "L1-b", "Canceled")
            # every error of every member at once
            bad = {"ListID": "L2", "DeliverToCompID": "BRKA", "NoOrders": [
                {"ClOrdID": "L2-a", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "0",
                 "Price": "70000"},
                {"ClOrdID": "L2-a", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "1"}]}
            status, resp = await h.call("POST", "/v1/order-lists", bad)
            assert status == 422
            paths = {e["path"] for e in resp["errors"]}
            assert {"$.NoOrders[0].OrderQty", "$.NoOrders[1].ClOrdID", "$.NoOrders[1].Price"} <= paths
            assert (await h.call("GET", "/v1/order-lists/L2"))[0] == 404
    run(go())


def test_list_orders_filters_and_paging(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            for i in range(5):
                assert (await h.call("POST", "/v1/orders", order(f"pg-{i}", Symbol="035720",
                                                                 Price="50000")))[0] == 202
            await wait_state(h, "pg-4", "New")
            seen: list[str] = []
            cursor = ""
            for _ in range(10):
                status, page = await h.call("GET", f"/v1/orders?symbol=035720&limit=2{cursor}")
                assert status == 200
                seen += [o["ClOrdID"] for o in page["orders"]]
                if not page["next"]:
                    break
                cursor = f"&cursor={page['next']}"
            assert seen == [f"pg-{i}" for i in range(5)]
            status, page = await h.call("GET", "/v1/orders?status=Filled")
            assert status == 200 and page["orders"] and all(o["state"] == "Filled" for o in page["orders"])
            status, page = await h.call("GET", "/v1/orders?broker=BRKB")
            assert all(o["broker"] == "BRKB" for o in page["orders"])
            status, page = await h.call("GET", "/v1/orders?since=2999-01-01T00:00:00Z")
            assert status == 200 and page["orders"] == []
            status, body = await h.call("GET", "/v1/orders?status=Nope&limit=0")
            assert status == 400 and {e["field"] for e in body["errors"]} == {"status", "limit"}
    run(go())


def test_two_clients_are_isolated(gw: GatewayProcess) -> None:
    async def go() -> None:
        wa = await ws_connect(gw.ws, A)
        wb = await ws_connect(gw.ws, B)
        try:
            await ws_next(wa, "subscribed")
            await ws_next(wb, "subscribed")
            async with Http(gw.rest, A) as ha, Http(gw.rest, B) as hb:
                assert (await ha.call("POST", "/v1/orders", order("same-id", Symbol="005380", Price="200000")))[0] == 202
                assert (await hb.call("POST", "/v1/orders", order("same-id", OrderQty="7")))[0] == 202
                assert (await hb.call("GET", "/v1/orders/mkt-1"))[0] == 404  # alpha's order
                a = await wait_state(ha, "same-id", "New")
                b = await wait_state(hb, "same-id", "New")
                assert (a["Symbol"], b["Symbol"], b["OrderQty"]) == ("005380", "005930", "7")
                _, pa = await ha.call("GET", "/v1/orders?limit=1000")
                _, pb = await hb.call("GET", "/v1/orders?limit=1000")
                assert {o["ClOrdID"] for o in pa["orders"]}.isdisjoint(
                    {o["ClOrdID"] for o in pb["orders"]} - {"same-id"})
            ea = await ws_collect(wa, lambda m: any(x["message"]["Body"].get("ExecType") == "0" and
                                                    x["message"]["Body"]["ClOrdID"] == "same-id" for x in m))
            eb = await ws_collect(wb, lambda m: any(x["message"]["Body"].get("ExecType") == "0" and
                                                    x["message"]["Body"]["ClOrdID"] == "same-id" for x in m))
            assert all(x["message"]["Body"].get("Symbol") != "005930" for x in ea
                       if x["message"]["Body"]["ClOrdID"] == "same-id")
            assert all(x["message"]["Body"]["OrderQty"] == "7" for x in eb
                       if x["message"]["Body"]["ClOrdID"] == "same-id")
            # ClOrdIDs come back without the wire namespace
            assert all(":" not in x["message"]["Body"]["ClOrdID"] for x in ea + eb)
        finally:
            await wa.close()
            await wb.close()
    run(go())


def test_ws_sequence_replay_and_auth(gw: GatewayProcess) -> None:
    async def go() -> None:
        ws = await ws_connect(gw.ws, A, since=0)
        try:
            sub = await ws_next(ws, "subscribed")
            assert sub["since"] == 0
            first = await ws_collect(ws, lambda m: len(m) >= 3)
            assert [m["seq"] for m in first] == [1, 2, 3]
            last = sub["last_seq"]
            rest = await ws_collect(ws, lambda m: m and m[-1]["seq"] >= last) if last > 3 else []
            seqs = [m["seq"] for m in first + rest]
            assert seqs == list(range(1, len(seqs) + 1))
        finally:
            await ws.close()
        cut = seqs[-1]
        async with Http(gw.rest, A) as h:
            assert (await h.call("POST", "/v1/orders", order("replay-1", OrdType="1", Price=None)))[0] == 202
            await wait_state(h, "replay-1", "Filled")
        # reconnect with since= the last seq received: continues without gap, then live
        from picows.websockets.asyncio.client import connect

        ws = await connect(f"ws://127.0.0.1:{gw.ws}/v1/stream")
        try:
            await ws.send(json.dumps({"op": "auth", "api_key": A, "since": cut}))
            await ws_next(ws, "subscribed")
            more = await ws_collect(ws, lambda m: any(x["message"]["Body"]["ClOrdID"] == "replay-1" and
                                                      x["message"]["Body"]["ExecType"] == "F" and
                                                      x["message"]["Body"]["OrdStatus"] == "2" for x in m))
            assert [m["seq"] for m in more] == list(range(cut + 1, cut + 1 + len(more)))
            async with Http(gw.rest, A) as h:
                assert (await h.call("POST", "/v1/orders", order("live-1")))[0] == 202
            live = await ws_next(ws)
            assert live["seq"] == more[-1]["seq"] + 1 and live["message"]["Body"]["ClOrdID"] == "live-1"
            hb = await ws_next(ws, "heartbeat", timeout=5)
            assert hb["seq"] >= live["seq"]
        finally:
            await ws.close()
        # bad key: closed with a reason
        ws = await connect(f"ws://127.0.0.1:{gw.ws}/v1/stream")
        try:
            await ws.send(json.dumps({"op": "auth", "api_key": "wrong"}))
            err = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert err["type"] == "error" and "API key" in err["reason"]
        finally:
            await ws.close()
        with pytest.raises(Exception):  # noqa: B017 - the handshake is refused (401)
            await ws_connect(gw.ws, "wrong")
    run(go())


def test_restart_recovers_everything(tmp_path: Path) -> None:
    p = GatewayProcess(tmp_path, gateway_toml())
    p.start()
    try:
        async def before() -> int:
            async with Http(p.rest, A) as h:
                for i in range(3):
                    assert (await h.call("POST", "/v1/orders", order(f"rs-{i}")))[0] == 202
                assert (await h.call("POST", "/v1/orders", order("rs-m", OrdType="1", Price=None)))[0] == 202
                await wait_state(h, "rs-m", "Filled")
                await wait_state(h, "rs-2", "New")
            ws = await ws_connect(p.ws, A, since=0)
            sub = await ws_next(ws, "subscribed")
            await ws.close()
            return int(sub["last_seq"])

        last = run(before())
        assert p.stop() == 0
        p.start()

        async def after() -> None:
            async with Http(p.rest, A) as h:
                o = await wait_state(h, "rs-m", "Filled", tries=1)
                assert o["CumQty"] == "10" and len(o["executions"]) == 4
                assert (await h.call("GET", "/v1/orders/rs-1"))[1]["state"] == "New"
                # same ClOrdID after restart: still known
                assert (await h.call("POST", "/v1/orders", order("rs-0", OrderQty="99")))[0] == 409
            ws = await ws_connect(p.ws, A, since=0)
            try:
                sub = await ws_next(ws, "subscribed")
                assert sub["last_seq"] == last
                events = await ws_collect(ws, lambda m: len(m) >= last)
                assert [e["seq"] for e in events] == list(range(1, last + 1))
                async with Http(p.rest, A) as h:
                    assert (await h.call("POST", "/v1/orders", order("rs-new")))[0] == 202
                nxt = await ws_next(ws)
                assert nxt["seq"] == last + 1
            finally:
                await ws.close()

        run(after())
    finally:
        p.stop()
