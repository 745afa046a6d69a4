"""The WebSocket event stream (picows, on its own port).

Protocol (text frames, JSON):

* connect to ``ws://HOST:PORT/v1/stream``, optionally with ``?since=N``;
  authenticate with the ``X-API-Key`` (or ``Authorization: Bearer``) header of
  the upgrade request, or — for browsers, which cannot set headers — with a
  first message ``{"op": "auth", "api_key": "...", "since": N}``;
* the server answers ``{"type": "subscribed", "client": ..., "since": N, "last_seq": M}``,
  then replays the client's events with ``seq > N`` from the durable log, then
  streams live events; ``since`` omitted means live only (from ``last_seq``);
* each event is ``{"type": "message", "seq": S, "ts": ..., "message": {FIX-JSON}}``;
  ``seq`` is per client, starts at 1 and has no gaps;
* when idle, ``{"type": "heartbeat", "seq": S, "ts": ...}`` every ``ws_heartbeat``
  seconds (S = last sequence number sent);
* a consumer that lets more than ``ws_buffer_limit`` bytes queue up is closed
  with code 1013 and a reason naming the resume point; reconnect with
  ``since`` = the last ``seq`` received. Every frame the gateway sends counts
  (events, heartbeats, pongs, errors);
* a connection that has not authenticated within ``ws_auth_timeout`` seconds is
  closed (1008); before authenticating only ``auth`` is accepted. Unauthenticated
  connections (``ws_max_unauthenticated``) and connections per address
  (``ws_max_per_ip``) are capped (1013);
* RFC 6455: fragmented messages are reassembled up to ``ws_max_message`` bytes
  (1009 beyond); a frame with RSV bits set fails the connection with 1002 (no
  extension is negotiated).
* ``{"op": "subscribe", "since": N, "filter": {...}}`` adds a subscription with its own
  cursor and filter (Account, broker, ClOrdID, ListID, MsgType): answered
  ``{"type": "subscribed", "id": I, ...}``, its frames carry ``"sub": I``;
  ``{"op": "unsubscribe", "id": I}`` ends it (0: the whole stream). A subscribe op may
  authenticate (``api_key``); a refused op is an error frame and the connection stays.
  ``?subscribe=explicit`` opens a connection without the whole-stream subscription;
* ``?cancel_on_disconnect=true`` (or the flag in an auth or subscribe op) arms cancel on
  disconnect for the connection (see ``presence.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import msgspec
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from server.gateway.auth import Authenticator, FailureThrottle
from server.gateway.config import ClientConfig
from server.gateway.guards import source_ip

if TYPE_CHECKING:
    from server.gateway.service import Gateway

__all__ = ["StreamServer"]

log = logging.getLogger("fastfix.gateway.ws")
_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()
STREAM_PATHS = ("/v1/stream", "/v1/stream/")
_CLOSE_GRACE = 5.0  # seconds a closing connection may take to take its last frames, then it is cut
MAX_SUBSCRIPTIONS = 32  # explicit subscriptions on one connection


def _ts() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle | None:
    """A timer on the running loop (None when there is none: connections driven by hand)."""
    try:
        return asyncio.get_running_loop().call_later(delay, callback, *args)
    except RuntimeError:
        return None


def _text_frame_header(size: int) -> bytes:
    """Header of a final, unmasked text frame of ``size`` bytes, as a server sends it (RFC 6455 §5.2)."""
    if size < 126:
        return bytes((0x81, size))
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big")
    return b"\x81\x7f" + size.to_bytes(8, "big")


# Filter keys of an explicit subscription -> where an event frame has them.
FILTER_KEYS = ("Account", "broker", "ClOrdID", "ListID", "MsgType")
_frame = msgspec.json.Decoder()


class EventFilter:
    """Which of a client's events an explicit subscription sends: every key given must match
    (a value or a list of values); events of the gateway itself match MsgType ``event``."""

    __slots__ = ("spec", "_sets")

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._sets = {k: frozenset(v if isinstance(v, list) else [v]) for k, v in spec.items()}

    @staticmethod
    def parse(raw: Any) -> EventFilter | str:
        """The filter of a subscribe op, or why it is not one."""
        if raw is None:
            return EventFilter({})
        if not isinstance(raw, dict):
            return "filter must be an object"
        problems = []
        for key, value in raw.items():
            if key not in FILTER_KEYS:
                problems.append(f"filter.{key}: unknown key (one of {', '.join(FILTER_KEYS)})")
            elif not (isinstance(value, str) or (isinstance(value, list) and value
                                                  and all(isinstance(v, str) for v in value))):
                problems.append(f"filter.{key}: a string or a non-empty list of strings")
        return "; ".join(problems) if problems else EventFilter(dict(raw))

    def matches(self, data: bytes) -> bool:
        if not self._sets:
            return True
        try:
            frame = _frame.decode(data)
        except msgspec.DecodeError:
            return False
        values: dict[str, set[str]] = {k: set() for k in self._sets}
        if frame.get("type") == "event":
            ev = frame.get("event") or {}
            values.get("MsgType", set()).add("event")
            for key in ("Account", "broker", "ClOrdID", "ListID"):
                if key in values:
                    v = ev.get(key)
                    values[key].update(v if isinstance(v, list) else [v] if isinstance(v, str) else [])
        else:
            msg = frame.get("message") or {}
            header, body = msg.get("Header") or {}, msg.get("Body") or {}
            about = frame.get("about") or {}
            if "MsgType" in values:
                values["MsgType"].add(header.get("MsgType", ""))
            if "broker" in values:
                values["broker"].add(header.get("OnBehalfOfCompID", ""))
            if "Account" in values:
                values["Account"].add(body.get("Account", ""))
            if "ClOrdID" in values:
                values["ClOrdID"].update(str(body.get(k, "")) for k in ("ClOrdID", "OrigClOrdID"))
                values["ClOrdID"].add(about.get("ClOrdID", ""))
            if "ListID" in values:
                values["ListID"].update((str(body.get("ListID", "")), about.get("ListID", "")))
        return all(values[k] & wanted for k, wanted in self._sets.items())


class _Subscription:
    """One explicit subscription of a connection: its own cursor over the client's events,
    its filter; its frames carry its ``sub`` id."""

    def __init__(self, conn: _Connection, sub_id: int, flt: EventFilter, since: int) -> None:
        self.conn = conn
        self.id = sub_id
        self.filter = flt
        self.last_sent = since
        self.live = False
        self.task: asyncio.Task[None] | None = None
        self._tag = b',"sub":%d}' % sub_id

    def start(self) -> None:
        self.live = False
        self.task = asyncio.get_running_loop().create_task(self._replay())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _send(self, rows: list[tuple[int, bytes]]) -> None:
        out = [data[:-1] + self._tag for _, data in rows if self.filter.matches(data)]
        self.conn._send_texts(out)

    async def _replay(self) -> None:
        conn = self.conn
        assert conn.client is not None
        gw = conn.server.gateway
        try:
            batch = conn.server.replay_batch
            while not conn.closed:
                rows = await gw.read_events(conn.client.id, self.last_sent, batch)  # old ones: a thread
                if not rows and not conn.closed:
                    # Caught up: the last look and going live with no await between them.
                    rows = gw.events_since(conn.client.id, self.last_sent, batch)
                    if not rows:
                        self.live = True
                        return
                if conn.closed:
                    return
                self.last_sent = rows[-1].seq
                self._send([(r.seq, r.data) for r in rows])
                if not conn._writable.is_set():
                    await asyncio.wait_for(conn._writable.wait(), timeout=conn.server.heartbeat * 4)
                else:
                    await asyncio.sleep(0)
        except TimeoutError:
            conn._drop("slow consumer during replay")

    def deliver(self, events: list[tuple[int, bytes]]) -> None:
        """Live events (see :meth:`_Connection.deliver`)."""
        if not self.live or self.conn.closed:
            return
        last = self.last_sent
        out: list[tuple[int, bytes]] = []
        gap = False
        for seq, data in events:
            if seq <= last:
                continue
            if seq != last + 1:
                gap = True
                break
            out.append((seq, data))
            last = seq
        self.last_sent = last
        self._send(out)
        if gap:
            self.start()
        elif (self.conn.transport is not None and self.conn.transport.underlying_transport.get_write_buffer_size()
              > self.conn.server.buffer_limit):
            self.conn._drop("slow consumer")


class _Connection(WSListener):  # type: ignore[misc]
    """One subscriber. ``last_sent`` is the cursor: events are sent strictly in order."""

    def __init__(self, server: StreamServer, client: ClientConfig | None, since: int | None,
                 auto: bool = True) -> None:
        super().__init__()
        self.server = server
        self.client = client
        self.since = since
        self.auto = auto  # the whole stream from authentication on (subscription 0)
        self.subs: dict[int, _Subscription] = {}  # explicit subscriptions by id
        self.cancel_on_disconnect = False  # this connection's opt-in (see presence.py)
        self._next_sub = 1
        self.transport: WSTransport | None = None
        self.last_sent = 0
        self.live = False
        self.subscribed = False
        self.closed = False
        self.last_activity = time.monotonic()
        self._writable = asyncio.Event()
        self._writable.set()
        self._replay_task: asyncio.Task[None] | None = None
        self.ip = ""
        self.state = ""  # "authenticated" / "unauthenticated" while counted in the gauge
        self._fragments: list[bytes] | None = None  # a fragmented message being reassembled
        self._fragment_size = 0
        self._timer: asyncio.TimerHandle | None = None  # authentication deadline, then the close grace

    # picows callbacks ------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        # Ask asyncio to tell us (pause_writing) well before our own limit is hit.
        server = self.server
        limit = server.buffer_limit
        transport.underlying_transport.set_write_buffer_limits(high=max(limit // 4, 16384))
        self.ip = source_ip(transport.underlying_transport.get_extra_info("peername"))
        refusal = server.admit(self)
        if refusal is not None:
            self._refuse(*refusal)
            return
        if self.client is not None:
            self.server.gateway.stream_opened(self.client.id, self)
            if self.auto:
                self._subscribe(self.since)
        else:
            self._timer = _call_later(server.auth_timeout, self._auth_expired)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.server.release(self)
        if self._replay_task is not None:
            self._replay_task.cancel()
        if self.client is not None and self.subscribed:
            self.server.gateway.unsubscribe(self.client.id, self)
        if self.client is not None:
            for sub in self.subs.values():
                sub.stop()
                self.server.gateway.unsubscribe(self.client.id, sub)
            self.subs.clear()
            self.server.gateway.stream_closed(self.client.id, self)

    def _auth_expired(self) -> None:
        self._timer = None
        if self.client is None and not self.closed:
            self._refuse("auth_timeout", WSCloseCode.POLICY_VIOLATION,
                         f"not authenticated within {self.server.auth_timeout:g} s")

    def _refuse(self, label: str, code: WSCloseCode, reason: str) -> None:
        self.server.gateway.metrics.ws_dropped.labels(label).inc()
        self._fail(code, reason)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.closed:
            return
        if frame.rsv1 or frame.rsv2 or frame.rsv3:  # RFC 6455 5.2: no extension was negotiated
            self._refuse("protocol_error", WSCloseCode.PROTOCOL_ERROR, "RSV bits set: no extension negotiated")
            return
        msg_type = frame.msg_type
        if msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if msg_type == WSMsgType.PING:  # answered here, not by picows: the pong counts against the limit
            self._send(frame.get_payload_as_bytes(), WSMsgType.PONG)
            return
        if msg_type == WSMsgType.CONTINUATION:
            if self._fragments is None:
                self._refuse("protocol_error", WSCloseCode.PROTOCOL_ERROR, "continuation frame outside a message")
                return
            if not self._add_fragment(frame) or not frame.fin:
                return
            payload = b"".join(self._fragments)
            self._fragments = None
        elif msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            if self._fragments is not None:
                self._refuse("protocol_error", WSCloseCode.PROTOCOL_ERROR,
                             "new message before the fragmented one ended")
                return
            if not frame.fin:
                self._fragments = []
                self._fragment_size = 0
                self._add_fragment(frame)
                return
            payload = frame.get_payload_as_bytes()
        else:
            return  # PONG
        self._on_message(payload)

    def _add_fragment(self, frame: WSFrame) -> bool:
        """Append a fragment; False (and the connection failed with 1009) past ``ws_max_message``."""
        assert self._fragments is not None
        self._fragment_size += frame.payload_size
        if self._fragment_size > self.server.max_message:
            self._refuse("message_too_big", WSCloseCode.MESSAGE_TOO_BIG,
                         f"message larger than {self.server.max_message} bytes")
            return False
        self._fragments.append(frame.get_payload_as_bytes())
        return True

    def _on_message(self, payload: bytes) -> None:
        try:
            req = _decode.decode(payload)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):  # bad, too deep, not UTF-8
            self._fail(WSCloseCode.UNSUPPORTED_DATA, "messages must be JSON objects")
            return
        if not isinstance(req, dict):
            self._fail(WSCloseCode.UNSUPPORTED_DATA, "messages must be JSON objects")
            return
        op = req.get("op")
        if self.client is None and op != "auth" and not (op == "subscribe" and "api_key" in req):
            self._fail(WSCloseCode.POLICY_VIOLATION, "authenticate first")
            return
        since = req.get("since")
        if req.get("cancel_on_disconnect") is True and op in ("auth", "subscribe"):
            self.cancel_on_disconnect = True
            if self.client is not None:
                self.server.gateway.stream_opened(self.client.id, self)
        if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
            self._fail(WSCloseCode.POLICY_VIOLATION, "since must be a non-negative integer")
            return
        if op == "auth":
            if self.client is not None:
                self._fail(WSCloseCode.POLICY_VIOLATION, "already authenticated")
                return
            client = self.server.auth.authenticate(req.get("api_key") if isinstance(req.get("api_key"), str)
                                                   else None)
            if client is None:
                self.server.auth_failed(self.ip)
                self._fail(WSCloseCode.POLICY_VIOLATION, "invalid API key")
                return
            self.client = client
            self._authenticated()
            self.server.gateway.stream_opened(client.id, self)
            if self.auto:
                self._subscribe(since if since is not None else self.since)
        elif op == "subscribe":
            self._explicit_subscribe(req, since)
        elif op == "unsubscribe":
            self._unsubscribe(req.get("id"))
        elif op == "ping":
            self._send_json({"type": "pong", "seq": self.last_sent, "ts": _ts()})
        else:
            self._fail(WSCloseCode.POLICY_VIOLATION, f"unknown op {op!r}")

    # explicit subscriptions --------------------------------------------------------
    def _answer_error(self, op: str, reason: str, **extra: Any) -> None:
        """An op refused: the connection stays open."""
        self._send_json({"type": "error", "op": op, "reason": reason, **extra})

    def _authenticated(self) -> None:
        """Out of the unauthenticated cap and its deadline."""
        self.server.authenticated(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _explicit_subscribe(self, req: dict[str, Any], since: int | None) -> None:
        if self.client is None:
            key = req.get("api_key")
            client = self.server.auth.authenticate(key) if isinstance(key, str) else None
            if client is None:  # nothing is answered to an unauthenticated connection but this
                if key is not None:
                    self.server.auth_failed(self.ip)
                self._fail(WSCloseCode.POLICY_VIOLATION, "authenticate first" if key is None else "invalid API key")
                return
            self.client = client  # authenticated by this op: no implicit subscription
            self._authenticated()
            self.server.gateway.stream_opened(client.id, self)
        flt = EventFilter.parse(req.get("filter"))
        if isinstance(flt, str):
            self._answer_error("subscribe", flt)
            return
        gw = self.server.gateway
        cid = self.client.id
        last = gw.seq.get(cid, 0)
        if since is not None and since > last:
            self._answer_error("subscribe", f"since={since} is beyond the last sequence number {last}")
            return
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            self._answer_error("subscribe", f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
            return
        sub = _Subscription(self, self._next_sub, flt, last if since is None else since)
        self._next_sub += 1
        self.subs[sub.id] = sub
        self._send_json({"type": "subscribed", "id": sub.id, "client": cid, "since": sub.last_sent,
                         "last_seq": last, "filter": flt.spec})
        gw.subscribe(cid, sub)
        sub.start()

    def _unsubscribe(self, sub_id: Any) -> None:
        if sub_id == 0 and self.subscribed and self.client is not None:
            self.subscribed = False
            self.live = False
            self.server.gateway.unsubscribe(self.client.id, self)
            if self._replay_task is not None:
                self._replay_task.cancel()
            self._send_json({"type": "unsubscribed", "id": 0})
            return
        sub = self.subs.pop(sub_id, None) if isinstance(sub_id, int) and not isinstance(sub_id, bool) else None
        if sub is None or self.client is None:
            self._answer_error("unsubscribe", f"no subscription {sub_id!r} on this connection")
            return
        sub.stop()
        self.server.gateway.unsubscribe(self.client.id, sub)
        self._send_json({"type": "unsubscribed", "id": sub.id})

    # stream ----------------------------------------------------------------------
    def _subscribe(self, since: int | None) -> None:
        assert self.client is not None
        gw = self.server.gateway
        cid = self.client.id
        last = gw.seq.get(cid, 0)
        if since is not None and since > last:
            self._fail(WSCloseCode.POLICY_VIOLATION, f"since={since} is beyond the last sequence number {last}")
            return
        self.subscribed = True
        self.last_sent = last if since is None else since
        self._send_json({"type": "subscribed", "client": cid, "since": self.last_sent, "last_seq": last})
        gw.subscribe(cid, self)
        self._start_replay()

    def _start_replay(self) -> None:
        self.live = False
        self._replay_task = asyncio.get_running_loop().create_task(self._replay())

    async def _replay(self) -> None:
        """Send logged events after ``last_sent`` until caught up, then go live."""
        assert self.client is not None
        gw = self.server.gateway
        batch = self.server.replay_batch
        try:
            while not self.closed:
                rows = await gw.read_events(self.client.id, self.last_sent, batch)  # old ones: a thread
                if not rows and not self.closed:
                    # Caught up: the last look and going live with no await between them, so an
                    # event published meanwhile is either read here or delivered live.
                    rows = gw.events_since(self.client.id, self.last_sent, batch)
                    if not rows:
                        self.live = True
                        return
                if self.closed:
                    return
                for row in rows:
                    if row.seq != self.last_sent + 1:
                        log.error("event log gap for %s at %d", self.client.id, self.last_sent + 1)
                    self.last_sent = row.seq
                self._send_texts([row.data for row in rows])
                if not self._writable.is_set():
                    await asyncio.wait_for(self._writable.wait(), timeout=self.server.heartbeat * 4)
                else:
                    await asyncio.sleep(0)
        except TimeoutError:
            self._drop("slow consumer during replay")
        except asyncio.CancelledError:
            raise

    def deliver(self, events: list[tuple[int, bytes]]) -> None:
        """Live events of one commit, ``(seq, data)`` in order (called by the gateway once they
        are durable), sent together (see :meth:`_send_texts`)."""
        if not self.live or self.closed or self.transport is None:
            return  # the replay loop will read them from the log
        last = self.last_sent
        payloads: list[bytes] = []
        gap = False
        for seq, data in events:
            if seq <= last:
                continue  # sent already (by the replay)
            if seq != last + 1:
                gap = True  # never skip: what is missing comes from the log
                break
            payloads.append(data)
            last = seq
        self.last_sent = last  # before sending: a drop on the way names this resume point
        self._send_texts(payloads)
        if gap:
            self._start_replay()
        elif not self.closed and self._queued() > self.server.buffer_limit:
            self._drop("slow consumer")

    def heartbeat(self, now: float) -> None:
        if (self.subscribed or self.subs) and not self.closed and now - self.last_activity >= self.server.heartbeat:
            seq = self.last_sent if self.subscribed else max(s.last_sent for s in self.subs.values())
            self._send_json({"type": "heartbeat", "seq": seq, "ts": _ts()})

    def _queued(self) -> int:
        assert self.transport is not None
        return self.transport.underlying_transport.get_write_buffer_size()

    def _send(self, data: bytes, msg_type: WSMsgType = WSMsgType.TEXT) -> None:
        """One frame. Every frame but the replay's batches (paced by pause_writing) goes out
        here or through :meth:`deliver`, and both check ``ws_buffer_limit`` after the write:
        a consumer past it is dropped (pongs, heartbeats and answers count too), so at most
        the limit plus one write is ever queued for it."""
        if self.transport is not None and not self.closed:
            self.transport.send(msg_type, data)
            self.last_activity = time.monotonic()
            if self._queued() > self.server.buffer_limit:
                self._drop("slow consumer")

    def _send_texts(self, payloads: list[bytes]) -> None:
        """Text frames in one socket write: picows writes each frame with a system call of
        its own, which costs more than framing them here."""
        if len(payloads) == 1:
            self._send(payloads[0])
        elif payloads and self.transport is not None and not self.closed:
            frames: list[bytes] = []
            for data in payloads:
                frames.append(_text_frame_header(len(data)))
                frames.append(data)
            self.transport.underlying_transport.write(b"".join(frames))
            self.last_activity = time.monotonic()

    def _send_json(self, obj: dict[str, Any]) -> None:
        self._send(_json.encode(obj))

    def _drop(self, reason: str) -> None:
        self.server.gateway.metrics.ws_dropped.labels(reason.split(" during")[0]).inc()
        self._fail(WSCloseCode.TRY_AGAIN_LATER, f"{reason}: reconnect with since=<last seq received>")

    def _fail(self, code: WSCloseCode, reason: str) -> None:
        """The error frame and a close frame (this one write is not checked against the limit),
        then a graceful disconnect, cut after a grace period if the peer does not read."""
        if self.transport is None or self.closed:
            return
        transport = self.transport
        try:
            transport.send(WSMsgType.TEXT, _json.encode({"type": "error", "reason": reason, "seq": self.last_sent}))
            transport.send_close(code, reason.encode()[:120])
        finally:
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
            self._timer = _call_later(_CLOSE_GRACE, transport.disconnect, False)
            transport.disconnect()


class StreamServer:
    """picows server for ``/v1/stream`` on the loop of the gateway."""

    def __init__(self, gateway: Gateway, auth: Authenticator, heartbeat: float, buffer_limit: int,
                 replay_batch: int, *, auth_timeout: float = 10.0, max_unauthenticated: int = 256,
                 max_per_ip: int = 1024, max_message: int = 65536,
                 failures: FailureThrottle | None = None) -> None:
        self.gateway = gateway
        self.auth = auth
        self.heartbeat = heartbeat
        self.buffer_limit = buffer_limit
        self.replay_batch = replay_batch
        self.auth_timeout = auth_timeout
        self.max_unauthenticated = max_unauthenticated
        self.max_per_ip = max_per_ip
        self.max_message = max_message
        self.failures = failures
        self.connections: set[_Connection] = set()
        self.unauthenticated = 0
        self.per_ip: dict[str, int] = {}  # open connections by address (entries removed at zero)
        metrics = gateway.metrics
        self._gauges = {state: metrics.ws_open.labels(state) for state in ("authenticated", "unauthenticated")}
        self._auth_failed = metrics.auth_failures.labels("ws")
        self._server: asyncio.Server | None = None
        self._hb_task: asyncio.Task[None] | None = None

    # connection accounting -------------------------------------------------------
    def admit(self, conn: _Connection) -> tuple[str, WSCloseCode, str] | None:
        """Count a new connection; what to refuse it with, if it is over a cap."""
        self.connections.add(conn)
        self.per_ip[conn.ip] = n = self.per_ip.get(conn.ip, 0) + 1
        self._set_state(conn, "authenticated" if conn.client is not None else "unauthenticated")
        if n > self.max_per_ip:
            return "per_ip_limit", WSCloseCode.TRY_AGAIN_LATER, f"more than {self.max_per_ip} connections " \
                "from this address"
        if conn.client is None:
            if self.unauthenticated > self.max_unauthenticated:
                return ("unauthenticated_limit", WSCloseCode.TRY_AGAIN_LATER,
                        "too many unauthenticated connections: retry later")
            if self.failures is not None and self.failures.blocked(conn.ip):
                return ("auth_failures", WSCloseCode.POLICY_VIOLATION,
                        "too many failed authentications from this address: retry later")
        return None

    def authenticated(self, conn: _Connection) -> None:
        self._set_state(conn, "authenticated")

    def auth_failed(self, ip: str | None) -> None:
        self._auth_failed.inc()
        if ip is not None and self.failures is not None:
            self.failures.failed(ip)

    def release(self, conn: _Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self._set_state(conn, "")
        n = self.per_ip.get(conn.ip, 1) - 1
        if n > 0:
            self.per_ip[conn.ip] = n
        else:
            self.per_ip.pop(conn.ip, None)

    def _set_state(self, conn: _Connection, state: str) -> None:
        if conn.state:
            self._gauges[conn.state].dec()
            if conn.state == "unauthenticated":
                self.unauthenticated -= 1
        conn.state = state
        if state:
            self._gauges[state].inc()
            if state == "unauthenticated":
                self.unauthenticated += 1

    def _factory(self, request: WSUpgradeRequest) -> Any:
        url = urllib.parse.urlsplit(request.path.decode("latin-1"))
        if url.path not in STREAM_PATHS:
            return None
        query = urllib.parse.parse_qs(url.query)
        since: int | None = None
        if "since" in query:
            try:
                since = int(query["since"][-1])
                if since < 0:
                    raise ValueError
            except ValueError:
                return WSUpgradeResponseWithListener(
                    WSUpgradeResponse.create_error_response(400, b"since must be a non-negative integer\n"),
                    None)
        # subscribe=explicit: no implicit whole-stream subscription; the client sends subscribe ops
        auto = query.get("subscribe", ["all"])[-1] != "explicit"
        key = Authenticator.key_from_headers(request.headers.get)
        client = None
        if key is not None:
            client = self.auth.authenticate(key)
            if client is None:
                self.auth_failed(None)  # the upgrade request carries no peer address: counted only
                return WSUpgradeResponseWithListener(
                    WSUpgradeResponse.create_error_response(401, b"invalid API key\n"), None)
        conn = _Connection(self, client, since, auto)
        conn.cancel_on_disconnect = query.get("cancel_on_disconnect", ["false"])[-1] in ("1", "true")
        return conn

    async def start(self, host: str, port: int, ssl: Any = None) -> int:
        """Listen on ``host:port`` (WSS when ``ssl`` is a server :class:`ssl.SSLContext`)."""
        self._server = await ws_create_server(
            self._factory, host, port, ssl=ssl, enable_auto_ping=True, enable_auto_pong=False,
            auto_ping_idle_timeout=max(self.heartbeat * 2, 5.0), auto_ping_reply_timeout=max(self.heartbeat, 5.0),
            max_frame_size=65536,
        )
        self._hb_task = asyncio.get_running_loop().create_task(self._heartbeats())
        return self._server.sockets[0].getsockname()[1]

    async def _heartbeats(self) -> None:
        interval = min(self.heartbeat, 1.0)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for conn in list(self.connections):
                conn.heartbeat(now)

    async def stop(self) -> None:
        if self._hb_task is not None:
            self._hb_task.cancel()
        for conn in list(self.connections):
            if conn.transport is not None and not conn.closed:
                conn.transport.send_close(WSCloseCode.GOING_AWAY, b"gateway shutting down")
                conn.transport.disconnect()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
