"""The asyncio engine over loopback: initiator <-> acceptor, routing, refusals, backpressure."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from fastfix.codec import Tokenizer, encode, utc_timestamp
from fastfix.engine import Acceptor, Application, Initiator, UnsupportedMessageType, _Connection
from fastfix.settings import SessionSettings


def _acceptor_settings(port: int = 0, **extra: Any) -> SessionSettings:
    return SessionSettings.from_dict(
        [{"SenderCompID": "HUB", "TargetCompID": "CLIENT"}],
        default={
            "ConnectionType": "acceptor", "BeginString": "FIX.4.4", "SocketAcceptPort": port,
            "SocketAcceptAddress": "127.0.0.1", "MessageStore": "memory", **extra,
        },
    )  # fmt: skip


def _initiator_settings(port: int, **extra: Any) -> SessionSettings:
    return SessionSettings.from_dict(
        [{"SenderCompID": "CLIENT", "TargetCompID": "HUB"}],
        default={
            "ConnectionType": "initiator", "BeginString": "FIX.4.4", "HeartBtInt": 30,
            "SocketConnectHost": "127.0.0.1", "SocketConnectPort": port,
            "MessageStore": "memory", "ReconnectInterval": 1, **extra,
        },
    )  # fmt: skip


class Echo(Application):
    def __init__(self) -> None:
        self.logons = 0
        self.logouts = 0

    def on_logon(self, session_id: Any) -> None:
        self.logons += 1

    def on_logout(self, session_id: Any) -> None:
        self.logouts += 1

    def from_app(self, msg: Any, session_id: Any) -> None:
        if msg.msg_type != b"D":
            raise UnsupportedMessageType()
        self.send(session_id, "8", [
            (6, "0"), (11, msg[11]), (14, "0"), (17, "e1"), (37, "o1"), (39, "0"),
            (54, msg[54]), (55, msg[55]), (150, "0"), (151, "100"),
        ])  # fmt: skip


class Collect(Application):
    """Initiator side: collects what it receives, asynchronously."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[Any] = asyncio.Queue()

    async def from_app(self, msg: Any, session_id: Any) -> None:
        await asyncio.sleep(0)  # a real coroutine: runs as an ordered task
        await self.received.put((msg.msg_type, msg.get(11), msg.get(58)))


def test_initiator_acceptor_round_trip() -> None:
    async def main() -> None:
        echo = Echo()
        acc = Acceptor(_acceptor_settings(), echo)
        await acc.start()
        app = Collect()
        ini = Initiator(_initiator_settings(acc.port), app)
        await ini.start()
        try:
            sid = next(iter(ini.sessions()))
            await ini.wait_logged_on(sid, 10)
            for i in range(5):
                await ini.send(sid, "D", [(11, f"o{i}"), (55, "X"), (54, "1"), (40, "1"), (60, utc_timestamp())])
            got = [await asyncio.wait_for(app.received.get(), 5) for _ in range(5)]
            assert got == [(b"8", f"o{i}".encode(), None) for i in range(5)]
            await ini.send(sid, "F", [(11, "x"), (41, "o0"), (54, "1"), (55, "X"), (60, utc_timestamp())])
            assert await asyncio.wait_for(app.received.get(), 5) == (b"j", None, b"Unsupported Message Type")
            assert echo.logons == 1
            hub = next(iter(acc.sessions().values()))
            assert hub.next_target_seq == 8  # logon + 5 orders + 1 cancel
        finally:
            await ini.stop()
            await acc.stop()
        assert echo.logouts == 1

    asyncio.run(asyncio.wait_for(main(), 30))


async def _raw_logon(port: int, sender: str = "CLIENT", target: str = "HUB") -> tuple[Any, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode("FIX.4.4", "A", [(34, 1), (49, sender), (52, utc_timestamp()),
                                          (56, target), (98, 0), (108, 30)]))
    await writer.drain()
    return reader, writer


async def _read_until_eof(reader: asyncio.StreamReader, timeout: float = 5) -> bytes:
    data = b""
    while True:
        chunk = await asyncio.wait_for(reader.read(65536), timeout)
        if not chunk:
            return data
        data += chunk


def test_unknown_comp_id_and_second_connection_are_refused() -> None:
    async def main() -> None:
        acc = Acceptor(_acceptor_settings(), Echo())
        await acc.start()
        try:
            r, w = await _raw_logon(acc.port, sender="STRANGER")
            assert await _read_until_eof(r) == b""
            w.close()
            r1, w1 = await _raw_logon(acc.port)
            first = await asyncio.wait_for(r1.read(65536), 5)
            assert b"\x0135=A\x01" in first
            r2, w2 = await _raw_logon(acc.port)
            assert await _read_until_eof(r2) == b""  # already logged on: refused silently
            w2.close()
            # The first connection still works.
            w1.write(encode("FIX.4.4", "1", [(34, 2), (49, "CLIENT"), (52, utc_timestamp()),
                                             (56, "HUB"), (112, "still-there")]))
            items = Tokenizer().feed(await asyncio.wait_for(r1.read(65536), 5))
            assert items[0].msg_type == b"0" and items[0][112] == b"still-there"
            w1.close()
        finally:
            await acc.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_initiator_reconnects_with_backoff_until_acceptor_appears() -> None:
    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ini = Initiator(_initiator_settings(port), Collect())
        await ini.start()
        acc = None
        try:
            sid = next(iter(ini.sessions()))
            with pytest.raises(TimeoutError):
                await ini.wait_logged_on(sid, 0.8)  # nothing listens yet
            acc = Acceptor(_acceptor_settings(port), Echo())
            await acc.start()
            await ini.wait_logged_on(sid, 10)
        finally:
            await ini.stop()
            if acc is not None:
                await acc.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


class _FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, lines: list[bytes]) -> None:
        self.written.extend(lines)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return None

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass


def test_send_waits_while_transport_is_paused() -> None:
    async def main() -> None:
        acc = Acceptor(_acceptor_settings(), Echo())
        await acc.start()
        try:
            session = next(iter(acc.sessions().values()))
            conn = _Connection(acc)
            transport = _FakeTransport()
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn._bind(session)
            conn.data_received(encode("FIX.4.4", "A", [(34, 1), (49, "CLIENT"), (52, utc_timestamp()),
                                                        (56, "HUB"), (98, 0), (108, 30)]))
            assert session.is_logged_on and len(transport.written) == 1
            conn.pause_writing()
            task = asyncio.ensure_future(acc.send(session.session_id, "8", [(11, "a")]))
            await asyncio.sleep(0.05)
            assert not task.done() and len(transport.written) == 1
            conn.resume_writing()
            assert await asyncio.wait_for(task, 5) == 2
            assert len(transport.written) == 2
            conn.connection_lost(None)
            assert not session.is_connected
        finally:
            await acc.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_documented_session_examples_run(tmp_path: Any) -> None:
    """The two examples of "Sessions" in docs/library.md run and print what they say."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "library.md").read_text()
    section = doc[doc.index("\n## Sessions\n") + 1 :]
    section = section[: section.find("\n## ", 5)] if "\n## " in section[5:] else section
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    outputs = []
    for i, code in enumerate(blocks):
        script = tmp_path / f"example{i}.py"
        script.write_text(code)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0].strip() == "2 b'8' b'A1' b'0'"
    assert "35=A" in outputs[1]


def test_application_error_disconnects_without_consuming_the_message() -> None:
    class Broken(Application):
        def from_app(self, msg: Any, session_id: Any) -> None:
            raise RuntimeError("bug")

    async def main() -> None:
        acc = Acceptor(_acceptor_settings(), Broken())
        await acc.start()
        try:
            session = next(iter(acc.sessions().values()))
            conn = _Connection(acc)
            transport = _FakeTransport()
            conn.connection_made(transport)  # type: ignore[arg-type]
            ts = utc_timestamp()
            conn.data_received(
                encode("FIX.4.4", "A", [(34, 1), (49, "CLIENT"), (52, ts), (56, "HUB"), (98, 0), (108, 30)])
                + encode("FIX.4.4", "D", [(34, 2), (49, "CLIENT"), (52, ts), (56, "HUB"), (11, "a"),
                                          (40, "1"), (54, "1"), (55, "X"), (60, ts)])
            )
            assert transport.closed and not session.is_connected
            assert session.next_target_seq == 2  # the order will be asked for again
            assert len(transport.written) == 1  # only the Logon answer went out
        finally:
            await acc.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_acceptor_drops_connections_that_never_log_on() -> None:
    async def main() -> None:
        acc = Acceptor(_acceptor_settings(), Echo(), tick_interval=0.05)
        await acc.start()
        acc._logon_timeout = 0.2
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", acc.port)
            assert await _read_until_eof(reader, 5) == b""
            writer.close()
        finally:
            await acc.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_initiator_stop_waits_for_the_logout_answer() -> None:
    """stop() logs out and keeps the connection until the acceptor's Logout arrives."""

    class Admin(Echo):
        def __init__(self) -> None:
            super().__init__()
            self.admin: list[bytes] = []

        def from_admin(self, msg: Any, session_id: Any) -> None:
            self.admin.append(msg.msg_type)

    async def main() -> None:
        acc = Acceptor(_acceptor_settings(), Echo())
        await acc.start()
        app = Admin()
        ini = Initiator(_initiator_settings(acc.port), app)
        await ini.start()
        try:
            sid = next(iter(ini.sessions()))
            await ini.wait_logged_on(sid, 10)
            await ini.stop(logout_timeout=5)
            assert app.admin[-1] == b"5", app.admin  # the acceptor's Logout answer was read
        finally:
            await ini.stop()
            await acc.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
