"""End to end: a fastfix initiator trades with the exchange over 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ALL_DAY, acceptor, fix_settings, initiator, session

engine_mod = pytest.importorskip("fastfix.engine")

from fastfix.settings import SessionSettings  # noqa: E402
from server.exchange.config import load_config, parse_config  # noqa: E402
from server.exchange.service import ExchangeServer  # noqa: E402

TIMEOUT = 10.0

ACCEPTOR_CFG = fix_settings(session("FIX.4.4", target="BROKER1"), session("FIX.4.2", target="BROKER2"),
                            **acceptor(), **ALL_DAY, HeartBtInt=30, SenderCompID="KRX")


def initiator_settings(port: int, begin: str, sender: str) -> SessionSettings:
    return SessionSettings.from_string(fix_settings(session(begin, sender, "KRX"), **initiator(port),
                                                    **ALL_DAY, HeartBtInt=30))


class Client(engine_mod.Application):
    """Collects what the exchange sends; ``expect`` waits for a matching message."""

    def __init__(self) -> None:
        self.logon = asyncio.Event()
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.sid = None

    def on_logon(self, session_id):
        self.sid = session_id
        self.logon.set()

    def from_app(self, msg, session_id):
        self.inbox.put_nowait(msg)

    async def expect(self, pred, what: str):
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            msg = await asyncio.wait_for(self.inbox.get(), left)
            if pred(msg):
                return msg


def write_config(tmp_path: Path, **extra) -> Path:
    (tmp_path / "exchange.cfg").write_text(ACCEPTOR_CFG)
    lines = ['[exchange]', 'fix_settings = "exchange.cfg"', 'clock = "always-open"', 'fix_port = 0',
             'liquidity_seed = 11', 'liquidity_levels = 5', 'poll_interval = 0.05']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path = tmp_path / "exchange.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_orders_over_fix(tmp_path):
    cfg = load_config(write_config(tmp_path))

    async def main():
        server = ExchangeServer(cfg)
        await server.start()
        c44, c42 = Client(), Client()
        i44 = engine_mod.Initiator(initiator_settings(server.port, "FIX.4.4", "BROKER1"), c44)
        i42 = engine_mod.Initiator(initiator_settings(server.port, "FIX.4.2", "BROKER2"), c42)
        try:
            await i44.start()
            await i42.start()
            await asyncio.wait_for(c44.logon.wait(), TIMEOUT)
            await asyncio.wait_for(c42.logon.wait(), TIMEOUT)

            # A market buy fills against the synthetic liquidity.
            c44.send(c44.sid, "D", [(11, "M1"), (55, "005930"), (54, "1"), (60, "20240304-01:00:00"),
                                    (38, 10), (40, "1")])
            ack = await c44.expect(lambda m: m.get(11) == b"M1", "ack")
            assert ack.msg_type == b"8" and ack.get(150) == b"0"
            done = await c44.expect(lambda m: m.get(39) == b"2", "fill")
            assert done.get(150) == b"F" and done.get(14) == b"10" and done.get(151) == b"0"
            assert int(done.get(31)) > 70_000  # bought from the offers above the base price

            # The liquidity ladder leaves the base price itself free: a limit sell there rests,
            # and the other session's buy at that price takes it.
            c44.send(c44.sid, "D", [(11, "S1"), (1, "ACC"), (55, "000660"), (54, "2"),
                                    (60, "20240304-01:00:00"), (38, 7), (40, "2"), (44, 180_000)])
            await c44.expect(lambda m: m.get(11) == b"S1" and m.get(150) == b"0", "sell ack")
            c42.send(c42.sid, "D", [(11, "B1"), (21, "1"), (55, "000660"), (54, "1"),
                                    (60, "20240304-01:00:00"), (38, 7), (40, "2"), (44, 180_000)])
            fill42 = await c42.expect(lambda m: m.get(39) == b"2", "4.2 fill")
            assert fill42.get(20) == b"0" and fill42.get(150) == b"2" and fill42.get(31) == b"180000"
            fill44 = await c44.expect(lambda m: m.get(11) == b"S1" and m.get(39) == b"2", "4.4 fill")
            assert fill44.get(1) == b"ACC" and fill44.get(32) == b"7"

            # Reject with reason, cancel, cancel reject.
            c44.send(c44.sid, "D", [(11, "R1"), (55, "005930"), (54, "1"), (60, "20240304-01:00:00"),
                                    (38, 1), (40, "2"), (44, 70_050)])
            rej = await c44.expect(lambda m: m.get(11) == b"R1", "reject")
            assert rej.get(150) == b"8" and rej.get(103) == b"99" and b"tick" in rej.get(58)
            c44.send(c44.sid, "D", [(11, "L1"), (55, "005930"), (54, "1"), (60, "20240304-01:00:00"),
                                    (38, 3), (40, "2"), (44, 60_000)])
            await c44.expect(lambda m: m.get(11) == b"L1", "limit ack")
            c44.send(c44.sid, "F", [(41, "L1"), (11, "X1"), (55, "005930"), (54, "1"),
                                    (60, "20240304-01:00:00"), (38, 3)])
            cxl = await c44.expect(lambda m: m.get(11) == b"X1", "cancel")
            assert cxl.msg_type == b"8" and cxl.get(150) == b"4" and cxl.get(41) == b"L1"
            c44.send(c44.sid, "F", [(41, "L1"), (11, "X2"), (55, "005930"), (54, "1"),
                                    (60, "20240304-01:00:00"), (38, 3)])
            cr = await c44.expect(lambda m: m.get(11) == b"X2", "cancel reject")
            assert cr.msg_type == b"9" and cr.get(434) == b"1" and cr.get(102) == b"0"

            # A list: ExecutionReports per order, then ListStatus.
            group = [[(11, "LA"), (67, 1), (55, "035420"), (54, "1"), (38, 2), (40, "1")],
                     [(11, "LB"), (67, 2), (55, "035720"), (54, "2"), (38, 2), (40, "1")]]
            c44.send(c44.sid, "E", [(66, "LIST1"), (394, "3"), (68, 2), (73, group)])
            ls = await c44.expect(lambda m: m.msg_type == b"N", "list status")
            assert ls.get(66) == b"LIST1" and ls.get(431) == b"6" and ls.get_all(39) == [b"2", b"2"]
        finally:
            await i44.stop()
            await i42.stop()
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_config_errors_name_the_key(tmp_path):
    from fastfix.errors import ConfigError

    path = write_config(tmp_path)
    with pytest.raises(ConfigError, match="exchange.clock"):
        parse_config({"exchange": {"fix_settings": "exchange.cfg", "clock": "nyse"}}, path)
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config({"exchange": {"fix_settings": "exchange.cfg", "colour": 1}}, path)
    with pytest.raises(ConfigError, match="fix_settings"):
        parse_config({"exchange": {"fix_settings": "nope.cfg"}}, path)
    with pytest.raises(ConfigError, match="base_prices.005930"):
        parse_config({"exchange": {"fix_settings": "exchange.cfg", "base_prices": {"005930": 70_050}}}, path)
    cfg = parse_config({"exchange": {"fix_settings": "exchange.cfg", "base_prices": {"005930": 71_000}}}, path)
    assert cfg.instruments()["005930"].base_price == 71_000
    with pytest.raises(ConfigError, match="exchange.volatility_interruptions: Expected bool"):
        parse_config({"exchange": {"fix_settings": "exchange.cfg", "volatility_interruptions": "yes"}}, path)
    assert not parse_config({"exchange": {"fix_settings": "exchange.cfg", "volatility_interruptions": False}},
                            path).volatility_interruptions


def test_cli_process_serves_and_writes_ports_file(tmp_path):
    path = write_config(tmp_path, ports_file="exchange.ports")
    check = subprocess.run([sys.executable, "-m", "fastfix.cli", "exchange", "--config", str(path), "--check"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "2 FIX sessions" in check.stdout
    proc = subprocess.Popen([sys.executable, "-m", "fastfix.cli", "exchange", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ports = tmp_path / "exchange.ports"
        deadline = time.monotonic() + 30
        while not ports.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "exchange did not start"
            time.sleep(0.05)
        port = json.loads(ports.read_text())["fix"]

        async def logon():
            c = Client()
            ini = engine_mod.Initiator(initiator_settings(port, "FIX.4.4", "BROKER1"), c)
            await ini.start()
            try:
                await asyncio.wait_for(c.logon.wait(), TIMEOUT)
                c.send(c.sid, "D", [(11, "Q1"), (55, "207940"), (54, "2"), (60, "20240304-01:00:00"),
                                    (38, 1), (40, "1")])
                return await c.expect(lambda m: m.get(39) == b"2", "fill")
            finally:
                await ini.stop()

        fill = asyncio.run(asyncio.wait_for(logon(), 30))
        assert fill.get(55) == b"207940" and int(fill.get(31)) < 800_000
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
