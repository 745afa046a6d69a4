"""Interoperability with QuickFIX C++ (Debian's example acceptors ``executor`` and ``ordermatch``).

The raw-socket tests check the peer harness itself with a third-party encoder
(simplefix), independent of our engine.
"""

from __future__ import annotations

import socket
import time

import pytest
import simplefix

try:  # tests/ is on sys.path (rootdir-relative imports) unless it becomes a package
    from quickfix_peer import SKIP_REASON, QuickFixPeer, available
except ImportError:
    from tests.quickfix_peer import SKIP_REASON, QuickFixPeer, available

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
    peer = QuickFixPeer("executor", [("FIX.4.4", "EXEC", "CLIENT"), ("FIX.4.2", "EXEC", "CLIENT")])
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
