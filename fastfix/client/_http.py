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

    def headers(self, headers: list[tuple[str, str]]) -> bytes:
        """The header lines sent with every request (encoded once, passed to :meth:`request`)."""
        lines = [f"host: {self._host_header}\r\n"] + [f"{k}: {v}\r\n" for k, v in headers]
        return "".join(lines).encode("latin-1")

    async def request(self, method: str, path: str, headers: bytes, body: bytes | None = None) -> Response:
        """Send one request and read its answer (raises :class:`NotSent` when the request
        never got an answer byte, :class:`OSError`/:class:`TimeoutError` otherwise).
        ``headers`` comes from :meth:`headers`."""
        line = f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1")
        if body is None:
            data = b"%s%s\r\n" % (line, headers)
        else:
            data = b"%s%scontent-length: %d\r\n\r\n%s" % (line, headers, len(body), body)
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                async with asyncio.timeout(self.timeout):
                    resp, keep = await self._exchange(conn, data, method)
            except NotSent:
                conn.close()
                if not reused:
                    raise
                # A kept-alive connection the server had closed: one fresh try.
                conn = await self._connect()
                try:
                    async with asyncio.timeout(self.timeout):
                        resp, keep = await self._exchange(conn, data, method)
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
        reader = conn.reader
        try:
            conn.writer.write(data)
            await conn.writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ConnectionError("connection closed in the answer's header") from None
            raise NotSent("connection closed before the answer") from None
        except ConnectionError as exc:
            raise NotSent(str(exc)) from exc
        except asyncio.LimitOverrunError:
            raise ConnectionError("answer header too large") from None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for h in lines[1:]:
            if h:
                k, _, v = h.partition(":")
                headers[k.strip().lower()] = v.strip()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:  # until the server closes
            return Response(status, headers, await reader.read()), False
        keep = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
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
