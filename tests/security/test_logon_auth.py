"""A FIX acceptor session is not authenticated by its CompIDs alone.

While the real counterparty (GATEWAY) is away, an impersonator who reaches the
acceptor and logs on as GATEWAY is refused with a Logout saying why, whatever it
tries (no password, a wrong one, a sequence reset, a ResendRequest right behind the
Logon, a connection from another address), and the session is left exactly as it
was: same sequence numbers, nothing resent, no logon seen by the application.
The real counterparty then logs on as usual and its messages flow.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fastfix.auth import hash_password, verify_password
from fastfix.codec import Tokenizer, encode, utc_timestamp
from fastfix.engine import Acceptor, Application, Initiator
from fastfix.errors import ConfigError
from fastfix.settings import SessionID, SessionSettings

SECRET = "gateway-fix-secret"
HUB_SIDE = SessionID("FIX.4.4", "HUB", "GATEWAY")
GW_SIDE = SessionID("FIX.4.4", "GATEWAY", "HUB")
_HASH = hash_password(SECRET)  # once: the slow hash is the point


class Hub(Application):
    """Answers every order with an ExecutionReport (stored: what a resend would replay)."""

    def __init__(self) -> None:
        self.logons = 0

    def on_logon(self, session_id: Any) -> None:
        self.logons += 1

    def from_app(self, msg: Any, session_id: Any) -> None:
        self.send(session_id, "8", [(37, "O1"), (11, msg[11]), (17, "E1"), (150, "0"), (39, "0"),
                                    (55, msg[55]), (54, msg[54]), (151, 10), (14, 0), (6, 0)])


class Gateway(Application):
    def __init__(self) -> None:
        self.reports: asyncio.Queue[Any] = asyncio.Queue()

    def from_app(self, msg: Any, session_id: Any) -> None:
        self.reports.put_nowait(msg)


def hub_settings(tmp: Path, **extra: str) -> SessionSettings:
    keys = "".join(f"{k}={v}\n" for k, v in extra.items())
    return SessionSettings.from_string(f"""
[DEFAULT]
ConnectionType=acceptor
SocketAcceptPort=0
SocketAcceptAddress=127.0.0.1
MessageStore=file
FileStorePath={tmp / 'hub-store'}
{keys}[SESSION]
BeginString=FIX.4.4
SenderCompID=HUB
TargetCompID=GATEWAY
""")


def gateway_settings(tmp: Path, port: int, **extra: str) -> SessionSettings:
    keys = "".join(f"{k}={v}\n" for k, v in extra.items())
    return SessionSettings.from_string(f"""
[DEFAULT]
ConnectionType=initiator
HeartBtInt=30
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
ReconnectInterval=1
MessageStore=file
FileStorePath={tmp / 'gw-store'}
{keys}[SESSION]
BeginString=FIX.4.4
SenderCompID=GATEWAY
TargetCompID=HUB
""")


async def owner_round_trip(tmp: Path, port: int, clordid: str, **extra: str) -> None:
    """The real GATEWAY logs on, sends an order, gets its report, logs out."""
    app = Gateway()
    gw = Initiator(gateway_settings(tmp, port, **extra), app)
    await gw.start()
    try:
        await gw.wait_logged_on(GW_SIDE, timeout=15)
        await gw.send(GW_SIDE, "D", [(11, clordid), (21, "1"), (55, "005930"), (54, "1"), (38, 10),
                                     (40, "1"), (60, utc_timestamp())])
        report = await asyncio.wait_for(app.reports.get(), 10)
        assert report[11] == clordid.encode()
    finally:
        await gw.stop()


def logon(seq: int = 1, password: str | None = None, reset: bool = False, username: str | None = None,
          sender: str = "GATEWAY") -> bytes:
    body: list[tuple[int, Any]] = [(98, 0), (108, 30)]
    if reset:
        body.append((141, "Y"))
    if username is not None:
        body.append((553, username))
    if password is not None:
        body.append((554, password))
    return encode("FIX.4.4", "A", [(34, seq), (49, sender), (52, utc_timestamp()), (56, "HUB"), *body])


def resend_request(seq: int) -> bytes:
    return encode("FIX.4.4", "2", [(34, seq), (49, "GATEWAY"), (52, utc_timestamp()), (56, "HUB"),
                                   (7, 1), (16, 0)])


async def impersonate(port: int, data: bytes, local: str = "127.0.0.1", ssl: Any = None) -> list[Any]:
    """Send ``data`` as a fresh connection; every message received until the acceptor closes."""
    r, w = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, local_addr=(local, 0), ssl=ssl, server_hostname="localhost" if ssl else None), 10)
    tok, got = Tokenizer(), []
    try:
        w.write(data)
        for _ in range(100):
            chunk = await asyncio.wait_for(r.read(65536), 10)
            if not chunk:
                break
            got += tok.feed(chunk)
    except (ConnectionResetError, OSError):
        pass
    finally:
        w.close()
    return got


def assert_refused(got: list[Any], reason: str) -> None:
    assert [m.msg_type for m in got] == [b"5"], [m.raw for m in got]
    text = got[0][58].decode()
    assert text.startswith("Logon refused: ") and reason in text, text


async def _scenario(tmp: Path, hub_extra: dict[str, str], attempts: list[tuple[bytes, str, str]],
                    owner_extra: dict[str, str]) -> None:
    hub_app = Hub()
    hub = Acceptor(hub_settings(tmp, **hub_extra), hub_app)
    await hub.start()
    try:
        await owner_round_trip(tmp, hub.port, "REAL-1", **owner_extra)
        session = hub.session(HUB_SIDE)
        before = (session.next_sender_seq, session.next_target_seq, session.store.creation_time)
        assert before[0] > 2 and before[1] > 2
        logons = hub_app.logons
        for data, local, reason in attempts:  # the owner is away
            got = await impersonate(hub.port, data, local)
            assert_refused(got, reason)
            assert not session.is_connected and not session.is_logged_on
            assert (session.next_sender_seq, session.next_target_seq, session.store.creation_time) == before
            assert hub_app.logons == logons
        # the owner is not locked out: it logs on, continues its numbers, trades
        await owner_round_trip(tmp, hub.port, "REAL-2", **owner_extra)
        assert hub_app.logons == logons + 1
        assert session.next_target_seq > before[1]
    finally:
        await hub.stop()


def test_password_refuses_an_impersonator_and_keeps_the_session(tmp_path: Path) -> None:
    wrong = "invalid Username or Password"
    attempts = [
        (logon(), "127.0.0.1", wrong),
        (logon(username="gw"), "127.0.0.1", "Password (554) required"),
        (logon(username="gw", password="guess"), "127.0.0.1", wrong),
        (logon(username="gw", password=SECRET.upper(), reset=True), "127.0.0.1", wrong),  # no reset
        (logon(username="gw", password="guess") + resend_request(2), "127.0.0.1", wrong),  # no resend
        (logon(seq=1000, username="gw", password="guess"), "127.0.0.1", wrong),
        (logon(password=SECRET, username="someone"), "127.0.0.1", wrong),
    ]
    asyncio.run(asyncio.wait_for(_scenario(
        tmp_path, {"PasswordHash": _HASH, "Username": "gw"}, attempts, {"Password": SECRET, "Username": "gw"}), 120))


def test_password_from_environment_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_FIX_PASSWORD", SECRET)
    attempts = [(logon(password="guess"), "127.0.0.1", "invalid Username or Password")]
    asyncio.run(asyncio.wait_for(_scenario(tmp_path, {"PasswordHash": _HASH}, attempts,
                                           {"PasswordEnv": "GW_FIX_PASSWORD"}), 120))
    (tmp_path / "gw.password").write_text(SECRET + "\n")
    attempts = [(logon(password=SECRET + "x"), "127.0.0.1", "invalid Username or Password")]
    asyncio.run(asyncio.wait_for(_scenario(tmp_path, {"PasswordHash": _HASH}, attempts,
                                           {"PasswordFile": str(tmp_path / "gw.password")}), 120))


def test_allowed_remote_addresses_refuse_another_source(tmp_path: Path) -> None:
    # Linux answers on the whole 127.0.0.0/8: 127.0.0.2 is another machine as far as the hub knows.
    attempts = [(logon(password=SECRET), "127.0.0.2", "connection from 127.0.0.2 is not allowed")]
    asyncio.run(asyncio.wait_for(_scenario(
        tmp_path, {"PasswordHash": _HASH, "AllowedRemoteAddresses": "127.0.0.1, 10.1.0.0/16"},
        attempts, {"Password": SECRET}), 120))


def test_sans_io_session_refuses_without_state_change() -> None:
    """The check lives in the session too: an engine of one's own gets it as well."""
    from fastfix.auth import Peer
    from fastfix.codec import parse
    from fastfix.session import Session, SessionConfig
    from fastfix.store import MemoryStore

    ss = SessionSettings.from_dict([{"SenderCompID": "HUB", "TargetCompID": "GATEWAY"}], default={
        "ConnectionType": "acceptor", "BeginString": "FIX.4.4", "SocketAcceptPort": 0,
        "PasswordHash": _HASH, "AllowedRemoteAddresses": "127.0.0.1", "ResetOnDisconnect": True})
    sid, s = next(iter(ss.sessions().items()))
    store = MemoryStore()
    store.set_next_sender_seq(7)
    store.set_next_target_seq(9)
    session = Session(sid, SessionConfig.from_settings(s), store)
    for msg, peer, reason in [(logon(seq=9, password="guess", reset=True), Peer("127.0.0.1"), "invalid"),
                              (logon(seq=9, password=SECRET), Peer("192.0.2.7"), "not allowed")]:
        out: list[bytes] = []
        closed: list[bool] = []
        session.connected(out.append, lambda c=closed: c.append(True), peer)
        session.receive_message(parse(msg))
        assert closed == [True] and len(out) == 1 and b"35=5\x01" in out[0] and reason.encode() in out[0]
        assert b"34=7\x01" in out[0]  # the next number, not taken
        assert (store.next_sender_seq, store.next_target_seq) == (7, 9) and not session.is_logged_on
    out = []
    session.connected(out.append, lambda: None, Peer("127.0.0.1"))
    session.receive_message(parse(logon(seq=9, password=SECRET)))
    assert session.is_logged_on and (store.next_sender_seq, store.next_target_seq) == (8, 10)


def test_settings_never_hold_a_clear_password_on_an_acceptor(tmp_path: Path) -> None:
    base = {"ConnectionType": "acceptor", "BeginString": "FIX.4.4", "SocketAcceptPort": 0}
    sess = [{"SenderCompID": "HUB", "TargetCompID": "GATEWAY"}]
    with pytest.raises(ConfigError, match="acceptor checks PasswordHash"):
        SessionSettings.from_dict(sess, default=base | {"Password": "x"})
    with pytest.raises(ConfigError, match="PasswordHash.*scheme"):
        SessionSettings.from_dict(sess, default=base | {"PasswordHash": "secret"})
    with pytest.raises(ConfigError, match="AllowedRemoteAddresses"):
        SessionSettings.from_dict(sess, default=base | {"AllowedRemoteAddresses": "127.0.0.1,"})
    with pytest.raises(ConfigError, match="SSLClientCertificateFingerprint"):
        SessionSettings.from_dict(sess, default=base | {"SSLClientCertificateFingerprint": "abc"})
    ini = {"ConnectionType": "initiator", "BeginString": "FIX.4.4", "HeartBtInt": 30,
           "SocketConnectHost": "127.0.0.1", "SocketConnectPort": 1}
    with pytest.raises(ConfigError, match="PasswordEnv and Password exclude each other"):
        SessionSettings.from_dict(sess, default=ini | {"Password": "x", "PasswordEnv": "X"})
    s = next(iter(SessionSettings.from_dict(sess, default=ini | {"PasswordEnv": "FASTFIX_NOT_SET_X"})
                  .sessions().values()))
    with pytest.raises(ConfigError, match="FASTFIX_NOT_SET_X is not set"):
        s.password()


def test_hash_cli(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "fastfix.auth", "--scheme", "pbkdf2_sha256"], input="pw-123\n",
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    key, _, value = out.partition("=")
    assert key == "PasswordHash" and value.startswith("pbkdf2_sha256$600000$")
    assert verify_password("pw-123", value) and not verify_password("pw-124", value)
    assert "pw-123" not in out
    # the hash is a valid setting
    SessionSettings.from_dict([{"SenderCompID": "HUB", "TargetCompID": "GATEWAY"}], default={
        "ConnectionType": "acceptor", "BeginString": "FIX.4.4", "SocketAcceptPort": 0, "PasswordHash": value})


def test_password_never_reaches_the_message_log(tmp_path: Path) -> None:
    async def go() -> None:
        hub = Acceptor(hub_settings(tmp_path, PasswordHash=_HASH, FileLogPath=str(tmp_path / "hub-log")), Hub())
        await hub.start()
        try:
            await owner_round_trip(tmp_path, hub.port, "REAL-1", Password=SECRET,
                                   FileLogPath=str(tmp_path / "gw-log"))
            assert_refused(await impersonate(hub.port, logon(password="guess-" + SECRET)), "invalid")
        finally:
            await hub.stop()

    asyncio.run(asyncio.wait_for(go(), 60))
    logs = b"".join(p.read_bytes() for p in tmp_path.glob("*-log/*.log"))
    assert b"554=***" in logs and b"35=A" in logs
    assert SECRET.encode() not in logs
    events = b"".join(p.read_bytes() for p in tmp_path.glob("hub-log/*.event.log"))
    assert b"Logon refused from 127.0.0.1: invalid Username or Password" in events


def test_password_is_hashed_off_the_event_loop_and_what_follows_the_logon_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The slow hash runs in a worker thread (other sessions go on meanwhile); an order
    written right behind the Logon waits for the answer and is then processed."""
    import threading

    import fastfix.auth

    threads: list[str] = []
    real = fastfix.auth.verify_password

    def spy(pw: bytes, encoded: str) -> bool:
        threads.append(threading.current_thread().name)
        return real(pw, encoded)

    monkeypatch.setattr(fastfix.auth, "verify_password", spy)

    async def go() -> list[Any]:
        hub = Acceptor(hub_settings(tmp_path, PasswordHash=_HASH), Hub())
        await hub.start()
        try:
            order = encode("FIX.4.4", "D", [(34, 2), (49, "GATEWAY"), (52, utc_timestamp()), (56, "HUB"),
                                            (11, "BEHIND-1"), (21, "1"), (55, "005930"), (54, "1"), (38, 10),
                                            (40, "1"), (60, utc_timestamp())])
            r, w = await asyncio.open_connection("127.0.0.1", hub.port)
            tok, got = Tokenizer(), []
            w.write(logon(password=SECRET) + order)
            while len(got) < 2:
                chunk = await asyncio.wait_for(r.read(65536), 10)
                assert chunk, got
                got += tok.feed(chunk)
            w.close()
            return got
        finally:
            await hub.stop()

    got = asyncio.run(asyncio.wait_for(go(), 60))
    assert [m.msg_type for m in got[:2]] == [b"A", b"8"] and got[1][11] == b"BEHIND-1"
    assert threads and threading.main_thread().name not in threads


def test_certificate_checks_need_required_client_certificates() -> None:
    base = {"ConnectionType": "acceptor", "BeginString": "FIX.4.4", "SocketAcceptPort": 0}
    sess = [{"SenderCompID": "HUB", "TargetCompID": "GATEWAY"}]
    with pytest.raises(ConfigError, match="SSLClientCertificateFingerprint: checks the client certificate"):
        SessionSettings.from_dict(sess, default=base | {"SSLClientCertificateFingerprint": "ab" * 32})
    with pytest.raises(ConfigError, match="SSLCheckClientCertificateCompID: checks the client certificate"):
        SessionSettings.from_dict(sess, default=base | {"SSLCheckClientCertificateCompID": "Y"})
