"""kill -9 of the gateway under load, then restart: nothing acknowledged is lost or doubled.

The hub double (in this process, file store) deduplicates orders by ClOrdID and
records every receipt with its PossDupFlag/PossResend. The gateway runs as a
subprocess with its SQLite database and FIX file store; it is killed with SIGKILL
at a random moment while several clients post orders and the hub streams back
two ExecutionReports per order, so kills land between a 202 and the FIX send,
between reading a report and committing it, and between committing and pushing.
After the last restart both sides' records are compared:

* every order answered 202 reached the hub; a second receipt of a ClOrdID always
  carries PossDupFlag=Y or PossResend=Y (never a fresh duplicate);
* the gateway's FIX store holds each acknowledged order as exactly one NewOrderSingle;
* the client's event stream, read by cursor from 0, has sequence numbers 1..N
  without gap or repeat, and carries every ExecutionReport the hub's store holds
  exactly once.

The seed is printed; ``FASTFIX_CRASH_SEED`` replays a run, ``FASTFIX_CRASH_ROUNDS``
makes it longer (``make crash``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from _rel_helpers import (
    GW_SID,
    HUB_SID,
    KEYS,
    GatewayProcess,
    Http,
    check_event_stream,
    collect_events,
    gateway_toml,
    initiator_settings_text,
    sent_app_messages,
    start_file_hub,
    wait_for,
)

from fastfix.codec import parse
from fastfix.store import FileStore

A = KEYS["alpha"]
ROUNDS = int(os.environ.get("FASTFIX_CRASH_ROUNDS", "4"))
WORKERS = 6


def _order(cl: str) -> dict[str, Any]:
    return {"ClOrdID": cl, "DeliverToCompID": "BRKA", "Symbol": "005930", "Side": "1", "OrdType": "2",
            "OrderQty": "10", "Price": "70000", "Text": "fill"}


async def _start(p: GatewayProcess) -> None:
    await asyncio.get_running_loop().run_in_executor(None, p.start)


async def _ready(p: GatewayProcess, timeout: float = 20) -> None:
    async def up() -> bool:
        try:
            async with Http(p.rest) as h:
                return (await h.call("GET", "/readyz"))[0] == 200
        except OSError:
            return False

    await wait_for(up, timeout, "gateway /readyz")


async def _load(port: int, tag: str, acked: set[str], stop: asyncio.Event) -> None:
    """Post orders back to back until ``stop`` or the gateway dies; record each 202."""
    try:
        async with Http(port, A) as h:
            for i in range(100_000):
                if stop.is_set():
                    return
                cl = f"{tag}-{i}"
                status, body = await h.call("POST", "/v1/orders", _order(cl))
                if status == 202:
                    acked.add(cl)
                else:
                    assert status in (503, 429), (status, body)
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        return  # the gateway was killed under us: the request in flight is not acknowledged


@pytest.mark.timeout(120 + 30 * ROUNDS)
def test_gateway_kill9_under_load(tmp_path: Path) -> None:
    seed = int(os.environ.get("FASTFIX_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"FASTFIX_CRASH_SEED={seed}")
    rng = random.Random(seed)

    async def go() -> None:
        acceptor, hub = await start_file_hub(tmp_path)
        (tmp_path / "gw.cfg").write_text(initiator_settings_text(acceptor.port))
        p = GatewayProcess(tmp_path, gateway_toml(link="fix", fix_settings="gw.cfg"))
        acked: set[str] = set()
        kills = 0
        try:
            for rnd in range(ROUNDS):
                await _start(p)
                await _ready(p)
                stop = asyncio.Event()
                workers = [asyncio.create_task(_load(p.rest, f"r{rnd}w{w}", acked, stop))
                           for w in range(WORKERS)]
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                assert p.proc is not None
                p.proc.send_signal(signal.SIGKILL)
                p.proc.wait(10)
                p.proc = None
                kills += 1
                stop.set()
                await asyncio.wait_for(asyncio.gather(*workers), 30)
            # final life: everything flows again
            await _start(p)
            await _ready(p)
            assert kills == ROUNDS and len(acked) > ROUNDS * 10, f"too little load: {len(acked)} orders"

            with contextlib.suppress(AssertionError):
                await wait_for(lambda: all(f"alpha:{cl}" in hub.receipts for cl in acked), 30,
                               "every acknowledged order at the hub")
            missing = {cl for cl in acked if f"alpha:{cl}" not in hub.receipts}
            assert not missing, f"acknowledged orders that never reached the hub: {sorted(missing)[:10]}"
            assert not hub.fresh_duplicates, f"orders sent twice without PossDup: {hub.fresh_duplicates[:10]}"

            hub_store = acceptor.session(HUB_SID).store
            expected = {m.get(17).decode() for m in sent_app_messages(hub_store)
                        if (m.get(11) or b"").startswith(b"alpha:")}
            # every order the hub took is answered twice (New, Fill)
            assert len(expected) == 2 * len(hub.receipts)
            frames = await collect_events(
                p.ws, A, lambda fr: len(fr) >= len(expected), timeout=45)
            check_event_stream(frames, expected)
        finally:
            rc = p.stop()
            await acceptor.stop()
        assert rc == 0 or rc == -signal.SIGTERM, p.log()[-3000:]
        # The gateway's own FIX store: each acknowledged order is one NewOrderSingle (one seq).
        with FileStore.for_session(tmp_path / "fixstore", GW_SID) as st:
            sent = [parse(raw).get(11).decode() for _, raw in st.get_range(1, 0)
                    if parse(raw).msg_type == b"D"]
        counts: dict[str, int] = {}
        for cl in sent:
            counts[cl] = counts.get(cl, 0) + 1
        assert all(counts.get(f"alpha:{cl}") == 1 for cl in acked), "an acknowledged order is not stored once"
        assert "Traceback" not in p.log(), p.log()[-3000:]

    t0 = time.monotonic()
    asyncio.run(asyncio.wait_for(go(), 100 + 30 * ROUNDS))
    print(f"{ROUNDS} kills in {time.monotonic() - t0:.1f}s")


def _fix_store_snapshot(tmp: Path) -> tuple[int, int]:
    """(next sender seq, next target seq) of the gateway's FIX store, read from a copy (the file is locked)."""
    src = tmp / "fixstore" / f"{GW_SID.file_prefix}.store"
    snap = tmp / "snap"
    snap.mkdir(exist_ok=True)
    dst = snap / src.name
    dst.write_bytes(src.read_bytes())
    with FileStore(snap, GW_SID.file_prefix) as st:
        return st.next_sender_seq, st.next_target_seq


def test_reports_read_but_not_journaled_are_asked_again(tmp_path: Path) -> None:
    """The gateway dies after its FIX session counted reports as received but before they
    were journaled (the ``crash-before-report-journal`` hook): after the restart the
    session asks the hub again and the client still gets every report, once each."""

    async def go() -> None:
        acceptor, hub = await start_file_hub(tmp_path)
        (tmp_path / "gw.cfg").write_text(initiator_settings_text(acceptor.port))
        p = GatewayProcess(tmp_path, gateway_toml(link="fix", fix_settings="gw.cfg"))
        try:
            await asyncio.get_running_loop().run_in_executor(None, lambda: p.start(hook="crash-before-report-journal"))
            await _ready(p)
            async with Http(p.rest, A) as h:
                first = _order("held-1") | {"Text": "hold"}
                assert (await h.call("POST", "/v1/orders", first))[0] == 202
            await wait_for(lambda: "alpha:held-1" in hub.receipts, 10, "the order at the hub")
            hub.release(fill=True)  # its reports reach the gateway, which dies before journaling them
            assert p.proc is not None
            assert await asyncio.get_running_loop().run_in_executor(None, p.proc.wait, 10) == -signal.SIGKILL
            p.proc = None
            await _start(p)
            await _ready(p)
            expected = {m.get(17).decode() for m in sent_app_messages(acceptor.session(HUB_SID).store)}
            assert len(expected) == 2
            frames = await collect_events(p.ws, A, lambda fr: len(fr) >= 2, timeout=15)
            check_event_stream(frames, expected)
            assert "asking the counterparty to resend" in p.log()
        finally:
            p.stop()
            await acceptor.stop()

    asyncio.run(asyncio.wait_for(go(), 90))
