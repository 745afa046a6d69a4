"""Session.send_body / engine.send_bodies: pre-encoded bodies go out byte for byte as send() would write them."""

from __future__ import annotations

import asyncio
from typing import Any

from fastfix.codec import parse
from fastfix.engine import Acceptor, Application, Initiator
from fastfix.session import Session, SessionConfig
from fastfix.settings import SessionID, SessionSettings
from fastfix.store import MemoryStore

BODY_FIELDS = [(11, b"c:1"), (21, b"1"), (55, b"005930"), (54, b"1"), (60, b"20240102-09:00:00.000"),
               (38, b"10"), (40, b"2"), (44, b"70000")]
BODY = b"".join(b"%d=%s\x01" % f for f in BODY_FIELDS)


class _Veto(Application):
    def __init__(self) -> None:
        self.seen: list[list[tuple[int, Any]]] = []

    def to_app(self, msg_type: bytes, fields: list, session_id: Any) -> None:
        self.seen.append(list(fields))
        fields.append((58, b"hooked"))


def _session(app: Any, **cfg: Any) -> tuple[Session, list[bytes]]:
    s = Session(SessionID("FIX.4.4", "GW", "HUB"), SessionConfig(initiator=True, heartbeat_interval=30, **cfg),
                MemoryStore(), app=app, clock=lambda: 1_700_000_000.0)
    out: list[bytes] = []
    s.connected(out.append, close=lambda: None)
    s.received_logon = True  # the Logon answer is not what these tests are about
    return s, out


def test_send_body_matches_send() -> None:
    a, out_a = _session(Application())
    b, out_b = _session(Application())
    header = [(128, "BRKA"), (97, "Y"), (34, 999), (52, b"x")]  # 34/52 are the session's own
    assert a.send("D", header + BODY_FIELDS) == b.send_body("D", BODY, header) == 2
    assert out_a[-1] == out_b[-1]
    msg = parse(out_b[-1])
    assert (msg[128], msg[97], msg.seq_num, msg[11]) == (b"BRKA", b"Y", 2, b"c:1")
    assert b.store.get_range(2, 2) == [(2, out_b[-1])]


def test_send_body_with_sub_ids_sorts_the_header() -> None:
    a, out_a = _session(Application(), sender_sub_id="DESK", target_sub_id="X")
    b, out_b = _session(Application(), sender_sub_id="DESK", target_sub_id="X")
    a.send("D", [(128, "BRKA")] + BODY_FIELDS)
    b.send_body("D", BODY, [(128, "BRKA")])
    assert out_a[-1] == out_b[-1]
    assert [t for t, _ in parse(out_b[-1]).fields()][:9] == [8, 9, 35, 34, 49, 50, 52, 56, 57]


def test_send_body_gives_to_app_the_fields() -> None:
    app = _Veto()
    s, out = _session(app)
    s.send_body("D", BODY, [(128, "BRKA")])
    assert app.seen[-1] == [(128, "BRKA")] + BODY_FIELDS
    assert parse(out[-1])[58] == b"hooked"


def test_send_body_while_logged_out_is_stored_not_written() -> None:
    s, out = _session(Application())
    s.received_logon = False
    n = len(out)
    seq = s.send_body("D", BODY)
    assert len(out) == n
    stored = parse(s.store.get_range(seq, seq)[0][1])  # parse() checks BodyLength and CheckSum
    assert (stored.seq_num, stored[11]) == (seq, b"c:1")


def test_engine_send_bodies_one_write() -> None:
    class Hub(Application):
        def __init__(self) -> None:
            self.got: list[bytes] = []
            self.done = asyncio.Event()

        def from_app(self, msg: Any, session_id: Any) -> None:
            self.got.append(msg[11])
            if len(self.got) == 3:
                self.done.set()

    async def main() -> None:
        hub = Hub()
        acc = Acceptor(SessionSettings.from_dict(
            [{"SenderCompID": "HUB", "TargetCompID": "GW"}],
            default={"ConnectionType": "acceptor", "BeginString": "FIX.4.4", "SocketAcceptPort": 0,
                     "SocketAcceptAddress": "127.0.0.1"}), hub)
        await acc.start()
        ini = Initiator(SessionSettings.from_dict(
            [{"SenderCompID": "GW", "TargetCompID": "HUB"}],
            default={"ConnectionType": "initiator", "BeginString": "FIX.4.4", "HeartBtInt": 30,
                     "SocketConnectHost": "127.0.0.1", "SocketConnectPort": acc.port}), Application())
        try:
            async with ini:
                sid = next(iter(ini.sessions()))
                await ini.wait_logged_on(sid, timeout=5)
                assert not ini.write_paused(sid)
                await ini.writable(sid)
                conn = ini._conn_of[ini.session(sid)]
                writes: list[int] = []
                real = conn.transport.writelines  # type: ignore[union-attr]

                def counting(data: Any) -> None:
                    writes.append(len(data))
                    real(data)

                conn.transport.writelines = counting  # type: ignore[union-attr,method-assign]
                bodies = [("D", BODY.replace(b"c:1", b"c:%d" % i), [(128, "BRKA")]) for i in range(3)]
                seqs = ini.send_bodies(sid, bodies)
                assert seqs == [2, 3, 4] and writes == [3]
                await asyncio.wait_for(hub.done.wait(), 5)
                assert hub.got == [b"c:0", b"c:1", b"c:2"]
        finally:
            await acc.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
