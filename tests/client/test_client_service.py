"""The order service end to end through the real sandbox processes (gateway -> hub -> broker ->
exchange): advisors on the wire, order status, mass cancel, instruments, positions, balance,
trading-session status and the stream's subscribe op, with the SDK."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from _client_sandbox import KEY, SandboxRun

from fastfix.client import ApiError, Client, Order

TERMINAL = {"2", "4", "8", "C"}


def wait_order(c: Client, cl: str, states: set[str], timeout: float = 20.0) -> Order:
    deadline = time.monotonic() + timeout
    while True:
        o = c.get_order(cl)
        if o.OrdStatus in states:
            return o
        assert o.OrdStatus not in TERMINAL, f"{cl} is {o.state}: {o.Text}"
        assert time.monotonic() < deadline, f"{cl} stayed {o.state}"
        time.sleep(0.05)


async def _frames(ws: Any, until: Any, timeout: float = 20.0, limit: int = 5000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    for _ in range(limit):
        if until(out):
            return out
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; last frames: {out[-5:]}"
        frame = json.loads(await asyncio.wait_for(ws.recv(), left))
        if frame["type"] != "heartbeat":
            out.append(frame)
    raise AssertionError("too many frames")


def test_order_service_through_hub_broker_and_exchange(sandbox: SandboxRun) -> None:
    tag = str(time.time_ns())
    cl = f"svc-{tag}"

    async def go() -> None:
        from picows.websockets.asyncio.client import connect

        async with connect(sandbox.ws_url + "?subscribe=explicit") as ws:
            # the subscribe op authenticates and filters: this order's reports and the mass cancel's
            await ws.send(json.dumps({"op": "subscribe", "api_key": KEY,
                                      "filter": {"ClOrdID": cl}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert ack["type"] == "subscribed" and ack["id"] == 1
            await ws.send(json.dumps({"op": "subscribe", "since": 0, "filter": {"MsgType": ["r", "h"]}}))
            ack2 = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert ack2["type"] == "subscribed" and ack2["id"] == 2

            def steps() -> dict[str, Any]:
                with Client(sandbox.url, KEY) as c:
                    # reference data from the exchange, through hub and broker
                    listing = c.instruments(broker="KIWOOM")["instruments"]
                    samsung = next(i for i in listing if i["Symbol"] == "005930")
                    assert samsung["source"] == "exchange", listing
                    lo, hi = int(samsung["lower_limit"]), int(samsung["upper_limit"])
                    assert lo < 70000 < hi and samsung["tick_size"] == "100" and samsung["name"]
                    one = c.instrument("005930", broker="KIWOOM")
                    assert one["upper_limit"] == samsung["upper_limit"]
                    with pytest.raises(ApiError) as err:  # beyond the daily limit: refused at intake
                        c.new_order(ClOrdID=f"svc-lim-{tag}", DeliverToCompID="KIWOOM", Symbol="005930",
                                    Side="1", OrdType="2", OrderQty="1", Price=str(hi + 100))
                    assert err.value.status == 422 and err.value.errors[0].field == "Price"
                    # an order of the advisor on an account only it owns: accepted by the broker
                    c.new_order(ClOrdID=cl, DeliverToCompID="KIWOOM", Symbol="005930", Side="1",
                                OrdType="2", OrderQty="2", Price=str(lo + 1000))
                    wait_order(c, cl, {"0"})
                    status = c.order_status(cl)
                    assert status.ClOrdID == cl
                    positions = c.positions("ALPHA-01", broker="KIWOOM")
                    held = {p["Symbol"]: p["NoPositions"][0]["LongQty"] for p in positions["PositionReports"]}
                    assert "005930" in held and int(held["005930"]) > 0
                    with pytest.raises(ApiError) as err:
                        c.positions("BETA-01", broker="KIWOOM")  # not alpha's account
                    assert err.value.status == 403
                    balance = c.balance("ALPHA-01", broker="KIWOOM")["CollateralReport"]
                    assert int(balance["CashOutstanding"]) >= 2 * (lo + 1000)  # the resting buy holds cash
                    assert int(balance["MarginExcess"]) == int(balance["EndCash"]) - int(balance["CashOutstanding"])
                    sent = c.mass_cancel("KIWOOM", Symbol="005930")
                    canceled = wait_order(c, cl, {"4"})
                    return {"mass": sent, "order": canceled}

            done = await asyncio.get_running_loop().run_in_executor(None, steps)
            assert done["mass"]["MassCancelRequestType"] == "1"
            got = await _frames(ws, lambda fs: any(f.get("sub") == 1 and f["message"]["Body"].get("OrdStatus") == "4"
                                                   for f in fs)
                                and any(f.get("sub") == 2 and f["message"]["Header"]["MsgType"] == "r"
                                        and f["message"]["Body"]["ClOrdID"] == done["mass"]["ClOrdID"]
                                        for f in fs))
            mine = [f["message"]["Body"] for f in got if f.get("sub") == 1]
            assert {b["ClOrdID"] for b in mine} == {cl}
            assert any(b.get("ExecType") == "I" for b in mine)  # the status answer
            report = next(f["message"]["Body"] for f in got if f.get("sub") == 2
                          and f["message"]["Header"]["MsgType"] == "r")
            assert report["MassCancelResponse"] == "1" and int(report["TotalAffectedOrders"]) >= 1
            # the trading-session status the gateway subscribed to at logon
            assert any(f.get("sub") == 2 and f["message"]["Header"]["MsgType"] == "h" for f in got)

    asyncio.run(asyncio.wait_for(go(), 120))


def test_replace_keeps_exec_inst_through_the_exchange(sandbox: SandboxRun) -> None:
    """A primary-best order (OrdType P, ExecInst R: pegged to the best price of its own side,
    so it rests) replaced with a new quantity only: the exchange replaces it (the wire content,
    ExecInst repeated, is checked in tests/gateway/test_gateway_service.py). A change of Side
    is refused at the gateway."""
    tag = str(time.time_ns())
    with Client(sandbox.url, KEY) as c:
        first = c.new_order(ClOrdID=f"pb-{tag}", DeliverToCompID="KIWOOM", Symbol="005930", Side="1",
                            OrdType="P", ExecInst="R", OrderQty="3")
        wait_order(c, first.ClOrdID, {"0"})
        second = c.replace_order(first.ClOrdID, ClOrdID=f"pb2-{tag}", OrderQty="2")
        replaced = wait_order(c, second.ClOrdID, {"0", "1", "2"})
        assert replaced.OrderQty == "2" and replaced.OrdType == "P"
        assert c.get_order(first.ClOrdID).OrdStatus == "5"
        with pytest.raises(ApiError) as err:  # the side is the order's: a new order changes it
            c.replace_order(second.ClOrdID, ClOrdID=f"pb3-{tag}", Side="2")
        assert err.value.status == 422 and err.value.errors[0].field == "Side"
        c.cancel_order(second.ClOrdID)
        wait_order(c, second.ClOrdID, {"4"})
