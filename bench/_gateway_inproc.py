"""The gateway in one process, without sockets, for the in-process benchmarks of its hot
paths: the REST handler, the Gateway, the journal and its projection, and a logged-on FIX link that counts
what it is handed, on a uvloop loop as the gateway runs them."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from server.gateway.app import RestApp
from server.gateway.auth import Authenticator
from server.gateway.config import parse_config
from server.gateway.link import Link, SessionState
from server.gateway.mapping import JsonMapper
from server.gateway.metrics import Metrics
from server.gateway.openapi import build_openapi
from server.gateway.service import Gateway

CLIENT = "bench"
KEY = "key-bench-0123456789"
ORDER = (b'{"ClOrdID":"o-%d","DeliverToCompID":"BRKA","Symbol":"005930","Side":"1","OrdType":"2",'
         b'"OrderQty":"10","Price":"70000"}')


class CountingLink(Link):
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


@dataclass
class InProcess:
    loop: asyncio.AbstractEventLoop
    app: RestApp
    gateway: Gateway
    link: CountingLink
    ids: Iterator[int]

    def post_orders(self, n: int) -> list[int]:
        """``n`` concurrent new orders (unique ClOrdIDs ``o-<k>``) through the REST handler,
        as granian calls it; returns the statuses answered."""
        protos = [_Proto(ORDER % next(self.ids)) for _ in range(n)]

        async def group() -> None:
            await asyncio.gather(*(self.app.__rsgi__(_Scope(len(p.body)), p) for p in protos))

        self.loop.run_until_complete(group())
        return [p.status for p in protos]


@contextmanager
def in_process_gateway(tmp_path: Path) -> Iterator[InProcess]:
    """A gateway for client ``bench`` (API key ``KEY``, broker BRKA, KRX ticks) on a new uvloop loop."""
    cfg = parse_config({
        "gateway": {"link": "loopback", "database": str(tmp_path / "gw.db"), "tick_size": "krx"},
        "brokers": [{"id": "BRKA"}],
        "clients": [{"id": CLIENT, "api_key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                     "rate": 1e9, "burst": 10**9}],
    }, tmp_path / "gw.toml")
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    link = CountingLink()
    gw: Gateway | None = None

    async def setup() -> InProcess:
        nonlocal gw
        mapper = JsonMapper(link.begin_string)
        gw = Gateway(cfg, link, mapper, Metrics())
        gw.recover()
        await link.start()
        app = RestApp(gw, Authenticator(cfg.clients), build_openapi(mapper, link.begin_string))
        return InProcess(loop, app, gw, link, itertools.count(1))

    try:
        yield loop.run_until_complete(setup())
    finally:
        if gw is not None:
            loop.run_until_complete(gw.close())
        loop.close()
        asyncio.set_event_loop(None)
