"""FIX session failover between two owner processes on the JetStream journal.

A hub (fastfix acceptor) in the test records every application message it receives
with its MsgSeqNum and PossDupFlag, and answers each new order with an
ExecutionReport. Two owner processes run for the same session; orders are appended
as commands to the journal under load while the owner is killed (SIGKILL), or paused
past its lease (SIGSTOP, then SIGCONT). Checked against the hub's record: every order
reached the hub, nothing reached it twice without PossDupFlag, the hub never saw a
sequence reset, and every report is journaled exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from _nats_cluster import NatsCluster
from helpers import run

from fastfix.engine import Acceptor, Application
from fastfix.settings import SessionSettings
from server.gateway.cluster.journal import CommandLog, SessionLog, connect, ensure_stream
from server.gateway.cluster.owner import Command, submit

SESSION = "FIX.4.4:GATEWAY->HUB"
TERM, RENEW = 2.0, 0.5


class Hub(Application):
    """Records what the gateway sent; one ExecutionReport per new ClOrdID."""

    def __init__(self) -> None:
        self.engine: Any = None
        self.received: list[tuple[int, bool, str]] = []  # (MsgSeqNum, PossDupFlag, ClOrdID)
        self.logons: list[tuple[float, bool]] = []  # (when, ResetSeqNumFlag)
        self.exec_ids: list[str] = []
        self.known: set[str] = set()
        self.ids = itertools.count(1)
        self.changed = asyncio.Event()

    def from_admin(self, msg: Any, session_id: Any) -> None:
        if msg.msg_type == b"A":
            self.logons.append((time.monotonic(), msg.get(141) == b"Y"))
            self.changed.set()

    def from_app(self, msg: Any, session_id: Any) -> None:
        cl = (msg.get(11) or b"").decode()
        self.received.append((msg.seq_num, msg.get(43) == b"Y", cl))
        self.changed.set()
        if cl in self.known:
            return  # a possible duplicate of an order answered already
        self.known.add(cl)
        exec_id = f"X{next(self.ids)}"
        self.exec_ids.append(exec_id)
        self.engine.session(session_id).send("8", [
            (37, f"O{cl}"), (11, cl), (17, exec_id), (150, "0"), (39, "0"), (55, "005930"), (54, "1"),
            (38, "10"), (40, "2"), (44, "70000"), (151, "10"), (14, "0"), (6, "0")])


def _order(cl: str) -> Command:
    return Command(SESSION, "D", [(11, cl), (55, "005930"), (54, "1"), (60, "20240102-09:00:00"),
                                  (38, "10"), (40, "2"), (44, "70000")], cl, "acme")


def _hub_settings() -> SessionSettings:
    return SessionSettings.from_string("""
[DEFAULT]
ConnectionType=acceptor
SocketAcceptPort=0
SocketAcceptAddress=127.0.0.1
StartTime=00:00:00
EndTime=00:00:00
HeartBtInt=1
[SESSION]
BeginString=FIX.4.4
SenderCompID=HUB
TargetCompID=GATEWAY
""")


def _owner_settings(path: Path, port: int) -> Path:
    path.write_text(f"""[DEFAULT]
ConnectionType=initiator
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
StartTime=00:00:00
EndTime=00:00:00
HeartBtInt=1
ReconnectInterval=1
[SESSION]
BeginString=FIX.4.4
SenderCompID=GATEWAY
TargetCompID=HUB
""")
    return path


class Owners:
    """Owner processes started by the test, stopped by PID."""

    def __init__(self, tmp: Path, cluster: NatsCluster, stream: str, settings: Path) -> None:
        self.tmp, self.cluster, self.stream, self.settings = tmp, cluster, stream, settings
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the process keeps it
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "server.gateway.cluster.owner", "--instance", name,
             "--nats", ",".join(self.cluster.urls), "--stream", self.stream, "--settings", str(self.settings),
             "--term", str(TERM), "--renew", str(RENEW)],
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])
        log.close()

    def signal(self, name: str, sig: int) -> None:
        os.kill(self.procs[name].pid, sig)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n" + (self.tmp / f"{n}.log").read_text()[-3000:] for n in self.procs)


async def _until(hub: Hub, cond: Any, timeout: float, what: str, owners: Owners) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"timed out waiting for {what}\n{owners.logs()}")
        hub.changed.clear()
        try:
            await asyncio.wait_for(hub.changed.wait(), min(left, 0.5))
        except TimeoutError:
            pass


def _check_hub(hub: Hub, keys: list[str]) -> None:
    got = {cl for _, _, cl in hub.received}
    assert got == set(keys), f"missing at the hub: {sorted(set(keys) - got)[:10]}"
    first: set[str] = set()
    seqs = []
    for seq, poss_dup, cl in hub.received:
        if cl in first:
            assert poss_dup, f"{cl} sent twice without PossDupFlag"
        first.add(cl)
        if not poss_dup:
            seqs.append(seq)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "sequence numbers went back or repeated"
    assert not any(reset for _, reset in hub.logons), "the hub saw ResetSeqNumFlag"


async def _check_journal(js: Any, stream: str, prefix: str, hub: Hub) -> None:
    from fastfix.codec import parse

    records = [r for _, r in await SessionLog(js, stream, prefix, SESSION).open()]
    journaled = [parse(r[2]).get(17).decode() for r in records if r[0] == "I"]
    assert sorted(journaled) == sorted(hub.exec_ids), "a report journaled twice or not at all"


@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_owner_failover_under_load(nats_cluster: NatsCluster, tmp_path: Path, fault: str) -> None:
    async def main() -> None:
        hub = Hub()
        acceptor = Acceptor(_hub_settings(), hub)
        hub.engine = acceptor
        await acceptor.start()
        stream = "F" + uuid.uuid4().hex[:10].upper()
        nc = await connect(nats_cluster.urls, "test")
        js = nc.jetstream()
        prefix = await ensure_stream(js, stream, 3)
        commands = CommandLog(js, prefix)
        owners = Owners(tmp_path, nats_cluster, stream, _owner_settings(tmp_path / "fix.cfg", acceptor.port))
        try:
            owners.start("gw-a")
            await _until(hub, lambda: len(hub.logons) >= 1, 30, "the first logon", owners)
            owners.start("gw-b")
            keys = [f"C{i:04d}" for i in range(120)]

            async def produce() -> None:
                for cl in keys:
                    await submit(commands, _order(cl))
                    await asyncio.sleep(0.01)  # a steady flow of orders, not one burst

            producer = asyncio.create_task(produce())
            await _until(hub, lambda: len(hub.received) >= 30, 30, "orders before the fault", owners)
            faulted = time.monotonic()
            owners.signal("gw-a", signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
            await producer
            await _until(hub, lambda: {cl for _, _, cl in hub.received} >= set(keys), 60,
                         "every order at the hub", owners)
            if fault == "pause":
                owners.signal("gw-a", signal.SIGCONT)  # wakes up fenced: must not write to the hub
                await asyncio.sleep(TERM)  # give the woken owner the chance to misbehave
                assert (await submit(commands, _order("LAST")))[1] is False
                keys.append("LAST")
                await _until(hub, lambda: any(cl == "LAST" for _, _, cl in hub.received), 30,
                             "an order after the old owner woke up", owners)
            _check_hub(hub, keys)
            assert len(hub.logons) == 2, f"hub logons: {hub.logons}"
            await _until(hub, lambda: len(hub.exec_ids) == len(keys), 10, "the reports", owners)
            deadline = time.monotonic() + 20
            while True:  # the last reports may still be on their way into the journal
                try:
                    await _check_journal(js, stream, prefix, hub)
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            print(f"\n{fault}: failover to logon {hub.logons[1][0] - faulted:.2f}s")
        finally:
            owners.stop()
            await acceptor.stop()
            await nc.close()

    run(main(), 180)
