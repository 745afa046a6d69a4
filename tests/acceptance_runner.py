"""Runner for QuickFIX session acceptance scenarios (``.def`` files).

A scenario scripts a test client against an acceptor: ``iCONNECT`` /
``iDISCONNECT`` open and close the client connection, ``I<msg>`` sends a
message, ``E<msg>`` reads the next message and compares it field by field,
``eDISCONNECT`` expects the acceptor to close the connection. ``I2,``/``E2,``...
address numbered connections. ``<TIME>``, ``<TIME+N>``, ``<TIME-N>`` become UTC
timestamps; BodyLength (9) and CheckSum (10) are filled in when a line lacks them.

Usable as a script against a running acceptor::

    python tests/acceptance_runner.py --port 5001 ../shared/fix/acceptance/fix44/*.def
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SOH = "\x01"
_TIME = re.compile(r"<TIME([+-]\d+)?>")
_LINE = re.compile(r"^([iIeE])(?:(\d+),)?(.*)$", re.S)

#: how long an E line waits for its message, and eDISCONNECT for the close
EXPECT_TIMEOUT = 20.0
DISCONNECT_TIMEOUT = 10.0


@dataclass
class Step:
    """One action of a scenario."""

    kind: str  # connect | disconnect | send | expect | expect_disconnect
    conn: int
    text: str
    lineno: int


@dataclass
class Result:
    """Outcome of a scenario: passed, or the first failing line and why."""

    name: str
    passed: bool
    lineno: int = 0
    reason: str = ""
    steps: int = 0
    log: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.passed:
            return f"{self.name}: pass ({self.steps} steps)"
        return f"{self.name}: FAIL at line {self.lineno}: {self.reason}"


# --------------------------------------------------------------------------- parsing


def parse_def(text: str) -> list[Step]:
    """The steps of a ``.def`` file."""
    steps = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise ValueError(f"line {lineno}: cannot parse {line!r}")
        action, num, rest = m.group(1), m.group(2), m.group(3)
        conn = int(num) if num else 1
        if action == "i":
            word = rest.strip().upper()
            if word not in ("CONNECT", "DISCONNECT"):
                raise ValueError(f"line {lineno}: unknown action {rest!r}")
            steps.append(Step(word.lower(), conn, "", lineno))
        elif action == "e" and rest.strip().upper() == "DISCONNECT":
            steps.append(Step("expect_disconnect", conn, "", lineno))
        elif action == "I":
            steps.append(Step("send", conn, rest, lineno))
        elif action == "E":
            steps.append(Step("expect", conn, rest, lineno))
        else:
            raise ValueError(f"line {lineno}: unknown action {line!r}")
    return steps


def load_formats(path: Path) -> dict[int, re.Pattern[str]]:
    """``fields.fmt``: tag -> regular expression its received value must contain."""
    out: dict[int, re.Pattern[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        tag, rx = line.split("=", 1)
        out[int(tag)] = re.compile(rx)
    return out


def _split(msg: str) -> list[str]:
    parts = msg.split(SOH)
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def _checksum(data: bytes) -> int:
    return sum(data) % 256


def substitute_time(text: str, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)

    def repl(m: re.Match[str]) -> str:
        t = now + dt.timedelta(seconds=int(m.group(1) or 0))
        return t.strftime("%Y%m%d-%H:%M:%S")

    return _TIME.sub(repl, text)


def fill_length_and_checksum(text: str) -> str:
    """Insert BodyLength after 8= if absent, append CheckSum if absent."""
    fields = _split(text)
    has9 = any(f.startswith("9=") for f in fields)
    has10 = any(f.startswith("10=") for f in fields)
    if not has9:
        body = [f for f in fields if not f.startswith("8=") and not f.startswith("10=")]
        length = sum(len(f.encode("latin-1")) + 1 for f in body)
        pos = next((i + 1 for i, f in enumerate(fields) if f.startswith("8=")), 0)
        fields.insert(pos, f"9={length}")
    out = SOH.join(fields) + SOH
    if not has10:
        out += f"10={_checksum(out.encode('latin-1')):03d}{SOH}"
    return out


def prepare(text: str, now: dt.datetime | None = None) -> bytes:
    """A scenario message as it goes on the wire (or as it is expected)."""
    return fill_length_and_checksum(substitute_time(text, now)).encode("latin-1")


def compare(expected: bytes, received: bytes, formats: dict[int, re.Pattern[str]]) -> str | None:
    """None if ``received`` matches ``expected``; else what differs."""
    e = _split(expected.decode("latin-1"))
    r = _split(received.decode("latin-1"))
    if len(e) != len(r):
        return f"{len(r)} fields received, {len(e)} expected"
    for i, (ef, rf) in enumerate(zip(e, r, strict=True)):
        et, _, ev = ef.partition("=")
        rt, _, rv = rf.partition("=")
        if et != rt:
            return f"field {i}: tag {rt} received, {et} expected"
        try:
            rx = formats.get(int(et))
        except ValueError:
            rx = None
        if rx is not None:
            if not rx.search(rv):
                return f"field {i}: {rt}={rv!r} does not match {rx.pattern!r}"
        elif ev != rv:
            return f"field {i}: {rt}={rv!r} received, {ev!r} expected"
    return None


# --------------------------------------------------------------------------- client


class _Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = b""
        self.eof = False

    async def read_message(self, timeout: float) -> bytes | None:
        """The next whole message; None at EOF. TimeoutError if none in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = self._frame()
            if msg is not None:
                return msg
            if self.eof:
                return None
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), left)
            except ConnectionError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk

    def _frame(self) -> bytes | None:
        start = self.buf.find(b"8=")
        if start < 0:
            return None
        end = self.buf.find(b"\x0110=", start)
        if end < 0:
            return None
        stop = self.buf.find(b"\x01", end + 4)
        if stop < 0:
            return None
        msg = self.buf[start : stop + 1]
        self.buf = self.buf[stop + 1 :]
        return msg

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            try:
                self.writer.write(data)
            except (ConnectionError, RuntimeError):
                pass

    async def wait_closed_by_peer(self, timeout: float) -> bytes | None:
        """Wait for EOF; returns unexpected data if a message arrives instead."""
        try:
            msg = await self.read_message(timeout)
        except TimeoutError:
            return b"<timeout: connection still open>"
        return msg

    async def close(self, timeout: float = 5.0) -> None:
        """Close our side, then wait (bounded) for the peer to close too."""
        if not self.writer.is_closing():
            try:
                if self.writer.can_write_eof():
                    self.writer.write_eof()
            except (OSError, RuntimeError):
                pass
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.eof and loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), deadline - loop.time())
            except (TimeoutError, ConnectionError):
                break
            if not chunk:
                self.eof = True
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (TimeoutError, OSError):
            pass


async def run_steps(
    name: str,
    steps: list[Step],
    host: str,
    port: int,
    formats: dict[int, re.Pattern[str]],
    expect_timeout: float = EXPECT_TIMEOUT,
    disconnect_timeout: float = DISCONNECT_TIMEOUT,
) -> Result:
    """Play a scenario against ``host:port``."""
    clients: dict[int, _Client] = {}
    res = Result(name, True, steps=len(steps))
    try:
        for step in steps:
            c = clients.get(step.conn)
            if step.kind == "connect":
                reader, writer = await asyncio.open_connection(host, port)
                clients[step.conn] = _Client(reader, writer)
            elif c is None:
                return Result(name, False, step.lineno, f"connection {step.conn} is not open")
            elif step.kind == "disconnect":
                await c.close()
                del clients[step.conn]
            elif step.kind == "send":
                data = prepare(step.text)
                res.log.append(f"> {data!r}")
                c.send(data)
            elif step.kind == "expect":
                want = prepare(step.text)
                try:
                    got = await c.read_message(expect_timeout)
                except TimeoutError:
                    return Result(name, False, step.lineno, f"no message within {expect_timeout} s; expected {want!r}")
                if got is None:
                    return Result(name, False, step.lineno, f"connection closed; expected {want!r}")
                res.log.append(f"< {got!r}")
                why = compare(want, got, formats)
                if why is not None:
                    return Result(name, False, step.lineno, f"{why}\n  expected {want!r}\n  received {got!r}")
            elif step.kind == "expect_disconnect":
                extra = await c.wait_closed_by_peer(disconnect_timeout)
                if extra is not None:
                    return Result(name, False, step.lineno, f"expected disconnect, got {extra!r}")
                c.writer.close()
                del clients[step.conn]
        return res
    finally:
        for c in clients.values():
            await c.close()


async def run_file(path: Path, host: str, port: int, formats: dict[int, re.Pattern[str]]) -> Result:
    return await run_steps(path.name, parse_def(path.read_text(encoding="latin-1")), host, port, formats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--formats", type=Path, help="fields.fmt (default: beside the first file's folder)")
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args(argv)
    fmt = args.formats or args.files[0].resolve().parent.parent / "fields.fmt"
    formats = load_formats(fmt)

    async def go() -> int:
        failed = 0
        for f in args.files:
            r = await run_file(f, args.host, args.port, formats)
            print(r, flush=True)
            failed += not r.passed
        print(f"{len(args.files) - failed}/{len(args.files)} passed")
        return 1 if failed else 0

    return asyncio.run(go())


if __name__ == "__main__":
    sys.exit(main())
