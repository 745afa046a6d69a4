"""Retries after a failure are answered with the request's real fate, never a false 202.

A request is journaled, then handed to its FIX session. When the session turns out to be
down at that moment, the request is journaled again as rejected and answered 503. An
identical retry must then say so (409 ``rejected``), not replay the 202 of an order that
was never sent; the same for lists. A retry after a restart reads the same from the
journal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from _gateway_harness import started_gateway
from helpers import run

from server.gateway.errors import ApiError
from server.gateway.link import LinkDown
from server.gateway.loopback import LoopbackLink
from server.gateway.service import Gateway


class FlakyLink(LoopbackLink):
    """Logged on, but the next ``fail`` hand-overs find the session gone."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    def send_bodies(self, session: str, messages: Sequence[tuple[str, bytes, Sequence[tuple[int, Any]]]]) -> None:
        if self.fail:
            self.fail -= 1
            raise LinkDown(session)
        super().send_bodies(session, messages)


ORDER = {"ClOrdID": "r-1", "DeliverToCompID": "BRKA", "Symbol": "005930", "Side": "1", "OrderQty": "10",
         "OrdType": "2", "Price": "70000", "Account": "ACC1"}
LIST = {"ListID": "L-1", "DeliverToCompID": "BRKA", "NoOrders": [
    {"ClOrdID": "l-1", "Symbol": "005930", "Side": "1", "OrderQty": "10", "OrdType": "2", "Price": "70000",
     "Account": "ACC1"}]}


async def _gateway(tmp: Path) -> tuple[Gateway, FlakyLink]:
    link = FlakyLink()
    return await started_gateway(tmp, link), link


@pytest.mark.parametrize("kind", ["order", "list"])
def test_identical_retry_after_503_is_not_a_false_202(tmp_path: Path, kind: str) -> None:
    body = json.dumps(ORDER if kind == "order" else LIST).encode()

    async def first() -> None:
        gw, link = await _gateway(tmp_path)
        alpha = gw.cfg.clients["alpha"]
        send = gw.new_order if kind == "order" else gw.new_list
        try:
            link.fail = 1
            with pytest.raises(ApiError) as first_try:
                await send(alpha, body)
            assert first_try.value.status == 503
            await gw.projection.wait_applied()
            gw.state.evict_projected()  # a request refused by the gateway does not stay in memory
            assert ("alpha", "r-1") not in gw.orders and ("alpha", "L-1") not in gw.lists
            with pytest.raises(ApiError) as retry:
                await send(alpha, body)
            assert (retry.value.status, retry.value.code) == (409, "rejected")
            assert "not logged on" in retry.value.message
            if kind == "order":
                assert gw.get_order("alpha", "r-1").state == "Rejected"  # type: ignore[union-attr]
        finally:
            await link.stop()
            await gw.close()

    async def after_restart() -> None:
        gw, link = await _gateway(tmp_path)
        alpha = gw.cfg.clients["alpha"]
        send = gw.new_order if kind == "order" else gw.new_list
        try:
            with pytest.raises(ApiError) as retry:
                await send(alpha, body)
            assert (retry.value.status, retry.value.code) == (409, "rejected")
            assert link.sent_ids("LOOPBACK") is None  # nothing went out for it
        finally:
            await link.stop()
            await gw.close()

    run(first())
    run(after_restart())


def test_identical_retry_of_an_accepted_order_gets_its_202_again(tmp_path: Path) -> None:
    async def go() -> None:
        gw, link = await _gateway(tmp_path)
        alpha = gw.cfg.clients["alpha"]
        try:
            first = json.loads(await gw.new_order(alpha, json.dumps(ORDER).encode()))
            again = json.loads(await gw.new_order(alpha, json.dumps(ORDER).encode()))
            assert first == again and first["state"] == "PendingNew"
            other = dict(ORDER, OrderQty="11")
            with pytest.raises(ApiError) as clash:
                await gw.new_order(alpha, json.dumps(other).encode())
            assert (clash.value.status, clash.value.code) == (409, "duplicate_id")
        finally:
            await link.stop()
            await gw.close()

    run(go())
