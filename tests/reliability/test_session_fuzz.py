"""Stateful fuzzing of the sans-I/O session (hypothesis RuleBasedStateMachine).

A simulated counterparty drives an acceptor :class:`fastfix.session.Session` with
logons (in order, too high, with a sequence reset, out of turn), application
messages with gaps, answers to the session's ResendRequests (resends with
PossDupFlag, gap fills), duplicates, and dropped connections. After every step:

- sequence numbers never go backwards (except through a reset the peer asked for);
- a gap the session saw is asked for: a ResendRequest went out covering it;
- no application message reaches the application twice, and each reaches it in
  its sequence order.

``FASTFIX_SESSION_FUZZ_EXAMPLES`` / ``FASTFIX_SESSION_FUZZ_STEPS`` set the bounds
(small in ``make test``, large in ``make fuzz``).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fastfix.codec import encode, parse, utc_timestamp
from fastfix.session import Session, SessionConfig
from fastfix.settings import SessionID
from fastfix.store import MemoryStore

pytestmark = pytest.mark.fuzz
SID = SessionID("FIX.4.4", "HUB", "GW")
T0 = 1_767_000_000.0


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[tuple[int, bytes]] = []  # (epoch, ClOrdID)

    def on_create(self, sid: Any) -> None: ...
    def on_logon(self, sid: Any) -> None: ...
    def on_logout(self, sid: Any) -> None: ...
    def to_admin(self, mt: bytes, fields: list, sid: Any) -> None: ...
    def from_admin(self, msg: Any, sid: Any) -> None: ...
    def to_app(self, mt: bytes, fields: list, sid: Any) -> None: ...

    def from_app(self, msg: Any, sid: Any) -> None:
        self.delivered.append((self.epoch, msg[11]))

    epoch = 0


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.app = Recorder()
        self.store = MemoryStore()
        self.session = Session(SID, SessionConfig(initiator=False), self.store, app=self.app,
                               clock=lambda: self.now)
        self.out: list[Any] = []
        self.peer_next = 1          # the next MsgSeqNum the peer uses
        self.sent: dict[int, bytes | None] = {}  # peer seq -> ClOrdID (None: session message)
        self.epoch = 0
        self.counter = 0
        self.last = (1, 1)
        self.gaps: list[tuple[int, int]] = []  # (expected, received) seen while logged on
        self.requests: list[Any] = []  # every ResendRequest the session sent
        self.sender_last = 0  # MsgSeqNum of the session's last new (not resent) message
        self.sender_backwards: list[tuple[int, int]] = []
        self.our_orders = 0

    # ---- the peer

    def _msg(self, mt: str, seq: int, body: list[tuple[int, Any]], possdup: bool = False) -> Any:
        hdr: list[tuple[int, Any]] = [(34, seq)]
        if possdup:
            hdr.append((43, "Y"))
        hdr += [(49, "GW"), (52, utc_timestamp(int(self.now * 1e9)))]
        if possdup:
            hdr.append((122, utc_timestamp(int((self.now - 1) * 1e9))))
        hdr.append((56, "HUB"))
        return parse(encode("FIX.4.4", mt, hdr + body))

    def _feed(self, msg: Any) -> None:
        expected = self.store.next_target_seq
        logged_on = self.session.is_logged_on
        self.session.receive_message(msg)
        self.now += 0.01
        # A gap on a session that stays up must be asked for (dropping the connection is
        # the other lawful answer: the next Logon finds the gap again).
        if logged_on and self.session.is_connected and msg.seq_num > expected and msg.msg_type != b"4":
            self.gaps.append((expected, msg.seq_num))

    def _connect(self) -> None:
        if not self.session.is_connected:
            self.session.connected(self._written, lambda: None)

    def _written(self, raw: bytes) -> None:
        msg = parse(raw)
        self.out.append(msg)
        if msg.msg_type == b"2":
            self.requests.append(msg)
        if msg.get(43) != b"Y":  # a new message, not a resend or a gap fill
            if msg.seq_num <= self.sender_last and not (msg.msg_type == b"A" and msg.get(141) == b"Y"):
                self.sender_backwards.append((self.sender_last, msg.seq_num))
            self.sender_last = msg.seq_num

    # ---- rules

    @rule(gap=st.integers(0, 3), reset=st.booleans())
    def logon(self, gap: int, reset: bool) -> None:
        """A Logon: on a fresh connection, or out of turn on a logged-on one."""
        self._connect()
        if reset:
            self.peer_next = 1
            self.sent.clear()
            self.epoch += 1
            self.app.epoch = self.epoch
            gap = 0
        seq = self.peer_next + gap
        body: list[tuple[int, Any]] = [(98, 0), (108, 30)] + ([(141, "Y")] if reset else [])
        self._feed(self._msg("A", seq, body))
        if reset:  # the peer asked for a reset: numbers may start again
            self.last = (self.store.next_sender_seq, self.store.next_target_seq)
        self.sent[seq] = None
        self.peer_next = seq + 1

    @precondition(lambda self: self.session.is_connected)
    @rule(gap=st.integers(0, 3))
    def application(self, gap: int) -> None:
        self.counter += 1
        seq = self.peer_next + gap
        cl = b"C%d" % self.counter
        self.sent[seq] = cl
        self.peer_next = seq + 1
        self._feed(self._msg("D", seq, [(11, cl), (55, "005930"), (54, "1"), (38, 1), (40, "1")]))

    @precondition(lambda self: self.session.is_connected)
    @rule()
    def heartbeat(self) -> None:
        seq = self.peer_next
        self.sent[seq] = None
        self.peer_next = seq + 1
        self._feed(self._msg("0", seq, []))

    @precondition(lambda self: self.session.is_connected)
    @rule(gap_fill=st.booleans())
    def answer_resend_requests(self, gap_fill: bool) -> None:
        """Answer every ResendRequest the session sent: resends (PossDup) or one gap fill."""
        requests = [m for m in self.out if m.msg_type == b"2"]
        self.out = [m for m in self.out if m.msg_type != b"2"]
        for rr in requests:
            begin, end = int(rr[7]), int(rr[16])
            end = self.peer_next - 1 if end == 0 else min(end, self.peer_next - 1)
            if gap_fill:
                self._feed(self._msg("4", begin, [(36, end + 1), (123, "Y")], possdup=True))
                continue
            seq = begin
            while seq <= end and self.session.is_connected:
                cl = self.sent.get(seq)
                if cl is None:
                    nxt = seq + 1
                    while nxt <= end and self.sent.get(nxt) is None:
                        nxt += 1
                    self._feed(self._msg("4", seq, [(36, nxt), (123, "Y")], possdup=True))
                    seq = nxt
                else:
                    self._feed(self._msg("D", seq, [(11, cl), (55, "005930"), (54, "1"), (38, 1), (40, "1")],
                                         possdup=True))
                    seq += 1

    @precondition(lambda self: self.session.is_connected and any(v for v in self.sent.values()))
    @rule(data=st.data())
    def duplicate(self, data: Any) -> None:
        """An application message sent again with PossDupFlag=Y (a delivered one must not be redelivered)."""
        seq = data.draw(st.sampled_from(sorted(s for s, v in self.sent.items() if v)))
        self._feed(self._msg("D", seq, [(11, self.sent[seq]), (55, "005930"), (54, "1"), (38, 1), (40, "1")],
                             possdup=True))

    @rule()
    def session_sends(self) -> None:
        """The application sends (stored even while disconnected, as QuickFIX does)."""
        self.our_orders += 1
        self.session.send("8", [(37, f"O{self.our_orders}"), (11, f"R{self.our_orders}"), (17, "E"),
                                (150, "0"), (39, "0"), (55, "005930"), (54, "1"), (151, 1), (14, 0), (6, 0)])

    @precondition(lambda self: self.session.is_logged_on)
    @rule(back=st.integers(0, 6), chunk=st.booleans())
    def peer_asks_for_a_resend(self, back: int, chunk: bool) -> None:
        """The peer asks for our messages again: every number in the range comes back once,
        as a resend (PossDupFlag=Y) or inside a gap fill, in order."""
        top = self.store.next_sender_seq - 1
        begin = max(1, top - back)
        end = min(top, begin + 2) if chunk else 0
        seq = self.peer_next
        self.sent[seq] = None
        self.peer_next = seq + 1
        before = len(self.out)
        self._feed(self._msg("2", seq, [(7, begin), (16, end)]))
        if not self.session.is_connected:
            return
        want = end or top
        covered = begin
        for m in self.out[before:]:
            if m.get(43) != b"Y":
                continue
            assert m.seq_num == covered, (covered, m.raw)
            covered = int(m[36]) if m.msg_type == b"4" else covered + 1
        assert covered == want + 1 or want < begin, (begin, want, covered)

    @precondition(lambda self: self.session.is_connected)
    @rule(reset_mode=st.booleans())
    def peer_logs_out_or_resets(self, reset_mode: bool) -> None:
        """A Logout, or a SequenceReset-Reset (not a gap fill) moving the peer's numbers on."""
        seq = self.peer_next
        if reset_mode:
            new = seq + 3
            self._feed(self._msg("4", seq, [(36, new)]))
            for k in range(seq, new):
                self.sent[k] = None
            self.peer_next = new
        else:
            self.sent[seq] = None
            self.peer_next = seq + 1
            self._feed(self._msg("5", seq, []))

    @rule()
    def drop_connection(self) -> None:
        self.session.disconnected()

    @rule()
    def tick(self) -> None:
        self.now += 5
        self.session.timer()

    # ---- invariants

    @invariant()
    def numbers_never_go_backwards(self) -> None:
        now = (self.store.next_sender_seq, self.store.next_target_seq)
        assert now[0] >= self.last[0] and now[1] >= self.last[1], (self.last, now)
        self.last = now

    @invariant()
    def nothing_delivered_twice_or_out_of_order(self) -> None:
        assert len(set(self.app.delivered)) == len(self.app.delivered), self.app.delivered
        by_epoch: dict[int, list[int]] = {}
        for epoch, cl in self.app.delivered:
            by_epoch.setdefault(epoch, []).append(int(cl[1:]))
        for ids in by_epoch.values():
            assert ids == sorted(ids), ids

    @invariant()
    def our_numbers_never_go_backwards(self) -> None:
        assert not self.sender_backwards, self.sender_backwards

    @invariant()
    def every_gap_is_requested(self) -> None:
        for expected, _received in self.gaps:
            asked = [m for m in self.requests if int(m[7]) <= expected]
            assert asked, f"gap from {expected} never requested"
        self.gaps.clear()


def _bounds() -> settings:
    return settings(max_examples=int(os.environ.get("FASTFIX_SESSION_FUZZ_EXAMPLES", "150")),
                    stateful_step_count=int(os.environ.get("FASTFIX_SESSION_FUZZ_STEPS", "40")),
                    deadline=None, suppress_health_check=[HealthCheck.too_slow])


SessionMachine.TestCase.settings = _bounds()
test_session_state_machine = SessionMachine.TestCase


def test_reset_logon_forgets_messages_queued_before_it() -> None:
    """Found by the machine: a message queued (too high) before a Logon with
    ResetSeqNumFlag=Y was later delivered as if it belonged to the new numbering."""
    m = SessionMachine()
    m.logon(gap=1, reset=False)        # seq 2 while 1 is expected: a gap
    m.application(gap=1)               # C1 as seq 4: queued
    m.logon(gap=0, reset=True)         # the peer starts again at 1
    m.application(gap=0)               # C2 as seq 2
    m.application(gap=0)               # C3 as seq 3
    m.application(gap=0)               # C4 as seq 4 (the stale C1 held that number)
    assert [cl for _, cl in m.app.delivered] == [b"C2", b"C3", b"C4"]
    m.nothing_delivered_twice_or_out_of_order()
    m.numbers_never_go_backwards()
