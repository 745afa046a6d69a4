"""The event stream as an async iterator that reconnects by itself (picows client).

The gateway numbers each client's events 1, 2, 3... without gaps and logs them before it
pushes them, and a connection opened with ``?since=N`` replays every event after N. So the
iterator keeps one number, the cursor (the ``seq`` of the last event it handed out), and
after any drop reconnects with ``since=cursor``: what was missed is replayed, nothing is
handed out twice (an event at or below the cursor is skipped, a jump above it triggers a
resume from the cursor). The cursor may be kept in a file or given to a callback, so that a
new process resumes where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from fastfix.client.models import Event, StreamError

if TYPE_CHECKING:
    from fastfix.client.client import AsyncClient

__all__ = ["EventStream", "FileCursor"]

log = logging.getLogger("fastfix.client.stream")

# Close codes after which reconnecting cannot help: the request itself was refused.
_FINAL_CLOSE = frozenset({1002, 1003, 1007, 1008})


class _Frame(msgspec.Struct):
    type: str
    seq: int | None = None
    ts: str | None = None
    message: msgspec.Raw = msgspec.Raw()  # empty unless type == message
    event: dict[str, Any] | None = None  # type == event: what the gateway itself did
    reason: str | None = None
    since: int | None = None
    last_seq: int | None = None


class _Message(msgspec.Struct):
    Header: msgspec.Raw
    Body: msgspec.Raw


_frame = msgspec.json.Decoder(_Frame)
_message = msgspec.json.Decoder(_Message)


class FileCursor:
    """The stream's cursor in a file (one integer), replaced atomically at each save."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"{self.path}: not a stream cursor (expected a sequence number): {text[:40]!r}")
        return int(text)

    def save(self, seq: int) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(f"{seq}\n")
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class EventStream:
    """Async iterator of :class:`~fastfix.client.models.Event` (see :meth:`AsyncClient.stream`)."""

    def __init__(self, client: AsyncClient, since: int | None = None, *,
                 cursor_file: str | os.PathLike[str] | None = None, on_cursor: Callable[[int], None] | None = None,
                 reconnect: bool = True, max_reconnect_delay: float = 5.0, open_timeout: float = 10.0) -> None:
        self.client = client
        self._file = FileCursor(cursor_file) if cursor_file is not None else None
        if since is None and self._file is not None:
            since = self._file.load()
        if since is not None and since < 0:
            raise ValueError("since must be a non-negative integer")
        self.cursor: int | None = since  # seq of the last event handed out (None: live from now)
        self.on_cursor = on_cursor
        self.reconnect = reconnect
        self.max_reconnect_delay = max_reconnect_delay
        self.open_timeout = open_timeout
        self.connects = 0  # connections opened, for monitoring
        self.last_seq: int | None = None  # the gateway's last seq when the stream subscribed
        self._ws: Any = None
        self._closed = False
        self._error = ""  # reason of the gateway's last error frame

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        failures = 0
        while True:
            if self._ws is None:
                try:
                    await self._open()
                    failures = 0
                except StreamError:
                    raise
                except Exception as exc:  # refused, reset, timed out, handshake failed: try again
                    if not self.reconnect or self._closed:
                        raise StreamError(f"cannot open the stream: {exc}") from exc
                    failures += 1
                    await self._pause(failures, exc)
                    continue
            try:
                raw = await self._ws.recv(decode=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._dropped(exc)
                failures += 1
                if failures > 1:
                    await self._pause(failures, exc)
                continue
            event = self._event(raw)
            if event is not None:
                self._advance(event.seq)
                return event

    def _event(self, raw: bytes) -> Event | None:
        frame = _frame.decode(raw)
        if frame.type == "message" and frame.seq is not None and len(frame.message):
            cursor = self.cursor or 0
            if frame.seq <= cursor:
                return None  # handed out already
            if frame.seq != cursor + 1:
                log.warning("stream jumped from %d to %d: resuming from the cursor", cursor, frame.seq)
                self._drop_connection()
                return None
            msgs = self.client.msgs
            m = _message.decode(frame.message)
            header = msgs.decode_header(m.Header)
            msg_type = getattr(header, "MsgType", None) or ""
            return Event(frame.seq, frame.ts or "", msg_type, header, msgs.decode_body(msg_type, m.Body))
        if frame.type == "event" and frame.seq is not None:
            # The gateway's own events (cancel on disconnect...) are numbered with the reports.
            cursor = self.cursor or 0
            if frame.seq <= cursor:
                return None
            if frame.seq != cursor + 1:
                log.warning("stream jumped from %d to %d: resuming from the cursor", cursor, frame.seq)
                self._drop_connection()
                return None
            return Event(frame.seq, frame.ts or "", "event", None, frame.event or {})
        if frame.type == "subscribed":
            self.last_seq = frame.last_seq
            if self.cursor is None and frame.since is not None:
                self.cursor = frame.since  # live only: later drops resume from here
        elif frame.type == "error":
            self._error = frame.reason or "stream error"
        return None

    def _advance(self, seq: int) -> None:
        self.cursor = seq
        if self._file is not None:
            self._file.save(seq)
        if self.on_cursor is not None:
            self.on_cursor(seq)

    async def _open(self) -> None:
        from picows.websockets.asyncio.client import connect
        from picows.websockets.exceptions import InvalidStatus

        url = await self.client.stream_url()
        if self.cursor is not None:
            url += ("&" if "?" in url else "?") + f"since={self.cursor}"
        headers = {"X-API-Key": self.client.api_key} if self.client.api_key else None
        self._error = ""
        try:
            self._ws = await connect(url, additional_headers=headers, compression=None, proxy=None,
                                     open_timeout=self.open_timeout, ssl=self.client.ssl)
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = (getattr(exc.response, "body", b"") or b"").decode("utf-8", "replace").strip()
            if status in (400, 401, 403, 404):
                raise StreamError(f"stream refused: HTTP {status} {body}".strip()) from None
            raise ConnectionError(f"stream handshake answered HTTP {status}") from None
        self.connects += 1

    async def _dropped(self, exc: Exception) -> None:
        ws, self._ws = self._ws, None
        code = getattr(getattr(exc, "rcvd", None), "code", None)
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if code in _FINAL_CLOSE:
            raise StreamError(f"stream closed by the gateway ({code}): {self._error or exc}") from None
        if not self.reconnect or self._closed:
            raise StreamError(f"stream closed: {self._error or exc}") from exc
        log.info("stream dropped (%s); resuming after seq %s", self._error or exc, self.cursor)

    def _drop_connection(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            asyncio.get_running_loop().create_task(ws.close())

    async def _pause(self, failures: int, exc: BaseException) -> None:
        delay = min(0.05 * 2 ** min(failures - 1, 10), self.max_reconnect_delay) * (1 + random.random() / 2)
        log.info("stream unavailable (%s); retrying in %.2f s", exc, delay)
        await asyncio.sleep(delay)

    async def aclose(self) -> None:
        """Close the connection; the iterator ends."""
        self._closed = True
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
