"""`fastfix demo` end to end: REST order -> gateway -> hub -> broker -> exchange -> WebSocket.

Every role runs as its own process (real FIX over loopback TCP) on free ports;
the test stops the sandbox by PID and checks that no child is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEY = "demo-alpha-key"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _post(port: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/orders", data=json.dumps(body).encode(),
                                 method="POST", headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture
def sandbox(tmp_path: Path) -> Any:
    ports_file = tmp_path / "sandbox.json"
    out = open(tmp_path / "demo.out", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastfix.cli", "demo", "--config", str(ROOT / "examples" / "sandbox.toml"),
         "--var", str(tmp_path / "var"), "--ephemeral", "--ports-file", str(ports_file)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    ports: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                ports = json.loads(ports_file.read_text())
                break
            time.sleep(0.1)
        if not ports:
            pytest.fail(f"sandbox did not come up:\n{(tmp_path / 'demo.out').read_text()}")
        yield ports, proc, tmp_path
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for pid in ports.get("pids", {}).values():  # never leave a child behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        out.close()


def test_rest_order_fills_through_hub_broker_exchange_and_reaches_websocket(sandbox: Any) -> None:
    ports, proc, tmp = sandbox
    assert set(ports["brokers"].values()) == {"KIWOOM", "MIRAE"}
    assert all(_alive(pid) for pid in ports["pids"].values())

    async def main() -> list[dict[str, Any]]:
        from picows.websockets.asyncio.client import connect

        loop = asyncio.get_running_loop()
        async with connect(f"ws://127.0.0.1:{ports['ws']}/v1/stream?since=0",
                           additional_headers={"X-API-Key": KEY}) as ws:
            orders = [
                {"ClOrdID": "sbx-1", "DeliverToCompID": "KIWOOM", "Account": "ALPHA-01", "Symbol": "005930",
                 "Side": "1", "OrdType": "1", "OrderQty": "10"},
                {"ClOrdID": "sbx-2", "DeliverToCompID": "MIRAE", "Account": "ALPHA-01", "Symbol": "005930",
                 "Side": "2", "OrdType": "1", "OrderQty": "5"},
                # refused by the broker: 100,000,000 KRW of cash cannot buy 2,000 x 70,000
                {"ClOrdID": "sbx-3", "DeliverToCompID": "KIWOOM", "Account": "ALPHA-01", "Symbol": "005930",
                 "Side": "1", "OrdType": "2", "OrderQty": "2000", "Price": "70000"},
            ]
            for body in orders:
                status, answer = await loop.run_in_executor(None, _post, ports["rest"], body)
                assert status == 202, answer
            final: dict[str, dict[str, Any]] = {}
            seen: list[dict[str, Any]] = []
            deadline = time.monotonic() + 30
            while len(final) < 3:
                left = deadline - time.monotonic()
                assert left > 0, f"reports missing; got {seen}"
                frame = json.loads(await asyncio.wait_for(ws.recv(), left))
                if frame["type"] != "message":
                    continue
                msg = frame["message"]
                seen.append(msg)
                if msg["Body"].get("OrdStatus") in ("2", "8"):
                    final[msg["Body"]["ClOrdID"]] = msg
            return [final["sbx-1"], final["sbx-2"], final["sbx-3"]]

    buy, sell, refused = asyncio.run(asyncio.wait_for(main(), 90))
    assert buy["Body"]["OrdStatus"] == "2" and buy["Body"]["CumQty"] == "10"
    assert buy["Header"]["OnBehalfOfCompID"] == "KIWOOM"        # routed back through the hub
    assert sell["Body"]["OrdStatus"] == "2" and sell["Header"]["OnBehalfOfCompID"] == "MIRAE"
    assert refused["Body"]["OrdStatus"] == "8" and "insufficient cash" in refused["Body"]["Text"]
    # every hop audited
    hub_log = (tmp / "var" / "hub" / "log" / "FIX.4.4-HUB-GATEWAY.messages.log")
    deadline = time.monotonic() + 10
    while b"sbx-1" not in hub_log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)   # the hub hands its audit log to the OS once a second
    assert b"alpha:sbx-1" in hub_log.read_bytes()

    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(60) == 0
    for label, pid in ports["pids"].items():
        assert not _alive(pid), f"{label} (pid {pid}) still running"
