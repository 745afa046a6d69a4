"""The order service's REST routes on the gateway process (loopback broker): order status,
mass cancel, list cancel with a body, instruments, positions and balance."""

from __future__ import annotations

import asyncio
from typing import Any

from _gateway_harness import KEYS, GatewayProcess, Http, order
from helpers import run

A, B = KEYS["alpha"], KEYS["beta"]


async def state_of(h: Http, cl: str, want: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(300):
        status, body = await h.call("GET", f"/v1/orders/{cl}")
        if status == 200 and body["state"] == want:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"{cl} never {want}: {body}")


def test_status_and_mass_cancel_routes(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            assert (await h.call("POST", "/v1/orders", order("rs-1")))[0] == 202
            await state_of(h, "rs-1", "New")
            status, body = await h.call("POST", "/v1/orders/rs-1/status")
            assert status == 202 and body["ClOrdID"] == "rs-1" and body["OrdStatusReqID"]
            assert (await h.call("POST", "/v1/orders/nope/status"))[0] == 404
            assert (await h.call("GET", "/v1/orders/rs-1/status"))[0] == 405
            status, body = await h.call("POST", "/v1/orders/mass-cancel", {"broker": "BRKA", "Symbol": "005930"})
            assert status == 202 and body["MassCancelRequestType"] == "1"
            await state_of(h, "rs-1", "Canceled")
            status, body = await h.call("POST", "/v1/orders/mass-cancel", {"Symbol": "005930"})
            assert status == 422 and body["errors"][0]["field"] == "DeliverToCompID"  # alpha has two brokers
    run(go())


def test_list_cancel_takes_its_body(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            entries = [{"ClOrdID": "rl-1", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "10",
                        "Price": "70000"}]
            assert (await h.call("POST", "/v1/order-lists", {"ListID": "RL", "DeliverToCompID": "BRKA",
                                                             "NoOrders": entries}))[0] == 202
            await state_of(h, "rl-1", "New")
            status, body = await h.call("POST", "/v1/order-lists/RL/cancel", {"Text": 7})
            assert status == 422 and body["errors"][0]["field"] == "Text"
            status, _ = await h.call("POST", "/v1/order-lists/RL/cancel", {"Text": "done for today"})
            assert status == 202
            await state_of(h, "rl-1", "Canceled")
    run(go())


def test_instruments_positions_balance_routes(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            status, body = await h.call("GET", "/v1/instruments?broker=BRKA")
            assert status == 200 and {i["Symbol"] for i in body["instruments"]} >= {"005930"}
            status, body = await h.call("GET", "/v1/instruments/005930?broker=BRKA")
            assert status == 200 and body["upper_limit"] == "91000"
            assert (await h.call("GET", "/v1/instruments/999999?broker=BRKA"))[0] == 404
            status, body = await h.call("GET", "/v1/accounts/ACC1/positions?broker=BRKA")
            assert status == 200 and body["PositionReports"][0]["Symbol"] == "005930"
            status, body = await h.call("GET", "/v1/accounts/ACC1/balance?broker=BRKB")
            assert status == 200 and body["CollateralReport"]["Account"] == "ACC1"
            assert (await h.call("GET", "/v1/accounts/ACC2/balance?broker=BRKA"))[0] == 403
            status, body = await h.call("GET", "/v1/accounts/ACC1/balance")
            assert status == 400 and body["errors"][0]["field"] == "broker"
            assert (await h.call("GET", "/v1/accounts/ACC1/balance?broker=BRKC"))[0] == 403
            assert (await h.call("POST", "/v1/accounts/ACC1/balance?broker=BRKA"))[0] == 405
        async with Http(gw.rest, B) as h:  # one broker: it may be left out
            status, body = await h.call("GET", "/v1/accounts/ANY/balance")
            assert status == 200 and body["broker"] == "BRKA"
    run(go())
