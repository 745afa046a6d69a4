"""Power loss under load: with ``sync = "full"`` nothing acknowledged is lost.

The gateway (and its projector child) run with the power-cut shim preloaded over their
whole working directory: the journal, the SQLite projection and the FIX file store.
Several clients post orders; the in-process hub double (file store, not cut) answers
each with New and Fill and records the MsgSeqNum of every order it took. The cut: both
processes stopped, then killed, by PID; the undo logs are applied, so the directory holds
exactly what had been fsynced. Then, offline:

* the gateway's FIX store holds every message the hub received under the same MsgSeqNum
  and ClOrdID, and its next sender sequence number is not below what the hub expects
  (no number can be used again for another message);

and after a restart without the shim:

* every order answered 202 is known to the gateway (GET /v1/orders/{ClOrdID}), reached the
  hub (again only with PossDupFlag/PossResend), and its FIX store holds it once.

The control runs the same load with ``sync = "normal"`` and checks that the cut really
dropped data: the journal loses its unsynced records and the FIX store's sequence numbers
fall behind the hub's, so the harness cannot silently be a no-op.

A third test cuts the power between the journal's write of a record and the return of
its flush, once the projector has applied it: the projection must not hold it afterwards.

``FASTFIX_POWER_ROUNDS`` cuts (default 1, each followed by a restart under the shim) of
``FASTFIX_POWER_SECONDS`` of load each (default 2); every fsync under the shim takes a
random time up to ``FASTFIX_POWER_SYNC_DELAY_US`` (default 1000), so that flushes of
different files end out of order; ``make power`` runs 30 longer cuts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _powercut import Reverted, build_shim, revert, shim_env
from _rel_helpers import (
    GW_SID,
    HUB_SID,
    KEYS,
    DedupHub,
    GatewayProcess,
    Http,
    gateway_toml,
    hub_settings,
    initiator_settings_text,
    wait_for,
)

from fastfix.codec import parse
from fastfix.engine import Acceptor
from fastfix.store import FileStore
from server.gateway.journal import JournalFile
from server.gateway.projection import Projection

A = KEYS["alpha"]
ROUNDS = int(os.environ.get("FASTFIX_POWER_ROUNDS", "1"))
SECONDS = float(os.environ.get("FASTFIX_POWER_SECONDS", "2"))
WORKERS = 6
# Each fsync of the shim takes up to this long (µs): flushes that end out of order, as on a busy disk.
SYNC_DELAY_US = os.environ.get("FASTFIX_POWER_SYNC_DELAY_US", "1000")


class SeqHub(DedupHub):
    """The deduplicating hub double, also noting the MsgSeqNum of each order it took."""

    def __init__(self) -> None:
        super().__init__()
        self.seq_of: dict[int, str] = {}

    def from_app(self, msg: Any, session_id: Any) -> None:
        if msg.msg_type == b"D":
            self.seq_of[int(msg.get(34))] = (msg.get(11) or b"").decode()
        super().from_app(msg, session_id)


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(tmp_path_factory.mktemp("shim"))


def _order(cl: str) -> dict[str, Any]:
    return {"ClOrdID": cl, "DeliverToCompID": "BRKA", "Symbol": "005930", "Side": "1", "OrdType": "2",
            "OrderQty": "10", "Price": "70000", "Text": "fill"}


async def _load(port: int, tag: str, acked: set[str], stop: asyncio.Event) -> None:
    """Post orders back to back until ``stop`` or the power goes; record each 202."""
    try:
        async with Http(port, A) as h:
            for i in range(1_000_000):
                if stop.is_set():
                    return
                cl = f"{tag}-{i}"
                status, body = await h.call("POST", "/v1/orders", _order(cl))
                if status == 202:
                    acked.add(cl)
                else:
                    assert status in (503, 429), (status, body)
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        return  # the power went under us: the request in flight is not acknowledged


async def _ready(p: GatewayProcess, timeout: float = 20) -> None:
    """/readyz answers 200: the FIX session is logged on."""

    async def up() -> bool:
        try:
            async with Http(p.rest) as h:
                return (await h.call("GET", "/readyz"))[0] == 200
        except OSError:
            return False

    await wait_for(up, timeout, "gateway /readyz")


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (the projector), from /proc."""
    out: list[int] = []
    todo = [pid]
    for _ in range(1000):
        if not todo:
            break
        p = todo.pop()
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                out += [int(k) for k in kids]
                todo += [int(k) for k in kids]
    return out


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def power_cut(p: GatewayProcess) -> None:
    """Every process of the gateway stopped at once, then killed, by PID."""
    assert p.proc is not None
    pids = [p.proc.pid, *_descendants(p.proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    p.proc.wait(10)
    p.proc = None
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, "a gateway process outlived the cut"
        time.sleep(0.01)


def _store_view(work: Path) -> tuple[int, dict[int, str]]:
    """(next sender seq, {seq: ClOrdID of each order sent}) of the gateway's FIX store, read offline."""
    with FileStore.for_session(work / "fixstore", GW_SID) as st:
        sent = {seq: (parse(raw).get(11) or b"").decode() for seq, raw in st.get_range(1, 0)
                if parse(raw).msg_type == b"D"}
        return st.next_sender_seq, sent


def _journal_records(work: Path) -> int:
    jf = JournalFile(work / "gw.journal")
    jf.open()
    try:
        return sum(1 for _ in jf.records_after(0))
    finally:
        jf.close()


async def _run(tmp: Path, shim: Path, sync: str, rounds: int) -> dict[str, Any]:
    """``rounds`` lives of the gateway under the shim, each ended by a power cut and a revert."""
    work = tmp / "gw"
    work.mkdir()
    logs = tmp / "undo"
    hub = SeqHub()
    acceptor = Acceptor(hub_settings(tmp), hub, host="127.0.0.1", port=0)
    await acceptor.start()
    (work / "gw.cfg").write_text(initiator_settings_text(acceptor.port))
    p = GatewayProcess(work, gateway_toml(link="fix", fix_settings="gw.cfg", extra=f'sync = "{sync}"'))
    loop = asyncio.get_running_loop()
    acked: set[str] = set()
    cuts: list[Reverted] = []
    res: dict[str, Any] = {"hub": hub, "acceptor": acceptor, "p": p, "acked": acked, "cuts": cuts, "work": work}
    try:
        for rnd in range(rounds):
            p.env = shim_env(shim, work, logs, base={"POWERCUT_SYNC_DELAY_US": SYNC_DELAY_US})
            await loop.run_in_executor(None, p.start)
            await _ready(p)
            stop = asyncio.Event()
            workers = [asyncio.create_task(_load(p.rest, f"{sync}{rnd}w{w}", acked, stop)) for w in range(WORKERS)]
            await asyncio.sleep(SECONDS)  # the load runs this long before the cut
            (tmp / f"gateway-life{rnd}.log").write_text(p.log())  # the log itself is cut too
            await loop.run_in_executor(None, power_cut, p)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*workers), 30)
            cuts.append(revert(work, logs))
            hub_next = acceptor.session(HUB_SID).store.next_target_seq
            res.setdefault("offline", []).append((hub_next, dict(hub.seq_of), *_store_view(work)))
            res.setdefault("journal", []).append(_journal_records(work))
    except BaseException:
        p.stop()
        await acceptor.stop()
        raise
    return res


@pytest.mark.timeout(180 + 60 * ROUNDS)
def test_power_cut_under_load_loses_nothing_with_sync_full(tmp_path: Path, shim: Path) -> None:
    async def go() -> None:
        res = await _run(tmp_path, shim, "full", ROUNDS)
        hub, acceptor, p, acked, work = res["hub"], res["acceptor"], res["p"], res["acked"], res["work"]
        try:
            assert len(acked) >= 10 * ROUNDS, f"too little load: {len(acked)} orders"
            for c in res["cuts"]:
                # the projector ran under the shim too (it maps its status file, nothing else is mapped)
                assert [m.name for m in c.mapped] == ["projected"], c.mapped
            for rnd, (hub_next, hub_seqs, gw_next, gw_sent) in enumerate(res["offline"]):
                assert gw_next >= hub_next, (
                    f"cut {rnd}: the FIX store went back to sequence number {gw_next}, the hub expects {hub_next}")
                wrong = {s: cl for s, cl in hub_seqs.items() if gw_sent.get(s) != cl}
                assert not wrong, f"cut {rnd}: orders the hub took that the FIX store lost: {sorted(wrong.items())[:5]}"
            # the final life, without the shim
            p.env = {}
            await asyncio.get_running_loop().run_in_executor(None, p.start)
            await _ready(p)
            with contextlib.suppress(AssertionError):
                await wait_for(lambda: all(f"alpha:{cl}" in hub.receipts for cl in acked), 30,
                               "every acknowledged order at the hub")
            missing = sorted(cl for cl in acked if f"alpha:{cl}" not in hub.receipts)
            assert not missing, f"{len(missing)} acknowledged orders never reached the hub: {missing[:10]}"
            assert not hub.fresh_duplicates, f"orders sent twice without PossDup: {hub.fresh_duplicates[:10]}"
            unknown = []
            async with Http(p.rest, A) as h:
                for cl in sorted(acked):
                    for _ in range(200):  # 429: the client's rate limit, wait for tokens
                        status, _ = await h.call("GET", f"/v1/orders/{cl}")
                        if status != 429:
                            break
                        await asyncio.sleep(0.05)
                    if status != 200:
                        unknown.append((cl, status))
            assert not unknown, f"{len(unknown)} acknowledged orders unknown after the cut: {unknown[:10]}"
        finally:
            rc = p.stop()
            await acceptor.stop()
        assert rc in (0, -signal.SIGTERM, None), p.log()[-3000:]
        _, sent = _store_view(work)
        counts: dict[str, int] = {}
        for cl in sent.values():
            counts[cl] = counts.get(cl, 0) + 1
        twice = [cl for cl in acked if counts.get(f"alpha:{cl}") != 1]
        assert not twice, f"acknowledged orders not stored exactly once: {twice[:10]}"
        assert "Traceback" not in p.log(), p.log()[-3000:]
        print(f"sync=full: {ROUNDS} cuts, {len(acked)} orders acknowledged, all kept; undone per cut: "
              f"{[{p.name: n for p, n in c.files.items() if n} for c in res['cuts']]}")

    asyncio.run(asyncio.wait_for(go(), 150 + 60 * ROUNDS))


@pytest.mark.timeout(120)
def test_power_cut_control_sync_normal_drops_unsynced_data(tmp_path: Path, shim: Path) -> None:
    """The same cut with ``sync = "normal"``: acknowledged records are gone (the harness bites)."""

    async def go() -> None:
        res = await _run(tmp_path, shim, "normal", 1)
        try:
            acked, (cut,) = res["acked"], res["cuts"]
            (hub_next, _, gw_next, _), = res["offline"]
            assert len(acked) >= 10, f"too little load: {len(acked)} orders"
            journal_lost = sum(n for path, n in cut.files.items() if path.suffix == ".journal")
            journal_lost += sum(1 for path in cut.removed if path.suffix == ".journal")
            assert journal_lost > 0, f"the cut dropped nothing of the journal: {cut}"
            kept = res["journal"][0]
            assert kept < len(acked), f"the journal kept {kept} records of {len(acked)} acknowledged orders"
            assert gw_next < hub_next, f"the FIX store kept its sequence numbers ({gw_next} >= {hub_next})"
            print(f"sync=normal: {len(acked)} orders acknowledged, journal kept {kept} records, "
                  f"FIX store back to seq {gw_next} while the hub expects {hub_next}")
        finally:
            res["p"].stop()
            await res["acceptor"].stop()

    asyncio.run(asyncio.wait_for(go(), 110))


WRITER = """
import asyncio, sys, time
import msgspec
from server.gateway.journal import JournalFile
from server.gateway.projection import Projection
from server.gateway.projection import Projection
database, journal = sys.argv[1:3]
proj = Projection(database, "full")
proj.open()
asyncio.run(proj.close())
jf = JournalFile(journal, "full")
jf.open()
payload = msgspec.msgpack.encode(([], [], [], [], [], []))
jf.append(payload)  # record 1: written and flushed
jf.sync = "normal"
jf.append(payload)  # record 2: written; the power goes before its flush returns
print("written", flush=True)
time.sleep(120)
"""


def test_projection_is_never_ahead_of_the_durable_journal(tmp_path: Path, shim: Path) -> None:
    """The projector must not make durable a record whose journal flush has not returned: after
    the cut the database would hold a position the journal lost, and the gateway refuses to start."""
    work, logs = tmp_path / "gw", tmp_path / "undo"
    work.mkdir()
    env = shim_env(shim, work, logs, base=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    db, journal = work / "gw.db", work / "gw.journal"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(journal)], env=env,
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    projector: subprocess.Popen[bytes] | None = None
    try:
        assert writer.stdout is not None
        ready, _, _ = select.select([writer.stdout], [], [], 30)
        assert ready and writer.stdout.readline() == b"written\n"
        projector = subprocess.Popen(
            [sys.executable, "-m", "server.gateway.projector", "--database", str(db), "--journal", str(journal),
             "--sync", "full", "--parent", str(writer.pid)], env=env, stdin=subprocess.DEVNULL)
        status = journal / "projected"

        def applied() -> int:
            data = status.read_bytes() if status.exists() else b""
            return int.from_bytes(data[:8], "little") if len(data) >= 8 else 0

        deadline = time.monotonic() + 30
        while applied() < 2:
            assert time.monotonic() < deadline and projector.poll() is None, "the projector did not apply record 2"
            time.sleep(0.01)
    finally:
        for proc in (writer, projector):  # the cut
            if proc is not None:
                proc.kill()
                proc.wait(10)
    revert(work, logs)
    jf = JournalFile(journal)
    jf.open()
    jf.close()
    conn = sqlite3.connect(db)
    try:
        projected = Projection.recorded_position(conn)
    finally:
        conn.close()
    assert projected <= jf.last, f"the database holds journal position {projected}, the journal ends at {jf.last}"
