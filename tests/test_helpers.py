"""The shared test helpers: settings text the settings parser reads as meant, and ``run``."""

from __future__ import annotations

import asyncio
import doctest
from pathlib import Path

import helpers
import pytest
from helpers import ALL_DAY, acceptor, fix_settings, initiator, run, session

from fastfix.settings import SessionID, SessionSettings


def test_module_example() -> None:
    assert doctest.testmod(helpers).failed == 0


def test_settings_text_reads_back(tmp_path: Path) -> None:
    text = fix_settings(session("FIX.4.4", target="BROKER1"), session("FIX.4.2", target="BROKER2"),
                        **acceptor(), **ALL_DAY, SenderCompID="KRX", UseDataDictionary=True,
                        FileStorePath=tmp_path / "store")
    sessions = SessionSettings.from_string(text).sessions()
    assert set(sessions) == {SessionID("FIX.4.4", "KRX", "BROKER1"), SessionID("FIX.4.2", "KRX", "BROKER2")}
    s = sessions[SessionID("FIX.4.2", "KRX", "BROKER2")]
    assert s.get_str("ConnectionType") == "acceptor" and s.get_int("SocketAcceptPort") == 0
    assert s.get_bool("UseDataDictionary") is True
    assert s.get_str("FileStorePath") == str(tmp_path / "store")
    assert s.get_str("StartTime") == s.get_str("EndTime") == "00:00:00"


def test_initiator_keys_and_session_overrides() -> None:
    text = fix_settings(session("FIX.4.4", "GW", "HUB", HeartBtInt=7), **initiator(9876), HeartBtInt=5)
    s = SessionSettings.from_string(text).sessions()[SessionID("FIX.4.4", "GW", "HUB")]
    assert s.connect_addresses() == [("127.0.0.1", 9876)]
    assert s.get_int("ReconnectInterval") == 1 and s.get_int("HeartBtInt") == 7


def test_run_returns_the_result_and_bounds_the_time() -> None:
    async def answer() -> int:
        return 42

    assert run(answer()) == 42
    with pytest.raises(asyncio.TimeoutError):
        run(asyncio.sleep(10), timeout=0.01)
