"""Limits the REST handler applies before a request reaches the order path.

Each guard raises :class:`ApiError`, so every refusal is a JSON answer naming what was
wrong: request line and header sizes (414, 431), the media type (415), the request
body (413 over the limit, chunked or not; 408 when it trickles in slower than the
body deadline) and path identifiers (decoded exactly once). Reads per client and
failed authentications per address are throttled in ``auth.py``. Documented in
``docs/operations.md`` ("Limits and deadlines").
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from granian.rsgi import ProtocolClosed

from server.gateway.errors import ApiError, FieldProblem

__all__ = ["BodyReader", "check_content_type", "check_head", "check_list_totals", "path_segments",
           "source_ip"]

_decode = msgspec.json.Decoder()


def source_ip(peer: Any) -> str:
    """The address part of ``host:port`` (RSGI ``scope.client``; IPv6 as ``[::1]:port`` or ``::1:port``)."""
    if isinstance(peer, tuple):
        return str(peer[0])
    text = str(peer or "")
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    host, sep, port = text.rpartition(":")
    return host if sep and port.isdigit() else text


def check_head(scope: Any, max_uri: int, max_header_bytes: int) -> None:
    """414 for a request target longer than ``max_uri``; 431 for header lines adding up to
    more than ``max_header_bytes``. Both limits sit below granian's own (which answer
    without a body), so the client gets a JSON error instead."""
    if len(scope.path) + len(scope.query_string) + 1 > max_uri:
        raise ApiError(414, "uri_too_long", f"request target longer than {max_uri} bytes")
    total = 0
    for name, value in scope.headers.items():  # repeated headers too
        total += len(name) + len(value) + 4  # ": " and CRLF
    if total > max_header_bytes:
        raise ApiError(431, "headers_too_large", f"request headers larger than {max_header_bytes} bytes")


def check_content_type(headers: Any) -> None:
    """415 unless a request body is declared JSON (``application/json`` or ``application/*+json``,
    any parameters). A body sent without Content-Type is read as JSON."""
    ctype = headers.get("content-type")
    if ctype is None or ctype == "application/json":
        return
    media = ctype.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return
    raise ApiError(415, "unsupported_media_type", f"Content-Type {ctype[:80]!r}: request bodies are "
                   "application/json", headers=[("accept", "application/json")])


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"body larger than {limit} bytes")


class BodyReader:
    """Reads request bodies: 413 as soon as one passes ``max_body`` (Content-Length or
    chunked), 408 when one is not complete within ``timeout`` seconds.

    The deadline is kept by one watchdog timer for all requests (a dict entry per body
    being read) rather than a timer per request: ``asyncio.timeout`` costs about 5 µs
    per request, a tenth of an order's whole handling. The watchdog looks every
    ``timeout / 4`` seconds (at most 1 s) while bodies are being read, so a deadline is
    met within that much.
    """

    def __init__(self, max_body: int, timeout: float) -> None:
        self.max_body = max_body
        self.timeout = timeout
        self._reading: dict[Any, float] = {}  # request task -> its deadline (monotonic)
        self._expired: set[Any] = set()
        self._interval = min(1.0, timeout / 4)
        self._watchdog: asyncio.TimerHandle | None = None

    async def read(self, scope: Any, proto: Any) -> bytes:
        max_body = self.max_body
        length = scope.headers.get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):
            raise ApiError(400, "bad_request", "invalid Content-Length")
        if length is not None and int(length) > max_body:
            raise _too_large(max_body)
        task = asyncio.current_task()
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(self._interval, self._watch)
        self._reading[task] = time.monotonic() + self.timeout
        try:
            if length is not None:  # granian reads no more than Content-Length
                return await proto()
            parts: list[bytes] = []
            size = 0
            async for chunk in proto:
                size += len(chunk)
                if size > max_body:
                    raise _too_large(max_body)
                parts.append(chunk)
            return b"".join(parts)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()  # type: ignore[union-attr]
            raise ApiError(408, "request_timeout", f"request body not received within {self.timeout:g} s",
                           headers=[("connection", "close")]) from None
        except ProtocolClosed:  # the client went away mid-body: nobody reads the answer, nothing to log
            raise ApiError(400, "bad_request", "connection closed before the body ended") from None
        finally:
            del self._reading[task]

    def _watch(self) -> None:
        """Cancel the reads past their deadline (read() turns that into 408); look again
        later while any body is being read."""
        self._watchdog = None
        now = time.monotonic()
        for task in [task for task, deadline in self._reading.items() if deadline <= now]:
            if task not in self._expired:
                self._expired.add(task)
                task.cancel()
        if self._reading:
            self._watchdog = asyncio.get_running_loop().call_later(self._interval, self._watch)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()


def path_segments(path: str) -> list[str]:
    """The segments of a request path as identifiers, percent-decoded exactly once.

    granian hands the application ``scope.path`` already percent-decoded (``a%2541`` arrives
    as ``a%41``), so the segments are taken as they are: decoding them again would make
    ``a%2541`` (the id ``a%41``) and ``a%41`` (the id ``aA``) the same order. A decoded
    ``%2F`` is a path separator, which is why identifiers may not contain ``/``.
    """
    if path == "/":
        return []
    return path.strip("/").split("/")


def check_list_totals(raw: bytes) -> None:
    """422 naming TotNoOrders when a list request states a total that differs from the
    number of its NoOrders entries (one request is a whole list: no fragments). Bodies
    that do not decode are left to the order path, which names their problem."""
    try:
        data = _decode.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ArithmeticError):
        return
    if isinstance(data, dict) and isinstance(data.get("Body"), dict):
        data = data["Body"]
    if not isinstance(data, dict) or "TotNoOrders" not in data or not isinstance(data.get("NoOrders"), list):
        return
    total, count = data["TotNoOrders"], len(data["NoOrders"])
    if isinstance(total, bool) or str(total).strip() != str(count):
        raise ApiError(422, "invalid_order", "the order list is not valid", [FieldProblem(
            "TotNoOrders", f"must equal the number of NoOrders entries ({count}): a list is sent whole, "
            "in one request", "$.TotNoOrders")])
