"""Limits the REST handler applies before a request reaches the order path.

Each guard raises :class:`ApiError`, so every refusal is a JSON answer naming what was
wrong: request line and header sizes (414, 431), the media type (415), the request
body (413 over the limit, chunked or not; 408 when it trickles in slower than the
body deadline) and path identifiers (decoded exactly once). Reads per client and
failed authentications per address are throttled in ``auth.py``. Documented in
``docs/operations-limits.md``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from granian.rsgi import ProtocolClosed

from server.gateway.errors import ApiError, FieldProblem

__all__ = ["check_content_type", "check_head", "check_list_totals",
           "path_segments", "read_body", "source_ip"]

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
    headers = scope.headers
    for name in headers.keys():
        for value in headers.get_all(name):
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


async def read_body(scope: Any, proto: Any, max_body: int, timeout: float) -> bytes:
    """The request body, read chunk by chunk: 413 as soon as it passes ``max_body`` (Content-Length
    or chunked), 408 when it is not complete within ``timeout`` seconds."""
    length = scope.headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            raise ApiError(400, "bad_request", "invalid Content-Length")
        if int(length) > max_body:
            raise _too_large(max_body)
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in proto:
                size += len(chunk)
                if size > max_body:
                    raise _too_large(max_body)
                parts.append(chunk)
    except TimeoutError:
        raise ApiError(408, "request_timeout", f"request body not received within {timeout:g} s",
                       headers=[("connection", "close")]) from None
    except ProtocolClosed:  # the client went away mid-body: nobody reads the answer, nothing to log
        raise ApiError(400, "bad_request", "connection closed before the body ended") from None
    return parts[0] if len(parts) == 1 else b"".join(parts)


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
