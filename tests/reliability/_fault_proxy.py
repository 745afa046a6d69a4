"""A TCP proxy for tests that injects faults into a live connection.

Knobs (changeable at any time): ``chunk`` forwards data in pieces of that many
bytes, each written on its own (1 = every byte boundary is a write boundary);
``delay`` waits that many seconds before each piece; :meth:`cut` closes the
current connection (both sides, with RST) once a given number of further bytes
went one way, so the cut falls in the middle of a message. Nothing is buffered
beyond what is being forwarded, so a cut loses exactly the bytes not yet written.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

__all__ = ["FaultProxy"]

C2S, S2C = "c2s", "s2c"  # client -> server, server -> client


class _Conn:
    def __init__(self) -> None:
        self.sent = {C2S: 0, S2C: 0}
        self.cut_at: dict[str, int] = {}
        self.writers: list[asyncio.StreamWriter] = []
        self.dead = False

    def kill(self) -> None:
        if self.dead:
            return
        self.dead = True
        for w in self.writers:
            sock = w.get_extra_info("socket")
            if sock is not None:  # RST instead of FIN: the peer sees a broken connection
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            w.transport.abort()


class FaultProxy:
    """127.0.0.1:``port`` -> 127.0.0.1:``target_port`` with fault injection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.chunk: int | None = None
        self.delay = 0.0
        self.connections = 0
        self.cuts = 0
        self.bytes = {C2S: 0, S2C: 0}
        self._conn: _Conn | None = None
        self._pending_cut: tuple[str, int] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._conn is not None:
            self._conn.kill()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    def cut(self, direction: str, after: int) -> None:
        """Cut the connection once ``after`` more bytes went in ``direction`` (the next one if none is up)."""
        conn = self._conn
        if conn is None or conn.dead:
            self._pending_cut = (direction, after)
        else:
            conn.cut_at[direction] = conn.sent[direction] + after

    def drop(self) -> None:
        """Cut the current connection now."""
        if self._conn is not None and not self._conn.dead:
            self.cuts += 1
            self._conn.kill()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Conn()
        try:
            try:
                sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                cw.transport.abort()
                return
            for w in (cw, sw):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.writers = [cw, sw]
            if self._conn is not None:
                self._conn.kill()
            self._conn = conn
            self.connections += 1
            if self._pending_cut is not None:
                direction, after = self._pending_cut
                self._pending_cut = None
                conn.cut_at[direction] = after
            pipes = [asyncio.create_task(self._pipe(conn, cr, sw, C2S)),
                     asyncio.create_task(self._pipe(conn, sr, cw, S2C))]
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            conn.kill()
            for p in pipes:
                p.cancel()
            await asyncio.wait(pipes, timeout=5)
        finally:
            conn.kill()
            self._tasks.discard(task)

    async def _pipe(self, conn: _Conn, r: asyncio.StreamReader, w: asyncio.StreamWriter, direction: str) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            for _ in range(10_000_000):
                data = await r.read(65536)
                if not data or conn.dead:
                    return
                cut = False
                limit = conn.cut_at.get(direction)
                if limit is not None and conn.sent[direction] + len(data) >= limit:
                    data = data[: max(0, limit - conn.sent[direction])]
                    cut = True
                step = self.chunk or len(data) or 1
                for i in range(0, len(data), step):
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    if conn.dead:
                        return
                    w.write(data[i:i + step])
                    await w.drain()
                conn.sent[direction] += len(data)
                self.bytes[direction] += len(data)
                if cut:
                    self.cuts += 1
                    conn.kill()
                    return
