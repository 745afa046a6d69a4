"""Interoperability with QuickFIX C++ (Debian's example acceptors ``executor`` and ``ordermatch``).

The raw-socket tests check the peer harness itself with a third-party encoder
(simplefix), independent of our engine; the others run our engine against it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import simplefix
from quickfix_peer import SKIP_REASON, QuickFixPeer, available

from fastfix.settings import SessionID, SessionSettings
from fastfix.store import FileStore

pytestmark = pytest.mark.skipif(not available("executor"), reason=SKIP_REASON)


# ---------------------------------------------------------------- raw-socket helpers


class _RawClient:
    """A blocking FIX client with explicit sequence numbers, for harness checks."""

    def __init__(self, port: int, begin: str, sender: str, target: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.begin, self.sender, self.target = begin, sender, target
        self.seq = 1
        self.parser = simplefix.FixParser()

    def send(self, msg_type: str, *fields: tuple[int, str | int]) -> None:
        m = simplefix.FixMessage()
        m.append_pair(8, self.begin, header=True)
        m.append_pair(35, msg_type, header=True)
        m.append_pair(49, self.sender, header=True)
        m.append_pair(56, self.target, header=True)
        m.append_pair(34, self.seq, header=True)
        m.append_utc_timestamp(52, precision=3, header=True)
        for tag, value in fields:
            m.append_pair(tag, value)
        self.sock.sendall(m.encode())
        self.seq += 1

    def recv(self, timeout: float = 10.0) -> simplefix.FixMessage | None:
        """Next message, or None if the peer closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.parser.get_message()
            if msg is not None:
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the peer")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                return None
            self.parser.append_buffer(data)

    def recv_type(self, msg_type: bytes, timeout: float = 10.0) -> simplefix.FixMessage:
        """Next message of ``msg_type``, skipping heartbeats; fails on disconnect."""
        for _ in range(100):
            msg = self.recv(timeout)
            assert msg is not None, f"peer disconnected while waiting for 35={msg_type!r}"
            if msg.get(35) == msg_type:
                return msg
            assert msg.get(35) in (b"0", b"1"), f"unexpected {msg.encode(True)!r}"
        raise AssertionError("too many unrelated messages")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def executor():
    peer = QuickFixPeer(
        "executor", [("FIX.4.4", "EXEC", "CLIENT"), ("FIX.4.2", "EXEC", "CLIENT")], show_messages=True
    )
    try:
        yield peer.start()
    finally:
        peer.close()


def _logon(c: _RawClient) -> simplefix.FixMessage:
    c.send("A", (98, 0), (108, 30))
    return c.recv_type(b"A")


def test_harness_raw_logon_order_fill_logout(executor: QuickFixPeer):
    assert executor.pid is not None
    c = _RawClient(executor.port, "FIX.4.4", "CLIENT", "EXEC")
    try:
        logon = _logon(c)
        assert logon.get(49) == b"EXEC" and logon.get(56) == b"CLIENT" and logon.get(34) == b"1"
        c.send(
            "D", (11, "ORD-1"), (55, "005930"), (54, 1), (60, "20240102-00:00:00.000"),
            (38, 10), (40, 2), (44, 71500),
        )  # fmt: skip
        er = c.recv_type(b"8")
        assert er.get(11) == b"ORD-1" and er.get(39) == b"2" and er.get(150) == b"F"
        assert er.get(31) == b"71500" and er.get(32) == b"10" and er.get(14) == b"10"
        c.send("5")
        assert c.recv_type(b"5") is not None
    finally:
        c.close()
    assert "Created session" in executor.output()


def test_harness_restart_keeps_sequence_numbers(executor: QuickFixPeer):
    c = _RawClient(executor.port, "FIX.4.2", "CLIENT", "EXEC")
    _logon(c)
    c.send("5")
    c.recv_type(b"5")
    c.close()
    executor.restart()
    c = _RawClient(executor.port, "FIX.4.2", "CLIENT", "EXEC")
    try:
        c.seq = 3  # we sent Logon(1), Logout(2)
        logon = _logon(c)
        assert logon.get(34) == b"3"  # it sent Logon(1), Logout(2): its store survived
    finally:
        c.close()


def test_harness_unknown_comp_id_is_refused(executor: QuickFixPeer):
    c = _RawClient(executor.port, "FIX.4.4", "STRANGER", "EXEC")
    try:
        c.send("A", (98, 0), (108, 30))
        for _ in range(10):
            msg = c.recv(timeout=10)
            if msg is None:
                break
            assert msg.get(35) != b"A", "a logon from an unknown CompID was accepted"
        else:
            raise AssertionError("connection not closed")
    finally:
        c.close()


@pytest.mark.skipif(not available("ordermatch"), reason=SKIP_REASON)
def test_harness_ordermatch_crosses_two_orders():
    with QuickFixPeer("ordermatch", [("FIX.4.2", "ORDERMATCH", "CLIENT")]) as peer:
        c = _RawClient(peer.port, "FIX.4.2", "CLIENT", "ORDERMATCH")
        try:
            _logon(c)
            common = [(21, 1), (55, "005930"), (60, "20240102-00:00:00.000"), (38, 10), (40, 2), (44, 71500)]
            c.send("D", (11, "B1"), (54, 1), *common)
            new = c.recv_type(b"8")
            assert new.get(11) == b"B1" and new.get(39) == b"0"
            c.send("D", (11, "S1"), (54, 2), *common)
            reports = [c.recv_type(b"8") for _ in range(3)]
            assert [(r.get(11), r.get(39)) for r in reports] == [
                (b"S1", b"0"), (b"B1", b"2"), (b"S1", b"2"),
            ]  # fmt: skip
            assert all(r.get(31) == b"71500" and r.get(32) == b"10" for r in reports[1:])
        finally:
            c.close()


# ---------------------------------------------------------------- fastfix engine <-> QuickFIX

TIMEOUT = 10.0


def _engine():
    return pytest.importorskip("fastfix.engine")


def _settings(port: int, tmp: Path, begin: str = "FIX.4.4", sender: str = "CLIENT",
              target: str = "EXEC", **extra: Any) -> SessionSettings:
    return SessionSettings.from_dict(
        [{"BeginString": begin, "SenderCompID": sender, "TargetCompID": target}],
        default={
            "ConnectionType": "initiator",
            "SocketConnectHost": "127.0.0.1",
            "SocketConnectPort": port,
            "HeartBtInt": 30,
            "ReconnectInterval": 1,
            "FileStorePath": str(tmp / "store"),
            "FileLogPath": str(tmp / "log"),
            **extra,
        },
    )  # fmt: skip


def _order(clordid: str, qty: int = 10, px: int = 71500, side: int = 1) -> list[tuple[int, Any]]:
    return [(11, clordid), (21, "1"), (55, "005930"), (54, side),
            (60, dt.datetime.now(dt.UTC)), (38, qty), (40, "2"), (44, px)]  # fmt: skip


def _client_class():
    engine = _engine()

    class Client(engine.Application):
        """Collects what the peer sends; ``expect`` waits for a matching message."""

        def __init__(self) -> None:
            self.sid: Any = None
            self.logged_on = asyncio.Event()
            self.logged_out = asyncio.Event()
            self.inbox: asyncio.Queue[Any] = asyncio.Queue()
            self.admin: list[Any] = []

        def on_logon(self, session_id: Any) -> None:
            self.sid = session_id
            self.logged_out.clear()
            self.logged_on.set()

        def on_logout(self, session_id: Any) -> None:
            self.logged_on.clear()
            self.logged_out.set()

        def from_admin(self, msg: Any, session_id: Any) -> None:
            self.admin.append(msg)

        def from_app(self, msg: Any, session_id: Any) -> None:
            self.inbox.put_nowait(msg)

        async def expect(self, pred: Any, what: str) -> Any:
            deadline = time.monotonic() + TIMEOUT
            for _ in range(1000):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    msg = await asyncio.wait_for(self.inbox.get(), left)
                except TimeoutError:
                    break
                if pred(msg):
                    return msg
            raise AssertionError(f"timed out waiting for {what}")

        async def fills(self, clordids: list[str]) -> dict[str, Any]:
            """Wait for a filled ExecutionReport (39=2) for each ClOrdID."""
            want = {c.encode() for c in clordids}
            got: dict[str, Any] = {}
            while want:
                er = await self.expect(
                    lambda m: m.msg_type == b"8" and m.get(39) == b"2" and m.get(11) in want,
                    f"fills for {sorted(want)}",
                )
                want.discard(er.get(11))
                got[er.get(11).decode()] = er
            return got

    return Client


def _run(coro: Any) -> Any:
    return _engine().run(asyncio.wait_for(coro, 90))


def _log_lines(tmp: Path, sid: SessionID) -> list[bytes]:
    return (tmp / "log" / f"{sid.file_prefix}.messages.log").read_bytes().splitlines()


def _fields(line: bytes) -> dict[int, bytes]:
    raw = line.split(b" ", 3)[-1] if b" OUT " in line else line.split(b" IN  ", 1)[-1]
    out: dict[int, bytes] = {}
    for part in raw.split(b"\x01"):
        if b"=" in part:
            tag, value = part.split(b"=", 1)
            out.setdefault(int(tag), value)
    return out


def _outgoing(tmp: Path, sid: SessionID) -> list[dict[int, bytes]]:
    return [_fields(ln) for ln in _log_lines(tmp, sid) if b" OUT " in ln[:40]]


@pytest.mark.parametrize("begin", ["FIX.4.2", "FIX.4.4"])
def test_logon_limit_orders_fills_logout(executor: QuickFixPeer, tmp_path: Path, begin: str):
    engine, Client = _engine(), _client_class()
    sid = SessionID(begin, "CLIENT", "EXEC")
    prices = {f"O{i}": (10 * (i + 1), 70_000 + 100 * i) for i in range(5)}

    async def main() -> None:
        app = Client()
        ini = engine.Initiator(_settings(executor.port, tmp_path, begin), app)
        await ini.start()
        try:
            await asyncio.wait_for(app.logged_on.wait(), TIMEOUT)
            for clid, (qty, px) in prices.items():
                app.send(sid, "D", _order(clid, qty, px))
            fills = await app.fills(list(prices))
            for clid, (qty, px) in prices.items():
                er = fills[clid]
                assert er.get(55) == b"005930" and er.get(54) == b"1"
                assert int(er.get(32)) == qty and int(er.get(14)) == qty and er.get(151) == b"0"
                assert Decimal(er.get(31).decode()) == px
                assert er.get(150) == (b"F" if begin == "FIX.4.4" else b"2")
            ini.session(sid).logout()
            await asyncio.wait_for(app.logged_out.wait(), TIMEOUT)
        finally:
            await ini.stop()

    _run(main())
    out = _outgoing(tmp_path, sid)
    assert [m[35] for m in out] == [b"A"] + [b"D"] * 5 + [b"5"]
    assert [int(m[34]) for m in out] == list(range(1, 8))
    incoming = [_fields(ln) for ln in _log_lines(tmp_path, sid) if b" IN  " in ln[:40]]
    assert incoming[0][35] == b"A" and incoming[-1][35] == b"5"  # its Logon, its Logout answer
    # the store agrees with the wire and survived the engine's shutdown
    st = FileStore.for_session(tmp_path / "store", sid)
    try:
        assert st.next_sender_seq == 8 and st.next_target_seq == 8
        assert [s for s, _ in st.get_range(1, 0)] == [2, 3, 4, 5, 6]
    finally:
        st.close()


def test_our_restart_resends_with_gap_fill(executor: QuickFixPeer, tmp_path: Path):
    """We drop the connection, restart, and send orders before the new logon:
    QuickFIX asks for them again; we resend them (PossDup) and gap-fill the Logon."""
    engine, Client = _engine(), _client_class()
    sid = SessionID("FIX.4.4", "CLIENT", "EXEC")

    async def main() -> None:
        app1 = Client()
        ini1 = engine.Initiator(_settings(executor.port, tmp_path), app1)
        await ini1.start()
        try:
            await asyncio.wait_for(app1.logged_on.wait(), TIMEOUT)
            app1.send(sid, "D", _order("A1"))
            await app1.fills(["A1"])
            ini1.session(sid).disconnect("simulated crash")  # no Logout
        finally:
            await ini1.stop()

        app2 = Client()
        ini2 = engine.Initiator(_settings(executor.port, tmp_path), app2)
        await ini2.start()
        try:
            session = ini2.session(sid)
            assert session.next_sender_seq == 3  # Logon 1, A1 2: restored from the store
            # sent before the connection is up: stored, numbered, not yet on the wire
            assert app2.send(sid, "D", _order("A2")) == 3
            assert app2.send(sid, "D", _order("A3")) == 4
            await asyncio.wait_for(app2.logged_on.wait(), TIMEOUT)
            await app2.fills(["A2", "A3"])
            app2.send(sid, "D", _order("A4"))
            await app2.fills(["A4"])
            kinds = [m.msg_type for m in app2.admin]
            assert b"2" in kinds, "no ResendRequest from QuickFIX"
            assert b"3" not in kinds and b"5" not in kinds  # no Reject, no Logout
        finally:
            await ini2.stop()

    _run(main())
    out = _outgoing(tmp_path, sid)
    resent = [m for m in out if m.get(43) == b"Y"]
    assert [(m[35], m[11]) for m in resent if m[35] == b"D"] == [(b"D", b"A2"), (b"D", b"A3")]
    assert all(122 in m for m in resent if m[35] == b"D")  # OrigSendingTime on resends
    gap_fills = [m for m in out if m[35] == b"4"]
    assert gap_fills and all(m.get(123) == b"Y" for m in gap_fills)
    assert int(gap_fills[0][34]) == 5 and int(gap_fills[0][36]) == 6  # the new Logon, skipped
    # QuickFIX's own screen log shows it received the resent orders as possible duplicates
    seen = [ln for ln in executor.output().splitlines() if "\x0111=A2\x01" in ln]
    assert any("\x0143=Y\x01" in ln for ln in seen), seen


def test_their_restart_resumes_and_resends(tmp_path: Path):
    """QuickFIX is killed (SIGKILL) and restarted on its store; we reconnect, keep the
    sequence numbers, and what we sent while it was down reaches it by resend."""
    engine, Client = _engine(), _client_class()
    sid = SessionID("FIX.4.4", "CLIENT", "EXEC")
    peer = QuickFixPeer("executor", [("FIX.4.4", "EXEC", "CLIENT")], show_messages=True)

    async def main() -> None:
        app = Client()
        ini = engine.Initiator(_settings(peer.port, tmp_path), app)
        await ini.start()
        try:
            await asyncio.wait_for(app.logged_on.wait(), TIMEOUT)
            app.send(sid, "D", _order("B1"))
            await app.fills(["B1"])
            session = ini.session(sid)
            theirs_before = session.next_target_seq
            peer.kill()
            await asyncio.wait_for(app.logged_out.wait(), TIMEOUT)
            app.send(sid, "D", _order("B2"))  # stored while they are down
            peer.start()
            await asyncio.wait_for(app.logged_on.wait(), TIMEOUT)
            await app.fills(["B2"])
            logons = [m for m in app.admin if m.msg_type == b"A"]
            assert len(logons) == 2
            # their store survived the kill: their Logon continues their sequence
            assert logons[1].seq_num == theirs_before
            assert not any(m.msg_type in (b"3", b"5") for m in app.admin)
        finally:
            await ini.stop()

    peer.start()
    try:
        _run(main())
    finally:
        peer.close()


def test_sequence_reset_on_logon(executor: QuickFixPeer, tmp_path: Path):
    """After a normal session, ResetOnLogon=Y logs on with 141=Y and both sides restart at 1."""
    engine, Client = _engine(), _client_class()
    sid = SessionID("FIX.4.4", "CLIENT", "EXEC")

    async def main() -> None:
        app = Client()
        ini = engine.Initiator(_settings(executor.port, tmp_path), app)
        await ini.start()
        try:
            await asyncio.wait_for(app.logged_on.wait(), TIMEOUT)
            for i in range(3):
                app.send(sid, "D", _order(f"C{i}"))
            await app.fills(["C0", "C1", "C2"])
        finally:
            await ini.stop()
        app = Client()
        ini = engine.Initiator(_settings(executor.port, tmp_path, ResetOnLogon="Y"), app)
        await ini.start()
        try:
            await asyncio.wait_for(app.logged_on.wait(), TIMEOUT)
            logon = next(m for m in app.admin if m.msg_type == b"A")
            assert logon.get(141) == b"Y" and logon.seq_num == 1
            app.send(sid, "D", _order("C3"))
            er = (await app.fills(["C3"]))["C3"]
            assert er.seq_num == 2
            session = ini.session(sid)
            assert session.next_sender_seq == 3 and session.next_target_seq == 3
        finally:
            await ini.stop()

    _run(main())
    out = _outgoing(tmp_path, sid)
    logons = [m for m in out if m[35] == b"A"]
    assert logons[1].get(141) == b"Y" and logons[1][34] == b"1"


@pytest.mark.parametrize("sender,target", [("STRANGER", "EXEC"), ("CLIENT", "NOBODY")])
def test_wrong_comp_id_is_refused(executor: QuickFixPeer, tmp_path: Path, sender: str, target: str):
    engine, Client = _engine(), _client_class()
    from fastfix.log import Log

    class Events(Log):
        def __init__(self) -> None:
            self.events: list[str] = []
            self.dropped = asyncio.Event()

        def on_incoming(self, raw: bytes) -> None:
            self.events.append("IN " + raw.decode("latin-1"))

        def on_outgoing(self, raw: bytes) -> None:
            pass

        def on_event(self, text: str) -> None:
            self.events.append(text)
            if text.startswith("Disconnecting"):
                self.dropped.set()

    log = Events()

    async def main() -> None:
        app = Client()
        ini = engine.Initiator(
            _settings(executor.port, tmp_path, sender=sender, target=target), app,
            log_factory=lambda sid, s: log,
        )  # fmt: skip
        await ini.start()
        try:
            await asyncio.wait_for(log.dropped.wait(), TIMEOUT)
            assert not app.logged_on.is_set()
            assert not any(e.startswith("IN ") for e in log.events)  # not even a Logout
        finally:
            await ini.stop()

    _run(main())


@pytest.mark.skipif(not available("ordermatch"), reason=SKIP_REASON)
def test_ordermatch_crosses_our_orders(tmp_path: Path):
    engine, Client = _engine(), _client_class()
    sid = SessionID("FIX.4.2", "CLIENT", "ORDERMATCH")

    async def main(peer: QuickFixPeer) -> None:
        app = Client()
        ini = engine.Initiator(_settings(peer.port, tmp_path, "FIX.4.2", target="ORDERMATCH"), app)
        await ini.start()
        try:
            await asyncio.wait_for(app.logged_on.wait(), TIMEOUT)
            app.send(sid, "D", _order("BUY1", 10, 71500, side=1))
            new = await app.expect(lambda m: m.get(11) == b"BUY1", "BUY1 new")
            assert new.get(39) == b"0" and new.get(151) == b"10"
            app.send(sid, "D", _order("SELL1", 4, 71500, side=2))
            sell_new = await app.expect(lambda m: m.get(11) == b"SELL1", "SELL1 new")
            assert sell_new.get(39) == b"0"
            buy = await app.expect(lambda m: m.get(11) == b"BUY1", "BUY1 partial fill")
            sell = await app.expect(lambda m: m.get(11) == b"SELL1", "SELL1 fill")
            assert buy.get(39) == b"1" and buy.get(32) == b"4" and buy.get(151) == b"6"
            assert sell.get(39) == b"2" and sell.get(31) == b"71500"
        finally:
            await ini.stop()

    with QuickFixPeer("ordermatch", [("FIX.4.2", "ORDERMATCH", "CLIENT")]) as peer:
        _run(main(peer))


_CRASHING_INITIATOR = r"""
import asyncio, datetime as dt, sys
from pathlib import Path
from fastfix import engine
from fastfix.settings import SessionID, SessionSettings
port, tmp = int(sys.argv[1]), Path(sys.argv[2])
ss = SessionSettings.from_dict(
    [{"BeginString": "FIX.4.4", "SenderCompID": "CLIENT", "TargetCompID": "EXEC"}],
    default={"ConnectionType": "initiator", "SocketConnectHost": "127.0.0.1",
             "SocketConnectPort": port, "HeartBtInt": 30, "FileStorePath": str(tmp / "store")})
sid = SessionID("FIX.4.4", "CLIENT", "EXEC")

class App(engine.Application):
    def __init__(self):
        self.up = asyncio.Event()
    def on_logon(self, session_id):
        self.up.set()

async def main():
    app = App()
    ini = engine.Initiator(ss, app)
    await ini.start()
    await asyncio.wait_for(app.up.wait(), 10)
    for i in range(1, 1_000_000):
        fields = [(11, "K%d" % i), (21, "1"), (55, "005930"), (54, 1),
                  (60, dt.datetime.now(dt.UTC)), (38, 1), (40, "2"), (44, 70000)]
        seq = await ini.send(sid, "D", fields)
        sys.stdout.write("%d\n" % seq)
        sys.stdout.flush()
        if i % 50 == 0:
            await asyncio.sleep(0)  # let fills in, as a live gateway would

engine.run(main())
"""


def test_our_process_killed_mid_stream_recovers(executor: QuickFixPeer, tmp_path: Path):
    """Our initiator process is SIGKILLed while sending; a new one on the same file store
    logs on without a sequence-number quarrel and trades on."""
    import os
    import select
    import signal
    import subprocess
    import sys

    engine, Client = _engine(), _client_class()
    sid = SessionID("FIX.4.4", "CLIENT", "EXEC")
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_INITIATOR, str(executor.port), str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    last = 0
    try:
        assert proc.stdout is not None
        fd, buf, deadline = proc.stdout.fileno(), b"", time.monotonic() + 60
        while last < 300 and time.monotonic() < deadline:
            if not select.select([fd], [], [], 1.0)[0]:
                continue
            chunk = os.read(fd, 65536)
            assert chunk, proc.stderr.read().decode()  # type: ignore[union-attr]
            *lines, buf = (buf + chunk).split(b"\n")
            if lines:
                last = int(lines[-1])
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert last >= 300 and proc.returncode == -signal.SIGKILL

    async def main() -> None:
        app = Client()
        ini = engine.Initiator(_settings(executor.port, tmp_path), app)
        await ini.start()
        try:
            assert ini.session(sid).next_sender_seq > last  # every acknowledged send is stored
            await asyncio.wait_for(app.logged_on.wait(), TIMEOUT)
            app.send(sid, "D", _order("AFTER-CRASH"))
            await app.fills(["AFTER-CRASH"])
            assert not any(m.msg_type in (b"3", b"5") for m in app.admin)
            ini.session(sid).logout()
            await asyncio.wait_for(app.logged_out.wait(), TIMEOUT)
        finally:
            await ini.stop()

    _run(main())
