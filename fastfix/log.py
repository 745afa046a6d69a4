r"""Session logs: every message in and out, and session events, for audit.

:class:`FileLog` writes two files per session under ``FileLogPath``:

- ``<session>.messages.log`` — one line per message:
  ``20240102-09:00:00.123456 IN  8=FIX.4.4|9=...`` (the raw bytes, SOH kept);
- ``<session>.event.log`` — ``20240102-09:00:00.123456 Logon received``.

Writes are buffered; :meth:`Log.flush` hands them to the OS (the engine calls it
at the end of each event-loop tick) and :meth:`Log.close` flushes.

One line is one message or one event, whatever the peer sent: control characters
in a value (a ClOrdID carrying ``\n`` or an ANSI escape ``\x1b[...``) are written
escaped, as ``\n``, ``\r``, ``\t`` or ``\xNN``, and a backslash as ``\\``, so a
line cannot be split, forged or turned into terminal commands. SOH stays as it is
in the message log (``|`` on the screen). Logon passwords (554, 925) are written as
``***``. :func:`escape_bytes` and :func:`printable` do the same for other logs.
"""

from __future__ import annotations

import abc
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from fastfix.tags import NEW_PASSWORD, PASSWORD

if TYPE_CHECKING:
    from fastfix.settings import SessionID, Settings

__all__ = [
    "Log", "NullLog", "ScreenLog", "FileLog", "CompositeLog", "log_from_settings",
    "escape_bytes", "printable",
]

# C0 controls but SOH, DEL and the backslash (escaped so that an escape is unambiguous).
_UNSAFE = re.compile(rb"[\x00\x02-\x1f\x7f\\]")
_NAMED = {0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t", 0x5C: b"\\\\"}
_ESCAPES = {bytes((c,)): _NAMED.get(c, b"\\x%02x" % c) for c in [*range(0x20), 0x7F, 0x5C]}
# Every byte but those: what is left after deleting them needs escaping.
_SAFE = bytes(c for c in range(256) if bytes((c,)) not in _ESCAPES or c == 0x01)
# Passwords of a Logon (Password, NewPassword): never written to a log.
_SECRET = re.compile(rb"(?:^|(?<=\x01))(%d|%d)=[^\x01]*" % (PASSWORD, NEW_PASSWORD))
# They travel in Logon (A) and UserRequest (BE): a match of the header's start finds those.
_CARRIES_SECRET = re.compile(rb"8=[^\x01]*\x01(?:9=[0-9]*\x01)?35=(?:A|BE)\x01")
# Text: C0/C1 controls, DEL, line and paragraph separators, the backslash, and the
# surrogates that stand for undecodable bytes.
_UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\\\\\udc80-\udcff]")


def _esc(m: re.Match[bytes]) -> bytes:
    return _ESCAPES[m.group()]


def _esc_text(m: re.Match[str]) -> str:
    c = m.group()
    if c == "\\":
        return "\\\\"
    n = ord(c)
    named = _NAMED.get(n)
    if named is not None:
        return named.decode()
    if 0xDC80 <= n <= 0xDCFF:  # an undecodable byte (surrogateescape)
        return f"\\x{n - 0xDC00:02x}"
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def escape_bytes(raw: bytes) -> bytes:
    """A FIX message for a log line: control characters (SOH kept) escaped, passwords masked.

    ``11=A<LF>B<ESC>[2J`` becomes ``11=A\\nB\\x1b[2J`` and ``554=secret`` becomes ``554=***``.
    """
    raw = _mask(raw)
    if raw.translate(None, _SAFE):  # cheaper than a regex scan for the usual clean message
        raw = _UNSAFE.sub(_esc, raw)
    return raw


def _mask(raw: bytes) -> bytes:
    if _CARRIES_SECRET.match(raw) is not None and _SECRET.search(raw) is not None:
        raw = _SECRET.sub(lambda m: m.group(1) + b"=***", raw)
    return raw


def printable(value: bytes | str | None) -> str:
    """A FIX value (or any text) for a log line: UTF-8 decoded, invalid bytes as ``\\xNN``,
    control characters escaped, so one log call stays one line (``A<LF>B`` -> ``A\\nB``).
    """
    if value is None:
        return ""
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    if _UNSAFE_TEXT.search(text) is not None:
        text = _UNSAFE_TEXT.sub(_esc_text, text)
    return text


class Log(abc.ABC):
    """Where a session reports its traffic and events."""

    @abc.abstractmethod
    def on_incoming(self, raw: bytes) -> None:
        """A message received (raw bytes as on the wire)."""

    @abc.abstractmethod
    def on_outgoing(self, raw: bytes) -> None:
        """A message sent (raw bytes as on the wire)."""

    @abc.abstractmethod
    def on_event(self, text: str) -> None:
        """A session event (logon, gap detected, reset...)."""

    def flush(self) -> None:
        """Hand buffered lines to the OS."""
        return None

    def close(self) -> None:
        """Flush and release files."""
        return None

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullLog(Log):
    """Discards everything."""

    def on_incoming(self, raw: bytes) -> None:
        pass

    def on_outgoing(self, raw: bytes) -> None:
        pass

    def on_event(self, text: str) -> None:
        pass


class _Clock:
    """``YYYYMMDD-HH:MM:SS.uuuuuu`` timestamps, formatting the seconds part once per second."""

    __slots__ = ("_sec", "_prefix")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = b""

    def stamp(self) -> bytes:
        ns = time.time_ns()
        sec, us = divmod(ns // 1000, 1_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y%m%d-%H:%M:%S.", time.gmtime(sec)).encode()
        return self._prefix + b"%06d" % us


class ScreenLog(Log):
    """Prints to a text stream (stdout by default), SOH shown as ``|``."""

    def __init__(
        self,
        prefix: str = "",
        incoming: bool = True,
        outgoing: bool = True,
        events: bool = True,
        stream: TextIO | None = None,
    ):
        self._prefix = f"<{prefix}> " if prefix else ""
        self._incoming, self._outgoing, self._events = incoming, outgoing, events
        self._stream = stream
        self._clock = _Clock()

    def _write(self, kind: str, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(f"{self._clock.stamp().decode()} {self._prefix}{kind}{text}\n")

    def on_incoming(self, raw: bytes) -> None:
        if self._incoming:
            self._write("IN  ", printable(_mask(raw).replace(b"\x01", b"|")))

    def on_outgoing(self, raw: bytes) -> None:
        if self._outgoing:
            self._write("OUT ", printable(_mask(raw).replace(b"\x01", b"|")))

    def on_event(self, text: str) -> None:
        if self._events:
            self._write("", printable(text))

    def flush(self) -> None:
        (self._stream or sys.stdout).flush()


class FileLog(Log):
    """Appends messages and events to two files per session (see module doc)."""

    def __init__(self, directory: str | os.PathLike[str], name: str, buffer_size: int = 1 << 16):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.messages_path = self.directory / f"{name}.messages.log"
        self.event_path = self.directory / f"{name}.event.log"
        self._messages: BinaryIO = open(self.messages_path, "ab", buffering=buffer_size)  # noqa: SIM115
        self._events: BinaryIO = open(self.event_path, "ab", buffering=buffer_size)  # noqa: SIM115
        self._clock = _Clock()

    @classmethod
    def for_session(cls, directory: str | os.PathLike[str], session_id: SessionID) -> FileLog:
        return cls(directory, session_id.file_prefix)

    def on_incoming(self, raw: bytes) -> None:
        self._messages.write(b"%s IN  %s\n" % (self._clock.stamp(), escape_bytes(raw)))

    def on_outgoing(self, raw: bytes) -> None:
        self._messages.write(b"%s OUT %s\n" % (self._clock.stamp(), escape_bytes(raw)))

    def on_event(self, text: str) -> None:
        self._events.write(b"%s %s\n" % (self._clock.stamp(), printable(text).encode("utf-8", "replace")))

    def flush(self) -> None:
        self._messages.flush()
        self._events.flush()

    def close(self) -> None:
        for f in (self._messages, self._events):
            if not f.closed:
                f.close()


class CompositeLog(Log):
    """Sends everything to several logs."""

    def __init__(self, *logs: Log):
        self.logs = logs

    def on_incoming(self, raw: bytes) -> None:
        for log in self.logs:
            log.on_incoming(raw)

    def on_outgoing(self, raw: bytes) -> None:
        for log in self.logs:
            log.on_outgoing(raw)

    def on_event(self, text: str) -> None:
        for log in self.logs:
            log.on_event(text)

    def flush(self) -> None:
        for log in self.logs:
            log.flush()

    def close(self) -> None:
        for log in self.logs:
            log.close()


def log_from_settings(session_id: SessionID, settings: Settings) -> Log:
    """``FileLog`` if ``FileLogPath`` is set, ``ScreenLog`` if any ``ScreenLogShow*=Y``,
    both if both, else ``NullLog``."""
    logs: list[Log] = []
    if "FileLogPath" in settings:
        logs.append(FileLog.for_session(settings.get_path("FileLogPath"), session_id))
    shows = [
        settings.get_bool(k, False)
        for k in ("ScreenLogShowIncoming", "ScreenLogShowOutgoing", "ScreenLogShowEvents")
    ]
    if any(shows):
        logs.append(ScreenLog(str(session_id), *shows))
    if not logs:
        return NullLog()
    return logs[0] if len(logs) == 1 else CompositeLog(*logs)
