"""``fastfix-client`` against the real sandbox: every subcommand, human and JSON output,
and the documented exit status of each kind of failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _client_sandbox import KEY, SandboxRun

from fastfix.client.cli import EXIT_CODES, main

ANSI = "\x1b["


def run(sandbox: SandboxRun, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        key: str = KEY) -> tuple[int, str, str]:
    for k, v in sandbox.env(key).items():
        monkeypatch.setenv(k, v)
    try:
        code = main(args)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def js(out: str) -> Any:
    return json.loads(out)


def wait_state(sandbox: SandboxRun, cl: str, state: str, mp: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        code, out, err = run(sandbox, ["show", cl, "--json"], mp, capsys)
        assert code == 0, err
        order = js(out)
        if order["state"] == state:
            return order
        assert time.monotonic() < deadline, order
        time.sleep(0.05)


def test_order_commands(sandbox: SandboxRun, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    mp, cap = monkeypatch, capsys
    cl = f"cli-{time.time_ns()}"
    code, out, err = run(sandbox, ["new", "--symbol", "005930", "--side", "buy", "--qty", "2", "--price", "50000",
                                   "--broker", "KIWOOM", "--clordid", cl, "--tif", "day", "--json"], mp, cap)
    assert code == 0, err
    assert js(out)["ClOrdID"] == cl and js(out)["state"] == "PendingNew"
    order = wait_state(sandbox, cl, "New", mp, cap)
    assert (order["OrdType"], order["Side"], order["Price"]) == ("2", "1", "50000")

    # human output: a table, no colour when not on a terminal
    code, out, _ = run(sandbox, ["show", cl], mp, cap)
    assert code == 0 and ANSI not in out
    lines = out.splitlines()
    assert any(line.split()[:2] == ["ClOrdID", cl] for line in lines)
    assert any(line.split()[:2] == ["Side", "Buy"] for line in lines)
    assert "ExecID" in out  # the executions table
    code, out, _ = run(sandbox, ["show", cl, "--color", "always"], mp, cap)
    assert code == 0 and f"{ANSI}33mNew{ANSI}0m" in out

    code, out, _ = run(sandbox, ["list", "--symbol", "005930", "--status", "New", "--limit", "1000"], mp, cap)
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["ClOrdID", "state", "Side"]
    assert any(r.split()[0] == cl and r.split()[1] == "New" for r in rows)
    code, out, _ = run(sandbox, ["list", "--limit", "1", "--json"], mp, cap)
    page = js(out)
    assert code == 0 and len(page["orders"]) == 1 and page["next"]
    code, out, _ = run(sandbox, ["list", "--limit", "1000", "--json"], mp, cap)
    everything = [o["ClOrdID"] for o in js(out)["orders"]]
    code, out, _ = run(sandbox, ["list", "--limit", "1", "--all", "--json"], mp, cap)
    assert code == 0 and [o["ClOrdID"] for o in js(out)["orders"]] == everything and js(out)["next"] is None
    code, out, _ = run(sandbox, ["list", "--limit", "1"], mp, cap)
    assert "more: --cursor " in out

    code, out, err = run(sandbox, ["replace", cl, "--price", "50100", "--qty", "3", "--json"], mp, cap)
    assert code == 0, err
    new_cl = js(out)["ClOrdID"]
    assert js(out)["OrigClOrdID"] == cl and js(out)["state"] == "PendingReplace"
    replaced = wait_state(sandbox, new_cl, "New", mp, cap)
    assert (replaced["Price"], replaced["OrderQty"]) == ("50100", "3")

    code, out, err = run(sandbox, ["cancel", new_cl, "--cancel-id", f"{new_cl}-x"], mp, cap)
    assert code == 0, err
    assert out.splitlines()[1].split()[0] == new_cl and "cancel" in out
    wait_state(sandbox, new_cl, "Canceled", mp, cap)

    # a market order without a price, as a type name
    code, out, err = run(sandbox, ["new", "--symbol", "005930", "--side", "1", "--qty", "1", "--type", "market",
                                   "--broker", "MIRAE", "--field", "Account=ALPHA-01"], mp, cap)
    assert code == 0, err
    market_cl = out.splitlines()[1].split()[0]
    assert wait_state(sandbox, market_cl, "Filled", mp, cap)["broker"] == "MIRAE"

    code, out, _ = run(sandbox, ["brokers"], mp, cap)
    rows = [r.split() for r in out.splitlines()[1:]]
    assert code == 0 and {r[0] for r in rows} == {"KIWOOM", "MIRAE"} and all(r[-2:] == ["logged", "on"] for r in rows)
    code, out, _ = run(sandbox, ["brokers", "--json"], mp, cap)
    assert [b["id"] for b in js(out)] == ["KIWOOM", "MIRAE"]


def test_lists_command(sandbox: SandboxRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                       tmp_path: Path) -> None:
    mp, cap = monkeypatch, capsys
    lid = f"cli-list-{time.time_ns()}"
    body = {"ListID": lid, "DeliverToCompID": "KIWOOM", "NoOrders": [
        {"ClOrdID": f"{lid}-1", "Symbol": "005930", "Side": "1", "OrderQty": "1", "OrdType": "2", "Price": "50000"},
        {"ClOrdID": f"{lid}-2", "Symbol": "005930", "Side": "1", "OrderQty": "2", "OrdType": "2", "Price": "50100"}]}
    f = tmp_path / "list.json"
    f.write_text(json.dumps(body))
    code, out, err = run(sandbox, ["lists", "new", str(f), "--json"], mp, cap)
    assert code == 0, err
    assert js(out)["ListID"] == lid and [o["ClOrdID"] for o in js(out)["orders"]] == [f"{lid}-1", f"{lid}-2"]
    for o in body["NoOrders"]:
        wait_state(sandbox, o["ClOrdID"], "New", mp, cap)
    code, out, _ = run(sandbox, ["lists", "show", lid], mp, cap)
    assert code == 0 and out.splitlines()[0].split() == ["ListID", lid]
    assert f"{lid}-1" in out and f"{lid}-2" in out
    code, out, _ = run(sandbox, ["lists", "cancel", lid, "--json"], mp, cap)
    assert code == 0 and js(out)["pending"] == "cancel"
    for o in body["NoOrders"]:
        wait_state(sandbox, o["ClOrdID"], "Canceled", mp, cap)
    code, _, err = run(sandbox, ["lists", "show", "no-such-list"], mp, cap)
    assert code == 5 and "404 not_found" in err
    f.write_text("[1, 2")
    code, _, err = run(sandbox, ["lists", "new", str(f)], mp, cap)
    assert code == 2 and "not JSON" in err


def test_stream_command(sandbox: SandboxRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                        tmp_path: Path) -> None:
    mp, cap = monkeypatch, capsys
    code, out, err = run(sandbox, ["stream", "--since", "0", "--count", "3", "--json"], mp, cap)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in events] == [1, 2, 3]
    # reports about orders, and the trading-session status the gateway subscribed to at logon
    assert all(e["msg_type"] == e["Header"]["MsgType"] and ("ClOrdID" in e["Body"] or e["msg_type"] == "h")
               for e in events)
    code, out, _ = run(sandbox, ["stream", "--since", "0", "--count", "2"], mp, cap)
    lines = out.splitlines()
    assert code == 0 and [line.split()[0] for line in lines] == ["1", "2"]
    assert "ExecutionReport" in lines[0] or "TradingSessionStatus" in lines[0]

    # a cursor file: the first run resumes after 2, the second after where the first stopped
    cursor = tmp_path / "cursor"
    cursor.write_text("2\n")
    code, out, _ = run(sandbox, ["stream", "--cursor-file", str(cursor), "--count", "2", "--json"], mp, cap)
    assert code == 0 and [json.loads(x)["seq"] for x in out.splitlines()] == [3, 4]
    assert cursor.read_text().strip() == "4"
    # tails live: an order placed now arrives (the stream stops when idle)
    proc = subprocess.Popen([sys.executable, "-m", "fastfix.client.cli", "stream", "--json", "--idle-exit", "20",
                             "--count", "1"], env={**os.environ, **sandbox.env()}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        sent = []
        deadline = time.monotonic() + 30
        # a new order every half second until the stream (live only) has seen one
        while proc.poll() is None and time.monotonic() < deadline:
            sent.append(f"cli-live-{time.time_ns()}")
            code, _, err = run(sandbox, ["new", "--symbol", "005930", "--side", "buy", "--qty", "1",
                                         "--broker", "KIWOOM", "--clordid", sent[-1]], mp, cap)
            assert code == 0, err
            try:
                proc.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
        out_b, err_b = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err_b
    assert json.loads(out_b)["Body"]["ClOrdID"] in sent


def test_exit_codes(sandbox: SandboxRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    mp, cap = monkeypatch, capsys
    assert set(EXIT_CODES) == set(range(8))
    code, _, err = run(sandbox, ["new", "--symbol", "005930", "--side", "buy", "--qty", "1", "--nope"], mp, cap)
    assert code == 2 and "unrecognized arguments: --nope" in err
    code, _, err = run(sandbox, ["new", "--symbol", "005930", "--side", "up", "--qty", "1"], mp, cap)
    assert code == 2 and "--side 'up': not a Side; allowed: 1 (buy), 2 (sell)" in err
    code, _, err = run(sandbox, ["stream", "--since", "-1"], mp, cap)
    assert code == 2 and "--since" in err
    code, _, err = run(sandbox, ["new", "--symbol", "005930", "--side", "buy", "--qty", "0", "--price", "70001",
                                 "--broker", "KIWOOM"], mp, cap)
    assert code == 3
    assert "422 invalid_order" in err and "$.OrderQty: must be positive" in err and "$.Price: not on the KRX" in err
    code, _, err = run(sandbox, ["brokers"], mp, cap, key="wrong-key")
    assert code == 4 and "401 unauthorized: invalid API key" in err
    code, _, err = run(sandbox, ["new", "--symbol", "005930", "--side", "buy", "--qty", "1", "--broker", "NOPE"],
                       mp, cap)
    assert code in (3, 4) and "NOPE" in err
    code, _, err = run(sandbox, ["show", "no-such-order"], mp, cap)
    assert code == 5 and "404 not_found: no order no-such-order" in err
    code, _, err = run(sandbox, ["stream", "--since", "0"], mp, cap, key="wrong-key")
    assert code == 6 and "401" in err
    mp.setenv("FASTFIX_API_KEY", "")
    code = main(["brokers", "--url", sandbox.url])
    assert code == 2 and "no API key" in cap.readouterr().err
    # nothing listens there: unavailable, after the retries
    code = main(["brokers", "--url", "http://127.0.0.1:9", "--api-key", KEY, "--retries", "1"])
    assert code == 6 and "cannot connect" in cap.readouterr().err
    code = main(["brokers", "--url", "ftp://x", "--api-key", KEY])
    assert code == 2 and "not an http(s) URL" in cap.readouterr().err


def test_console_script(sandbox: SandboxRun) -> None:
    """The installed ``fastfix-client`` script, flags instead of the environment."""
    script = Path(sys.executable).with_name("fastfix-client")
    if not script.exists():
        pytest.skip("fastfix-client is not installed in this environment (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTFIX_")}
    r = subprocess.run([str(script), "brokers", "--url", sandbox.url, "--api-key", KEY, "--json"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [b["id"] for b in json.loads(r.stdout)] == ["KIWOOM", "MIRAE"]
    r = subprocess.run([str(script), "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "exit status:" in r.stdout and "5  not found (HTTP 404)" in r.stdout
