"""kill -9 of the STP-HUB process under load, then restart: nothing is lost, nothing doubled.

The hub (``fastfix hub``, a subprocess with file stores and its SQLite held-message
store, policy ``hold``) sits between a buy side (GATEWAY) and a broker (KIWOOM),
both fastfix initiators in this process with file stores. The buy side streams
NewOrderSingles to the broker through the hub; the broker answers each with two
ExecutionReports routed back. The hub is killed at random moments and restarted on
the same port and stores. Afterwards:

* every order the buy side stored reached the broker; a repeat always carries
  PossDupFlag or PossResend (the broker deduplicates by ClOrdID);
* every report the broker stored reached the buy side, repeats flagged the same way.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from _rel_helpers import ServiceProcess, wait_for
from helpers import ALL_DAY, acceptor, fix_settings, initiator, session

from fastfix.codec import encode, parse, utc_timestamp
from fastfix.engine import Application, Initiator
from fastfix.settings import SessionID, SessionSettings
from fastfix.store import FileStore

ROUNDS = int(os.environ.get("FASTFIX_HUB_CRASH_ROUNDS", "4"))
GW = SessionID("FIX.4.4", "GATEWAY", "HUB")
BRK = SessionID("FIX.4.4", "KIWOOM", "HUB")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Party(Application):
    """Records application messages by key with their repeat flags; the broker answers orders."""

    def __init__(self, broker: bool) -> None:
        self.broker = broker
        self.got: dict[str, list[bool]] = {}
        self.fresh_repeats: list[str] = []
        self.logons = 0

    def on_logon(self, session_id: Any) -> None:
        self.logons += 1

    def from_app(self, msg: Any, session_id: Any) -> None:
        key = (msg.get(11) if msg.msg_type == b"D" else msg.get(17) or msg.get(379) or b"?").decode()
        flagged = msg.get(43) == b"Y" or msg.get(97) == b"Y"
        seen = self.got.setdefault(key, [])
        seen.append(flagged)
        if len(seen) > 1:
            if not flagged:
                self.fresh_repeats.append(key)
            return
        if self.broker and msg.msg_type == b"D":
            for exec_type, status, cum in (("0", "0", 0), ("F", "2", 10)):
                self.send(session_id, "8", [(128, "GATEWAY"), (37, f"O-{key}"), (11, key),
                                            (17, f"{exec_type}-{key}"), (150, exec_type), (39, status),
                                            (55, "005930"), (54, "1"), (38, 10), (151, 10 - cum),
                                            (14, cum), (6, 70000 if cum else 0)])


def _initiator_settings(comp_id: str, port: int, store: Path) -> SessionSettings:
    return SessionSettings.from_string(fix_settings(
        session("FIX.4.4", comp_id, "HUB"), **initiator(port), HeartBtInt=5, FileStorePath=store,
        UseDataDictionary=True))


class HubProcess(ServiceProcess):
    """The hub with a buy side and a broker; ``start`` returns once it listens."""

    def __init__(self, workdir: Path, port: int) -> None:
        super().__init__("hub", workdir, "hub.toml")
        self.port = port
        (workdir / "hub.cfg").write_text(fix_settings(
            session("FIX.4.4", target="GATEWAY"), session("FIX.4.4", target="KIWOOM"), **acceptor(),
            **ALL_DAY, HeartBtInt=5, SenderCompID="HUB", FileStorePath="store", UseDataDictionary=True))
        (workdir / "hub.toml").write_text(f"""[hub]
fix_settings = "hub.cfg"
on_destination_down = "hold"
database = "held.db"
fix_port = {port}
ports_file = "hub.ports.json"
log_level = "warning"

[[parties]]
comp_id = "GATEWAY"
role = "buy-side"

[[parties]]
comp_id = "KIWOOM"
role = "broker"
""")

    def start(self) -> None:
        ports = self.cwd / "hub.ports.json"
        ports.unlink(missing_ok=True)
        super().start()
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while not ports.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hub did not start: {self.log()[-2000:]}")
            time.sleep(0.02)


def _stored(directory: Path, sid: SessionID, msg_type: bytes, tag: int) -> list[str]:
    with FileStore.for_session(directory, sid) as st:
        return [parse(raw).get(tag).decode() for _, raw in st.get_range(1, 0) if parse(raw).msg_type == msg_type]


@pytest.mark.timeout(120 + 30 * ROUNDS)
def test_hub_kill9_under_load(tmp_path: Path) -> None:
    seed = int(os.environ.get("FASTFIX_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"FASTFIX_CRASH_SEED={seed}")
    rng = random.Random(seed)
    port = _free_port()
    hub = HubProcess(tmp_path, port)

    async def go() -> tuple[Party, Party]:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, hub.start)
        gw_app, brk_app = Party(broker=False), Party(broker=True)
        gw = Initiator(_initiator_settings("GATEWAY", port, tmp_path / "gw"), gw_app)
        brk = Initiator(_initiator_settings("KIWOOM", port, tmp_path / "brk"), brk_app)
        await gw.start()
        await brk.start()
        sent = 0
        try:
            await gw.wait_logged_on(GW, 15)
            await brk.wait_logged_on(BRK, 15)
            stop = asyncio.Event()

            async def produce() -> None:
                nonlocal sent
                for i in range(1_000_000):
                    if stop.is_set():
                        return
                    await gw.send(GW, "D", [(128, "KIWOOM"), (11, f"C{i}"), (21, "1"), (55, "005930"),
                                            (54, "1"), (38, 10), (40, "1"), (60, utc_timestamp())])
                    sent += 1
                    await asyncio.sleep(0.002 if i % 3 else 0)

            producer = asyncio.create_task(produce())
            for _ in range(ROUNDS):
                await asyncio.sleep(rng.uniform(0.3, 1.2))
                await loop.run_in_executor(None, hub.kill)
                await asyncio.sleep(rng.uniform(0, 0.3))  # the parties notice and go on storing
                await loop.run_in_executor(None, hub.start)
                await gw.wait_logged_on(GW, 20)
                await brk.wait_logged_on(BRK, 20)
            await asyncio.sleep(0.5)
            stop.set()
            await producer
            await wait_for(lambda: len(brk_app.got) >= sent and len(gw_app.got) >= 2 * sent, 45,
                           "every order at the broker and every report at the buy side")
        finally:
            await gw.stop()
            await brk.stop()
            hub.stop()
        return gw_app, brk_app

    gw_app, brk_app = asyncio.run(asyncio.wait_for(go(), 100 + 30 * ROUNDS))
    orders = _stored(tmp_path / "gw", GW, b"D", 11)
    reports = _stored(tmp_path / "brk", BRK, b"8", 17)
    assert len(orders) == len(set(orders)) > ROUNDS * 20
    lost = set(orders) - set(brk_app.got)
    assert not lost, f"orders lost: {sorted(lost)[:10]}"
    lost = set(reports) - set(gw_app.got)
    assert not lost, f"reports lost: {sorted(lost)[:10]}"
    assert set(brk_app.got) == set(orders) and set(gw_app.got) == set(reports), "messages nobody sent"
    fresh = brk_app.fresh_repeats + gw_app.fresh_repeats
    assert not fresh, f"repeats without PossDupFlag/PossResend: {fresh[:10]}"
    repeats = sum(len(v) - 1 for v in brk_app.got.values()) + sum(len(v) - 1 for v in gw_app.got.values())
    print(f"{ROUNDS} hub kills: {len(orders)} orders, {len(reports)} reports, {repeats} flagged repeats")
    assert "Traceback" not in hub.log(), hub.log()[-3000:]


def test_held_message_forwarded_again_after_a_crash_is_marked_possresend(tmp_path: Path) -> None:
    """The hub dies after forwarding a held message but before deleting it: at the next
    release the message goes out again, and must say it may be a repeat (PossResend=Y)."""
    from server.hub.config import HubConfig
    from server.hub.config import Party as HubParty
    from server.hub.fix_app import HubApplication
    from server.hub.held import HeldStore

    cfg = HubConfig(path=tmp_path / "hub.toml", fix_settings=tmp_path / "hub.cfg", on_destination_down="hold",
                    parties={"GATEWAY": HubParty("GATEWAY", "buy-side"), "KIWOOM": HubParty("KIWOOM", "broker")})
    order = parse(encode("FIX.4.4", "D", [
        (49, "GATEWAY"), (56, "HUB"), (34, 5), (52, "20240102-09:00:00"), (128, "KIWOOM"), (11, "H1"),
        (21, "1"), (55, "005930"), (54, "1"), (38, 10), (40, "1"), (60, "20240102-09:00:00")]))

    class Crash(Exception):
        pass

    def hub_app(sent: list[list[tuple[int, Any]]]) -> HubApplication:
        app = HubApplication(cfg, HeldStore(tmp_path / "held.db"))
        for comp in ("GATEWAY", "KIWOOM"):
            app.on_create(SessionID("FIX.4.4", "HUB", comp))
        app.send = lambda sid, mt, fields: sent.append(list(fields)) or 1  # type: ignore[method-assign]
        return app

    first: list[list[tuple[int, Any]]] = []
    app = hub_app(first)
    app.on_logon(SessionID("FIX.4.4", "HUB", "GATEWAY"))
    app.from_app(order, SessionID("FIX.4.4", "HUB", "GATEWAY"))  # KIWOOM is down: held
    assert app.held.count() == 1 and not first

    def crash(msg_id: int) -> None:
        raise Crash  # the process dies right after the forward, before the delete

    app.held.delete = crash  # type: ignore[method-assign]
    try:
        app.on_logon(SessionID("FIX.4.4", "HUB", "KIWOOM"))
    except Crash:
        pass
    assert len(first) == 1 and (97, "Y") not in first[0]  # the first forward is a plain one
    app.held._db.close()

    second: list[list[tuple[int, Any]]] = []
    restarted = hub_app(second)
    restarted.on_logon(SessionID("FIX.4.4", "HUB", "KIWOOM"))
    assert len(second) == 1, second
    assert (97, "Y") in second[0], second[0]
    assert restarted.held.count() == 0
