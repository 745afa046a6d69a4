"""A small keep-alive HTTP/1.1 client on asyncio streams (uvloop or the default loop).

Just what the gateway API needs: one request at a time per connection, a pool of idle
connections, Content-Length or chunked bodies, TLS for ``https``. A connection the server
closed while idle is detected when the request fails before any answer byte arrived; the
caller retries such a request (every call of the API is idempotent).
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import urllib.parse
from typing import NamedTuple

__all__ = ["HttpPool", "Response", "NotSent"]

_MAX_HEAD = 64 * 1024


class Response(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class NotSent(ConnectionError):
    """The connection failed before any byte of an answer: the request may be resent."""


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class HttpPool:
    """Keep-alive connections to one origin (``http://host:port`` or ``https://...``)."""

    def __init__(self, base_url: str, max_connections: int = 16, timeout: float = 10.0,
                 ssl: _ssl.SSLContext | None = None) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.prefix = url.path.rstrip("/")
        self.ssl: _ssl.SSLContext | None = ssl if ssl is not None else (
            _ssl.create_default_context() if url.scheme == "https" else None)
        netloc = self.host if ":" not in self.host else f"[{self.host}]"
        default = 443 if url.scheme == "https" else 80
        self._host_header = netloc if self.port == default else f"{netloc}:{self.port}"
        self.timeout = timeout
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def request(self, method: str, path: str, headers: list[tuple[str, str]],
                      body: bytes | None = None) -> Response:
        """Send one request and read its answer (raises :class:`NotSent` when the request
        never got an answer byte, :class:`OSError`/:class:`TimeoutError` otherwise)."""
        head = [f"{method} {self.prefix}{path} HTTP/1.1\r\nhost: {self._host_header}\r\n"]
        for k, v in headers:
            head.append(f"{k}: {v}\r\n")
        if body is not None:
            head.append(f"content-length: {len(body)}\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1") + (body or b"")
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                resp, keep = await asyncio.wait_for(self._exchange(conn, data, method), self.timeout)
            except NotSent:
                conn.close()
                if not reused:
                    raise
                # A kept-alive connection the server had closed: one fresh try.
                conn = await self._connect()
                try:
                    resp, keep = await asyncio.wait_for(self._exchange(conn, data, method), self.timeout)
                except BaseException:
                    conn.close()
                    raise
            except BaseException:
                conn.close()
                raise
            if keep:
                self._idle.append(conn)
            else:
                conn.close()
            return resp

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=_MAX_HEAD), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise NotSent(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return _Conn(reader, writer)

    async def _exchange(self, conn: _Conn, data: bytes, method: str) -> tuple[Response, bool]:
        try:
            conn.writer.write(data)
            await conn.writer.drain()
            line = await conn.reader.readline()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise NotSent(str(exc)) from exc
        if not line:
            raise NotSent("connection closed before the answer")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ConnectionError(f"not an HTTP/1.x answer: {line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            h = await conn.reader.readline()
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                raise ConnectionError("connection closed in the answer's header")
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked(conn.reader)
        elif "content-length" in headers:
            body = await conn.reader.readexactly(int(headers["content-length"]))
        else:  # until the server closes
            return Response(status, headers, await conn.reader.read()), False
        keep = headers.get("connection", "").lower() != "close" and parts[0] != b"HTTP/1.0"
        return Response(status, headers, body), keep

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        out = bytearray()
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out)
            out += await reader.readexactly(size)
            await reader.readexactly(2)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            try:
                await conn.writer.wait_closed()
            except (OSError, _ssl.SSLError):
                pass
