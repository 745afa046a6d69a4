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
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from _gateway_harness import gateway_toml
from _nats_cluster import NatsCluster, PgDatabase, free_ports
from helpers import run
from test_cluster_journal import setup_journal

from fastfix.engine import Acceptor, Application
from fastfix.settings import SessionSettings
from server.gateway.cluster.journal import (
    CommandLog,
    JournalUnavailable,
    SessionLog,
    connect,
    ensure_stream,
)
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


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


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

    def start(self, name: str, fault: str = "", metrics_port: int | None = None, postgres: str = "") -> None:
        """Start owner ``name``: with options, or (``postgres`` given) from a gateway TOML's [cluster]
        table, projecting the journal into that database."""
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the process keeps it
        entry = [str(Path(__file__).with_name("_faulty_owner.py"))] if fault else ["-m", "server.gateway.cluster.owner"]
        env = {**os.environ, "FASTFIX_FAULT": fault}
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
        if postgres:
            cfg = self.tmp / f"{name}.toml"
            cfg.write_text(gateway_toml().replace('link = "loopback"', f'link = "fix"\nfix_settings = "{self.settings}"')
                           + f"""
[cluster]
instance = "{name}"
nats = {json.dumps(self.cluster.urls)}
postgres = "{postgres}"
stream = "{self.stream}"
lease_term = {TERM}
renew_interval = {RENEW}
""")
            args = ["--config", str(cfg)]
        else:
            args = ["--instance", name, "--nats", ",".join(self.cluster.urls), "--stream", self.stream,
                    "--settings", str(self.settings), "--term", str(TERM), "--renew", str(RENEW)]
        if metrics_port:
            args += ["--metrics-port", str(metrics_port)]
        self.procs[name] = subprocess.Popen(
            [sys.executable, *entry, *args],
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2], env=env)
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


def _check_hub(hub: Hub, acked: list[str], submitted: list[str]) -> None:
    got = {cl for _, _, cl in hub.received}
    assert got >= set(acked), f"acknowledged, missing at the hub: {sorted(set(acked) - got)[:10]}"
    assert got <= set(submitted), f"never submitted: {sorted(got - set(submitted))[:10]}"
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


class Scenario:
    """A hub, a journal stream, owner processes and an order producer."""

    def __init__(self, cluster: NatsCluster, tmp: Path) -> None:
        self.cluster, self.tmp = cluster, tmp
        self.hub = Hub()
        self.keys: list[str] = []
        self.acked: list[str] = []

    async def __aenter__(self) -> Scenario:
        self.acceptor = Acceptor(_hub_settings(), self.hub)
        self.hub.engine = self.acceptor
        await self.acceptor.start()
        self.stream = "F" + uuid.uuid4().hex[:10].upper()
        self.nc = await connect(self.cluster.urls, "test")
        self.js = self.nc.jetstream()
        self.prefix = await ensure_stream(self.js, self.stream, 3)
        self.commands = CommandLog(self.js, self.prefix, timeout=1.0)
        self.owners = Owners(self.tmp, self.cluster, self.stream,
                             _owner_settings(self.tmp / "fix.cfg", self.acceptor.port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.owners.stop()
        await self.acceptor.stop()
        for name in (self.stream, f"KV_{self.stream}_leases"):  # fewer raft groups for the next test
            try:
                await self.js.delete_stream(name)
            except Exception:  # noqa: BLE001 - the cluster may be short of nodes after a failure
                pass
        await self.nc.close()

    async def until(self, cond: Any, timeout: float, what: str) -> None:
        await _until(self.hub, cond, timeout, what, self.owners)

    async def produce(self, keys: list[str], pace: float = 0.01, refused: list[str] | None = None) -> None:
        """Submit orders one after another; ``acked`` holds those the journal acknowledged.
        With ``refused``, an order the journal did not acknowledge is listed there (what the
        REST layer answers with 503) and the producer goes on."""
        for cl in keys:
            self.keys.append(cl)
            try:
                await submit(self.commands, _order(cl))
            except JournalUnavailable:
                if refused is None:
                    raise
                refused.append(cl)
                continue
            self.acked.append(cl)
            await asyncio.sleep(pace)  # a steady flow of orders, not one burst

    def at_hub(self) -> set[str]:
        return {cl for _, _, cl in self.hub.received}

    async def check(self, logons: int | None = 2) -> None:
        await self.until(lambda: self.at_hub() >= set(self.acked), 60, "every acknowledged order at the hub")
        _check_hub(self.hub, self.acked, self.keys)
        if logons is not None:
            assert len(self.hub.logons) == logons, f"hub logons: {self.hub.logons}"
        await self.until(lambda: len(self.hub.exec_ids) == len(self.at_hub()), 10, "the reports")
        deadline = time.monotonic() + 20
        while True:  # the last reports may still be on their way into the journal
            try:
                await _check_journal(self.js, self.stream, self.prefix, self.hub)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_owner_failover_under_load(nats_cluster: NatsCluster, tmp_path: Path, fault: str) -> None:
    async def main() -> None:
        async with Scenario(nats_cluster, tmp_path) as sc:
            sc.owners.start("gw-a")
            await sc.until(lambda: len(sc.hub.logons) >= 1, 30, "the first logon")
            port = free_ports(1)[0]
            sc.owners.start("gw-b", metrics_port=port)
            producer = asyncio.create_task(sc.produce([f"C{i:04d}" for i in range(120)]))
            await sc.until(lambda: len(sc.hub.received) >= 30, 30, "orders before the fault")
            faulted = time.monotonic()
            sc.owners.signal("gw-a", signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
            await producer
            await sc.until(lambda: len(sc.hub.logons) >= 2, 30, "the new owner's logon")
            if fault == "pause":
                await sc.until(lambda: sc.at_hub() >= set(sc.acked), 60, "every order at the hub")
                sc.owners.signal("gw-a", signal.SIGCONT)  # wakes up fenced: must not write to the hub
                await asyncio.sleep(TERM)  # give the woken owner the time to misbehave
                await sc.produce(["LAST"])
            await sc.check()
            print(f"\n{fault}: failover to logon {sc.hub.logons[1][0] - faulted:.2f}s")
            metrics = await asyncio.to_thread(_scrape, port)
            assert f'lease_owner{{instance="gw-b",session="{SESSION}"}} 1.0' in metrics
            assert f'failover_total{{session="{SESSION}"}} 1.0' in metrics
            count = next(line for line in metrics.splitlines() if line.startswith("journal_append_seconds_count"))
            assert float(count.split()[-1]) >= 1

    run(main(), 180)


@pytest.mark.parametrize("fault", ["after-append:25", "before-report:20"])
def test_owner_killed_inside_the_order_path(nats_cluster: NatsCluster, tmp_path: Path, fault: str,
                                            pg_db: PgDatabase) -> None:
    """Killed between the journal's acknowledgement and the socket write (the hub gets the order
    by resend, with PossDupFlag), or after reading a report before journaling it (the hub sends
    it again to the next owner, and it is journaled once)."""
    async def main() -> None:
        async with Scenario(nats_cluster, tmp_path) as sc:
            sc.owners.start("gw-a", fault=fault)
            await sc.until(lambda: len(sc.hub.logons) >= 1, 30, "the first logon")
            sc.owners.start("gw-b", postgres=pg_db.dsn)  # the standby configured by its gateway TOML
            await sc.produce([f"C{i:04d}" for i in range(60)])
            await sc.until(lambda: len(sc.hub.logons) >= 2, 30, "the new owner's logon")
            assert sc.owners.procs["gw-a"].wait(10) == -signal.SIGKILL  # the fault did happen
            await sc.check()
            if fault.startswith("after-append"):
                assert any(dup for _, dup, _ in sc.hub.received), "the unwritten order came without PossDup"
            # The client's events, projected into PostgreSQL by the new owner: numbered 1..n across
            # both owners, one per report the hub sent.
            events: list = []
            deadline = time.monotonic() + 30
            while len(events) < len(sc.hub.exec_ids) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                conn = await asyncpg.connect(pg_db.dsn)
                try:
                    events = await conn.fetch("SELECT seq, data FROM ff_events WHERE client_id='acme' ORDER BY seq")
                except asyncpg.UndefinedTableError:
                    events = []
                finally:
                    await conn.close()
            assert [e["seq"] for e in events] == list(range(1, len(sc.hub.exec_ids) + 1))
            exec_ids = [json.loads(e["data"])["Body"]["ExecID"] for e in events]
            assert sorted(exec_ids) == sorted(sc.hub.exec_ids)

    run(main(), 180)


def test_nats_nodes_fail_one_then_two(nats_cluster: NatsCluster, tmp_path: Path) -> None:
    """One NATS node down: orders go on. Two down: appends are refused (503), the owner stops
    writing to the hub; once the nodes are back, every acknowledged order reaches the hub."""
    async def main() -> None:
        async with Scenario(nats_cluster, tmp_path) as sc:
            sc.owners.start("gw-a")
            await sc.until(lambda: len(sc.hub.logons) >= 1, 30, "the first logon")
            sc.owners.start("gw-b")
            refused: list[str] = []
            producer = asyncio.create_task(
                sc.produce([f"C{i:04d}" for i in range(400)], pace=0.02, refused=refused))
            try:
                await sc.until(lambda: len(sc.hub.received) >= 20, 30, "orders before the fault")
                nats_cluster.kill(2)
                seen = len(sc.acked)
                await sc.until(lambda: len(sc.acked) >= seen + 20, 60, "orders with one node down")
                nats_cluster.kill(1)
                await sc.until(lambda: len(refused) >= 3, 60, "refused orders with two nodes down")
            finally:
                nats_cluster.start(1)
                nats_cluster.start(2)
            await nats_cluster.wait_ready(60)
            await producer
            assert refused and len(sc.acked) + len(refused) == 400
            await sc.check(logons=None)
            assert len(sc.hub.logons) >= 2  # the owner logged out while the journal was down

    run(main(), 240)


def test_client_stream_resumes_on_another_instance(nats_cluster: NatsCluster, tmp_path: Path,
                                                   pg_db: PgDatabase) -> None:
    """A client reads its events from instance X, the owner is killed, and the client resumes
    on instance Y with its old cursor: Y holds only its last few events in memory, the rest
    come from PostgreSQL; together the client sees 1..n, each report once."""
    from server.gateway.cluster.feed import EventFeed

    async def main() -> None:
        async with Scenario(nats_cluster, tmp_path) as sc:
            sc.owners.start("gw-a")
            await sc.until(lambda: len(sc.hub.logons) >= 1, 30, "the first logon")
            sc.owners.start("gw-b", postgres=pg_db.dsn)  # also runs the projection
            conns = [await connect(nats_cluster.urls, f"feed-{i}") for i in range(2)]
            x = EventFeed(conns[0].jetstream(), sc.stream, sc.prefix, pg_db.dsn)
            y = EventFeed(conns[1].jetstream(), sc.stream, sc.prefix, pg_db.dsn, keep=5)
            await x.start()
            await y.start()
            try:
                producer = asyncio.create_task(sc.produce([f"C{i:04d}" for i in range(80)]))
                seen: list[tuple[int, bytes]] = []
                async with asyncio.timeout(60):
                    async for event in x.follow("acme", 0):
                        seen.append(event)
                        if len(seen) == 20:
                            break
                sc.owners.signal("gw-a", signal.SIGKILL)
                await producer
                await sc.until(lambda: len(sc.hub.exec_ids) == 80, 60, "every report")
                await sc.until(lambda: y.last("acme") == 80, 60, "instance Y to follow every event")
                async with asyncio.timeout(60):
                    async for event in y.follow("acme", seen[-1][0]):  # resume elsewhere, old cursor
                        seen.append(event)
                        if len(seen) == 80:
                            break
                assert [s for s, _ in seen] == list(range(1, 81))
                assert sorted(json.loads(d)["Body"]["ExecID"] for _, d in seen) == sorted(sc.hub.exec_ids)
                assert len(y._recent["acme"]) == 5  # the resumed part came mostly from PostgreSQL
                await sc.check()
            finally:
                await x.close()
                await y.close()
                for c in conns:
                    await c.close()

    run(main(), 180)


def test_one_node_down_is_served_two_down_refuse(nats_cluster: NatsCluster) -> None:
    async def main() -> None:
        nc, js, stream, prefix = await setup_journal(nats_cluster)
        log = SessionLog(js, stream, prefix, "S1", timeout=1.0)
        await log.open()
        acked = [await log.append(("O", 1, b"a"))]
        nats_cluster.kill(2)
        for _ in range(30):  # the leader may have been on node 2: a new one is elected
            try:
                acked.append(await log.append(("O", 2, b"b")))
                break
            except JournalUnavailable:
                await asyncio.sleep(0.2)
        else:
            pytest.fail("no append acknowledged with one node down")
        nats_cluster.kill(1)
        with pytest.raises(JournalUnavailable):
            for _ in range(3):  # the first may still reach a leader that has not noticed yet
                await log.append(("O", 3, b"c"))
        nats_cluster.start(1)
        nats_cluster.start(2)
        await nats_cluster.wait_ready()
        records: list = []
        for _ in range(50):  # until the stream has a leader again
            try:
                records = await SessionLog(js, stream, prefix, "S1").open()
                break
            except Exception:  # noqa: BLE001 - leaderless for a moment after restart
                await asyncio.sleep(0.2)
        seqs = [s for s, _ in records]
        assert all(s in seqs for s in acked), (acked, seqs)  # nothing acknowledged is lost
        await nc.close()

    run(main(), 120)
