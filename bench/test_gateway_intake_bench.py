"""The gateway's order path in one process, without sockets: a group of ``GROUP`` new
orders through ``RestApp.__rsgi__`` (authentication, throttle, decode, checks, mapping
to FIX, the record, its group commit in SQLite, the hand-over of the commit's
NewOrderSingles to the FIX link and the 202 answers), as granian would call it.

This is the CPU an order costs the gateway's event loop beyond what any HTTP server
costs, measured without the noise of HTTP, TCP and a second process; divide a round
by ``GROUP`` for the cost of one order. The link counts what it is handed (the FIX
session's own cost is in ``test_session_send_bench.py``)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from pathlib import Path
from typing import Any

import uvloop

from server.gateway.app import RestApp
from server.gateway.auth import Authenticator
from server.gateway.config import parse_config
from server.gateway.fixjson import JsonMapper
from server.gateway.link import Link, SessionState
from server.gateway.metrics import Metrics
from server.gateway.openapi import build_openapi
from server.gateway.service import Gateway
from server.gateway.store import SQLiteStore

GROUP = 32  # concurrent requests, as the gateway gate's closed loop keeps in flight
KEY = "key-bench-0123456789"
ORDER = (b'{"ClOrdID":"o-%d","DeliverToCompID":"BRKA","Symbol":"005930","Side":"1","OrdType":"2",'
         b'"OrderQty":"10","Price":"70000"}')


class _CountingLink(Link):
    """A logged-on FIX link that counts the messages handed to it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self._state = [SessionState(name="HUB", begin_string="FIX.4.4", sender_comp_id="GATEWAY",
                                    target_comp_id="HUB", logged_on=True, state="logged_on")]

    async def start(self) -> None:
        self.on_state("HUB", True)

    async def stop(self) -> None:
        return None

    def sessions(self) -> list[SessionState]:
        return self._state

    @property
    def begin_string(self) -> str:
        return "FIX.4.4"

    async def send(self, session: str, msg_type: str, fields: Any) -> None:
        self.sent += 1

    def send_bodies(self, session: str, messages: Any) -> None:
        self.sent += len(messages)


class _Scope:
    proto = "http"
    method = "POST"
    path = "/v1/orders"
    query_string = ""

    def __init__(self, length: int) -> None:
        self.headers = {"x-api-key": KEY, "content-type": "application/json", "content-length": str(length)}


class _Proto:
    """The RSGI protocol object of one request: its body, and the status answered."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 0

    async def __call__(self) -> bytes:
        return self.body

    def response_bytes(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status


def test_order_path_in_process(benchmark: Any, tmp_path: Path) -> None:
    cfg = parse_config({
        "gateway": {"link": "loopback", "database": str(tmp_path / "gw.db"), "tick_size": "krx"},
        "brokers": [{"id": "BRKA"}],
        "clients": [{"id": "bench", "api_key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                     "rate": 1e9, "burst": 10**9}],
    }, tmp_path / "gw.toml")
    loop = uvloop.new_event_loop()  # as the gateway runs
    asyncio.set_event_loop(loop)
    store = SQLiteStore(cfg.database, "normal")
    link = _CountingLink()
    ids = itertools.count(1)

    async def setup() -> RestApp:
        store.start()
        mapper = JsonMapper(link.begin_string)
        gw = Gateway(cfg, store, link, mapper, Metrics())
        gw.recover()
        await link.start()
        return RestApp(gw, Authenticator(cfg.clients), build_openapi(mapper, link.begin_string))

    app = loop.run_until_complete(setup())

    async def one_group() -> list[int]:
        protos = [_Proto(ORDER % next(ids)) for _ in range(GROUP)]
        await asyncio.gather(*(app.__rsgi__(_Scope(len(p.body)), p) for p in protos))
        return [p.status for p in protos]

    try:
        benchmark.group = "gateway-order-path"
        benchmark.extra_info["orders_per_round"] = GROUP
        statuses = benchmark.pedantic(lambda: loop.run_until_complete(one_group()), rounds=300,
                                      warmup_rounds=20, iterations=1)
        assert statuses == [202] * GROUP
        assert link.sent == next(ids) - 1  # every order answered 202 was handed to the link
        assert store.commits >= 1
    finally:
        loop.run_until_complete(store.close())
        loop.close()
        asyncio.set_event_loop(None)
