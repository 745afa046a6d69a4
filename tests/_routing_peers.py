"""FIX parties for hub and broker tests: initiators that record what they receive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from helpers import ALL_DAY, acceptor, fix_settings, session

from fastfix.codec import utc_timestamp
from fastfix.engine import Application, Initiator
from fastfix.settings import SessionSettings

TIMEOUT = 10.0


def hub_files(tmp: Path, parties: dict[str, str], *, default_policy: str = "reject",
              policies: dict[str, str] | None = None, hold_timeout: float = 0,
              port: int = 0, begin: str = "FIX.4.4", stores: bool = True,
              allow_unknown: bool = False) -> Path:
    """Write hub.toml + hub.cfg for ``parties`` (CompID -> role); returns the TOML path.

    ``allow_unknown``: AllowUnknownMsgFields=Y, as a hub that carries the exchange's
    reference data (FIX 5.0 fields on FIX 4.4 messages) needs.
    """
    policies = policies or {}
    store = {"FileStorePath": tmp / "hub" / "store", "FileLogPath": tmp / "hub" / "log"} if stores else {}
    (tmp / "hub.cfg").write_text(fix_settings(
        *(session(begin, target=comp) for comp in parties), **acceptor(port), **ALL_DAY, HeartBtInt=30,
        SenderCompID="HUB", UseDataDictionary=True, **store,
        **({"AllowUnknownMsgFields": True} if allow_unknown else {})))
    toml = ["[hub]", 'fix_settings = "hub.cfg"', f'on_destination_down = "{default_policy}"',
            f"hold_timeout = {hold_timeout}", f'database = "{tmp / "hub" / "hub.db"}"',
            f'ports_file = "{tmp / "hub.ports.json"}"', ""]
    for comp, role in parties.items():
        toml += ["[[parties]]", f'comp_id = "{comp}"', f'role = "{role}"']
        if comp in policies:
            toml.append(f'on_destination_down = "{policies[comp]}"')
        toml.append("")
    path = tmp / "hub.toml"
    path.write_text("\n".join(toml))
    return path


class Recorder(Application):
    """Queues every application message per local CompID; optional reply hook."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[Any]] = {}
        self.admin: dict[str, asyncio.Queue[Any]] = {}
        self.on_message: Callable[[Any, Any], None] | None = None

    def on_create(self, session_id: Any) -> None:
        self.queues[session_id.sender_comp_id] = asyncio.Queue()
        self.admin[session_id.sender_comp_id] = asyncio.Queue()

    def from_admin(self, msg: Any, session_id: Any) -> None:
        if msg.msg_type in (b"3", b"j"):
            self.admin[session_id.sender_comp_id].put_nowait(msg)

    def from_app(self, msg: Any, session_id: Any) -> None:
        if self.on_message is not None:
            self.on_message(msg, session_id)
        self.queues[session_id.sender_comp_id].put_nowait(msg)


class Parties:
    """One initiator holding a session to the hub for each named CompID."""

    def __init__(self, port: int, comps: Iterable[str], begin: str = "FIX.4.4",
                 target: str = "HUB", allow_unknown: bool = False) -> None:
        self.app = Recorder()
        self.settings = SessionSettings.from_dict(
            [{"SenderCompID": c, "TargetCompID": target} for c in comps],
            default={"ConnectionType": "initiator", "BeginString": begin, "HeartBtInt": 30,
                     "SocketConnectHost": "127.0.0.1", "SocketConnectPort": port,
                     "ReconnectInterval": 1, "UseDataDictionary": "Y",
                     **({"AllowUnknownMsgFields": "Y"} if allow_unknown else {})},
        )
        self.engine = Initiator(self.settings, self.app)
        self.sids = {sid.sender_comp_id: sid for sid in self.settings.sessions()}

    async def __aenter__(self) -> Parties:
        await self.engine.start()
        for sid in self.sids.values():
            await self.engine.wait_logged_on(sid, timeout=TIMEOUT)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.stop()

    async def send(self, comp: str, msg_type: str, fields: list[tuple[int, Any]]) -> int:
        return await self.engine.send(self.sids[comp], msg_type, fields)

    async def recv(self, comp: str, timeout: float = TIMEOUT) -> Any:
        return await asyncio.wait_for(self.app.queues[comp].get(), timeout)

    async def recv_admin(self, comp: str, timeout: float = TIMEOUT) -> Any:
        return await asyncio.wait_for(self.app.admin[comp].get(), timeout)

    def pending(self, comp: str) -> int:
        return self.app.queues[comp].qsize()


def order(clordid: str, broker: str | None, *, qty: int = 10, price: int = 70000, side: str = "1",
          symbol: str = "005930", account: str | None = None, extra: list[tuple[int, Any]] | None = None,
          ) -> list[tuple[int, Any]]:
    """A limit NewOrderSingle's fields, routed to ``broker`` (None: no DeliverToCompID)."""
    f: list[tuple[int, Any]] = []
    if broker is not None:
        f.append((128, broker))
    f += [(11, clordid)]
    if account:
        f.append((1, account))
    f += [(38, qty), (40, "2"), (44, price), (54, side), (55, symbol), (60, utc_timestamp())]
    f += extra or []
    return f


def exec_report(to: str | None, clordid: str, *, status: str = "0", qty: int = 10,
                extra: list[tuple[int, Any]] | None = None) -> list[tuple[int, Any]]:
    """A FIX 4.4 ExecutionReport's fields addressed to ``to`` (DeliverToCompID)."""
    f: list[tuple[int, Any]] = []
    if to is not None:
        f.append((128, to))
    f += [(6, 0), (11, clordid), (14, 0), (17, f"E-{clordid}"), (37, f"O-{clordid}"), (39, status),
          (54, "1"), (55, "005930"), (150, status), (151, qty)]
    f += extra or []
    return f
