"""The gateway process: REST (granian, RSGI, embedded), WebSocket stream (picows)
and FIX session(s), all on one uvloop event loop.

:func:`serve` runs everything until SIGTERM/SIGINT. The bound ports (useful with
port 0) are printed as one JSON line and, if ``ports_file`` is configured,
written to that file once the gateway accepts requests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from granian.constants import Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server as _EmbedServer

from server._service import remove_file, stop_on_signals, write_json_atomic
from server.gateway.apidocs import ApiDocs
from server.gateway.asyncapi import build_asyncapi
from server.gateway.auth import Authenticator, FailureThrottle, ReadThrottle
from server.gateway.checks import set_reference_prices
from server.gateway.config import ClientConfig, GatewayConfig
from server.gateway.errors import ApiError
from server.gateway.guards import (
    BodyReader,
    check_content_type,
    check_head,
    check_list_totals,
    source_ip,
)
from server.gateway.link import Link
from server.gateway.loopback import LoopbackLink
from server.gateway.metrics import CONTENT_TYPE_LATEST, Metrics
from server.gateway.openapi import build_openapi
from server.gateway.orders import ORD_STATUS_NAMES
from server.gateway.projection import OrderFilter
from server.gateway.routes import Route, Router
from server.gateway.service import Gateway
from server.gateway.tracing import trace_answer
from server.gateway.views import order_view
from server.gateway.ws import StreamServer

__all__ = ["RestApp", "serve", "build_link"]

log = logging.getLogger("fastfix.gateway")
_json = msgspec.json.Encoder()
_JSON = [("content-type", "application/json")]
_STATUS_CODES = {name: code for code, name in ORD_STATUS_NAMES.items()}
_STATIC = Path(__file__).parent / "static"  # browser pages, served at / and /static/


class RestApp:
    """RSGI application of the REST API (routing, auth, size limit, error answers)."""

    def __init__(self, gateway: Gateway, auth: Authenticator, openapi: dict[str, Any]) -> None:
        self.gw = gateway
        self.ws_port = 0  # set once the stream server is bound; shown at /stream-info
        self.auth = auth
        cfg = gateway.cfg
        self.max_body = cfg.max_body_bytes
        self.bodies = BodyReader(cfg.max_body_bytes, cfg.http_body_timeout)
        self.max_uri, self.max_header_bytes = cfg.http_max_uri, cfg.http_max_header_bytes
        self.metrics_key = cfg.metrics_require_key
        self.metrics = gateway.metrics
        self._counters: dict[tuple[str, int], tuple[Any, Any]] = {}  # (route, status) -> metric children
        self._known = auth.known  # API keys already verified -> client: the usual request's lookup
        self.reads = ReadThrottle(cfg.clients, gateway.metrics.rejected)
        self.failures = FailureThrottle(cfg.auth_fail_limit, cfg.auth_fail_window)
        self._auth_failed = gateway.metrics.auth_failures.labels("rest")
        self.router = ROUTES
        self._openapi = _json.encode(openapi)
        self._docs = ApiDocs(openapi)
        self.asyncapi = b"{}"  # the stream's AsyncAPI document, set by serve()

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        # Only HTTP reaches here: granian runs without WebSockets (the stream has its own
        # port), so a handshake sent to this port is an HTTP request, answered 404.
        received_ns = time.perf_counter_ns()  # hop "received" of an order's trace
        t0 = received_ns / 1e9
        route_name = "other"
        try:
            check_head(scope, self.max_uri, self.max_header_bytes)  # 414, 431
            try:
                route, params = self.router.match(scope.method, scope.path)
            except ApiError:
                if scope.path.startswith("/v1/"):
                    self._client(scope)  # the API's paths and methods are not shown without a key: 401 first
                raise
            route_name = route.name
            client = None
            if route.auth:
                client = self._known.get(scope.headers.get("x-api-key")) or self._client(scope)
                if route.method == "GET":
                    self.reads.take(client)  # 429: reads have a bucket of their own
            out = await route.handler(self, scope, proto, client, params, received_ns)
            if type(out) is bytes:
                status, headers, body = route.status, _JSON, out
            else:
                status, headers, body = out
        except ApiError as exc:
            status, headers, body = exc.status, _JSON + exc.headers, _json.encode(exc.body())
        except Exception:
            log.exception("request failed: %s %s", scope.method, scope.path)
            status, headers, body = 500, _JSON, b'{"error":"internal","message":"internal error"}'
        proto.response_bytes(status, headers, body)
        counters = self._counters_of(route_name, status)
        counters[0].value += 1
        counters[1].observe(time.perf_counter_ns() / 1e9 - t0)

    def _counters_of(self, route: str, status: int) -> tuple[Any, Any]:
        """The request counter and duration histogram of a route and status."""
        counters = self._counters.get((route, status))
        if counters is None:
            counters = self._counters[(route, status)] = (
                self.metrics.requests.labels(route, str(status)), self.metrics.request_seconds.labels(route))
        return counters

    def _client(self, scope: Any) -> ClientConfig:
        key = Authenticator.key_from_headers(scope.headers.get)
        if key is None:
            raise ApiError(401, "unauthorized", "API key required (X-API-Key header)",
                           headers=[("www-authenticate", 'Bearer realm="fastfix"')])
        client = self._known.get(key)
        if client is not None:
            return client
        if self.failures:  # 429 for an address past its failure limit: keys not yet verified are not tried
            self.failures.check(source_ip(scope.client))
        client = self.auth.authenticate(key)
        if client is None:
            self._auth_failed.inc()
            self.failures.failed(source_ip(scope.client))
            raise ApiError(401, "unauthorized", "invalid API key",
                           headers=[("www-authenticate", 'Bearer realm="fastfix"')])
        return client

    async def _read(self, scope: Any, proto: Any) -> bytes:
        """The request body: 415 unless JSON, 413 over the limit, 408 too slow."""
        headers = scope.headers
        if headers.get("content-type") != "application/json":
            check_content_type(headers)
        return await self.bodies.read(scope, proto)

    # ------------------------------------------------------------------ the routes' handlers
    # handler(app, scope, proto, client, params, received_ns) -> JSON bytes or (status, headers, body)

    async def _new_order(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return await self.gw.new_order(client, await self._read(scope, proto), t)

    async def _orders(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return await self._list_orders(client, scope.query_string)

    async def _order(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return await self.gw.order_detail(client, p[0])

    async def _delete_order(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return await self.gw.cancel_order(client, p[0], b"")

    async def _trace(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return trace_answer(self.gw.tracer, client.id, p[0])

    async def _replace(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return await self.gw.replace_order(client, p[0], await self._read(scope, proto))

    async def _cancel(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return await self.gw.cancel_order(client, p[0], await self._read(scope, proto))

    async def _new_list(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        raw = await self._read(scope, proto)
        check_list_totals(raw)  # 422 naming TotNoOrders
        return await self.gw.new_list(client, raw)

    async def _list(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return self.gw.list_detail(client, p[0])

    async def _cancel_list(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return await self.gw.cancel_list(client, p[0], await self._read(scope, proto))

    async def _brokers(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return self.gw.brokers_view(client)

    async def _stream_here(self, scope: Any, proto: Any, client: None, p: list[str], t: int) -> bytes:
        raise ApiError(404, "not_found", f"the WebSocket stream is served on its own port: "
                                         f"ws://<host>:{self.ws_port}/v1/stream (GET /stream-info)")

    async def _healthz(self, scope: Any, proto: Any, client: None, p: list[str], t: int) -> bytes:
        return b'{"status":"ok"}'

    async def _readyz(self, scope: Any, proto: Any, client: None, p: list[str], t: int) -> Any:
        ready = self.gw.ready()
        return 200 if ready else 503, _JSON, _json.encode(
            {"ready": ready, "sessions": [msgspec.structs.asdict(s) for s in self.gw.link.sessions()]})

    async def _metrics(self, scope: Any, proto: Any, client: None, p: list[str], t: int) -> Any:
        if self.metrics_key:
            self._client(scope)
        return 200, [("content-type", CONTENT_TYPE_LATEST)], self.metrics.render()

    async def _openapi_doc(self, scope: Any, proto: Any, client: None, p: list[str], t: int) -> bytes:
        return self._openapi

    async def _asyncapi_doc(self, scope: Any, proto: Any, client: None, p: list[str], t: int) -> bytes:
        return self.asyncapi

    async def _docs_page(self, scope: Any, proto: Any, client: None, p: list[str], t: int) -> Any:
        return 200, [("content-type", "text/html; charset=utf-8")], self._docs.page

    async def _docs_asset(self, scope: Any, proto: Any, client: None, p: list[str], t: int) -> Any:
        asset = self._docs.asset(p[0])  # Swagger UI's files
        if asset is None:
            raise ApiError(404, "not_found", f"no route {scope.path}")
        return 200, [("content-type", asset[0]), ("cache-control", "max-age=3600")], asset[1]

    async def _stream_info(self, scope: Any, proto: Any, client: None, p: list[str], t: int) -> bytes:
        # Where browsers open the WebSocket stream (it has its own port).
        return _json.encode({"port": self.ws_port, "path": "/v1/stream"})

    async def _index(self, scope: Any, proto: Any, client: None, p: list[str], t: int) -> Any:
        page = _STATIC / "index.html"
        if not page.is_file():
            raise ApiError(404, "not_found", "no route /")
        return 200, [("content-type", "text/html; charset=utf-8")], page.read_bytes()

    async def _mass_cancel(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return await self.gw.mass_cancel(client, await self._read(scope, proto))

    async def _status(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        await self._read(scope, proto)
        return await self.gw.status_order(client, p[0])

    async def _instruments(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return await self.gw.instruments_view(client, _query(scope.query_string).get("broker"), p[0] if p else None)

    async def _positions(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        q = _query(scope.query_string)
        return await self.gw.positions(client, p[0], q.get("broker"), q.get("symbol"))

    async def _balance(self, scope: Any, proto: Any, client: ClientConfig, p: list[str], t: int) -> bytes:
        return await self.gw.balance(client, p[0], _query(scope.query_string).get("broker"))

    async def _list_orders(self, client: ClientConfig, query: str) -> bytes:
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
        flt = OrderFilter()
        problems = []
        if "status" in q:
            st = q["status"]
            flt.status = _STATUS_CODES.get(st, st if st in ORD_STATUS_NAMES else None)
            if flt.status is None:
                problems.append(f"status: unknown state {st!r}")
        flt.symbol = q.get("symbol")
        flt.broker = q.get("broker")
        if "since" in q:
            flt.since_ns = _parse_since(q["since"])
            if flt.since_ns is None:
                problems.append("since: expected an ISO 8601 time or epoch milliseconds")
        if "limit" in q:
            try:
                flt.limit = int(q["limit"])
                if not 1 <= flt.limit <= 1000:
                    raise ValueError
            except ValueError:
                problems.append("limit: an integer 1..1000")
        if "cursor" in q:
            try:
                raw = base64.urlsafe_b64decode(q["cursor"] + "==").decode()
                ns, _, num = raw.partition(":")
                for part in (ns, num):  # SQLite integers are 64-bit
                    if not (part.isascii() and part.isdigit() and len(part) <= 19 and int(part) <= _MAX_NS):
                        raise ValueError(part)
                flt.after = (int(ns), int(num))
            except (ValueError, UnicodeDecodeError):
                problems.append("cursor: not a cursor returned by this API")
        if problems:
            from server.gateway.errors import FieldProblem

            raise ApiError(400, "bad_query", "invalid query parameters",
                           [FieldProblem(p.split(":")[0], p.split(": ", 1)[1], "query." + p.split(":")[0])
                            for p in problems])
        orders = await self.gw.search_orders(client, flt)
        nxt = None
        if len(orders) == flt.limit:
            last = orders[-1]
            nxt = base64.urlsafe_b64encode(f"{last.created_ns}:{last.num}".encode()).decode().rstrip("=")
        return _json.encode({"orders": [order_view(o) for o in orders], "next": nxt})


def _query(query: str) -> dict[str, str]:
    """Query parameters, the last value of each."""
    return {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}


# The REST API, one entry per method and path (the OpenAPI document describes the /v1 ones).
ROUTES = Router([
    Route("POST", "/v1/orders", "orders.new", 202, RestApp._new_order),
    Route("GET", "/v1/orders", "orders.list", 200, RestApp._orders),
    Route("GET", "/v1/orders/{ClOrdID}", "orders.get", 200, RestApp._order),
    Route("DELETE", "/v1/orders/{ClOrdID}", "orders.cancel", 202, RestApp._delete_order),
    Route("GET", "/v1/orders/{ClOrdID}/trace", "orders.trace", 200, RestApp._trace),
    Route("POST", "/v1/orders/mass-cancel", "orders.mass_cancel", 202, RestApp._mass_cancel),
    Route("POST", "/v1/orders/{ClOrdID}/status", "orders.status", 202, RestApp._status),
    Route("POST", "/v1/orders/{ClOrdID}/replace", "orders.replace", 202, RestApp._replace),
    Route("POST", "/v1/orders/{ClOrdID}/cancel", "orders.cancel", 202, RestApp._cancel),
    Route("POST", "/v1/order-lists", "lists.new", 202, RestApp._new_list),
    Route("GET", "/v1/order-lists/{ListID}", "lists.get", 200, RestApp._list),
    Route("POST", "/v1/order-lists/{ListID}/cancel", "lists.cancel", 202, RestApp._cancel_list),
    Route("GET", "/v1/brokers", "brokers", 200, RestApp._brokers),
    Route("GET", "/v1/instruments", "instruments", 200, RestApp._instruments),
    Route("GET", "/v1/instruments/{Symbol}", "instruments", 200, RestApp._instruments),
    Route("GET", "/v1/accounts/{Account}/positions", "accounts.positions", 200, RestApp._positions),
    Route("GET", "/v1/accounts/{Account}/balance", "accounts.balance", 200, RestApp._balance),
    Route("GET", "/v1/stream", "other", 404, RestApp._stream_here, auth=False),
    Route("GET", "/healthz", "healthz", 200, RestApp._healthz, auth=False),
    Route("GET", "/readyz", "readyz", 200, RestApp._readyz, auth=False),
    Route("GET", "/metrics", "metrics", 200, RestApp._metrics, auth=False),
    Route("GET", "/openapi.json", "openapi", 200, RestApp._openapi_doc, auth=False),
    Route("GET", "/asyncapi.json", "asyncapi", 200, RestApp._asyncapi_doc, auth=False),
    Route("GET", "/docs", "docs", 200, RestApp._docs_page, auth=False),
    Route("GET", "/docs/{asset}", "docs", 200, RestApp._docs_asset, auth=False),
    Route("GET", "/stream-info", "stream-info", 200, RestApp._stream_info, auth=False),
    Route("GET", "/", "index", 200, RestApp._index, auth=False),
])



def _parse_since(value: str) -> int | None:
    # ASCII digits only: str.isdigit() also accepts e.g. '²', which int() refuses.
    if value.isascii() and value.isdigit():
        return _MAX_NS if len(value) > 18 else min(int(value) * 1_000_000, _MAX_NS)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return min(int(dt.timestamp() * 1e9), _MAX_NS)


_MAX_NS = 2**63 - 1  # SQLite integers are 64-bit


# --------------------------------------------------------------------------- process


class _Granian(_EmbedServer):
    """granian's embedded server on a socket we bound ourselves (so port 0 works)."""

    def __init__(self, target: Any, sock: socket.socket, **kw: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(target, address=host, port=port, interface=Interfaces.RSGI, **kw)
        self._own_sock = sock

    def _init_shared_socket(self) -> None:
        from granian._granian import SocketHolder

        fd = self._own_sock.detach()  # granian owns the descriptor from here on
        self._shd = SocketHolder(fd, False, self.backlog)
        self._sfd = self._shd.get_fd()
        self._ssp = None


def http1_settings(cfg: GatewayConfig) -> HTTP1Settings:
    """granian's HTTP/1 limits: the header deadline (which also ends idle keep-alive
    connections) and a read buffer larger than the application's own URI and header
    limits, so those are answered by the application, in JSON (docs/operations.md, "Limits and deadlines")."""
    return HTTP1Settings(header_read_timeout=max(1, int(cfg.http_header_timeout * 1000)), keep_alive=True,
                         max_buffer_size=cfg.http_max_uri + cfg.http_max_header_bytes + 16384)


def build_link(cfg: GatewayConfig) -> Link:
    if cfg.link == "loopback":
        return LoopbackLink()
    from server.gateway.fix_app import FixLink

    assert cfg.fix_settings is not None
    return FixLink(cfg.fix_settings, queue_when_down=cfg.queue_when_down,
                   store_sync="Y" if cfg.sync == "full" else None)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


async def serve(cfg: GatewayConfig, stop: asyncio.Event | None = None,
                prepare: Callable[[Gateway], None] | None = None) -> None:
    """Run the gateway until ``stop`` is set (or SIGTERM/SIGINT); ``prepare`` sees the
    :class:`Gateway` before it recovers (tests install their hooks there)."""
    from server.gateway.mapping import JsonMapper

    if cfg.cluster is not None:  # docs/cluster.md: what cluster mode runs so far
        from fastfix.errors import ConfigError

        raise ConfigError(f"{cfg.path}: cluster: the REST/WebSocket gateway runs embedded only; a [cluster] "
                          "table is read by the FIX session owners (python -m server.gateway.cluster.owner)")
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    stop_on_signals(stop)
    metrics = Metrics()
    link = build_link(cfg)
    mapper = JsonMapper(link.begin_string, max_bytes=cfg.max_body_bytes)
    set_reference_prices(cfg.reference_prices)  # market orders' notional
    gw = Gateway(cfg, link, mapper, metrics)
    if prepare is not None:
        prepare(gw)
    gw.recover()
    auth = Authenticator(cfg.clients)
    app = RestApp(gw, auth, build_openapi(mapper, link.begin_string))
    app.asyncapi = _json.encode(build_asyncapi(mapper, link.begin_string))
    ws = StreamServer(gw, auth, cfg.ws_heartbeat, cfg.ws_buffer_limit, cfg.ws_replay_batch,
                      auth_timeout=cfg.ws_auth_timeout, max_unauthenticated=cfg.ws_max_unauthenticated,
                      max_per_ip=cfg.ws_max_per_ip, max_message=cfg.ws_max_message, failures=app.failures)
    sock = _bind(cfg.rest_host, cfg.rest_port)
    rest_port = sock.getsockname()[1]
    tls: dict[str, Any] = {}
    ws_ssl = None
    if cfg.tls_cert is not None and cfg.tls_key is not None:
        import ssl

        ws_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ws_ssl.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        tls = {"ssl_cert": cfg.tls_cert, "ssl_key": cfg.tls_key}
    ws_port = await ws.start(cfg.ws_host, cfg.ws_port, ssl=ws_ssl)
    app.ws_port = ws_port
    level = {"debug": LogLevels.debug, "info": LogLevels.info}.get(cfg.log_level, LogLevels.warning)
    static: dict[str, Any] = {}
    if _STATIC.is_dir():
        static = {"static_path_route": ["/static"], "static_path_mount": [_STATIC], "static_path_expires": 60}
    server = _Granian(app, sock, log_level=level, log_access=False, backlog=1024, websockets=False,
                      http1_settings=http1_settings(cfg), **static, **tls)
    rest_task = loop.create_task(server.serve())
    await link.start()
    # granian binds in serve(); wait until the REST port answers before announcing readiness.
    await _wait_listening(cfg.rest_host, rest_port, rest_task)
    # What start-up built lives as long as the process: keep it out of every GC pass.
    gc.collect()
    gc.freeze()
    ports = {"rest": rest_port, "ws": ws_port, "pid": os.getpid()}
    line = json.dumps(ports)
    print(line, flush=True)
    if cfg.ports_file is not None:
        write_json_atomic(cfg.ports_file, ports)
    log.info("gateway ready: REST %s:%d, WebSocket %s:%d", cfg.rest_host, rest_port, cfg.ws_host, ws_port)
    stopper = loop.create_task(stop.wait())
    await asyncio.wait({rest_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    server.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(rest_task, 10)
    stopper.cancel()
    app.bodies.close()
    gw.presence.stop()  # the streams closed by the shutdown are no client's disconnect
    await ws.stop()
    await link.stop()
    await gw.close()
    remove_file(cfg.ports_file)


async def _wait_listening(host: str, port: int, task: asyncio.Task[None]) -> None:
    for _ in range(200):
        if task.done():
            task.result()  # re-raise the start-up error
            raise RuntimeError("REST server stopped during start-up")
        try:
            _, w = await asyncio.open_connection(host, port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.01)
