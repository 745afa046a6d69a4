"""Orders and cancels committed but never handed to the FIX session (the process died in between) are sent at restart.

The ``crash-after-journal`` hook (``_hooked_gateway.py``) makes the gateway SIGKILL
itself right after journaling a request, before it reaches the FIX session: the client
gets no answer, the order is in the journal, the FIX store has no such message. After a
restart (without the hook) the gateway finds the order and sends it, once. An order
that did reach the session before a kill is not sent again.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from _fix_hub import HubDouble, initiator_settings_text, start_hub
from _gateway_harness import KEYS, GatewayProcess, Http, gateway_toml, order
from helpers import run

from fastfix.codec import parse
from fastfix.settings import SessionID
from fastfix.store import FileStore

A = KEYS["alpha"]


def _gateway(tmp: Path, hub_port: int) -> GatewayProcess:
    (tmp / "gw.cfg").write_text(initiator_settings_text(hub_port))
    return GatewayProcess(tmp, gateway_toml(link="fix", fix_settings="gw.cfg"))


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def _ready(p: GatewayProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with Http(p.rest) as h:
        while time.monotonic() < deadline:
            if (await h.call("GET", "/readyz"))[0] == 200:
                return
            await asyncio.sleep(0.05)
    raise TimeoutError("the gateway never logged on")


async def _until(cond: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def _started_with(p: GatewayProcess, path: str, body: dict[str, Any]) -> None:
    """Start the gateway, wait for its logon and POST a request it accepts."""
    await _in_thread(p.start)
    await _ready(p)
    async with Http(p.rest, A) as h:
        assert (await h.call("POST", path, body))[0] == 202


async def _killed_after_commit(p: GatewayProcess, path: str,
                               body: dict[str, Any] | None) -> None:
    """Start the gateway with the crash hook and POST: it dies right after committing the
    request, before handing it to FIX (the client gets no answer)."""
    await _in_thread(lambda: p.start(hook="crash-after-journal"))
    await _ready(p)
    async with Http(p.rest, A) as h:
        with pytest.raises((OSError, asyncio.IncompleteReadError, ValueError, IndexError)):
            await h.call("POST", path, body)
    assert p.proc is not None
    assert await _in_thread(p.proc.wait, 10) == -signal.SIGKILL


def _received(hub: HubDouble, wire_id: str) -> list[dict[int, str]]:
    return [f for mt, f in hub.received if mt == "D" and f.get(11) == wire_id]


def _sent_in_store(tmp: Path, wire_id: bytes) -> int:
    store = FileStore.for_session(tmp / "fixstore", SessionID("FIX.4.4", "GATEWAY", "HUB"))
    try:
        return sum(1 for _, raw in store.get_range(1, store.next_sender_seq - 1)
                   if parse(raw).msg_type == b"D" and parse(raw).get(11) == wire_id)
    finally:
        store.close()


def test_order_committed_but_not_sent_is_sent_after_restart(tmp_path: Path) -> None:
    async def go() -> None:
        acceptor, hub = await start_hub(tmp_path)
        p = _gateway(tmp_path, acceptor.port)
        try:
            await _started_with(p, "/v1/orders", order("sent-1"))
            await _until(lambda: _received(hub, "alpha:sent-1"), "the first order at the hub")
            rc = await _in_thread(p.stop)
            assert rc == 0

            # Second run: dies right after committing the next order, before handing it to FIX.
            await _killed_after_commit(p, "/v1/orders", order("lost-1"))
            assert _received(hub, "alpha:lost-1") == []
            assert _sent_in_store(tmp_path, b"alpha:lost-1") == 0

            # Third run: the order is found and sent (the store proves it was never sent: no PossResend).
            await _in_thread(p.start)
            await _ready(p)
            await _until(lambda: _received(hub, "alpha:lost-1"), "the recovered order at the hub")
            got = _received(hub, "alpha:lost-1")
            assert len(got) == 1 and "97" not in {str(t) for t in got[0]}
            assert (got[0][55], got[0][38], got[0][128]) == ("005930", "10", "BRKA")
            async with Http(p.rest, A) as h:
                for _ in range(200):
                    status, body = await h.call("GET", "/v1/orders/lost-1")
                    if status == 200 and body["state"] == "New":
                        break
                    await asyncio.sleep(0.02)
                assert (status, body["state"]) == (200, "New")
                # an identical retry of the lost request is answered from the store, not sent again
                status, body = await h.call("POST", "/v1/orders", order("lost-1"))
                assert (status, body["state"]) == (202, "PendingNew")
                _, metrics = await h.call("GET", "/metrics")
            assert b'gateway_recovered_sends_total{poss_resend="N"} 1.0' in metrics
            # the first order was sent before: not again
            assert len(_received(hub, "alpha:sent-1")) == 1
            assert len(_received(hub, "alpha:lost-1")) == 1
            await _in_thread(p.stop)
            assert _sent_in_store(tmp_path, b"alpha:lost-1") == 1
        finally:
            await _in_thread(p.stop)
            await acceptor.stop()

    run(go())


def test_order_sent_before_a_kill_is_not_sent_again(tmp_path: Path) -> None:
    async def go() -> None:
        acceptor, hub = await start_hub(tmp_path)
        p = _gateway(tmp_path, acceptor.port)
        try:
            await _in_thread(p.start)
            await _ready(p)
            async with Http(p.rest, A) as h:
                # held by the hub: no report, so the order still carries its FIX body
                assert (await h.call("POST", "/v1/orders", order("held-1", Text="hold")))[0] == 202
            await _until(lambda: len(hub.held) == 1, "the held order at the hub")
            assert await _in_thread(p.stop, signal.SIGKILL) == -signal.SIGKILL
            await _in_thread(p.start)
            await _ready(p)
            hub.release(fill=False)
            async with Http(p.rest, A) as h:
                for _ in range(200):
                    status, body = await h.call("GET", "/v1/orders/held-1")
                    if body.get("state") == "New":
                        break
                    await asyncio.sleep(0.02)
                assert body["state"] == "New"
                _, metrics = await h.call("GET", "/metrics")
            assert b"gateway_recovered_sends_total{" not in metrics
            assert len(_received(hub, "alpha:held-1")) == 1
        finally:
            await _in_thread(p.stop)
            await acceptor.stop()

    run(go())


@pytest.mark.parametrize("kind", ["order", "list"])
def test_cancel_committed_but_not_sent_is_sent_after_restart(tmp_path: Path,
                                                             kind: str) -> None:
    """The same for an OrderCancelRequest and a ListCancelRequest: the pending cancel keeps
    its FIX body in the database, the restart finds the session never had it and sends it
    once; the hub cancels."""
    if kind == "order":
        place: tuple[str, dict[str, Any]] = ("/v1/orders", order("c-1"))
        cancel: tuple[str, dict[str, Any] | None] = ("/v1/orders/c-1/cancel", {"ClOrdID": "x-1"})
        mt, tag, wire_id = "F", 11, "alpha:x-1"
    else:
        place = ("/v1/order-lists", {"ListID": "L-1", "DeliverToCompID": "BRKA", "NoOrders": [
            {"ClOrdID": "c-1", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "5", "Price": "70000"}]})
        cancel = ("/v1/order-lists/L-1/cancel", None)
        mt, tag, wire_id = "K", 66, "alpha:L-1"

    def cancels(hub: HubDouble) -> list[dict[int, str]]:
        return [f for m, f in hub.received if m == mt and f.get(tag) == wire_id]

    async def state(h: Http, want: str) -> str:
        body: dict[str, Any] = {}
        for _ in range(200):
            body = (await h.call("GET", "/v1/orders/c-1"))[1]
            if body.get("state") == want:
                break
            await asyncio.sleep(0.02)
        return str(body.get("state"))

    async def go() -> None:
        acceptor, hub = await start_hub(tmp_path)
        p = _gateway(tmp_path, acceptor.port)
        try:
            await _started_with(p, *place)
            async with Http(p.rest, A) as h:
                assert await state(h, "New") == "New"
            assert await _in_thread(p.stop) == 0

            # Second run: dies right after committing the cancel, before handing it to FIX.
            await _killed_after_commit(p, *cancel)
            assert cancels(hub) == []

            # Third run: the cancel goes out at logon (no PossResend: the store proves it new).
            await _in_thread(p.start)
            await _ready(p)
            await _until(lambda: cancels(hub), "the recovered cancel at the hub")
            got = cancels(hub)
            assert len(got) == 1 and "97" not in {str(t) for t in got[0]}
            async with Http(p.rest, A) as h:
                assert await state(h, "Canceled") == "Canceled"
            await _in_thread(p.stop)
            await _in_thread(p.start)  # sent and answered: not sent again
            await _ready(p)
            await _in_thread(p.stop)
            assert len(cancels(hub)) == 1
        finally:
            await _in_thread(p.stop)
            await acceptor.stop()

    run(go())
