"""Session logs: file layout, timestamps, buffering, settings factory."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

from fastfix.log import CompositeLog, FileLog, NullLog, ScreenLog, log_from_settings
from fastfix.settings import SessionID, SessionSettings

SID = SessionID("FIX.4.4", "GW", "HUB")
RAW_IN = b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01"
RAW_OUT = b"8=FIX.4.4\x019=5\x0135=1\x0110=001\x01"
STAMP = rb"(\d{8}-\d{2}:\d{2}:\d{2}\.\d{6})"


def test_file_log_writes_messages_and_events(tmp_path: Path):
    log = FileLog.for_session(tmp_path / "logs", SID)
    log.on_incoming(RAW_IN)
    log.on_outgoing(RAW_OUT)
    log.on_event("Logon received")
    log.on_event("Résumé ✓")
    # buffered: nothing is promised on disk before flush
    log.flush()
    msgs = (tmp_path / "logs" / "FIX.4.4-GW-HUB.messages.log").read_bytes().splitlines()
    events = (tmp_path / "logs" / "FIX.4.4-GW-HUB.event.log").read_bytes().splitlines()
    m0 = re.fullmatch(STAMP + rb" IN  (.*)", msgs[0])
    m1 = re.fullmatch(STAMP + rb" OUT (.*)", msgs[1])
    assert m0 and m0[2] == RAW_IN and m1 and m1[2] == RAW_OUT
    stamp = dt.datetime.strptime(m0[1].decode(), "%Y%m%d-%H:%M:%S.%f").replace(tzinfo=dt.UTC)
    assert abs(dt.datetime.now(dt.UTC) - stamp) < dt.timedelta(minutes=1)
    assert events[0].endswith(b" Logon received")
    assert events[1].decode().endswith(" Résumé ✓")
    log.close()
    # appending, not truncating, on reopen (audit trail)
    with FileLog.for_session(tmp_path / "logs", SID) as log2:
        log2.on_incoming(RAW_IN)
    assert len((tmp_path / "logs" / "FIX.4.4-GW-HUB.messages.log").read_bytes().splitlines()) == 3


def test_timestamps_are_monotonic_across_seconds(tmp_path: Path):
    log = FileLog(tmp_path, "x")
    for _ in range(2000):
        log.on_event("e")
    log.close()
    stamps = [ln.split(b" ")[0] for ln in (tmp_path / "x.event.log").read_bytes().splitlines()]
    assert len(stamps) == 2000 and stamps == sorted(stamps)


def test_screen_log():
    out = io.StringIO()
    log = ScreenLog("S", stream=out, outgoing=False)
    log.on_incoming(RAW_IN)
    log.on_outgoing(RAW_OUT)
    log.on_event("hello")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("<S> IN  8=FIX.4.4|9=5|35=0|10=000|")
    assert lines[1].endswith("<S> hello")


def test_null_and_composite():
    out1, out2 = io.StringIO(), io.StringIO()
    log = CompositeLog(ScreenLog(stream=out1), NullLog(), ScreenLog(stream=out2))
    log.on_event("x")
    log.on_incoming(RAW_IN)
    log.flush()
    log.close()
    def strip(text: str) -> list[str]:
        return [ln.split(" ", 1)[1] for ln in text.splitlines()]

    assert strip(out1.getvalue()) == strip(out2.getvalue()) == ["x", "IN  8=FIX.4.4|9=5|35=0|10=000|"]


def test_log_from_settings(tmp_path: Path):
    base = {"ConnectionType": "acceptor", "SocketAcceptPort": 0, "BeginString": "FIX.4.4"}

    def make(**extra):
        ss = SessionSettings.from_dict([{"SenderCompID": "GW", "TargetCompID": "HUB", **extra}], base)
        return log_from_settings(*next(iter(ss.sessions().items())))

    assert isinstance(make(), NullLog)
    log = make(FileLogPath=str(tmp_path))
    assert isinstance(log, FileLog) and log.messages_path.parent == tmp_path
    log.close()
    assert isinstance(make(ScreenLogShowEvents="Y"), ScreenLog)
    log = make(FileLogPath=str(tmp_path), ScreenLogShowIncoming="Y")
    assert isinstance(log, CompositeLog)
    log.close()
