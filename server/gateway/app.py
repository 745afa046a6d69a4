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
from granian.log import LogLevels
from granian.server.embed import Server as _EmbedServer

from server._service import remove_file, stop_on_signals, write_json_atomic
from server.gateway.apidocs import ApiDocs
from server.gateway.asyncapi import build_asyncapi
from server.gateway.auth import Authenticator
from server.gateway.config import ClientConfig, GatewayConfig
from server.gateway.errors import ApiError
from server.gateway.link import Link
from server.gateway.loopback import LoopbackLink
from server.gateway.metrics import CONTENT_TYPE_LATEST, Metrics
from server.gateway.openapi import build_openapi
from server.gateway.orders import ORD_STATUS_NAMES
from server.gateway.projection import OrderFilter
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


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"body larger than {limit} bytes")


class RestApp:
    """RSGI application of the REST API (routing, auth, size limit, error answers)."""

    def __init__(self, gateway: Gateway, auth: Authenticator, openapi: dict[str, Any]) -> None:
        self.gw = gateway
        self.ws_port = 0  # set once the stream server is bound; shown at /stream-info
        self.auth = auth
        self.max_body = gateway.cfg.max_body_bytes
        self.metrics = gateway.metrics
        self._counters: dict[tuple[str, int], tuple[Any, Any]] = {}  # (route, status) -> metric children
        self._known = auth.known  # API keys already verified -> client: the usual request's lookup
        self._accepted = self._counters_of("orders.new", 202)
        self._openapi = _json.encode(openapi)
        self._docs = ApiDocs(openapi)
        self.asyncapi = b"{}"  # the stream's AsyncAPI document, set by serve()

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        # Only HTTP reaches here: granian runs without WebSockets (the stream has its own
        # port), so a handshake sent to this port is an HTTP request, answered 404 below.
        t0 = time.perf_counter()
        route = "other"
        status = 500
        try:
            if scope.path == "/v1/orders" and scope.method == "POST":  # the hot route, inline
                received_ns = time.perf_counter_ns()  # hop "received" of the order trace
                headers = scope.headers
                client = self._known.get(headers.get("x-api-key")) or self._client(scope)
                length = headers.get("content-length")
                if length is not None and not (length.isdigit() and int(length) <= self.max_body):
                    self._check_length(scope)  # 413, or 400 for a malformed length
                raw = await proto()
                if len(raw) > self.max_body:
                    raise _too_large(self.max_body)
                route, status = "orders.new", 202
                body = await self.gw.new_order(client, raw, received_ns)
                proto.response_bytes(202, _JSON, body)
                counters = self._accepted
                counters[0].value += 1
                counters[1].observe(time.perf_counter() - t0)
                return
            route, status, headers, body = await self._handle(scope, proto)
        except ApiError as exc:
            status, headers, body = exc.status, _JSON + exc.headers, _json.encode(exc.body())
        except Exception:
            log.exception("request failed: %s %s", scope.method, scope.path)
            status, headers, body = 500, _JSON, b'{"error":"internal","message":"internal error"}'
        proto.response_bytes(status, headers, body)
        counters = self._counters_of(route, status)
        counters[0].value += 1
        counters[1].observe(time.perf_counter() - t0)

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
        client = self.auth.authenticate(key)
        if client is None:
            raise ApiError(401, "unauthorized", "invalid API key",
                           headers=[("www-authenticate", 'Bearer realm="fastfix"')])
        return client

    def _check_length(self, scope: Any) -> None:
        """413 before reading a body whose Content-Length is over the limit."""
        length = scope.headers.get("content-length")
        if length is not None:
            try:
                if int(length) > self.max_body:
                    raise _too_large(self.max_body)
            except ValueError:
                raise ApiError(400, "bad_request", "invalid Content-Length") from None

    async def _read(self, scope: Any, proto: Any) -> bytes:
        self._check_length(scope)
        body = await proto()
        if len(body) > self.max_body:
            raise _too_large(self.max_body)
        return body

    async def _handle(self, scope: Any, proto: Any) -> tuple[str, int, list[tuple[str, str]], bytes]:
        received_ns = time.perf_counter_ns()  # hop "received" of the order trace
        method = scope.method
        path = scope.path
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")] if path != "/" else []
        gw = self.gw
        if len(parts) == 1 and method not in ("GET", "HEAD") and parts[0] in _READ_ONLY:
            raise _method_not_allowed("GET, HEAD")
        if len(parts) == 1 and method in ("GET", "HEAD"):
            name = parts[0]
            if name == "healthz":
                return "healthz", 200, _JSON, b'{"status":"ok"}'
            if name == "readyz":
                ready = gw.ready()
                return "readyz", 200 if ready else 503, _JSON, _json.encode(
                    {"ready": ready, "sessions": [msgspec.structs.asdict(s) for s in gw.link.sessions()]})
            if name == "metrics":
                return "metrics", 200, [("content-type", CONTENT_TYPE_LATEST)], self.metrics.render()
            if name == "openapi.json":
                return "openapi", 200, _JSON, self._openapi
            if name == "asyncapi.json":
                return "asyncapi", 200, _JSON, self.asyncapi
            if name == "docs":
                return "docs", 200, [("content-type", "text/html; charset=utf-8")], self._docs.page
            if name == "stream-info":
                # Where browsers open the WebSocket stream (it has its own port).
                return "stream-info", 200, _JSON, _json.encode({"port": self.ws_port, "path": "/v1/stream"})
        if len(parts) == 2 and parts[0] == "docs" and method in ("GET", "HEAD"):
            asset = self._docs.asset(parts[1])  # Swagger UI's files
            if asset is not None:
                return "docs", 200, [("content-type", asset[0]), ("cache-control", "max-age=3600")], asset[1]
        if not parts and method in ("GET", "HEAD") and _STATIC.joinpath("index.html").is_file():
            return "index", 200, [("content-type", "text/html; charset=utf-8")], _STATIC.joinpath(
                "index.html").read_bytes()
        if not parts or parts[0] != "v1" or len(parts) < 2:
            raise ApiError(404, "not_found", f"no route {path}")
        if parts[1] == "stream":
            raise ApiError(404, "not_found", f"the WebSocket stream is served on its own port: "
                                             f"ws://<host>:{self.ws_port}/v1/stream (GET /stream-info)")
        client = self._client(scope)
        res = parts[1]
        n = len(parts)
        if res == "orders":
            if n == 2:
                if method == "POST":
                    return "orders.new", 202, _JSON, await gw.new_order(client, await self._read(scope, proto),
                                                                        received_ns)
                if method == "GET":
                    return "orders.list", 200, _JSON, await self._list_orders(client, scope.query_string)
                raise _method_not_allowed("GET, POST")
            cl = parts[2]
            if n == 3 and cl == "mass-cancel":
                if method != "POST":
                    raise _method_not_allowed("POST")
                return "orders.mass_cancel", 202, _JSON, await gw.mass_cancel(client, await self._read(scope, proto))
            if n == 4 and parts[3] == "status":
                if method != "POST":
                    raise _method_not_allowed("POST")
                await self._read(scope, proto)
                return "orders.status", 202, _JSON, await gw.status_order(client, cl)
            if n == 3:
                if method == "GET":
                    return "orders.get", 200, _JSON, await gw.order_detail(client, cl)
                if method == "DELETE":
                    return "orders.cancel", 202, _JSON, await gw.cancel_order(client, cl, b"")
                raise _method_not_allowed("GET, DELETE")
            if n == 4 and parts[3] == "trace" and method == "GET":
                return "orders.trace", 200, _JSON, trace_answer(gw.tracer, client.id, cl)
            if n == 4 and parts[3] in ("replace", "cancel"):
                if method != "POST":
                    raise _method_not_allowed("POST")
                body = await self._read(scope, proto)
                if parts[3] == "replace":
                    return "orders.replace", 202, _JSON, await gw.replace_order(client, cl, body)
                return "orders.cancel", 202, _JSON, await gw.cancel_order(client, cl, body)
        elif res == "order-lists":
            if n == 2:
                if method != "POST":
                    raise _method_not_allowed("POST")
                return "lists.new", 202, _JSON, await gw.new_list(client, await self._read(scope, proto))
            if n == 3:
                if method != "GET":
                    raise _method_not_allowed("GET")
                return "lists.get", 200, _JSON, gw.list_detail(client, parts[2])
            if n == 4 and parts[3] == "cancel":
                if method != "POST":
                    raise _method_not_allowed("POST")
                return "lists.cancel", 202, _JSON, await gw.cancel_list(client, parts[2],
                                                                        await self._read(scope, proto))
        elif res == "instruments" and n in (2, 3):
            if method != "GET":
                raise _method_not_allowed("GET")
            q = _query(scope.query_string)
            return ("instruments", 200, _JSON,
                    await gw.instruments_view(client, q.get("broker"), parts[2] if n == 3 else None))
        elif res == "accounts" and n == 4 and parts[3] in ("positions", "balance"):
            if method != "GET":
                raise _method_not_allowed("GET")
            q = _query(scope.query_string)
            if parts[3] == "positions":
                return "accounts.positions", 200, _JSON, await gw.positions(client, parts[2], q.get("broker"),
                                                                           q.get("symbol"))
            return "accounts.balance", 200, _JSON, await gw.balance(client, parts[2], q.get("broker"))
        elif res == "brokers" and n == 2:
            if method != "GET":
                raise _method_not_allowed("GET")
            return "brokers", 200, _JSON, gw.brokers_view(client)
        raise ApiError(404, "not_found", f"no route {path}")

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


_READ_ONLY = frozenset(("healthz", "readyz", "metrics", "openapi.json", "asyncapi.json", "docs", "stream-info"))


def _method_not_allowed(allowed: str) -> ApiError:
    return ApiError(405, "method_not_allowed", f"allowed: {allowed}", headers=[("allow", allowed)])


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

    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    stop_on_signals(stop)
    metrics = Metrics()
    link = build_link(cfg)
    mapper = JsonMapper(link.begin_string, max_bytes=cfg.max_body_bytes)
    gw = Gateway(cfg, link, mapper, metrics)
    if prepare is not None:
        prepare(gw)
    gw.recover()
    auth = Authenticator(cfg.clients)
    app = RestApp(gw, auth, build_openapi(mapper, link.begin_string))
    app.asyncapi = _json.encode(build_asyncapi(mapper, link.begin_string))
    ws = StreamServer(gw, auth, cfg.ws_heartbeat, cfg.ws_buffer_limit, cfg.ws_replay_batch)
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
                      **static, **tls)
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
