"""Unit tests of the sans-I/O session state machine: bytes in, bytes out, fake clock."""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
from typing import Any

import pytest

from fastfix.codec import Message, Tokenizer, encode, parse
from fastfix.session import (
    BusinessReject,
    DoNotSend,
    RejectLogon,
    Session,
    SessionConfig,
    UnsupportedMessageType,
    parse_utc,
)
from fastfix.settings import SessionID, SessionSchedule
from fastfix.store import MemoryStore

T0 = calendar.timegm((2024, 3, 4, 9, 0, 0))  # a Monday, 09:00:00 UTC


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


class Recorder:
    """Application hooks that record calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.reply: Any = None

    def on_create(self, sid: Any) -> None:
        self.calls.append(("create", sid))

    def on_logon(self, sid: Any) -> None:
        self.calls.append(("logon", sid))

    def on_logout(self, sid: Any) -> None:
        self.calls.append(("logout", sid))

    def from_admin(self, msg: Message, sid: Any) -> None:
        self.calls.append(("from_admin", msg.msg_type))

    def from_app(self, msg: Message, sid: Any) -> Any:
        self.calls.append(("from_app", msg.msg_type))
        if self.reply is not None:
            return self.reply(msg)
        return None

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class Harness:
    """A session wired to lists instead of a socket, plus a peer that writes messages."""

    def __init__(self, initiator: bool = False, app: Any = None, begin: str = "FIX.4.4",
                 dictionary: Any = None, **cfg: Any) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        self.app = app if app is not None else Recorder()
        self.sid = SessionID(begin, "ME", "YOU")
        self.begin = begin
        cfg.setdefault("heartbeat_interval", 30)
        self.session = Session(self.sid, SessionConfig(initiator=initiator, **cfg), self.store,
                               app=self.app, dictionary=dictionary, clock=self.clock)
        self.out: list[bytes] = []
        self.closed = 0
        self.peer_seq = 1

    def connect(self) -> None:
        self.session.connected(self.out.append, self._close)

    def _close(self) -> None:
        self.closed += 1

    def ts(self, delta: float = 0.0) -> bytes:
        t = self.clock() + delta
        return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3].encode()

    def msg(self, msg_type: str, body: list[tuple[int, Any]] = (), seq: int | None = None,
            header: list[tuple[int, Any]] = (), sender: str = "YOU", target: str = "ME",
            begin: str | None = None) -> Message:
        if seq is None:
            seq = self.peer_seq
            self.peer_seq += 1
        fields = [(34, seq), (49, sender), (52, self.ts()), (56, target), *header, *body]
        return parse(encode(begin or self.begin, msg_type, fields))

    def feed(self, msg_type: str, body: list[tuple[int, Any]] = (), **kw: Any) -> list[Message]:
        """Deliver one peer message; return what the session wrote in answer."""
        start = len(self.out)
        self.session.receive(self.msg(msg_type, body, **kw))
        return [parse(b) for b in self.out[start:]]

    def tick(self, seconds: float) -> list[Message]:
        start = len(self.out)
        self.clock.advance(seconds)
        self.session.timer()
        return [parse(b) for b in self.out[start:]]

    def logon(self, hb: int = 30, **kw: Any) -> list[Message]:
        self.connect()
        return self.feed("A", [(98, 0), (108, hb)], **kw)


def types(msgs: list[Message]) -> list[bytes]:
    return [m.msg_type for m in msgs]


# --------------------------------------------------------------------------- logon


def test_acceptor_answers_logon_and_calls_on_logon() -> None:
    h = Harness()
    out = h.logon(hb=15)
    assert types(out) == [b"A"]
    a = out[0]
    assert (a[34], a[49], a[56], a[98], a[108]) == (b"1", b"ME", b"YOU", b"0", b"15")
    assert [t for t, _ in a.fields()] == [8, 9, 35, 34, 49, 52, 56, 98, 108, 10]
    assert h.session.is_logged_on and h.session.heartbeat_interval == 15
    assert h.app.names() == ["create", "from_admin", "logon"]
    assert h.store.next_target_seq == 2 and h.store.next_sender_seq == 2


def test_initiator_sends_logon_with_reset_flag_and_completes() -> None:
    h = Harness(initiator=True, reset_on_logon=True, heartbeat_interval=20)
    h.connect()
    logon = parse(h.out[0])
    assert logon.msg_type == b"A" and logon[108] == b"20" and logon[141] == b"Y"
    assert not h.session.is_logged_on
    assert types(h.feed("A", [(98, 0), (108, 20), (141, "Y")])) == []
    assert h.session.is_logged_on and "logon" in h.app.names()


def test_initiator_logon_timeout_disconnects() -> None:
    h = Harness(initiator=True, logon_timeout=10)
    h.connect()
    h.tick(9)
    assert h.closed == 0
    h.tick(1.5)
    assert h.closed == 1 and not h.session.is_connected


def test_logon_with_bad_sending_time_disconnects_silently() -> None:
    h = Harness()
    h.connect()
    h.clock.advance(-500)
    m = h.msg("A", [(98, 0), (108, 30)])
    h.clock.advance(500)
    h.session.receive(m)
    assert h.out == [] and h.closed == 1


def test_garbled_before_logon_disconnects_after_logon_is_ignored() -> None:
    h = Harness()
    h.connect()
    h.session.receive_garbled("bad checksum", b"8=FIX.4.4\x01")
    assert h.closed == 1
    h2 = Harness()
    h2.logon()
    h2.session.receive_garbled("bad checksum", b"8=FIX.4.4\x01")
    assert h2.closed == 0 and h2.session.is_logged_on


def test_reject_logon_from_admin_hook_sends_logout_with_text() -> None:
    class Refuse(Recorder):
        def from_admin(self, msg: Message, sid: Any) -> None:
            if msg.msg_type == b"A":
                raise RejectLogon("bad password")

    h = Harness(app=Refuse())
    out = h.logon()
    assert types(out) == [b"5"] and out[0][58] == b"bad password"
    assert h.closed == 1


def test_next_expected_msg_seq_num_resends_what_the_peer_missed() -> None:
    h = Harness(enable_next_expected_msg_seq_num=True)
    h.logon()
    h.session.send("D", [(11, "a"), (55, "X")])
    h.session.send("D", [(11, "b"), (55, "Y")])
    h.session.disconnect()
    # Reconnect: the peer says it has only seen our messages up to 1.
    h.connect()
    out = h.feed("A", [(98, 0), (108, 30), (789, 2)])
    assert types(out) == [b"A", b"D", b"D"]
    assert out[0][789] == str(h.store.next_target_seq).encode()
    assert [m[34] for m in out[1:]] == [b"2", b"3"] and all(m[43] == b"Y" for m in out[1:])


def test_next_expected_msg_seq_num_too_high_logs_out() -> None:
    h = Harness(enable_next_expected_msg_seq_num=True)
    h.connect()
    out = h.feed("A", [(98, 0), (108, 30), (789, 50)])
    assert types(out) == [b"A", b"5"] and b"NextExpectedMsgSeqNum too high" in out[1][58]
    assert h.closed == 1


# --------------------------------------------------------------------------- heartbeats


def test_heartbeat_then_test_request_then_disconnect() -> None:
    h = Harness()
    h.logon(hb=10)
    assert h.tick(9.5) == []
    out = h.tick(0.5)  # 10 s without sending: heartbeat
    assert types(out) == [b"0"] and 112 not in out[0]
    out = h.tick(2.0)  # 12 s without receiving = 1.2 x HeartBtInt: test request
    assert types(out) == [b"1"] and out[0][112] == b"TEST"
    assert h.tick(8.0) == []  # test request pending: no heartbeat
    assert h.closed == 0
    h.tick(4.5)  # 24.5 s > 2.4 x HeartBtInt
    assert h.closed == 1


def test_answered_test_request_resets_the_counter() -> None:
    h = Harness()
    h.logon(hb=10)
    h.tick(12)
    h.feed("0", [(112, "TEST")])
    out = h.tick(10)
    assert types(out) == [b"0"]
    assert h.closed == 0


def test_test_request_is_answered_with_its_id() -> None:
    h = Harness()
    h.logon()
    out = h.feed("1", [(112, "ping-7")])
    assert types(out) == [b"0"] and out[0][112] == b"ping-7"


# --------------------------------------------------------------------------- sequence numbers


def test_seq_too_high_sends_resend_request_and_processes_queue() -> None:
    h = Harness()
    h.logon()
    out = h.feed("1", [(112, "late")], seq=4)
    assert types(out) == [b"2"] and (out[0][7], out[0][16]) == (b"2", b"0")
    assert h.feed("0", seq=2) == []
    out = h.feed("0", seq=3)  # gap closed: the queued TestRequest 4 is answered now
    assert types(out) == [b"0"] and out[0][112] == b"late"
    assert h.store.next_target_seq == 5


def test_resend_request_chunked() -> None:
    h = Harness(resend_request_chunk_size=2)
    h.logon()
    out = h.feed("0", seq=7)
    assert types(out) == [b"2"] and (out[0][7], out[0][16]) == (b"2", b"3")
    assert h.feed("0", seq=2) == []
    out = h.feed("0", seq=3)
    assert types(out) == [b"2"] and (out[0][7], out[0][16]) == (b"4", b"5")
    h.feed("0", seq=4)
    h.feed("0", seq=5)
    out = h.feed("0", seq=6)
    assert out == []
    assert h.store.next_target_seq == 8


def test_seq_too_low_without_possdup_logs_out_and_disconnects() -> None:
    h = Harness()
    h.logon()
    h.feed("0", seq=2)
    out = h.feed("0", seq=2)
    assert types(out) == [b"5"]
    assert out[0][58] == b"MsgSeqNum too low, expecting 3 but received 2"
    assert h.closed == 1


def test_possdup_too_low_is_ignored_without_orig_sending_time_rejected() -> None:
    h = Harness()
    h.logon()
    h.feed("0", seq=2)
    assert h.feed("0", seq=2, header=[(43, "Y"), (122, h.ts())]) == []
    out = h.feed("0", seq=2, header=[(43, "Y")])
    assert types(out) == [b"3"] and (out[0][371], out[0][373]) == (b"122", b"1")
    assert h.store.next_target_seq == 3 and h.closed == 0


def test_possdup_orig_sending_time_after_sending_time() -> None:
    h = Harness()
    h.logon()
    h.feed("0", seq=2)
    out = h.feed("0", seq=2, header=[(43, "Y"), (122, h.ts(10))])
    assert types(out) == [b"3", b"5"] and out[0][373] == b"10"
    assert out[0][58] == b"SendingTime accuracy problem"


def test_sequence_reset_modes() -> None:
    h = Harness()
    h.logon()
    assert h.feed("4", [(36, 10), (123, "Y")], seq=2) == []
    assert h.store.next_target_seq == 10
    assert h.feed("4", [(36, 20)], seq=0) == []  # reset mode ignores MsgSeqNum
    assert h.store.next_target_seq == 20
    out = h.feed("4", [(36, 5)], seq=0)
    assert types(out) == [b"3"] and out[0][373] == b"5" and 371 not in out[0]
    assert h.store.next_target_seq == 20


def test_gap_fill_too_high_is_queued() -> None:
    h = Harness()
    h.logon()
    out = h.feed("4", [(36, 10), (123, "Y")], seq=5)
    assert types(out) == [b"2"]
    h.feed("0", seq=2)
    h.feed("0", seq=3)
    h.feed("0", seq=4)
    assert h.store.next_target_seq == 10


# --------------------------------------------------------------------------- checks


def test_wrong_comp_id_rejected_then_logout() -> None:
    h = Harness()
    h.logon()
    out = h.feed("D", [(11, "x")], sender="EVIL")
    assert types(out) == [b"3", b"5"]
    assert (out[0][58], out[0][373], out[0][372]) == (b"CompID problem", b"9", b"D")
    h.feed("5")
    assert h.closed == 1


def test_sending_time_out_of_range() -> None:
    h = Harness(max_latency=120)
    h.logon()
    m = h.msg("0")
    h.clock.advance(121)
    start = len(h.out)
    h.session.receive(m)
    out = [parse(b) for b in h.out[start:]]
    assert types(out) == [b"3", b"5"] and out[0][373] == b"10"


def test_check_latency_off_accepts_old_messages() -> None:
    h = Harness(check_latency=False)
    h.logon()
    m = h.msg("0")
    h.clock.advance(3600)
    h.session.receive(m)
    assert h.store.next_target_seq == 3 and h.closed == 0


def test_wrong_begin_string_logs_out() -> None:
    h = Harness()
    h.logon()
    out = h.feed("1", [(112, "x")], begin="FIX.4.1")
    assert types(out) == [b"5"] and out[0][58] == b"Incorrect BeginString"
    assert out[0][8] == b"FIX.4.4"
    h.tick(2.5)  # LogoutTimeout
    assert h.closed == 1


def test_missing_target_comp_id_is_rejected_with_reverse_route() -> None:
    h = Harness()
    h.logon()
    raw = encode("FIX.4.4", "0", [(34, 2), (49, "YOU"), (52, h.ts()), (115, "JCD")])
    start = len(h.out)
    h.session.receive(parse(raw))
    out = [parse(b) for b in h.out[start:]]
    assert types(out) == [b"3"]
    assert out[0][128] == b"JCD" and (out[0][371], out[0][373]) == (b"56", b"1")
    tags = [t for t, _ in out[0].fields()]
    assert tags == [8, 9, 35, 34, 49, 52, 56, 128, 45, 58, 371, 372, 373, 10]


def test_fix42_reject_leaves_out_reasons_above_11() -> None:
    h = Harness(begin="FIX.4.2")
    h.logon()
    m = h.msg("0")
    h.session._generate_reject(m, 13, 40)
    rej = parse(h.out[-1])
    assert rej[371] == b"40" and 373 not in rej


# --------------------------------------------------------------------------- application


def test_app_message_delivered_and_business_reject() -> None:
    h = Harness()
    h.logon()
    h.feed("D", [(11, "a")])
    assert h.app.calls[-1] == ("from_app", b"D")

    def refuse(msg: Message) -> None:
        raise UnsupportedMessageType()

    h.app.reply = refuse
    out = h.feed("8", [(37, "x")], header=[(128, "BRK")])
    assert types(out) == [b"j"]
    j = out[0]
    assert (j[45], j[58], j[372], j[380], j[115]) == (b"3", b"Unsupported Message Type", b"8", b"3", b"BRK")
    assert h.store.next_target_seq == 4


def test_business_reject_with_ref_tag_text() -> None:
    h = Harness()
    h.logon()

    def refuse(msg: Message) -> None:
        raise BusinessReject(5, 55)

    h.app.reply = refuse
    out = h.feed("D", [(11, "a")])
    assert out[0][58] == b"Conditionally Required Field Missing (55)"


def test_send_header_order_and_store() -> None:
    h = Harness(sender_sub_id="DESK")
    h.logon()
    seq = h.session.send("D", [(11, "a"), (128, "BRK"), (55, "X"), (97, "Y")])
    m = parse(h.out[-1])
    assert seq == 2
    assert [t for t, _ in m.fields()] == [8, 9, 35, 34, 49, 50, 52, 56, 97, 128, 11, 55, 10]
    assert h.store.get_range(2, 2)[0][1] == h.out[-1]


def test_send_while_disconnected_is_stored_then_resent() -> None:
    h = Harness()
    h.logon()
    h.session.disconnect()
    n = len(h.out)
    seq = h.session.send("D", [(11, "a")])
    assert seq == 2 and len(h.out) == n and h.store.next_sender_seq == 3
    h.connect()
    h.feed("A", [(98, 0), (108, 30)], seq=2)
    out = h.feed("2", [(7, 1), (16, 0)])
    # Logon 1 and our Logon answer 3 are gap-filled around the stored order 2.
    assert types(out) == [b"4", b"D", b"4"]
    assert (out[0][34], out[0][36], out[0][123], out[0][43]) == (b"1", b"2", b"Y", b"Y")
    assert (out[2][34], out[2][36]) == (b"3", b"4")
    d = out[1]
    assert (d[34], d[43], d[11]) == (b"2", b"Y", b"a")
    assert [t for t, _ in d.fields()][:9] == [8, 9, 35, 34, 43, 49, 52, 56, 122]


def test_resend_gap_fills_admin_and_vetoed_messages() -> None:
    class Veto(Recorder):
        def to_app(self, msg_type: bytes, fields: list, sid: Any) -> None:
            if any(t == 43 for t, _ in fields) and (11, b"b") in fields:
                raise DoNotSend()

    h = Harness(app=Veto())
    h.logon()
    h.feed("1", [(112, "x")])  # our HB 2
    h.session.send("D", [(11, "a")])  # 3
    h.session.send("D", [(11, "b")])  # 4 (vetoed on resend)
    h.feed("1", [(112, "y")])  # our HB 5
    h.session.send("D", [(11, "c")])  # 6
    out = h.feed("2", [(7, 1), (16, 0)])
    got = [(m.msg_type, m[34], m.get(36)) for m in out]
    assert got == [
        (b"4", b"1", b"3"), (b"D", b"3", None), (b"4", b"4", b"6"), (b"D", b"6", None),
    ]  # fmt: skip


def test_to_app_do_not_send_suppresses() -> None:
    class Veto(Recorder):
        def to_app(self, msg_type: bytes, fields: list, sid: Any) -> None:
            raise DoNotSend()

    h = Harness(app=Veto())
    h.logon()
    n = len(h.out)
    assert h.session.send("D", [(11, "a")]) == 0
    assert len(h.out) == n and h.store.next_sender_seq == 2


def test_async_from_app_is_handed_to_spawn() -> None:
    spawned: list[tuple[Any, Any]] = []

    async def handler(msg: Message) -> None:
        raise UnsupportedMessageType()

    h = Harness()
    h.session.spawn = lambda aw, msg: spawned.append((aw, msg))
    h.logon()
    h.app.reply = handler
    h.feed("D", [(11, "a")])
    assert len(spawned) == 1 and h.store.next_target_seq == 3
    aw, msg = spawned[0]
    with pytest.raises(UnsupportedMessageType) as ei:
        asyncio.run(aw)
    h.session.on_async_error(msg, ei.value)
    j = parse(h.out[-1])
    assert j.msg_type == b"j" and j[45] == b"2"
    assert h.store.next_target_seq == 3  # not consumed twice


# --------------------------------------------------------------------------- logout & resets


def test_logout_handshake_and_reset_on_logout() -> None:
    h = Harness(reset_on_logout=True)
    h.logon()
    h.session.send("D", [(11, "a")])
    h.session.logout("bye")
    assert parse(h.out[-1])[58] == b"bye"
    h.feed("5")
    assert h.closed == 1
    assert (h.store.next_sender_seq, h.store.next_target_seq) == (1, 1)
    assert "logout" in h.app.names()


def test_logout_timeout() -> None:
    h = Harness(logout_timeout=2)
    h.logon()
    h.session.logout()
    h.tick(1)
    assert h.closed == 0
    h.tick(1.5)
    assert h.closed == 1


def test_reset_on_disconnect() -> None:
    h = Harness(reset_on_disconnect=True)
    h.logon()
    assert h.store.next_sender_seq == 2
    h.session.disconnected()
    assert (h.store.next_sender_seq, h.store.next_target_seq) == (1, 1)


def test_logon_with_reset_flag_mid_session() -> None:
    h = Harness()
    h.logon()
    for _ in range(3):
        h.feed("0")
    out = h.feed("A", [(98, 0), (108, 30), (141, "Y")], seq=1)
    assert types(out) == [b"A"] and out[0][141] == b"Y" and out[0][34] == b"1"
    assert h.store.next_target_seq == 2


def test_refresh_on_logon_reloads_store() -> None:
    class Counting(MemoryStore):
        refreshed = 0

        def refresh(self) -> None:
            self.refreshed += 1

    h = Harness(refresh_on_logon=True)
    h.store = h.session.store = Counting()
    h.logon()
    assert h.store.refreshed == 1


# --------------------------------------------------------------------------- schedule


def test_schedule_logs_out_at_end_and_resets_in_next_period() -> None:
    sched = SessionSchedule(dt.time(8, 0), dt.time(16, 0))
    h = Harness(schedule=sched)
    h.logon()
    h.feed("0")
    assert h.store.next_target_seq == 3
    h.clock.advance(7 * 3600 + 1)  # 16:00:01: outside the window
    h.session.timer()
    assert parse(h.out[-1]).msg_type == b"5" and h.closed == 1
    # A logon outside the window is refused.
    h.connect()
    h.feed("A", [(98, 0), (108, 30)])
    assert h.closed == 2 and not h.session.is_logged_on
    # Next morning: the store is reset when the timer sees the new period.
    h.clock.advance(16 * 3600)  # 08:00:01 the next day
    h.session.timer()
    assert (h.store.next_sender_seq, h.store.next_target_seq) == (1, 1)


def test_parse_utc() -> None:
    assert parse_utc(b"20240304-09:00:00") == T0
    assert parse_utc(b"20240304-09:00:00.250") == T0 + 0.25
    with pytest.raises(ValueError):
        parse_utc(b"2024-03-04 09:00")


def _frame(body: bytes, begin: bytes = b"FIX.4.4") -> bytes:
    """A correctly framed message around ``body`` (which starts with 35=), whatever its fields."""
    head = b"8=" + begin + b"\x019=%d\x01" % len(body) + body
    return head + b"10=%03d\x01" % (sum(head) % 256)


def test_non_positive_tag_is_rejected_other_garbage_ignored() -> None:
    from fastfix.dictionary import DataDictionary

    h = Harness(dictionary=DataDictionary.load("FIX.4.4"))
    h.logon()
    for bad in (b"0", b"-1"):
        body = b"35=0\x0134=%d\x0149=YOU\x0152=%s\x0156=ME\x01%s=HI\x01" % (h.peer_seq, h.ts(), bad)
        h.peer_seq += 1
        start = len(h.out)
        for item in Tokenizer().feed(_frame(body)):  # the codec parses tags 0 and -1
            h.session.receive(item)
        out = [parse(b) for b in h.out[start:]]
        assert types(out) == [b"3"], bad
        assert (out[0][371], out[0][373], out[0][58]) == (bad, b"0", b"Invalid tag number")
    assert h.store.next_target_seq == h.peer_seq
    n = len(h.out)
    for item in Tokenizer().feed(_frame(b"35=0\x0134=9\x014garbled9=TW\x01")):
        h.session.receive(item)
    assert len(h.out) == n and h.session.is_logged_on


def test_weekday_schedule_refuses_logon_at_the_weekend() -> None:
    sched = SessionSchedule(dt.time(0, 0), dt.time(23, 59, 59), weekdays=frozenset(range(5)))
    h = Harness(schedule=sched)
    h.clock.advance(5 * 86400)  # Saturday
    out = h.logon()
    assert out == [] and h.closed == 1 and not h.session.is_logged_on
    h.clock.advance(2 * 86400)  # Monday
    h.peer_seq = 1
    out = h.logon()
    assert types(out) == [b"A"] and h.session.is_logged_on
