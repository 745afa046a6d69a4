"""The STP-HUB with passwords: while GATEWAY is away, someone who logs on as GATEWAY
and asks for a resend from 1 gets neither the reports of the day nor a session.

The hub's real configuration path (hub.toml + QuickFIX settings with PasswordHash
per party) and real routing; the parties are fastfix initiators with passwords.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from _routing_peers import Recorder, exec_report, hub_files, order

from fastfix.auth import hash_password
from fastfix.codec import Tokenizer, encode, utc_timestamp
from fastfix.engine import Initiator
from fastfix.settings import SessionSettings
from server.hub.config import load_config
from server.hub.service import HubServer

PASSWORDS = {"GATEWAY": "gw-pass-1", "KIWOOM": "kiwoom-pass-1"}


def _with_passwords(tmp: Path) -> Path:
    toml = hub_files(tmp, {"GATEWAY": "buy-side", "KIWOOM": "broker"})
    cfg = tmp / "hub.cfg"
    text = cfg.read_text()
    for comp, pw in PASSWORDS.items():
        text = text.replace(f"TargetCompID={comp}\n", f"TargetCompID={comp}\nPasswordHash={hash_password(pw)}\n")
    cfg.write_text(text)
    return toml


class Party:
    def __init__(self, port: int, comp: str, password: str, store: Path) -> None:
        self.app = Recorder()
        self.settings = SessionSettings.from_dict([{"SenderCompID": comp, "TargetCompID": "HUB"}], default={
            "ConnectionType": "initiator", "BeginString": "FIX.4.4", "HeartBtInt": 30,
            "SocketConnectHost": "127.0.0.1", "SocketConnectPort": port, "ReconnectInterval": 1,
            "Password": password, "FileStorePath": str(store)})
        self.engine = Initiator(self.settings, self.app)
        self.sid = next(iter(self.settings.sessions()))
        self.comp = comp

    async def __aenter__(self) -> Party:
        await self.engine.start()
        await self.engine.wait_logged_on(self.sid, timeout=15)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.stop()

    async def recv(self) -> Any:
        return await asyncio.wait_for(self.app.queues[self.comp].get(), 10)


async def _impersonate(port: int, data: bytes) -> list[Any]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    tok, got = Tokenizer(), []
    w.write(data)
    for _ in range(100):
        chunk = await asyncio.wait_for(r.read(65536), 10)
        if not chunk:
            break
        got += tok.feed(chunk)
    w.close()
    return got


def test_hub_refuses_an_impersonator_of_an_absent_party(tmp_path: Path) -> None:
    async def main() -> None:
        hub = HubServer(load_config(_with_passwords(tmp_path)))
        await hub.start()
        try:
            async with Party(hub.port, "KIWOOM", PASSWORDS["KIWOOM"], tmp_path / "parties") as kiwoom:
                async with Party(hub.port, "GATEWAY", PASSWORDS["GATEWAY"], tmp_path / "parties") as gw:
                    await gw.engine.send(gw.sid, "D", order("T-1", "KIWOOM"))
                    assert (await kiwoom.recv())[11] == b"T-1"
                    await kiwoom.engine.send(kiwoom.sid, "8", exec_report("GATEWAY", "T-1"))
                    assert (await gw.recv())[11] == b"T-1"
                session = hub.acceptor.session(next(s for s in hub.acceptor.sessions()
                                                    if s.target_comp_id == "GATEWAY"))
                before = (session.next_sender_seq, session.next_target_seq)
                for password in (None, "gw-pass-2", PASSWORDS["KIWOOM"]):
                    body: list[tuple[int, Any]] = [(98, 0), (108, 30)]
                    if password:
                        body.append((554, password))
                    logon = encode("FIX.4.4", "A", [(34, 1), (49, "GATEWAY"), (52, utc_timestamp()),
                                                    (56, "HUB"), (141, "Y"), *body])
                    resend = encode("FIX.4.4", "2", [(34, 2), (49, "GATEWAY"), (52, utc_timestamp()),
                                                     (56, "HUB"), (7, 1), (16, 0)])
                    got = await _impersonate(hub.port, logon + resend)
                    assert [m.msg_type for m in got] == [b"5"], [m.raw for m in got]
                    assert got[0][58].startswith(b"Logon refused: ")
                    assert b"T-1" not in b"".join(m.raw for m in got)
                    assert (session.next_sender_seq, session.next_target_seq) == before
                    assert "GATEWAY" not in hub.app.logged_on
                # the real GATEWAY comes back, continues its numbers (one logon), and trades
                async with Party(hub.port, "GATEWAY", PASSWORDS["GATEWAY"], tmp_path / "parties") as gw:
                    assert session.next_target_seq == before[1] + 1
                    await gw.engine.send(gw.sid, "D", order("T-2", "KIWOOM"))
                    assert (await kiwoom.recv())[11] == b"T-2"
        finally:
            await hub.stop()

    asyncio.run(asyncio.wait_for(main(), 90))
