"""The gateway process against a FIX counterparty (fastfix acceptor double of the hub)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from _fix_hub import initiator_settings_text, start_hub
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

A, B = KEYS["alpha"], KEYS["beta"]


async def start_gateway(tmp: Path, hub_port: int, begin: str = "FIX.4.4", extra: str = "") -> GatewayProcess:
    (tmp / "gw.cfg").write_text(initiator_settings_text(hub_port, begin))
    p = GatewayProcess(tmp, gateway_toml(link="fix", fix_settings="gw.cfg", extra=extra))
    await asyncio.get_running_loop().run_in_executor(None, p.start)
    return p


async def stop_gateway(p: GatewayProcess) -> int | None:
    return await asyncio.get_running_loop().run_in_executor(None, p.stop)


async def wait_ready(p: GatewayProcess, want: int = 200, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with Http(p.rest) as h:
        while time.monotonic() < deadline:
            status, _ = await h.call("GET", "/readyz")
            if status == want:
                return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"/readyz never answered {want}")


async def wait_state(h: Http, cl: str, state: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = await h.call("GET", f"/v1/orders/{cl}")
        assert status == 200, body
        if body["state"] == state:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"{cl} never reached {state}: {body}")


def body_of(frame: dict[str, Any]) -> dict[str, Any]:
    return frame["message"]["Body"]


@pytest.mark.parametrize("begin", ["FIX.4.4", "FIX.4.2"])
def test_orders_through_fix(tmp_path: Path, begin: str) -> None:
    async def go() -> None:
        acceptor, hub = await start_hub(tmp_path, begin)
        p = await start_gateway(tmp_path, acceptor.port, begin)
        try:
            await wait_ready(p)
            ws = await ws_connect(p.ws, A, since=0)
            await ws_next(ws, "subscribed")
            async with Http(p.rest, A) as h:
                for cl, script in (("f-1", "fill"), ("p-1", "partial"), ("r-1", "reject"), ("b-1", "bmr"),
                                   ("n-1", "rest"), ("nc-1", "nocancel")):
                    status, resp = await h.call("POST", "/v1/orders", order(cl, Text=script))
                    assert status == 202, resp
                assert (await wait_state(h, "f-1", "Filled"))["CumQty"] == "10"
                p1 = await wait_state(h, "p-1", "PartiallyFilled")
                assert (p1["CumQty"], p1["LeavesQty"]) == ("5", "5")
                assert (await wait_state(h, "r-1", "Rejected"))["Text"] == "insufficient balance"
                assert (await wait_state(h, "b-1", "Rejected"))["Text"] == "broker not available"
                await wait_state(h, "n-1", "New")
                # what reached the hub: routed, namespaced, the gateway's header fields filled in
                mt, f = hub.received[0]
                assert (mt, f[11], f[128], f[1], f[55]) == ("D", "alpha:f-1", "BRKA", "ACC1", "005930")
                if begin == "FIX.4.2":
                    assert f[21] == "1"
                # cancel, refused cancel, replace
                assert (await h.call("DELETE", "/v1/orders/n-1"))[0] == 202
                await wait_state(h, "n-1", "Canceled")
                await wait_state(h, "nc-1", "New")
                status, resp = await h.call("POST", "/v1/orders/nc-1/cancel", {"ClOrdID": "nc-1-x"})
                assert status == 202 and resp["pending"] == "cancel"
                for _ in range(200):
                    o = (await h.call("GET", "/v1/orders/nc-1"))[1]
                    if "pending" not in o:
                        break
                    await asyncio.sleep(0.02)
                assert (o["state"], o["Text"]) == ("New", "cancel refused")
                status, resp = await h.call("POST", "/v1/orders/p-1/replace", {"ClOrdID": "p-2", "OrderQty": "30"})
                assert status == 202, resp
                p2 = await wait_state(h, "p-2", "PartiallyFilled")
                assert (p2["OrderQty"], p2["CumQty"], p2["LeavesQty"]) == ("30", "5", "25")
                assert (await wait_state(h, "p-1", "Replaced"))["ReplacedBy"] == "p-2"
                # a list, then its cancel
                lst = {"ListID": "LX", "DeliverToCompID": "BRKB", "NoOrders": [
                    {"ClOrdID": "lx-1", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "1",
                     "Price": "70000"},
                    {"ClOrdID": "lx-2", "Symbol": "000660", "Side": "2", "OrdType": "1", "OrderQty": "2"}]}
                status, resp = await h.call("POST", "/v1/order-lists", lst)
                assert status == 202, resp
                await wait_state(h, "lx-2", "New")
                assert (await h.call("POST", "/v1/order-lists/LX/cancel"))[0] == 202
                await wait_state(h, "lx-1", "Canceled")
                await wait_state(h, "lx-2", "Canceled")
                for _ in range(200):
                    status, lv = await h.call("GET", "/v1/order-lists/LX")
                    if lv.get("ListStatusType") == "5":
                        break
                    await asyncio.sleep(0.02)
                assert (lv["ListOrderStatus"], lv["broker"], "pending" in lv) == ("6", "BRKB", False)
                # a possible duplicate of the last report changes nothing and is not pushed
                before = (await h.call("GET", "/v1/orders/lx-2"))[1]
                hub.resend_last_report()
            # the stream: every report, in order, gap-free, ids without the namespace
            frames = await ws_collect(ws, lambda m: any(body_of(x).get("ListID") == "LX" and
                                                        x["message"]["Header"]["MsgType"] == "N" and
                                                        body_of(x).get("ListOrderStatus") == "6" for x in m))
            assert [x["seq"] for x in frames] == list(range(1, len(frames) + 1))
            kinds = {x["message"]["Header"]["MsgType"] for x in frames}
            assert kinds == {"8", "9", "j", "N"}
            assert all(x["message"]["Header"]["OnBehalfOfCompID"] in ("BRKA", "BRKB") for x in frames)
            for x in frames:
                for key in ("ClOrdID", "OrigClOrdID", "ListID", "BusinessRejectRefID"):
                    assert ":" not in body_of(x).get(key, "")
            assert any(body_of(x).get("BusinessRejectRefID") == "b-1" for x in frames)
            # nothing more arrives for the duplicate (a heartbeat comes first)
            hb = await ws_next(ws, "heartbeat", timeout=5)
            assert hb["seq"] == frames[-1]["seq"]
            async with Http(p.rest, A) as h:
                after = (await h.call("GET", "/v1/orders/lx-2"))[1]
            assert len(after["executions"]) == len(before["executions"])
            await ws.close()
            async with Http(p.rest) as h:
                _, metrics = await h.call("GET", "/metrics")
            assert b"gateway_duplicate_reports_total 1.0" in metrics
        finally:
            await stop_gateway(p)
            await acceptor.stop()

    run(go())


def test_restart_with_orders_in_flight(tmp_path: Path) -> None:
    async def go() -> None:
        acceptor, hub = await start_hub(tmp_path)
        p = await start_gateway(tmp_path, acceptor.port)
        try:
            await wait_ready(p)
            async with Http(p.rest, A) as h:
                for i in range(3):
                    assert (await h.call("POST", "/v1/orders", order(f"h-{i}", Text="hold")))[0] == 202
            for _ in range(200):
                if len(hub.held) == 3:
                    break
                await asyncio.sleep(0.02)
            assert len(hub.held) == 3
            assert await stop_gateway(p) == 0
            # the broker answers while the gateway is down: the hub keeps the reports for resend
            hub.release(fill=True)
            await p_start(p)
            await wait_ready(p)
            async with Http(p.rest, A) as h:
                for i in range(3):
                    o = await wait_state(h, f"h-{i}", "Filled")
                    assert o["CumQty"] == "10"
            ws = await ws_connect(p.ws, A, since=0)
            try:
                await ws_next(ws, "subscribed")
                frames = await ws_collect(ws, lambda m: sum(body_of(x).get("OrdStatus") == "2" for x in m) == 3)
                assert [x["seq"] for x in frames] == list(range(1, len(frames) + 1))
            finally:
                await ws.close()
        finally:
            await stop_gateway(p)
            await acceptor.stop()

    async def p_start(p: GatewayProcess) -> None:
        await asyncio.get_running_loop().run_in_executor(None, p.start)

    run(go())


def test_session_down_answers_503(tmp_path: Path) -> None:
    async def go() -> None:
        acceptor, _ = await start_hub(tmp_path)
        port = acceptor.port
        await acceptor.stop()  # nothing listens there any more
        p = await start_gateway(tmp_path, port)
        try:
            async with Http(p.rest, A) as h:
                status, body = await h.call("GET", "/readyz")
                assert status == 503 and body["sessions"][0]["logged_on"] is False
                status, body = await h.call("POST", "/v1/orders", order("down-1"))
                assert status == 503 and body["error"] == "session_down"
                status, _ = await h.call("GET", "/v1/orders/down-1")
                assert status == 404
                status, body = await h.call("GET", "/v1/brokers")
                assert body["brokers"][0]["session"]["logged_on"] is False
        finally:
            await stop_gateway(p)

    run(go())


def test_config_errors_name_file_and_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    from _gateway_harness import REPO

    cfg = tmp_path / "bad.toml"
    cfg.write_text(gateway_toml().replace('tick_size = "krx"', 'tick_size = "nyse"'))
    out = subprocess.run([sys.executable, "-m", "fastfix.cli", "gateway", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 2
    assert "bad.toml" in out.stderr and "gateway.tick_size" in out.stderr
    json.dumps(B)  # keep both keys referenced


def test_database_of_another_format_is_refused_with_its_name(tmp_path: Path) -> None:
    """A database whose records this gateway cannot read stops the start with one line
    naming the file (no traceback), and the file is left as it was."""
    import sqlite3
    import subprocess
    import sys


    db = tmp_path / "gw.db"  # the harness configuration's database
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (client_id TEXT, cl_ord_id TEXT, data BLOB)")
        conn.execute("INSERT INTO orders VALUES ('alpha', 'o1', x'00')")
    before = db.read_bytes()
    cfg = tmp_path / "gw.toml"
    cfg.write_text(gateway_toml())
    out = subprocess.run([sys.executable, "-m", "fastfix.cli", "gateway", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "gw.db: order records in format unknown" in out.stderr and "Traceback" not in out.stderr
    assert db.read_bytes() == before
