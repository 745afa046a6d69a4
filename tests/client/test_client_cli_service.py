"""``fastfix-client`` subcommands of the order service against the real sandbox: ``status``,
``mass-cancel``, ``instruments``, ``positions`` and ``balance``, human and JSON output, and
the exit status of a refused request."""

from __future__ import annotations

import time

import pytest
from _client_sandbox import SandboxRun
from test_client_cli import js, run, wait_state


def test_instruments_command(sandbox: SandboxRun, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    mp, cap = monkeypatch, capsys
    code, out, err = run(sandbox, ["instruments", "--broker", "KIWOOM", "--json"], mp, cap)
    assert code == 0, err
    samsung = next(i for i in js(out)["instruments"] if i["Symbol"] == "005930")
    assert samsung["source"] == "exchange" and samsung["tick_size"] == "100"
    code, out, err = run(sandbox, ["instruments", "--broker", "KIWOOM"], mp, cap)
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["Symbol", "name", "market", "tick_size"]
    row = next(r.split() for r in rows if r.split()[0] == "005930")
    assert samsung["upper_limit"] in row and samsung["lower_limit"] in row and row[-1] == "exchange"
    if samsung.get("session", {}).get("TradSesStatus") == "2":
        assert row[-2].startswith("Open")  # the status by its name
    # one instrument by its code
    code, out, err = run(sandbox, ["instruments", "005930", "--broker", "KIWOOM", "--json"], mp, cap)
    assert code == 0, err
    assert js(out)["Symbol"] == "005930" and js(out)["upper_limit"] == samsung["upper_limit"]
    code, out, _ = run(sandbox, ["instruments", "005930", "--broker", "KIWOOM"], mp, cap)
    assert code == 0 and len(out.splitlines()) == 2 and out.splitlines()[1].split()[0] == "005930"
    code, _, err = run(sandbox, ["instruments", "NO-SUCH", "--broker", "KIWOOM"], mp, cap)
    assert code == 5 and "404 not_found" in err


def test_status_positions_balance_mass_cancel(sandbox: SandboxRun, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    mp, cap = monkeypatch, capsys
    code, out, err = run(sandbox, ["instruments", "005930", "--broker", "KIWOOM", "--json"], mp, cap)
    assert code == 0, err
    price = str(int(js(out)["lower_limit"]) + 1000)  # a buy that rests
    cl = f"cli-svc-{time.time_ns()}"
    code, _, err = run(sandbox, ["new", "--symbol", "005930", "--side", "buy", "--qty", "2", "--price", price,
                                 "--broker", "KIWOOM", "--clordid", cl], mp, cap)
    assert code == 0, err
    wait_state(sandbox, cl, "New", mp, cap)

    code, out, err = run(sandbox, ["status", cl, "--json"], mp, cap)
    assert code == 0, err
    assert js(out)["ClOrdID"] == cl and js(out)["broker"] == "KIWOOM"
    code, out, err = run(sandbox, ["status", cl], mp, cap)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:3] == ["ClOrdID", "state", "OrdStatus"] and row.split()[0] == cl
    code, _, err = run(sandbox, ["status", "no-such-order"], mp, cap)
    assert code == 5 and "404 not_found" in err

    code, out, err = run(sandbox, ["positions", "ALPHA-01", "--broker", "KIWOOM", "--json"], mp, cap)
    assert code == 0, err
    held = {p["Symbol"]: p["NoPositions"][0]["LongQty"] for p in js(out)["PositionReports"]}
    assert int(held["005930"]) > 0
    code, out, err = run(sandbox, ["positions", "ALPHA-01", "--broker", "KIWOOM"], mp, cap)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["Account", "ALPHA-01"] and lines[1].split() == ["broker", "KIWOOM"]
    start = lines.index("") + 1
    assert lines[start].split()[:3] == ["Symbol", "PosType", "LongQty"]
    row = next(r.split() for r in lines[start + 1:] if r.split()[0] == "005930")
    assert held["005930"] in row
    # an account of another client: refused, exit status 4
    code, _, err = run(sandbox, ["positions", "BETA-01", "--broker", "KIWOOM"], mp, cap)
    assert code == 4 and "403" in err

    code, out, err = run(sandbox, ["balance", "ALPHA-01", "--broker", "KIWOOM", "--json"], mp, cap)
    assert code == 0, err
    report = js(out)["CollateralReport"]
    assert int(report["CashOutstanding"]) >= 2 * int(price)  # the resting buy holds cash
    code, out, err = run(sandbox, ["balance", "ALPHA-01", "--broker", "KIWOOM"], mp, cap)
    assert code == 0, err
    pairs = dict(line.split(None, 1) for line in out.splitlines())
    assert pairs["Account"] == "ALPHA-01" and pairs["broker"] == "KIWOOM"
    assert [line.split()[0] for line in out.splitlines()].count("Account") == 1
    assert int(pairs["MarginExcess"]) == int(pairs["EndCash"]) - int(pairs["CashOutstanding"])

    code, _, err = run(sandbox, ["mass-cancel", "KIWOOM", "--side", "up"], mp, cap)
    assert code == 2 and "--side 'up': not a Side" in err
    code, out, err = run(sandbox, ["mass-cancel", "KIWOOM", "--symbol", "005930", "--json"], mp, cap)
    assert code == 0, err
    sent = js(out)
    assert (sent["broker"], sent["MassCancelRequestType"], sent["Symbol"]) == ("KIWOOM", "1", "005930")
    wait_state(sandbox, cl, "Canceled", mp, cap)
    code, out, err = run(sandbox, ["mass-cancel", "KIWOOM", "--symbol", "005930", "--side", "buy",
                                   "--account", "ALPHA-01"], mp, cap)
    assert code == 0, err
    pairs = dict(line.split(None, 1) for line in out.splitlines())
    assert pairs["broker"] == "KIWOOM" and pairs["MassCancelRequestType"] == "1" and pairs["state"] == "Sent"
    assert (pairs["Symbol"], pairs["Side"], pairs["Account"]) == ("005930", "Buy", "ALPHA-01")
