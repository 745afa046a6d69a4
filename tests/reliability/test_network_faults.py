"""FIX sessions through a faulty network: cuts mid-message in both directions, delays,
writes split at every byte boundary. A fastfix initiator (the gateway's side) sends
orders through :class:`FaultProxy` to a fastfix acceptor (the hub's side), which
answers each with an ExecutionReport; both use file stores. After the faults, the
sessions reconnect, resend and gap-fill; then both sides' stores and what each
application received are compared: nothing lost, every repeat marked PossDup, and
the sequence numbers of the two stores agree.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from pathlib import Path
from typing import Any

import pytest
from _fault_proxy import C2S, S2C, FaultProxy
from _rel_helpers import wait_for
from helpers import acceptor, fix_settings, initiator, session

from fastfix.codec import parse, utc_timestamp
from fastfix.engine import Acceptor, Application, Initiator
from fastfix.settings import SessionID, SessionSettings
from fastfix.store import FileStore

GW = SessionID("FIX.4.4", "GW", "HUB")
HUB = SessionID("FIX.4.4", "HUB", "GW")


def _settings(kind: str, store: Path, port: int) -> SessionSettings:
    me, them = ("GW", "HUB") if kind == "initiator" else ("HUB", "GW")
    where = initiator(port) if kind == "initiator" else acceptor(port)
    return SessionSettings.from_string(fix_settings(
        session("FIX.4.4", me, them), **where, HeartBtInt=5, FileStorePath=store, UseDataDictionary=True))


class Receiver(Application):
    """Records every application message with its PossDupFlag; the hub side answers orders."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.got: dict[str, list[bool]] = {}
        self.fresh_repeats: list[str] = []
        self.logons = 0
        self.logged_on = asyncio.Event()
        self._ids = itertools.count(1)

    def on_logon(self, session_id: Any) -> None:
        self.logons += 1
        self.logged_on.set()

    def on_logout(self, session_id: Any) -> None:
        self.logged_on.clear()

    def from_app(self, msg: Any, session_id: Any) -> None:
        key = (msg.get(17) if msg.msg_type == b"8" else msg.get(11)).decode()
        dup = msg.get(43) == b"Y" or msg.get(97) == b"Y"
        seen = self.got.setdefault(key, [])
        seen.append(dup)
        if len(seen) > 1:
            if not dup:
                self.fresh_repeats.append(key)
            return  # deduplicated: answered the first time
        if self.answer and msg.msg_type == b"D":
            self.send(session_id, "8", [(37, f"O-{key}"), (11, key), (17, f"E-{key}"), (150, "0"),
                                        (39, "0"), (55, msg[55]), (54, msg[54]), (38, msg[38]),
                                        (40, msg[40]), (151, msg[38]), (14, 0), (6, 0)])


def _stored(directory: Path, sid: SessionID, msg_type: bytes, tag: int) -> tuple[list[str], int, int]:
    with FileStore.for_session(directory, sid) as st:
        ids = [parse(raw).get(tag).decode() for _, raw in st.get_range(1, 0) if parse(raw).msg_type == msg_type]
        return ids, st.next_sender_seq, st.next_target_seq


async def _scenario(tmp: Path, n_orders: int, faults: Any, chunk: int | None = None,
                    delay: float = 0.0) -> tuple[FaultProxy, Receiver, Receiver]:
    hub_app, gw_app = Receiver(answer=True), Receiver(answer=False)
    acceptor = Acceptor(_settings("acceptor", tmp / "hub", 0), hub_app)
    await acceptor.start()
    proxy = await FaultProxy(acceptor.port).start()
    proxy.chunk, proxy.delay = chunk, delay
    initiator = Initiator(_settings("initiator", tmp / "gw", proxy.port), gw_app)
    await initiator.start()
    sent: list[str] = []
    try:
        await asyncio.wait_for(gw_app.logged_on.wait(), 15)

        faults_done = asyncio.Event()

        async def produce() -> None:
            # At least n_orders, and on until the last fault, so every cut falls into traffic.
            for i in range(100_000):
                if i >= n_orders and faults_done.is_set():
                    return
                cl = f"C{i}"
                await initiator.send(GW, "D", [(11, cl), (21, "1"), (55, "005930"), (54, "1"),
                                               (38, 10), (40, "1"), (60, utc_timestamp())])
                sent.append(cl)
                if i % 5 == 4:
                    await asyncio.sleep(0.002)  # a steady stream, not one burst
                for _ in range(2000):  # at most 50 orders ahead of the hub (slow networks)
                    if len(sent) - len(hub_app.got) < 50:
                        break
                    await asyncio.sleep(0.005)

        producer = asyncio.create_task(produce())
        try:
            await faults(proxy, hub_app, gw_app)
        finally:
            faults_done.set()
        await asyncio.wait_for(producer, 60)
        await wait_for(lambda: len(hub_app.got) >= len(sent) and len(gw_app.got) >= len(sent), 45,
                       "every order and every report delivered")
        await wait_for(lambda: gw_app.logged_on.is_set(), 15, "logged on at the end")
    finally:
        await initiator.stop()
        await proxy.stop()
        await acceptor.stop()

    # what each application got: everything the other side sent, repeats only as PossDup
    assert set(hub_app.got) == set(sent), "orders lost or invented"
    assert set(gw_app.got) == {f"E-{cl}" for cl in sent}, "reports lost or invented"
    assert not hub_app.fresh_repeats and not gw_app.fresh_repeats, "a repeat without PossDupFlag"
    # both stores: each order stored once by the sender, each report once by the hub, seqnums agree
    gw_orders, gw_next_out, gw_next_in = _stored(tmp / "gw", GW, b"D", 11)
    hub_reports, hub_next_out, hub_next_in = _stored(tmp / "hub", HUB, b"8", 17)
    assert gw_orders == sent
    assert sorted(hub_reports) == sorted(f"E-{cl}" for cl in sent)
    assert (gw_next_out, gw_next_in) == (hub_next_in, hub_next_out), "the two stores disagree"
    return proxy, hub_app, gw_app


def _cuts(seed: int, count: int) -> Any:
    rng = random.Random(seed)

    async def faults(proxy: FaultProxy, hub: Receiver, gw: Receiver) -> None:
        for k in range(count):
            logons = gw.logons
            direction = (C2S, S2C)[k % 2]
            proxy.cut(direction, rng.randrange(1, 600))  # somewhere inside the next messages
            await wait_for(lambda n=logons: gw.logons > n, 20, f"reconnection after cut {k + 1} ({direction})")
            await asyncio.sleep(rng.uniform(0, 0.05))  # let traffic flow a little before the next cut

    return faults


@pytest.mark.parametrize("seed", [1, 2])
def test_cuts_mid_message_both_directions(tmp_path: Path, seed: int) -> None:
    t0 = time.monotonic()
    proxy, hub, gw = asyncio.run(asyncio.wait_for(_scenario(tmp_path, 400, _cuts(seed, 6)), 120))
    assert proxy.cuts >= 6 and proxy.connections >= 7
    assert any(any(v) for v in hub.got.values()) or any(any(v) for v in gw.got.values()), \
        "no message was ever resent: the cuts did not hit traffic"
    print(f"{proxy.cuts} cuts, {proxy.connections} connections, {time.monotonic() - t0:.1f}s")


def test_every_byte_its_own_write_with_cuts(tmp_path: Path) -> None:
    """Every byte boundary is a write boundary (tokenizer sees all splits), with two cuts."""
    proxy, _, _ = asyncio.run(asyncio.wait_for(_scenario(tmp_path, 60, _cuts(7, 2), chunk=1), 120))
    assert proxy.bytes[C2S] > 60 * 100 and proxy.bytes[S2C] > 60 * 100


def test_delayed_and_split_network(tmp_path: Path) -> None:
    """Every piece of 7 bytes delayed by 1 ms: slow, fragmented, still exact."""
    asyncio.run(asyncio.wait_for(_scenario(tmp_path, 60, _cuts(3, 2), chunk=7, delay=0.001), 120))
