"""Identifiers cross the hub, the brokers and the exchange byte for byte, and logs stay
one line per entry whatever control characters a value carries.

The orders are sent straight over FIX (not through the gateway's intake), with
ClOrdIDs in UTF-8 Korean, with an emoji, and in EUC-KR (not UTF-8 at all).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from test_broker import chain, run

from fastfix.codec import utc_timestamp

IDS = ["주문-1".encode(), "🚀-2".encode(), b"\xc1\xd6\xb9\xae-3"]  # the last one is EUC-KR


async def _reports(p: Any, clordid: bytes) -> list[Any]:
    out = []
    for _ in range(50):
        m = await p.recv("GATEWAY")
        assert m.get(11) == clordid, f"expected {clordid!r}, got {m.raw!r}"
        out.append(m)
        if m.get(39) in (b"2", b"4", b"8", b"C"):
            return out
    raise AssertionError("no final report")


@pytest.mark.parametrize("broker", ["KIWOOM", "MIRAE"])
def test_clordids_come_back_exactly(tmp_path: Path, broker: str) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (_c, p):
            for cl in IDS:
                await p.send("GATEWAY", "D", [(128, broker), (11, cl), (1, "ACC-1"), (38, 10), (40, "1"),
                                              (54, "1"), (55, "005930"), (60, utc_timestamp())])
                reports = await _reports(p, cl)
                assert reports[-1][39] == b"2"
            # a resting order, cancelled by a second non-ASCII id naming the first in 41
            rest, cancel = "지정가-4".encode(), b"\xc3\xeb\xbc\xd2-5"
            await p.send("GATEWAY", "D", [(128, broker), (11, rest), (1, "ACC-1"), (38, 10), (40, "2"),
                                          (44, 50000), (54, "1"), (55, "005930"), (60, utc_timestamp())])
            first = await p.recv("GATEWAY")
            assert first.get(11) == rest and first.get(39) == b"0"
            await p.send("GATEWAY", "F", [(128, broker), (11, cancel), (41, rest), (54, "1"), (55, "005930"),
                                          (38, 10), (60, utc_timestamp())])
            done = await p.recv("GATEWAY")
            assert (done.get(11), done.get(41), done.get(39)) == (cancel, rest, b"4")
            # the broker's own refusal names the id exactly, in the report and in its Text
            await p.send("GATEWAY", "D", [(128, broker), (11, IDS[0]), (1, "ACC-1"), (38, 10), (40, "1"),
                                          (54, "1"), (55, "005930"), (60, utc_timestamp())])
            dup = await p.recv("GATEWAY")
            assert dup.get(11) == IDS[0] and dup.get(39) == b"8"
            assert dup.get(58) == b"duplicate ClOrdID '" + IDS[0] + b"'"

    run(main())


def test_control_characters_never_split_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    evil = b"A\nB\r\x1b[2J\x7f\\-6"
    caplog.set_level(logging.INFO)

    async def main() -> None:
        async with chain(tmp_path) as (c, p):
            # refused by the broker (unknown account): it logs the ClOrdID
            await p.send("GATEWAY", "D", [(128, "KIWOOM"), (11, evil), (1, "NOPE"), (38, 10), (40, "1"),
                                          (54, "1"), (55, "005930"), (60, utc_timestamp())])
            refused = await p.recv("GATEWAY")
            assert refused.get(11) == evil and refused.get(39) == b"8"
            # the hub rejects an unknown destination naming it in its log
            await p.send("GATEWAY", "D", [(128, "X\nY"), (11, evil), (38, 10), (40, "1"), (54, "1"),
                                          (55, "005930"), (60, utc_timestamp())])
            rej = await p.recv("GATEWAY")
            assert rej.msg_type == b"j"
            for session in c.hub.acceptor.sessions().values():
                session.log.flush()

    run(main())
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("fastfix.")]
    refused_line = [m for m in lines if m.startswith("refused ")]
    assert refused_line and "A\\nB\\r\\x1b[2J\\x7f\\\\-6" in refused_line[0]
    assert any("X\\nY" in m for m in lines if m.startswith("rejected "))
    assert not [m for m in lines if any(ch in m for ch in "\n\r\x1b\x7f")]
    stamp = re.compile(rb"^\d{8}-\d{2}:\d{2}:\d{2}\.\d{6} ")
    logs = list((tmp_path / "hub" / "log").glob("*.log"))
    assert logs
    for path in logs:
        data = path.read_bytes()
        assert b"\x1b" not in data and b"\r" not in data
        for line in data.splitlines():
            assert stamp.match(line), (path.name, line)
    gw_log = (tmp_path / "hub" / "log" / "FIX.4.4-HUB-GATEWAY.messages.log").read_bytes()
    assert b"\x0111=A\\nB\\r\\x1b[2J\\x7f\\\\-6\x01" in gw_log


@pytest.mark.parametrize("broker", ["KIWOOM", "MIRAE"])
def test_status_and_mass_cancel_keep_id_bytes(tmp_path: Path, broker: str) -> None:
    """OrderStatusRequest and OrderMassCancelRequest answer with the ids exactly as sent."""
    rest, mass, unknown = "상태-7".encode(), b"\xc3\xeb\xbc\xd2-8", b"\xbe\xf8\xc0\xbd-9"

    async def main() -> None:
        async with chain(tmp_path) as (_c, p):
            await p.send("GATEWAY", "D", [(128, broker), (50, "ADV-A"), (11, rest), (1, "ACC-ADV-A"),
                                          (38, 5), (40, "2"), (44, 60000), (54, "1"), (55, "005930"),
                                          (60, utc_timestamp())])
            assert (await p.recv("GATEWAY")).get(11) == rest
            status = [(128, broker), (50, "ADV-A"), (54, "1"), (55, "005930")]
            await p.send("GATEWAY", "H", [*status[:2], (11, rest), *status[2:]])
            st = await p.recv("GATEWAY")
            assert (st.get(150), st.get(11)) == (b"I", rest)
            await p.send("GATEWAY", "H", [*status[:2], (11, unknown), *status[2:]])
            st = await p.recv("GATEWAY")
            assert (st.get(11), st.get(39)) == (unknown, b"8")
            assert st.get(58) == b"unknown order '" + unknown + b"'"
            await p.send("GATEWAY", "q", [(128, broker), (50, "ADV-A"), (11, mass), (530, "7"),
                                          (60, utc_timestamp())])
            rep = await p.recv("GATEWAY")
            assert (rep.msg_type, rep.get(11), rep.get_all(41)) == (b"r", mass, [rest])
            cxl = await p.recv("GATEWAY")
            assert (cxl.get(150), cxl.get(11)) == (b"4", rest)

    run(main())
