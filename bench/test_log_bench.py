"""Session message log: cost of logging one message (escaping and password masking included).

``clean`` is the usual message (nothing to escape: one regex scan, no copy); ``escaped``
carries control characters in a value; ``logon`` a Password to mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fastfix.log import FileLog
from fastfix.settings import SessionID

SID = SessionID("FIX.4.4", "HUB", "GW")
CLEAN = (
    b"8=FIX.4.4\x019=178\x0135=D\x0134=1\x0149=GW\x0152=20240102-00:00:00.000\x0156=HUB\x01"
    b"11=ORD-0000000001\x011=ACCT-1\x0121=1\x0155=005930\x0154=1\x0160=20240102-00:00:00.000\x01"
    b"38=100\x0140=2\x0144=71500\x0159=0\x01128=BROKER1\x01207=XKRX\x0110=123\x01"
)
MESSAGES = {
    "clean": CLEAN,
    "escaped": CLEAN.replace(b"ORD-0000000001", b"ORD\n\x1b[2J0001"),
    "logon": b"8=FIX.4.4\x019=70\x0135=A\x0134=1\x0149=GW\x0152=20240102-00:00:00.000\x0156=HUB\x01"
             b"98=0\x01108=30\x01553=gw\x01554=secret-password\x0110=123\x01",
}


@pytest.mark.parametrize("kind", list(MESSAGES))
def test_file_log_on_incoming(benchmark: Any, tmp_path: Path, kind: str) -> None:
    log = FileLog.for_session(tmp_path, SID)
    raw = MESSAGES[kind]
    benchmark(log.on_incoming, raw)
    log.close()
