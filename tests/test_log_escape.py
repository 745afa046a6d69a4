"""Logs escape control characters and mask passwords: one line per message or event."""

from __future__ import annotations

import io
import re
from pathlib import Path

from fastfix.log import FileLog, ScreenLog, escape_bytes, printable
from fastfix.settings import SessionID

SID = SessionID("FIX.4.4", "HUB", "GW")
EVIL = (b"8=FIX.4.4\x019=60\x0135=A\x0111=A\nB\r\x1b[2J\x00\x7f\\x\x01"
        b"58=\xec\xa3\xbc\xeb\xac\xb8\x01554=hunter2\x01925=new\x0110=000\x01")
STAMP = re.compile(rb"^\d{8}-\d{2}:\d{2}:\d{2}\.\d{6} ")


def test_file_log_keeps_one_line_per_message_and_event(tmp_path: Path) -> None:
    log = FileLog.for_session(tmp_path, SID)
    log.on_incoming(EVIL)
    log.on_outgoing(EVIL)
    log.on_event("Message 7 Rejected: Value is incorrect (out of range) for this tag: A\nB\x1b[31m\u2028C")
    log.close()
    lines = (tmp_path / f"{SID.file_prefix}.messages.log").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3 and all(STAMP.match(x) for x in lines[:2])
    # SOH kept, control characters and the backslash escaped, UTF-8 text untouched, passwords masked
    assert lines[0].endswith(b" IN  8=FIX.4.4\x019=60\x0135=A\x0111=A\\nB\\r\\x1b[2J\\x00\\x7f\\\\x\x01"
                             b"58=\xec\xa3\xbc\xeb\xac\xb8\x01554=***\x01925=***\x0110=000\x01")
    assert b"hunter2" not in b"".join(lines)
    events = (tmp_path / f"{SID.file_prefix}.event.log").read_bytes()
    assert events.count(b"\n") == 1 and b"A\\nB\\x1b[31m\\u2028C" in events


def test_screen_log_escapes_once() -> None:
    out = io.StringIO()
    log = ScreenLog(incoming=True, outgoing=False, events=True, stream=out)
    log.on_incoming(EVIL)
    log.on_event("x\ny")
    text = out.getvalue()
    assert text.count("\n") == 2 and "\x1b" not in text and "hunter2" not in text
    assert "|11=A\\nB\\r\\x1b[2J\\x00\\x7f\\\\x|58=주문|554=***|925=***|" in text
    assert text.splitlines()[1].endswith(" x\\ny")


def test_printable_and_escape_bytes() -> None:
    assert printable(b"\xff\xfeok\n") == "\\xff\\xfeok\\n"       # undecodable bytes shown, not replaced
    assert printable("탭\t끝\x9b") == "탭\\t끝\\x9b"                 # C1 CSI escaped too
    assert printable(None) == ""
    assert escape_bytes(b"8=FIX.4.4\x0135=A\x01554=\x01") == b"8=FIX.4.4\x0135=A\x01554=***\x01"
    assert escape_bytes(b"8=FIX.4.4\x0135=BE\x01925=n\x01") == b"8=FIX.4.4\x0135=BE\x01925=***\x01"
    assert escape_bytes(b"8=FIX.4.4\x0135=A\x0158=x554=y\x01") == b"8=FIX.4.4\x0135=A\x0158=x554=y\x01"
    clean = b"8=FIX.4.4\x0135=0\x0110=000\x01"
    assert escape_bytes(clean) is clean                               # the usual case costs no copy
