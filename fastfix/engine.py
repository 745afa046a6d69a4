"""The asyncio FIX engine: :class:`Initiator`, :class:`Acceptor` and :class:`Application`.

The protocol logic lives in :class:`fastfix.session.Session` (sans-I/O); this
module moves bytes between it and asyncio transports. The per-message path is a
``Protocol.data_received`` callback: tokenizer -> session -> application hook ->
``send`` -> transport, with no task created per message. Replies produced while
one read is processed go out in one ``writelines`` call, after the store has
been flushed.

Application hooks may be plain methods or coroutines. A coroutine returned by a
hook runs as a task; tasks of one session run one after another, in message order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastfix import tags
from fastfix.session import (
    BusinessReject,
    DoNotSend,
    RejectLogon,
    RejectMessage,
    Session,
    SessionConfig,
    UnsupportedMessageType,
)

__all__ = [
    "Application",
    "Acceptor",
    "Initiator",
    "run",
    "RejectMessage",
    "BusinessReject",
    "UnsupportedMessageType",
    "DoNotSend",
    "RejectLogon",
]

#: Transport write buffer: above HIGH the sender waits in ``send()``, below LOW it goes on.
WRITE_HIGH_WATER = 256 * 1024
WRITE_LOW_WATER = 64 * 1024
#: Period of the session timer (heartbeats, timeouts, schedule).
TICK_INTERVAL = 0.5
#: _route's answer while a Logon's password is being verified in a worker thread.
_PENDING: Any = object()
_INVALID = "invalid Username or Password"


def _default(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn._fastfix_default = True  # type: ignore[attr-defined]
    return fn


class Application:
    """Override the hooks you need; each may be ``def`` or ``async def``.

    ``msg`` arguments are parsed :class:`fastfix.codec.Message` objects. Outgoing
    hooks (``to_admin``, ``to_app``) get the message type and the mutable list of
    ``(tag, value)`` fields; ``to_app`` may raise :class:`DoNotSend`.
    ``from_app`` may raise :class:`UnsupportedMessageType`, :class:`BusinessReject`
    or :class:`RejectMessage`; ``from_admin`` may raise :class:`RejectLogon` on a Logon.
    """

    #: the engine running this application (set by the engine)
    engine: _Engine | None = None

    @_default
    def on_create(self, session_id: Any) -> Any:
        """A session was created (once, at engine start)."""

    @_default
    def on_logon(self, session_id: Any) -> Any:
        """The session is logged on."""

    @_default
    def on_logout(self, session_id: Any) -> Any:
        """The session logged out or its connection dropped."""

    @_default
    def to_admin(self, msg_type: bytes, fields: list, session_id: Any) -> Any:
        """A session message is about to be sent (add e.g. Username/Password to a Logon)."""

    @_default
    def from_admin(self, msg: Any, session_id: Any) -> Any:
        """A session message was received and accepted."""

    @_default
    def to_app(self, msg_type: bytes, fields: list, session_id: Any) -> Any:
        """An application message is about to be sent (or resent, then 43=Y is in fields)."""

    @_default
    def from_app(self, msg: Any, session_id: Any) -> Any:
        """An application message was received, in sequence and valid."""

    @_default
    def on_read_end(self, session_id: Any) -> Any:
        """Every message of one read from the connection was handled, before the store is
        flushed and the replies are written: an application that batches its work per read
        (one journal write for many reports) completes the batch here. Plain ``def`` only."""

    def send(self, session_id: Any, msg_type: str | bytes, fields: Sequence[tuple[int, Any]]) -> int:
        """Send on a session of the running engine (synchronous; see :meth:`_Engine.send`)."""
        if self.engine is None:
            raise RuntimeError("the application is not attached to a running engine")
        return self.engine.session(session_id).send(msg_type, fields)


# --------------------------------------------------------------------------- connection


class _Connection(asyncio.Protocol):
    """One TCP connection; bound to a session after the first Logon (acceptor) or at once."""

    def __init__(self, engine: _Engine, session: Session | None = None) -> None:
        from fastfix.codec import Tokenizer

        self.engine = engine
        self.session = session
        self.tokenizer = Tokenizer(data_fields=engine._data_fields or None)
        self.transport: asyncio.Transport | None = None
        self.bound = False
        self.closed = False
        self.paused = False
        self._batch: list[bytes] | None = None
        self._held: list[Any] = []  # messages read behind a Logon whose password is being checked
        self._drained: asyncio.Future[None] | None = None
        self.opened_at = time.monotonic()
        self.lost: asyncio.Future[None] = engine._loop.create_future()

    # ---- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            eng = self.engine
            with contextlib.suppress(OSError):
                if eng._nodelay:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if eng._sndbuf:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, eng._sndbuf)
                if eng._rcvbuf:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, eng._rcvbuf)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        self.engine._connections.add(self)
        if self.session is not None:
            self._bind(self.session)

    def data_received(self, data: bytes) -> None:
        items = self.tokenizer.feed(data)
        if not items:
            return
        if self._held:  # a Logon is being verified: keep the order of what follows it
            self._held.extend(items)
            return
        self._process(items)

    def _process(self, items: list[Any]) -> None:
        session = self.session
        self._batch = batch = []
        try:
            for i, item in enumerate(items):
                if self.closed:
                    break
                if session is None or not self.bound:
                    routed = self.engine._route(self, item)
                    if routed is _PENDING:
                        # The Logon's password is being checked off the event loop: keep it
                        # and what followed it, read nothing more until the answer.
                        self._held = items[i:]
                        session = None
                        break
                    session = routed
                    if session is None:
                        break
                try:
                    session.receive(item)
                except Exception as exc:  # noqa: BLE001
                    # An application error (or a value the session cannot read without a
                    # dictionary): as QuickFIX, drop the connection; the message was not
                    # consumed, so the peer sends it again after the next logon.
                    session._event(f"Error processing message, disconnecting: {exc!r}")
                    session.disconnect("error processing message")
                    break
        finally:
            self._batch = None
            if session is not None:
                read_end = self.engine._read_end
                if read_end is not None:
                    try:
                        read_end(session.session_id)
                    except Exception as exc:  # noqa: BLE001 - as for a message: drop the connection
                        session._event(f"Error completing a read, disconnecting: {exc!r}")
                        session.disconnect("error processing message")
                session.store.flush()
            if batch and self.transport is not None:
                self.transport.writelines(batch)
            if self.closed and self.transport is not None:
                self.transport.close()

    def verify_logon(self, session: Session, password: bytes) -> None:
        """Hash the Logon's password in a worker thread (a slow hash on purpose: it must
        not stall every other session of the loop), then go on with the held messages."""
        from fastfix.auth import verify_password

        policy = session.config.logon_policy
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.pause_reading()
        fut = self.engine._loop.run_in_executor(None, verify_password, password, policy.password_hash)

        def done(f: asyncio.Future[bool]) -> None:
            held, self._held = self._held, []
            if self.closed:
                return  # the peer left, or the engine is stopping
            exc = None if f.cancelled() else f.exception()
            if exc is not None:
                session._event(f"Password check failed: {exc!r}")
            ok = not f.cancelled() and exc is None and f.result()
            if not ok:
                self.refuse(session, _INVALID)
                return
            policy.remember(password)
            if session.is_connected:  # another connection logged on meanwhile
                self.abort()
                return
            self._bind(session)
            if self.transport is not None:
                with contextlib.suppress(Exception):
                    self.transport.resume_reading()
            self._process(held)

        fut.add_done_callback(done)

    def refuse(self, session: Session, reason: str) -> None:
        """Answer a Logon that failed the session's logon policy, and close."""
        host = getattr(self.peer(), "host", None)
        session._event(f"Logon refused{' from ' + host if host else ''}: {reason}")
        self.write(session.logon_refusal(f"Logon refused: {reason}"))
        self.abort()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.engine._connections.discard(self)
        if self.bound and self.session is not None:
            self.bound = False
            self.session.disconnected()
        self._wake()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    # ---- session side

    def _bind(self, session: Session) -> None:
        self.session = session
        self.bound = True
        self.engine._conn_of[session] = self
        session.connected(self.write, self.close, self.peer())

    def peer(self) -> Any:
        """The other end: address and, under TLS, its verified certificate."""
        from fastfix.auth import Peer

        return Peer.from_transport(self.transport) if self.transport is not None else None

    def write(self, raw: bytes) -> None:
        batch = self._batch
        if batch is not None:
            batch.append(raw)
        elif self.transport is not None:
            self.transport.write(raw)

    def close(self) -> None:
        """Called by the session: flush what is queued, then close."""
        self.bound = False
        self.closed = True
        if self.engine._conn_of.get(self.session) is self:  # type: ignore[arg-type]
            del self.engine._conn_of[self.session]  # type: ignore[arg-type]
        if self._batch is None and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close without a session (refused connection)."""
        self.closed = True
        if self._batch is None and self.transport is not None:
            self.transport.close()

    async def drained(self) -> None:
        """Wait until the transport buffer went below the low-water mark (or closed)."""
        while self.paused and not self.closed:
            if self._drained is None or self._drained.done():
                self._drained = self.engine._loop.create_future()
            await self._drained

    def _wake(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)


# --------------------------------------------------------------------------- engine


class _Engine:
    """What initiators and acceptors share: sessions, timer, async hooks, send."""

    def __init__(
        self,
        settings: Any,
        app: Application,
        *,
        store_factory: Callable[[Any, Any], Any] | None = None,
        log_factory: Callable[[Any, Any], Any] | None = None,
        dictionary_factory: Callable[[Any, Any], Any] | None = None,
        clock: Callable[[], float] = time.time,
        tick_interval: float = TICK_INTERVAL,
        want_initiator: bool,
    ) -> None:
        self.settings = settings
        self.app = app
        self._store_factory = store_factory
        self._log_factory = log_factory
        self._dictionary_factory = dictionary_factory
        self._clock = clock
        self._tick_interval = tick_interval
        self._want_initiator = want_initiator
        self._sessions: dict[Any, Session] = {}
        self._by_key: dict[tuple[bytes, bytes, bytes], Session] = {}
        self._conn_of: dict[Session, _Connection] = {}
        self._connections: set[_Connection] = set()
        self._tails: dict[Session, asyncio.Task[None]] = {}
        self._logon_events: dict[Session, asyncio.Event] = {}
        self._data_fields: dict[int, int] = {}
        self._nodelay = True
        self._sndbuf = 0
        self._rcvbuf = 0
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._started = False
        # The application's per-read hook, unless it kept the default (then nothing is called).
        self._read_end: Callable[[Any], Any] | None = (
            None if getattr(type(app).on_read_end, "_fastfix_default", False) else app.on_read_end)

    # ---- sessions

    def _create_sessions(self) -> None:
        from fastfix.log import log_from_settings
        from fastfix.store import store_from_settings

        self.app.engine = self
        for sid, s in self.settings.sessions().items():
            if s.is_initiator != self._want_initiator:
                continue
            cfg = SessionConfig.from_settings(s)
            store = (self._store_factory or store_from_settings)(sid, s)
            log = (self._log_factory or log_from_settings)(sid, s)
            dd = None
            if cfg.validate:
                dd = (self._dictionary_factory or _dictionary_from_settings)(sid, s)
                if dd is not None:
                    with contextlib.suppress(AttributeError, TypeError):
                        df = dd.data_fields
                        self._data_fields.update(df() if callable(df) else df)
            # Socket options are per engine (an acceptor's connection has no session yet).
            self._nodelay = s.get_bool("SocketNodelay", True)
            self._sndbuf = s.get_int("SocketSendBufferSize", 0)
            self._rcvbuf = s.get_int("SocketReceiveBufferSize", 0)
            session = Session(sid, cfg, store, app=self.app, log=log, dictionary=dd, clock=self._clock)
            session.spawn = self._spawner(session)
            session.state_listener = self._state_changed
            self._sessions[sid] = session
            key = (
                sid.begin_string.encode(),
                sid.sender_comp_id.encode(),
                sid.target_comp_id.encode(),
            )
            self._by_key[key] = session

    def sessions(self) -> dict[Any, Session]:
        """SessionID -> :class:`fastfix.session.Session`."""
        return dict(self._sessions)

    def session(self, session_id: Any) -> Session:
        """The session with this SessionID (or its string form ``FIX.4.4:A->B``)."""
        s = self._sessions.get(session_id)
        if s is None:
            for sid, sess in self._sessions.items():
                if str(sid) == str(session_id):
                    return sess
            raise KeyError(f"no session {session_id}")
        return s

    def _state_changed(self, session: Session) -> None:
        ev = self._logon_events.get(session)
        if ev is None:
            ev = self._logon_events[session] = asyncio.Event()
        if session.is_logged_on:
            ev.set()
        else:
            ev.clear()

    async def wait_logged_on(self, session_id: Any, timeout: float | None = None) -> None:
        """Wait until the session is logged on (``TimeoutError`` after ``timeout`` s)."""
        s = self.session(session_id)
        ev = self._logon_events.get(s)
        if ev is None:
            ev = self._logon_events[s] = asyncio.Event()
            if s.is_logged_on:
                ev.set()
        await asyncio.wait_for(ev.wait(), timeout)

    # ---- sending

    async def send(self, session_id: Any, msg_type: str | bytes, fields: Sequence[tuple[int, Any]]) -> int:
        """Send an application message; returns once it is stored and queued for the wire.

        Waits while the connection's write buffer is above its high-water mark.
        """
        s = self.session(session_id)
        conn = self._conn_of.get(s)
        if conn is None:
            return s.send(msg_type, fields)
        if conn.paused:
            await conn.drained()
        conn._batch = batch = []
        try:
            seq = s.send(msg_type, fields)
        finally:
            conn._batch = None
            s.store.flush()
            if batch and conn.transport is not None:
                conn.transport.writelines(batch)
        return seq

    def send_bodies(self, session_id: Any,
                    messages: Sequence[tuple[str | bytes, bytes, Sequence[tuple[int, Any]]]]) -> list[int]:
        """Send pre-encoded application messages (``(msg_type, body, header)``, see
        :meth:`fastfix.session.Session.send_body`) at once: one store flush and one socket
        write for all of them. Synchronous: it does not wait for a full write buffer
        (check :meth:`write_paused` / await :meth:`writable` first). Returns the MsgSeqNums.
        """
        s = self.session(session_id)
        conn = self._conn_of.get(s)
        if conn is None or conn._batch is not None:  # not connected, or inside a read batch
            return [s.send_body(mt, body, hdr) for mt, body, hdr in messages]
        conn._batch = batch = []
        try:
            return [s.send_body(mt, body, hdr) for mt, body, hdr in messages]
        finally:
            conn._batch = None
            s.store.flush()
            if batch and conn.transport is not None:
                conn.transport.writelines(batch)

    def write_paused(self, session_id: Any) -> bool:
        """True while the session's connection has more than ``WRITE_HIGH_WATER`` bytes unsent."""
        conn = self._conn_of.get(self.session(session_id))
        return conn is not None and conn.paused

    async def writable(self, session_id: Any) -> None:
        """Wait until the session's write buffer is below the low-water mark (at once if it is)."""
        conn = self._conn_of.get(self.session(session_id))
        if conn is not None and conn.paused:
            await conn.drained()

    # ---- async hooks

    def _spawner(self, session: Session) -> Callable[[Awaitable[Any], Any], None]:
        def spawn(aw: Awaitable[Any], msg: Any) -> None:
            prev = self._tails.get(session)

            async def run() -> None:
                if prev is not None and not prev.done():
                    with contextlib.suppress(BaseException):
                        await prev
                try:
                    await aw
                except Exception as exc:  # noqa: BLE001 - reported to the session
                    if hasattr(msg, "msg_type"):
                        session.on_async_error(msg, exc)
                    else:
                        session._event(f"Application error: {exc!r}")

            self._tails[session] = self._loop.create_task(run())

        return spawn

    # ---- timer

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval)
            for s in self._sessions.values():
                conn = self._conn_of.get(s)
                if conn is not None:
                    conn._batch = batch = []
                try:
                    s.timer()
                except Exception as exc:  # noqa: BLE001 - keep the timer alive
                    s._event(f"timer error: {exc!r}")
                finally:
                    if conn is not None:
                        conn._batch = None
                        s.store.flush()
                        if batch and conn.transport is not None:
                            conn.transport.writelines(batch)
                        if conn.closed and conn.transport is not None:
                            conn.transport.close()
            self._tick_extra()

    def _tick_extra(self) -> None:
        pass

    def _route(self, conn: _Connection, item: Any) -> Session | None:
        raise NotImplementedError

    # ---- life cycle

    async def start(self) -> None:
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._create_sessions()
        self._started = True
        self._ticker = self._loop.create_task(self._tick())

    async def stop(self, logout_timeout: float = 2.0) -> None:
        """Log out every logged-on session (waiting up to ``logout_timeout``), then close."""
        if not self._started:
            return
        waits = []
        for s, conn in list(self._conn_of.items()):
            if s.is_logged_on:
                s.logout()
                waits.append(conn.lost)
            else:
                s.disconnect("engine stopping")
        if waits:
            await asyncio.wait(waits, timeout=logout_timeout)
        for s in list(self._conn_of):
            s.disconnect("engine stopping")
        for conn in list(self._connections):
            conn.abort()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for t in list(self._tails.values()):
            if not t.done():
                t.cancel()
        for s in self._sessions.values():
            with contextlib.suppress(Exception):
                s.store.close()
            if s.log is not None:
                with contextlib.suppress(Exception):
                    s.log.close()
        self._started = False

    async def __aenter__(self) -> _Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _dictionary_from_settings(sid: Any, s: Any) -> Any:
    from fastfix.dictionary import DataDictionary

    if "DataDictionary" in s:
        return DataDictionary.from_xml(s.get_path("DataDictionary"))
    return DataDictionary.load(sid.begin_string)


class Acceptor(_Engine):
    """Accepts connections for every ``ConnectionType=acceptor`` session of the settings.

    A connection is bound to a session by its first message, which must be a
    Logon whose BeginString/SenderCompID/TargetCompID name a configured session
    that has no connection yet; anything else closes the connection silently.
    A session with a logon policy (``PasswordHash``, ``AllowedRemoteAddresses``,
    client certificate checks: :mod:`fastfix.auth`) answers a Logon that fails it
    with a Logout saying why, and closes, before the session sees anything.
    """

    def __init__(self, settings: Any, app: Application, *, host: str | None = None,
                 port: int | None = None, **kw: Any) -> None:
        super().__init__(settings, app, want_initiator=False, **kw)
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._logon_timeout = 10.0

    @property
    def port(self) -> int:
        """The listening port (useful with port 0)."""
        assert self._server is not None, "not started"
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        if self._started:
            return
        await super().start()
        host, port = self._host, self._port
        for s in self.settings.sessions().values():
            if s.is_initiator:
                continue
            if port is None:
                port = s.get_int("SocketAcceptPort")
            if host is None:
                host = s.get_str("SocketAcceptAddress", None)
            self._logon_timeout = s.get_int("LogonTimeout", 10)
        reuse = True
        ssl_ctx = None
        for s in self.settings.sessions().values():
            if not s.is_initiator:
                reuse = s.get_bool("SocketReuseAddress", True)
                ssl_ctx = s.ssl_context()
                break
        self._server = await self._loop.create_server(
            lambda: _Connection(self), host or None, port or 0, reuse_address=reuse, ssl=ssl_ctx
        )

    async def stop(self, logout_timeout: float = 2.0) -> None:
        if self._server is not None:
            self._server.close()
        await super().stop(logout_timeout)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    def _route(self, conn: _Connection, item: Any) -> Session | None:
        if not hasattr(item, "msg_type"):
            conn.abort()  # garbled first message
            return None
        if item.msg_type != b"A":
            conn.abort()
            return None
        key = (item.begin_string, item.get(tags.TARGET_COMP_ID) or b"", item.get(tags.SENDER_COMP_ID) or b"")
        session = self._by_key.get(key)
        if session is None or session.is_connected:
            # Unknown CompIDs, or a second connection for a session already in use.
            conn.abort()
            return None
        policy = session.config.logon_policy
        if policy is not None:
            # Authenticate before binding: a refused Logon never reaches the session, so its
            # sequence numbers, store and schedule stay the real counterparty's.
            refusal = policy.precheck(item, conn.peer())
            if refusal is not None:
                conn.refuse(session, refusal)
                return None
            password = policy.password_to_verify(item)
            if password is not None:
                conn.verify_logon(session, password)
                return _PENDING
        conn._bind(session)
        return session

    def _tick_extra(self) -> None:
        # Connections that never sent a Logon are dropped after LogonTimeout.
        limit = time.monotonic() - self._logon_timeout
        for conn in list(self._connections):
            if not conn.bound and not conn.closed and conn.opened_at < limit:
                conn.abort()


class Initiator(_Engine):
    """Connects every ``ConnectionType=initiator`` session and keeps it connected.

    Reconnects after a failure with exponential backoff from 0.5 s up to
    ``ReconnectInterval`` (default 30 s), cycling through the failover addresses,
    and only inside the session schedule.
    """

    def __init__(self, settings: Any, app: Application, **kw: Any) -> None:
        super().__init__(settings, app, want_initiator=True, **kw)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self._started:
            return
        await super().start()
        for sid, session in self._sessions.items():
            s = self.settings.sessions()[sid]
            self._tasks.append(self._loop.create_task(self._keep_connected(session, s)))

    async def stop(self, logout_timeout: float = 2.0) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        await super().stop(logout_timeout)

    async def _keep_connected(self, session: Session, s: Any) -> None:
        addresses = s.connect_addresses()
        max_delay = float(s.get_int("ReconnectInterval", 30))
        ssl_ctx = s.ssl_context()
        delay = min(0.5, max_delay)
        i = 0
        while True:
            if not session.enabled or not session.is_session_time():
                await asyncio.sleep(1.0)
                continue
            host, port = addresses[i % len(addresses)]
            i += 1
            try:
                _, conn = await self._loop.create_connection(
                    lambda: _Connection(self, session), host, port, ssl=ssl_ctx,
                    server_hostname=s.get_str("SSLServerName", host) if ssl_ctx else None,
                )
            except OSError as exc:
                session._event(f"Connection to {host}:{port} failed: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)
                continue
            started = time.monotonic()
            # Shielded: stop() cancels this task but still waits on conn.lost for
            # the counterparty's Logout answer; cancelling the future itself would
            # make stop() drop the connection at once.
            await asyncio.shield(conn.lost)
            if time.monotonic() - started > max_delay:
                delay = min(0.5, max_delay)  # it had been up for a while: retry soon
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def run(main: Awaitable[Any] | Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine on uvloop when it is installed, else on the default loop."""
    coro = main() if callable(main) else main
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(coro)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]
