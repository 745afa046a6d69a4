"""The FIX session layer as a sans-I/O state machine.

A :class:`Session` owns no socket and no timer. The engine (or a test) drives it:

- :meth:`Session.connected` when a transport is up, with a ``write(bytes)`` and a
  ``close()`` callable; :meth:`Session.disconnected` when it went down;
- :meth:`Session.receive` (or :meth:`Session.receive_message`) for each framed
  inbound message, :meth:`Session.receive_garbled` for a frame the tokenizer
  dropped;
- :meth:`Session.timer` about once a second, for heartbeats, test requests and
  logon/logout timeouts and the session schedule;
- :meth:`Session.send` to send an application message.

Everything the session emits goes through ``write``; application hooks are called
synchronously on the object given as ``app`` (see :class:`fastfix.engine.Application`).
The time comes from ``clock`` (``time.time`` by default), so tests use a fake one.

Inbound processing follows QuickFIX's ``Session::next``/``Session::verify``:
CompIDs present, BeginString, dictionary validation, then per message type the
logon state, SendingTime accuracy, CompIDs and sequence number checks.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from fastfix._reject_text import REJECT_TEXT
from fastfix.errors import FixError
from fastfix.tags import ADMIN_MSG_TYPES as _ADMIN_TYPES
from fastfix.tags import (
    BEGIN_SEQ_NO,
    BUSINESS_REJECT_REASON,
    CHECK_SUM,
    DELIVER_TO_COMP_ID,
    DELIVER_TO_LOCATION_ID,
    DELIVER_TO_SUB_ID,
    ENCRYPT_METHOD,
    END_SEQ_NO,
    FRAME_TAGS,
    GAP_FILL_FLAG,
    HEADER_TAGS,
    HEART_BT_INT,
    MSG_SEQ_NUM,
    NEW_SEQ_NO,
    NEXT_EXPECTED_MSG_SEQ_NUM,
    ON_BEHALF_OF_COMP_ID,
    ON_BEHALF_OF_LOCATION_ID,
    ON_BEHALF_OF_SUB_ID,
    ORIG_SENDING_TIME,
    PASSWORD,
    POSS_DUP_FLAG,
    REF_MSG_TYPE,
    REF_SEQ_NUM,
    REF_TAG_ID,
    RESET_SEQ_NUM_FLAG,
    SENDER_COMP_ID,
    SENDER_LOCATION_ID,
    SENDER_SUB_ID,
    SENDING_TIME,
    SESSION_REJECT_REASON,
    TARGET_COMP_ID,
    TARGET_LOCATION_ID,
    TARGET_SUB_ID,
    TEST_REQ_ID,
    TEXT,
    USERNAME,
)
from fastfix.tags import SESSION_HEADER_TAGS as _SESSION_HEADER

if TYPE_CHECKING:
    from fastfix.log import Log
    from fastfix.settings import SessionID, Settings
    from fastfix.store import MessageStore

__all__ = [
    "Session",
    "SessionConfig",
    "RejectMessage",
    "BusinessReject",
    "UnsupportedMessageType",
    "DoNotSend",
    "RejectLogon",
    "HEADER_TAGS",
]


# --------------------------------------------------------------------------- exceptions


# QuickFIX's texts for BusinessRejectReason (380); SessionRejectReason (373) texts
# are shared with validation in fastfix._reject_text.
_BUSINESS_TEXT = {
    0: "Other",
    1: "Unknown ID",
    2: "Unknown Security",
    3: "Unsupported Message Type",
    4: "Application not available",
    5: "Conditionally Required Field Missing",
    6: "Not authorized",
    7: "DeliverTo firm not available at this time",
}


class _Reject(FixError):
    """A reject raised by the application: reason code, referenced tag and optional Text."""

    # Text of each reason code when the application gives none.
    _TEXTS: ClassVar[dict[int, str]] = {}

    def __init__(self, reason: int, ref_tag: int = 0, text: str | None = None):
        super().__init__(text or self._TEXTS.get(reason, "Rejected"))
        self.reason = reason
        self.ref_tag = ref_tag
        self.text = text


class RejectMessage(_Reject):
    """Raised by ``from_app``/``from_admin``: answer with a session-level Reject (35=3)."""

    _TEXTS = REJECT_TEXT


class BusinessReject(_Reject):
    """Raised by ``from_app``: answer with a BusinessMessageReject (35=j)."""

    _TEXTS = _BUSINESS_TEXT


class UnsupportedMessageType(BusinessReject):
    """Raised by ``from_app`` for a message type the application does not handle."""

    def __init__(self) -> None:
        super().__init__(3)


class DoNotSend(FixError):
    """Raised by ``to_app`` to suppress a message (on resend: a gap fill replaces it)."""


class RejectLogon(FixError):
    """Raised by ``from_admin`` on a Logon: answer with a Logout carrying this text."""


# --------------------------------------------------------------------------- constants

# Routing tags swapped on a reply: OnBehalfOf* <-> DeliverTo*.
_REVERSE_ROUTE = (
    (ON_BEHALF_OF_COMP_ID, DELIVER_TO_COMP_ID), (ON_BEHALF_OF_SUB_ID, DELIVER_TO_SUB_ID),
    (DELIVER_TO_COMP_ID, ON_BEHALF_OF_COMP_ID), (DELIVER_TO_SUB_ID, ON_BEHALF_OF_SUB_ID),
)  # fmt: skip
_REVERSE_LOCATION = (
    (ON_BEHALF_OF_LOCATION_ID, DELIVER_TO_LOCATION_ID), (DELIVER_TO_LOCATION_ID, ON_BEHALF_OF_LOCATION_ID),
)  # fmt: skip
# A Logon's fields to pass on when the version has no Username/Password (FIX 4.2 and older).
_FRAME_AND_CREDENTIALS = FRAME_TAGS | {USERNAME, PASSWORD}
# Header fields of a stored message that a resend writes anew (SendingTime moves to OrigSendingTime).
_REWRITTEN_ON_RESEND = FRAME_TAGS | {POSS_DUP_FLAG, ORIG_SENDING_TIME}


def _b(v: str | bytes) -> bytes:
    return v.encode() if isinstance(v, str) else v


_day_base: dict[bytes, int] = {}
_last_second: list[Any] = [b"", 0]  # (YYYYMMDD-HH:MM:SS, epoch seconds) of the last call


def parse_utc(value: bytes) -> float:
    """``YYYYMMDD-HH:MM:SS[.fff...]`` -> seconds since the epoch; ValueError if malformed.

    Consecutive messages mostly share their second, which is cached; dates are cached
    too, so the usual cost is one slice compare and the fraction.
    """
    head = value[:17]
    if head == _last_second[0]:
        t = _last_second[1]
    else:
        if len(value) < 17 or value[8] != 45 or value[11] != 58 or value[14] != 58:
            raise ValueError(f"not a UTCTimestamp: {value!r}")
        day = value[:8]
        base = _day_base.get(day)
        if base is None:
            d = _dt.date(int(day[:4]), int(day[4:6]), int(day[6:8]))
            base = calendar.timegm(d.timetuple())
            if len(_day_base) > 4096:
                _day_base.clear()
            _day_base[day] = base
        hh, mm, ss = int(value[9:11]), int(value[12:14]), int(value[15:17])
        if hh > 23 or mm > 59 or ss > 60:
            raise ValueError(f"not a UTCTimestamp: {value!r}")
        t = base + hh * 3600 + mm * 60 + ss
        _last_second[0] = head
        _last_second[1] = t
    n = len(value)
    if n == 17:
        return float(t)
    if n > 18 and value[17] == 46:
        frac = value[18:]
        return t + int(frac) / 10 ** (n - 18)
    raise ValueError(f"not a UTCTimestamp: {value!r}")


# --------------------------------------------------------------------------- config


class SessionConfig:
    """The settings a session uses, parsed once (QuickFIX key names and defaults)."""

    def __init__(
        self,
        *,
        initiator: bool = False,
        heartbeat_interval: int = 30,
        reset_on_logon: bool = False,
        reset_on_logout: bool = False,
        reset_on_disconnect: bool = False,
        refresh_on_logon: bool = False,
        logon_timeout: float = 10.0,
        logout_timeout: float = 2.0,
        check_latency: bool = True,
        max_latency: float = 120.0,
        check_comp_id: bool = True,
        resend_request_chunk_size: int = 0,
        send_redundant_resend_requests: bool = False,
        enable_next_expected_msg_seq_num: bool = False,
        persist_messages: bool = True,
        test_request_delay_multiplier: float = 0.2,
        timestamp_precision: int = 3,
        validate: bool = True,
        sender_sub_id: str | None = None,
        sender_location_id: str | None = None,
        target_sub_id: str | None = None,
        target_location_id: str | None = None,
        schedule: Any = None,
        validation_options: Any = None,
        username: str | None = None,
        password: str | None = None,
        logon_policy: Any = None,
    ) -> None:
        self.initiator = initiator
        self.heartbeat_interval = heartbeat_interval
        self.reset_on_logon = reset_on_logon
        self.reset_on_logout = reset_on_logout
        self.reset_on_disconnect = reset_on_disconnect
        self.refresh_on_logon = refresh_on_logon
        self.logon_timeout = logon_timeout
        self.logout_timeout = logout_timeout
        self.check_latency = check_latency
        self.max_latency = max_latency
        self.check_comp_id = check_comp_id
        self.resend_request_chunk_size = resend_request_chunk_size
        self.send_redundant_resend_requests = send_redundant_resend_requests
        self.enable_next_expected_msg_seq_num = enable_next_expected_msg_seq_num
        self.persist_messages = persist_messages
        self.test_request_delay_multiplier = test_request_delay_multiplier
        self.timestamp_precision = timestamp_precision
        self.validate = validate
        self.sender_sub_id = sender_sub_id
        self.sender_location_id = sender_location_id
        self.target_sub_id = target_sub_id
        self.target_location_id = target_location_id
        #: a :class:`fastfix.settings.SessionSchedule` or None (always open)
        self.schedule = schedule
        self.validation_options = validation_options
        #: initiator: Username (553) and Password (554) sent on Logon
        self.username = username
        self.password = password
        #: acceptor: a :class:`fastfix.auth.LogonPolicy` every Logon must pass, or None
        self.logon_policy = logon_policy

    def __repr__(self) -> str:  # never show the password
        return f"SessionConfig(initiator={self.initiator}, heartbeat_interval={self.heartbeat_interval})"

    @classmethod
    def from_settings(cls, s: Settings) -> SessionConfig:
        """Read the QuickFIX keys of one session's settings."""
        schedule = s.schedule()
        precision = s.get_str("TimeStampPrecision", "")
        if not precision:
            precision = "3" if s.get_bool("MillisecondsInTimeStamp", True) else "0"
        from fastfix.auth import LogonPolicy

        options = None
        try:
            from fastfix.dictionary import ValidationOptions

            options = ValidationOptions.from_settings(s)
        except ImportError:  # pragma: no cover - dictionary module always shipped
            pass
        return cls(
            initiator=s.is_initiator,
            heartbeat_interval=s.get_int("HeartBtInt", 30),
            reset_on_logon=s.get_bool("ResetOnLogon", False),
            reset_on_logout=s.get_bool("ResetOnLogout", False),
            reset_on_disconnect=s.get_bool("ResetOnDisconnect", False),
            refresh_on_logon=s.get_bool("RefreshOnLogon", False),
            logon_timeout=s.get_int("LogonTimeout", 10),
            logout_timeout=s.get_int("LogoutTimeout", 2),
            check_latency=s.get_bool("CheckLatency", True),
            max_latency=s.get_int("MaxLatency", 120),
            check_comp_id=s.get_bool("CheckCompID", True),
            resend_request_chunk_size=s.get_int("ResendRequestChunkSize", 0),
            send_redundant_resend_requests=s.get_bool("SendRedundantResendRequests", False),
            enable_next_expected_msg_seq_num=s.get_bool("EnableNextExpectedMsgSeqNum", False),
            persist_messages=s.get_bool("PersistMessages", True),
            test_request_delay_multiplier=s.get_float("TestRequestDelayMultiplier", 0.2),
            timestamp_precision=int(precision),
            validate=s.get_bool("UseDataDictionary", True),
            sender_sub_id=s.get_str("SenderSubID", None),
            sender_location_id=s.get_str("SenderLocationID", None),
            target_sub_id=s.get_str("TargetSubID", None),
            target_location_id=s.get_str("TargetLocationID", None),
            schedule=None if schedule.non_stop else schedule,
            validation_options=options,
            username=s.get_str("Username", None) if s.is_initiator else None,
            password=s.password() if s.is_initiator else None,
            logon_policy=LogonPolicy.from_settings(s),
        )


class _NoApp:
    """Hooks that do nothing (a session without an application)."""

    def on_create(self, session_id: Any) -> None:
        pass

    def on_logon(self, session_id: Any) -> None:
        pass

    def on_logout(self, session_id: Any) -> None:
        pass

    def to_admin(self, msg_type: bytes, fields: list, session_id: Any) -> None:
        pass

    def from_admin(self, msg: Any, session_id: Any) -> None:
        pass

    def to_app(self, msg_type: bytes, fields: list, session_id: Any) -> None:
        pass

    def from_app(self, msg: Any, session_id: Any) -> None:
        pass


def _overrides(app: Any, name: str) -> bool:
    """True if ``app`` defines hook ``name`` itself (so the no-op default can be skipped)."""
    if type(app) is _NoApp:  # every hook of a session without an application is a no-op
        return False
    fn = getattr(type(app), name, None)
    if fn is None:
        return False
    for base in type(app).__mro__:
        if base.__dict__.get(name) is fn:
            return not getattr(fn, "_fastfix_default", False)
    return True


# --------------------------------------------------------------------------- session


class Session:
    """One FIX session (sans-I/O).

    ``store`` is a :class:`fastfix.store.MessageStore`, ``log`` a
    :class:`fastfix.log.Log` or None, ``dictionary`` a
    :class:`fastfix.dictionary.DataDictionary` or None (no validation).
    """

    def __init__(
        self,
        session_id: SessionID,
        config: SessionConfig,
        store: MessageStore,
        *,
        app: Any = None,
        log: Log | None = None,
        dictionary: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from fastfix.codec import Garbled, checksum, encode, frame, parse

        self._encode = encode
        self._frame = frame
        self._body_heads: dict[Any, tuple[bytes, bytes, bytes]] = {}  # see _body_head
        self._checksum = checksum
        self._parse = parse
        self._garbled_type = Garbled
        self.session_id = session_id
        self.config = config
        self.store = store
        self.app = app if app is not None else _NoApp()
        self.log = log
        self.dictionary = dictionary if config.validate else None
        self._clock = clock
        self.begin_string = _b(session_id.begin_string)
        self._begin_prefix = b"8=" + self.begin_string + b"\x019="
        self.sender_comp_id = _b(session_id.sender_comp_id)
        self.target_comp_id = _b(session_id.target_comp_id)
        self._is_fix42_plus = session_id.begin_string >= "FIX.4.2"
        self._logon_has_credentials = session_id.begin_string >= "FIX.4.3"  # 553/554 in Logon
        self._begin_str = session_id.begin_string
        # Extra header fields from settings, sorted with the rest of the header.
        extra: list[tuple[int, bytes]] = []
        for tag, v in (
            (SENDER_SUB_ID, config.sender_sub_id),
            (SENDER_LOCATION_ID, config.sender_location_id),
            (TARGET_SUB_ID, config.target_sub_id),
            (TARGET_LOCATION_ID, config.target_location_id),
        ):
            if v:
                extra.append((tag, _b(v)))
        self._header_extra = extra
        self._hook_to_app = _overrides(self.app, "to_app")
        self._hook_to_admin = _overrides(self.app, "to_admin")
        self._hook_from_admin = _overrides(self.app, "from_admin")
        #: called with an awaitable returned by an application hook (set by the engine)
        self.spawn: Callable[[Any, Any], None] | None = None
        #: called with this session after logon and after disconnect (set by the engine)
        self.state_listener: Callable[[Session], None] | None = None

        # Transport (None when disconnected).
        self._write: Callable[[bytes], Any] | None = None
        self._close: Callable[[], Any] | None = None
        self.peer: Any = None

        # SendingTime cache (per millisecond).
        self._ts_ms = -1
        self._ts_sec = -1
        self._ts_prefix = b""
        self._ts = b""

        self.enabled = True
        self._reset_state()
        self.heartbeat_interval = config.heartbeat_interval if config.initiator else 0
        self._period_checked = 0.0
        self.app.on_create(session_id)

    # ------------------------------------------------------------------ state

    def _reset_state(self) -> None:
        self.received_logon = False
        self.sent_logon = False
        self.sent_logout = False
        self.sent_reset = False
        self.received_reset = False
        self._queue: dict[int, Any] = {}
        self._resend_range: tuple[int, int, int] | None = None  # begin, end, chunk end
        self._test_requests = 0
        self._logout_reason = ""
        now = self._clock()
        self.last_sent = now
        self.last_received = now

    @property
    def is_logged_on(self) -> bool:
        """Logon sent and received."""
        return self.received_logon and self.sent_logon

    @property
    def is_connected(self) -> bool:
        return self._write is not None

    @property
    def next_sender_seq(self) -> int:
        return self.store.next_sender_seq

    @property
    def next_target_seq(self) -> int:
        return self.store.next_target_seq

    def _event(self, text: str) -> None:
        if self.log is not None:
            self.log.on_event(text)

    # ------------------------------------------------------------------ transport

    def connected(self, write: Callable[[bytes], Any], close: Callable[[], Any], peer: Any = None) -> None:
        """A transport is up. An initiator sends its Logon now.

        ``peer`` (a :class:`fastfix.auth.Peer`: address, client certificate) is what an
        acceptor's logon policy checks.
        """
        self._write = write
        self._close = close
        self.peer = peer
        self._reset_state()
        self._event("Connected")
        if self.config.initiator and self.enabled and self.is_session_time():
            self._generate_logon()

    def disconnect(self, reason: str | None = None) -> None:
        """Drop the connection (QuickFIX ``Session::disconnect``); idempotent."""
        close = self._close
        was_connected = self._write is not None
        self._write = None
        self._close = None
        if was_connected:
            self._event(f"Disconnecting{': ' + reason if reason else ''}")
        if close is not None:
            close()
        if self.received_logon or self.sent_logon:
            self.received_logon = False
            self.sent_logon = False
            self._call_hook(self.app.on_logout, self.session_id)
        self.sent_logout = False
        self.received_reset = False
        self.sent_reset = False
        self._queue.clear()
        self._resend_range = None
        if was_connected and self.config.reset_on_disconnect:
            self.store.reset()
        if was_connected and self.state_listener is not None:
            self.state_listener(self)

    def disconnected(self) -> None:
        """The transport went down (peer closed, error): same clean-up as :meth:`disconnect`."""
        self._close = None
        self.disconnect()

    def logout(self, reason: str = "") -> None:
        """Start a graceful logout: send Logout, wait for the answer or LogoutTimeout."""
        if self.is_logged_on and not self.sent_logout:
            self._generate_logout(reason)
        elif self._write is not None and not self.received_logon:
            self.disconnect("logout before logon")

    def reset(self) -> None:
        """Logout if logged on, disconnect and reset the sequence numbers (QuickFIX ``reset``)."""
        if self.is_logged_on:
            self._generate_logout()
        self.disconnect()
        self.store.reset()

    # ------------------------------------------------------------------ clock

    def _sending_time(self) -> bytes:
        now = self._clock()
        ms = int(now * 1000)
        if ms != self._ts_ms:
            sec = ms // 1000
            if sec != self._ts_sec:
                self._ts_sec = sec
                self._ts_prefix = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(sec)).encode()
            self._ts_ms = ms
            p = self.config.timestamp_precision
            if p == 3:
                self._ts = self._ts_prefix + b".%03d" % (ms % 1000)
            elif p == 0:
                self._ts = self._ts_prefix
            else:
                us = int(now * 1_000_000) % 1_000_000
                frac = b"%06d" % us if p == 6 else b"%06d000" % us
                self._ts = self._ts_prefix + b"." + frac
                self._ts_ms = -1  # sub-millisecond precision: do not cache
        return self._ts

    def _now_dt(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self._clock(), _dt.UTC)

    def is_session_time(self) -> bool:
        """True inside the StartTime/EndTime window (always without a schedule)."""
        sch = self.config.schedule
        return sch is None or sch.is_session_time(self._now_dt())

    # ------------------------------------------------------------------ outbound

    def _transmit(self, raw: bytes) -> None:
        w = self._write
        if w is not None:
            w(raw)
            self.last_sent = self._clock()
            if self.log is not None:
                self.log.on_outgoing(raw)

    def _header(self, seq: Any, extra: Sequence[tuple[int, Any]] | None,
                sending_time: Any = None) -> list[tuple[int, Any]]:
        """Header in QuickFIX's order: tags sorted after 8/9/35."""
        hdr: list[tuple[int, Any]] = [
            (MSG_SEQ_NUM, seq),
            (SENDER_COMP_ID, self.sender_comp_id),
            (SENDING_TIME, self._sending_time() if sending_time is None else sending_time),
            (TARGET_COMP_ID, self.target_comp_id),
        ]
        if extra or self._header_extra:
            hdr.extend(self._header_extra)
            if extra:
                hdr.extend(extra)
            hdr.sort(key=_tag_key)
        return hdr

    def _send_admin(
        self,
        msg_type: bytes,
        body: list[tuple[int, Any]],
        header: list[tuple[int, Any]] | None = None,
    ) -> None:
        """Send a session-level message: numbered, not stored (gap-filled on resend)."""
        if self._hook_to_admin:
            fields = (header or []) + body
            self._call_hook(self.app.to_admin, msg_type, fields, self.session_id)
            header = [f for f in fields if f[0] in HEADER_TAGS]
            body = [f for f in fields if f[0] not in HEADER_TAGS]
        seq = self.store.next_sender_seq
        raw = self._encode(self.begin_string, msg_type, self._header(seq, header) + body)
        self.store.incr_next_sender_seq()
        self._transmit(raw)

    def send(self, msg_type: str | bytes, fields: Sequence[tuple[int, Any]]) -> int:
        """Send an application message; returns its MsgSeqNum (0 if ``to_app`` vetoed it).

        Header fields found in ``fields`` (routing, PossResend...) join the header;
        34/49/52/56 are set by the session, PossDupFlag and OrigSendingTime dropped.
        The message is stored (for resend) even while disconnected, as QuickFIX does.
        """
        mt = _b(msg_type)
        extra: list[tuple[int, Any]] | None = None
        body: Sequence[tuple[int, Any]] = fields
        for f in fields:
            if f[0] in HEADER_TAGS:
                extra = []
                body = []
                for g in fields:
                    t = g[0]
                    if t in HEADER_TAGS:
                        if t not in _SESSION_HEADER:
                            extra.append(g)
                    else:
                        body.append(g)
                break
        if self._hook_to_app:
            lst = list(extra or []) + list(body)
            try:
                self._call_hook(self.app.to_app, mt, lst, self.session_id)
            except DoNotSend:
                return 0
            extra = [f for f in lst if f[0] in HEADER_TAGS]
            body = [f for f in lst if f[0] not in HEADER_TAGS]
        store = self.store
        seq = store.next_sender_seq
        hdr = self._header(seq, extra)
        hdr.extend(body)
        return self._send_app(seq, self._encode(self.begin_string, mt, hdr))

    def send_raw_message(self, msg: Any) -> int:
        """Send a parsed message again (echo, routing): body and extra header kept."""
        fields = msg.fields()
        return self.send(msg.msg_type, [f for f in fields if f[0] not in FRAME_TAGS])

    def send_body(self, msg_type: str | bytes, body: bytes, header: Sequence[tuple[int, Any]] = ()) -> int:
        """Send an application message whose body is already encoded; returns its MsgSeqNum.

        ``body`` is the body fields in wire order, each ending with SOH
        (``b"11=A1\x0155=005930\x01..."``, e.g. the body part of ``JsonCodec.body_to_fix``);
        ``header`` holds extra header fields (routing 115/128..., PossResend 97). The
        session writes 8, 9, 35 and its header (34/49/52/56, sub/location ids) around the
        body and appends the CheckSum, so the body is never decoded or re-encoded; with a
        ``to_app`` hook (which wants the fields) it falls back to :meth:`send`.
        """
        mt = _b(msg_type)
        if self._hook_to_app:
            extra = [f for f in header if f[0] not in _SESSION_HEADER] if header else []
            return self.send(mt, extra + self._body_fields(mt, body))
        key = (mt, header)
        try:
            head = self._body_heads.get(key)
        except TypeError:  # an unhashable header: no caching
            key, head = None, None
        if head is None:
            head = self._body_head(mt, header)
            if key is not None and len(self._body_heads) < 1024:
                self._body_heads[key] = head
        store = self.store
        seq = store.next_sender_seq
        return self._send_app(seq, self._frame(self.begin_string,
                                               (head[0], b"%d" % seq, head[1], self._sending_time(), head[2], body)))

    def _send_app(self, seq: int, raw: bytes) -> int:
        """Store an application message numbered ``seq`` (for resend) and write it if logged on."""
        store = self.store
        if self.config.persist_messages:
            store.save_sent(seq, raw)
        else:
            store.incr_next_sender_seq()
        if self.received_logon and self.sent_logon:
            self._transmit(raw)
        return seq

    def _body_head(self, mt: bytes, header: Sequence[tuple[int, Any]]) -> tuple[bytes, bytes, bytes]:
        """The header of :meth:`send_body` as three encoded pieces around MsgSeqNum and
        SendingTime (``35=D\x0134=``, ``\x0149=..52=``, ``\x0156=...``): encoded once by
        the codec with markers in place of the two values, then reused for every message
        with the same type and extra header fields."""
        extra = [f for f in header if f[0] not in _SESSION_HEADER] if header else None
        encoded = self._encode(self.begin_string, mt, self._header(b"\x00S", extra, b"\x00T"))
        start = encoded.index(b"\x01", encoded.index(b"\x01") + 1) + 1  # at "35="
        before_seq, rest = encoded[start:-7].split(b"\x00S")
        between, after_time = rest.split(b"\x00T")
        return before_seq, between, after_time

    def _body_fields(self, mt: bytes, body: bytes) -> list[tuple[int, Any]]:
        """The fields of an encoded body (framed and parsed by the codec, DATA fields kept whole)."""
        payload = b"35=" + mt + b"\x01" + body
        raw = self._begin_prefix + b"%d\x01" % len(payload) + payload
        raw += b"10=%03d\x01" % self._checksum(raw)
        return [f for f in self._parse(raw).fields()[3:-1]]

    # ------------------------------------------------------------------ generators

    def _generate_logon(self) -> None:
        cfg = self.config
        if cfg.refresh_on_logon:
            self.store.refresh()
        if cfg.reset_on_logon:
            self.store.reset()
        body: list[tuple[int, Any]] = [(ENCRYPT_METHOD, 0), (HEART_BT_INT, self.heartbeat_interval)]
        if (
            (cfg.reset_on_logon or cfg.reset_on_logout or cfg.reset_on_disconnect)
            and self.store.next_sender_seq == 1
            and self.store.next_target_seq == 1
        ):
            body.append((RESET_SEQ_NUM_FLAG, b"Y"))
            self.sent_reset = True
        if cfg.enable_next_expected_msg_seq_num:
            body.append((NEXT_EXPECTED_MSG_SEQ_NUM, self.store.next_target_seq))
        if cfg.username:
            body.append((USERNAME, cfg.username))
        if cfg.password:
            body.append((PASSWORD, cfg.password))
        self.last_received = self._clock()  # LogonTimeout counts from here
        self._test_requests = 0
        self._send_admin(b"A", body)
        self.sent_logon = True
        self._event("Initiated logon request")

    def _generate_logon_response(self, logon: Any, expected_after: int) -> None:
        body: list[tuple[int, Any]] = [(ENCRYPT_METHOD, 0), (HEART_BT_INT, self.heartbeat_interval)]
        if self.received_reset:
            body.append((RESET_SEQ_NUM_FLAG, b"Y"))
        if self.config.enable_next_expected_msg_seq_num:
            body.append((NEXT_EXPECTED_MSG_SEQ_NUM, expected_after))
        self._send_admin(b"A", body)
        self.sent_logon = True

    def _generate_logout(self, text: str = "") -> None:
        body: list[tuple[int, Any]] = [(TEXT, text)] if text else []
        self._send_admin(b"5", body)
        self.sent_logout = True

    def _generate_heartbeat(self, test_req_id: bytes | None = None) -> None:
        self._send_admin(b"0", [(TEST_REQ_ID, test_req_id)] if test_req_id is not None else [])

    def _generate_test_request(self, test_req_id: bytes) -> None:
        self._send_admin(b"1", [(TEST_REQ_ID, test_req_id)])

    def _generate_resend_request(self, msg_seq: int) -> None:
        begin = self.store.next_target_seq
        end = msg_seq - 1
        chunk = self.config.resend_request_chunk_size
        if chunk and end - begin + 1 > chunk:
            chunk_end = begin + chunk - 1
            wire_end = chunk_end
        else:
            chunk_end = end
            wire_end = 0 if self._is_fix42_plus else 999999
        self._send_admin(b"2", [(BEGIN_SEQ_NO, begin), (END_SEQ_NO, wire_end)])
        self._resend_range = (begin, end, chunk_end)
        self._event(f"Sent ResendRequest FROM: {begin} TO: {wire_end}")

    def _generate_sequence_reset(self, begin: int, new_seq: int) -> None:
        """A SequenceReset-GapFill numbered ``begin`` (does not consume a number)."""
        ts = self._sending_time()
        header: list[tuple[int, Any]] = [
            (MSG_SEQ_NUM, begin),
            (POSS_DUP_FLAG, b"Y"),
            (SENDER_COMP_ID, self.sender_comp_id),
            (SENDING_TIME, ts),
            (TARGET_COMP_ID, self.target_comp_id),
            (ORIG_SENDING_TIME, ts),
        ]
        if self._header_extra:
            header.extend(self._header_extra)
            header.sort(key=_tag_key)
        raw = self._encode(self.begin_string, b"4", header + [(NEW_SEQ_NO, new_seq), (GAP_FILL_FLAG, b"Y")])
        self._transmit(raw)
        self._event(f"Sent SequenceReset TO: {new_seq}")

    @staticmethod
    def _reverse_route(msg: Any, begin_is_41_plus: bool) -> list[tuple[int, Any]]:
        out: list[tuple[int, Any]] = []
        get = msg.get
        for src, dst in _REVERSE_ROUTE:
            v = get(src)
            if v:
                out.append((dst, v))
        if begin_is_41_plus:
            for src, dst in _REVERSE_LOCATION:
                v = get(src)
                if v:
                    out.append((dst, v))
        return out

    def _generate_reject(
        self, msg: Any, reason: int, ref_tag: int | None = None, text: str | None = None
    ) -> None:
        """Session-level Reject (35=3) of ``msg``, worded and ordered as QuickFIX does."""
        mt = msg.msg_type
        seq_raw = msg.get(MSG_SEQ_NUM)
        try:
            seq = int(seq_raw) if seq_raw else 0
        except ValueError:
            seq = 0
        if mt not in (b"A", b"4") and seq == self.store.next_target_seq:
            self.store.incr_next_target_seq()
        if not self.received_logon:
            self._event("Tried to send a reject while not logged on")
            self.disconnect()
            return
        header = self._reverse_route(msg, self._begin_str >= "FIX.4.1")
        body: list[tuple[int, Any]] = []
        if seq_raw:
            body.append((REF_SEQ_NUM, seq_raw))
        text = REJECT_TEXT.get(reason) or text
        with_tag = text is not None and ref_tag is not None and (ref_tag != 0 or reason == 0)
        if self._is_fix42_plus:
            if text is not None:
                body.append((TEXT, text))
            if with_tag:
                body.append((REF_TAG_ID, ref_tag))
            if mt:
                body.append((REF_MSG_TYPE, mt))
            if self._begin_str > "FIX.4.2" or reason <= 11:
                body.append((SESSION_REJECT_REASON, reason))
        elif text is not None:
            body.append((TEXT, f"{text} ({ref_tag})" if with_tag else text))
        self._event(f"Message {seq_raw.decode() if seq_raw else '?'} Rejected: {text}")
        self._send_admin(b"3", body, header)

    def _generate_business_reject(
        self, msg: Any, reason: int, ref_tag: int = 0, text: str | None = None,
        consume: bool = True,
    ) -> None:
        """BusinessMessageReject (35=j); consumes the inbound number unless told not to."""
        if not self._is_fix42_plus:
            self._generate_reject(msg, 5 if reason != 3 else 11, ref_tag or None, text)
            return
        if consume:
            self.store.incr_next_target_seq()
        header = self._reverse_route(msg, True)
        text = text or _BUSINESS_TEXT.get(reason)
        body: list[tuple[int, Any]] = [(REF_SEQ_NUM, msg.get(MSG_SEQ_NUM) or b"0")]
        if text:
            body.append((TEXT, f"{text} ({ref_tag})" if ref_tag else text))
        body.append((REF_MSG_TYPE, msg.msg_type))
        body.append((BUSINESS_REJECT_REASON, reason))
        self._send_admin(b"j", body, header)

    # ------------------------------------------------------------------ hooks

    def _call_hook(self, fn: Callable[..., Any], *args: Any) -> Any:
        res = fn(*args)
        if res is not None and hasattr(res, "__await__"):
            if self.spawn is None:
                raise TypeError(f"{fn.__name__} returned an awaitable outside an engine")
            self.spawn(res, args[0] if args else None)
            return None
        return res

    # ------------------------------------------------------------------ inbound

    def receive_garbled(self, reason: str, data: bytes = b"") -> None:
        """A frame the tokenizer dropped: ignored once logged on, fatal before."""
        if self.log is not None:
            self.log.on_incoming(data)
        self._event(f"Garbled message ignored: {reason}")
        if not self.received_logon:
            self.disconnect("garbled message before logon")

    def receive(self, item: Any) -> None:
        """Feed one tokenizer item (a Message or a Garbled frame)."""
        if type(item) is self._garbled_type:
            self.receive_garbled(item.reason, item.data)
        else:
            self.receive_message(item)

    def receive_message(self, msg: Any, _queued: bool = False) -> None:
        """Process one parsed inbound message (QuickFIX ``Session::next(message)``)."""
        if self._write is None:
            return
        if self.log is not None and not _queued:
            self.log.on_incoming(msg.raw)
        mt = msg.msg_type
        try:
            if SENDER_COMP_ID not in msg or TARGET_COMP_ID not in msg:
                tag = SENDER_COMP_ID if SENDER_COMP_ID not in msg else TARGET_COMP_ID
                if mt not in _ADMIN_TYPES and self._is_fix42_plus:
                    self._generate_business_reject(msg, 5, tag)
                else:
                    self._generate_reject(msg, 1, tag)
                    if mt == b"A":
                        self.disconnect("Required field missing from logon")
                return
            if msg.begin_string != self.begin_string:
                if mt == b"5":
                    self._next_logout(msg)
                else:
                    self._generate_logout("Incorrect BeginString")
                    self.store.incr_next_target_seq()
                return
            dd = self.dictionary
            if dd is not None:
                checked = msg
                if mt == b"A" and not self._logon_has_credentials and (USERNAME in msg or PASSWORD in msg):
                    # Username/Password joined the Logon in FIX 4.3; older versions carry them
                    # by bilateral agreement, so their dictionaries do not know the tags.
                    checked = self._parse(self._encode(self.begin_string, mt, [
                        f for f in msg.fields() if f[0] not in _FRAME_AND_CREDENTIALS]))
                err = dd.validate(checked, self.config.validation_options)
                if err is not None:
                    ref = getattr(err, "ref_tag_id", None)
                    if ref is None:
                        ref = getattr(err, "ref_tag", None)
                    self._generate_reject(msg, err.reason, ref, err.text)
                    if mt == b"A" and self._write is not None:
                        self.disconnect("invalid logon")
                    return
            if mt in _ADMIN_TYPES:
                if mt == b"0":
                    if self._verify(msg, True, True):
                        self.store.incr_next_target_seq()
                elif mt == b"1":
                    self._next_test_request(msg)
                elif mt == b"A":
                    self._next_logon(msg)
                elif mt == b"5":
                    self._next_logout(msg)
                elif mt == b"2":
                    self._next_resend_request(msg)
                elif mt == b"4":
                    self._next_sequence_reset(msg)
                else:  # b"3"
                    if self._verify(msg, True, True):
                        self.store.incr_next_target_seq()
            else:
                self._next_app(msg)
        except RejectLogon as e:
            self._event(str(e))
            self._generate_logout(str(e))
            self.disconnect()
        except RejectMessage as e:
            self._generate_reject(msg, e.reason, e.ref_tag or None, e.text)
        if not _queued and self._queue and self._write is not None:
            self._next_queued()

    def _next_queued(self) -> None:
        q = self._queue
        while q and self._write is not None:
            expected = self.store.next_target_seq
            for k in [k for k in q if k < expected]:
                del q[k]
            msg = q.pop(expected, None)
            if msg is None:
                return
            self._event(f"Processing QUEUED message: {expected}")
            if msg.msg_type in (b"A", b"2"):
                self.store.incr_next_target_seq()
            else:
                self.receive_message(msg, True)

    def _valid_logon_state(self, mt: bytes) -> bool:
        if (mt == b"A" and self.sent_reset) or self.received_reset:
            return True
        if (mt == b"A" and not self.received_logon) or (mt != b"A" and self.received_logon):
            return True
        if mt == b"5" and self.sent_logon:
            return True
        if mt != b"5" and self.sent_logout:
            return True
        return mt in (b"4", b"3")

    def _verify(self, msg: Any, check_high: bool = True, check_low: bool = True) -> bool:
        """QuickFIX ``Session::verify``: logon state, SendingTime, CompIDs, MsgSeqNum."""
        mt = msg.msg_type
        if not (self.received_logon and mt != b"A") and not self._valid_logon_state(mt):
            self._event("Logon state is not valid for message")
            self.disconnect("logon state is not valid for message")
            return False
        cfg = self.config
        now = self._clock()
        if cfg.check_latency:
            st = msg.get(SENDING_TIME)
            try:
                ok = st is not None and abs(now - parse_utc(st)) <= cfg.max_latency
            except ValueError:
                ok = False
            if not ok:
                self._generate_reject(msg, 10)
                if self._write is not None:
                    self._generate_logout()
                return False
        if cfg.check_comp_id and (
            msg.get(SENDER_COMP_ID) != self.target_comp_id or msg.get(TARGET_COMP_ID) != self.sender_comp_id
        ):
            self._generate_reject(msg, 9)
            if self._write is not None:
                self._generate_logout()
            return False
        if check_high or check_low:
            seq = msg.seq_num
            expected = self.store.next_target_seq
            if check_high and seq > expected:
                self._target_too_high(msg, seq)
                return False
            if check_low and seq < expected:
                self._target_too_low(msg, seq)
                return False
            rr = self._resend_range
            if rr is not None:
                if seq >= rr[1]:
                    self._event(f"ResendRequest for messages FROM: {rr[0]} TO: {rr[1]} has been satisfied.")
                    self._resend_range = None
                elif seq >= rr[2]:
                    # Chunked resend: this chunk is done, ask for the next one.
                    begin = rr[2] + 1
                    chunk_end = min(rr[2] + self.config.resend_request_chunk_size, rr[1])
                    self._send_admin(b"2", [(BEGIN_SEQ_NO, begin), (END_SEQ_NO, chunk_end)])
                    self._resend_range = (rr[0], rr[1], chunk_end)
        self.last_received = now
        self._test_requests = 0
        if self._hook_from_admin and mt in _ADMIN_TYPES:
            self._call_hook(self.app.from_admin, msg, self.session_id)
        return True

    def _target_too_high(self, msg: Any, seq: int) -> None:
        expected = self.store.next_target_seq
        self._event(f"MsgSeqNum too high, expecting {expected} but received {seq}")
        self._queue[seq] = msg
        rr = self._resend_range
        if rr is not None and not self.config.send_redundant_resend_requests and seq >= rr[0]:
            self._event(f"Already sent ResendRequest FROM: {rr[0]} TO: {rr[1]}.  Not sending another.")
            return
        self._generate_resend_request(seq)

    def _target_too_low(self, msg: Any, seq: int) -> None:
        if msg.get(POSS_DUP_FLAG) != b"Y":
            text = (
                f"MsgSeqNum too low, expecting {self.store.next_target_seq} but received {seq}"
            )
            self._generate_logout(text)
            self._event(text)
            self.disconnect(text)
            return
        self._check_poss_dup(msg)

    def _check_poss_dup(self, msg: Any) -> bool:
        if msg.msg_type == b"4":
            return True
        orig = msg.get(ORIG_SENDING_TIME)
        if orig is None:
            self._generate_reject(msg, 1, ORIG_SENDING_TIME)
            return False
        try:
            too_late = parse_utc(orig) > parse_utc(msg.get(SENDING_TIME) or b"")
        except ValueError:
            too_late = True
        if too_late:
            self._generate_reject(msg, 10)
            if self._write is not None:
                self._generate_logout()
            return False
        return True

    # ------------------------------------------------------------------ per type

    def _next_app(self, msg: Any) -> None:
        if not self._verify(msg, True, True):
            return
        try:
            res = self.app.from_app(msg, self.session_id)
        except BusinessReject as e:
            self._generate_business_reject(msg, e.reason, e.ref_tag, e.text)
            return
        except RejectMessage as e:
            self._generate_reject(msg, e.reason, e.ref_tag or None, e.text)
            return
        self.store.incr_next_target_seq()
        if res is not None and hasattr(res, "__await__"):
            if self.spawn is None:
                raise TypeError("from_app returned an awaitable outside an engine")
            self.spawn(res, msg)

    def on_async_error(self, msg: Any, exc: BaseException) -> None:
        """An asynchronous ``from_app`` raised: reject as a synchronous one would."""
        if isinstance(exc, BusinessReject):
            self._generate_business_reject(msg, exc.reason, exc.ref_tag, exc.text, consume=False)
        elif isinstance(exc, RejectMessage):
            header = self._reverse_route(msg, True)
            body: list[tuple[int, Any]] = [(REF_SEQ_NUM, msg.get(MSG_SEQ_NUM) or b"0")]
            text = exc.text or REJECT_TEXT.get(exc.reason, "Rejected")
            body.append((TEXT, text))
            if exc.ref_tag:
                body.append((REF_TAG_ID, exc.ref_tag))
            body.append((REF_MSG_TYPE, msg.msg_type))
            body.append((SESSION_REJECT_REASON, exc.reason))
            self._send_admin(b"3", body, header)
        else:
            self._event(f"Application error: {exc!r}")

    def _next_test_request(self, msg: Any) -> None:
        if not self._verify(msg, True, True):
            return
        self._generate_heartbeat(msg.get(TEST_REQ_ID) or b"")
        self.store.incr_next_target_seq()

    def _next_logout(self, msg: Any) -> None:
        if not self._verify(msg, False, False):
            return
        if not self.sent_logout:
            self._event("Received logout request")
            self._generate_logout()
        else:
            self._event("Received logout response")
        self.store.incr_next_target_seq()
        if self.config.reset_on_logout:
            self.store.reset()
        self.disconnect()

    def _next_sequence_reset(self, msg: Any) -> None:
        gap_fill = msg.get(GAP_FILL_FLAG) == b"Y"
        if not self._verify(msg, gap_fill, gap_fill):
            return
        raw = msg.get(NEW_SEQ_NO)
        if raw is None:
            return
        new_seq = int(raw)
        expected = self.store.next_target_seq
        self._event(f"Received SequenceReset FROM: {expected} TO: {new_seq}")
        if new_seq > expected:
            self.store.set_next_target_seq(new_seq)
        elif new_seq < expected:
            self._generate_reject(msg, 5)

    def _next_resend_request(self, msg: Any) -> None:
        if not self._verify(msg, False, False):
            return
        begin = int(msg.get(BEGIN_SEQ_NO) or b"0")
        end = int(msg.get(END_SEQ_NO) or b"0")
        self._event(f"Received ResendRequest FROM: {begin} TO: {end}")
        self._resend(begin, end)
        seq = msg.seq_num
        if seq == self.store.next_target_seq:
            self.store.incr_next_target_seq()

    def _resend(self, begin: int, end: int) -> None:
        """Answer a ResendRequest: stored application messages again with PossDupFlag=Y,
        everything else (session messages, vetoed or unstored ones) as gap fills."""
        next_sender = self.store.next_sender_seq
        if (
            end == 0
            or (not self._is_fix42_plus and end == 999999)
            or end >= next_sender
        ):
            end = next_sender - 1
        if begin < 1:
            begin = 1
        if end < begin:
            return
        stored = self.store.get_range(begin, end) if self.config.persist_messages else []
        gap_start = begin
        for seq, raw in stored:
            if seq < begin or seq > end:
                continue
            resent = self._prepare_resend(raw)
            if resent is None:
                continue
            if gap_start < seq:
                self._generate_sequence_reset(gap_start, seq)
            self._transmit(resent)
            self._event(f"Resending Message: {seq}")
            gap_start = seq + 1
        if gap_start <= end:
            self._generate_sequence_reset(gap_start, end + 1)

    def _prepare_resend(self, raw: bytes) -> bytes | None:
        """A stored message re-encoded with PossDupFlag=Y, OrigSendingTime, new SendingTime;
        None if it is a session message or the application vetoes it."""
        msg = self._parse(raw)
        mt = msg.msg_type
        if mt in _ADMIN_TYPES:
            return None
        header: list[tuple[int, Any]] = []
        body: list[tuple[int, Any]] = []
        orig = None
        for tag, value in msg.fields():
            if tag in HEADER_TAGS:
                if tag in _REWRITTEN_ON_RESEND:
                    continue
                if tag == SENDING_TIME:
                    orig = value
                    continue
                header.append((tag, value))
            elif tag != CHECK_SUM:
                body.append((tag, value))
        if self._hook_to_app:
            lst = [(POSS_DUP_FLAG, b"Y")] + header + body
            try:
                self._call_hook(self.app.to_app, mt, lst, self.session_id)
            except DoNotSend:
                return None
            header = [f for f in lst if f[0] in HEADER_TAGS and f[0] != POSS_DUP_FLAG]
            body = [f for f in lst if f[0] not in HEADER_TAGS]
        header.append((POSS_DUP_FLAG, b"Y"))
        header.append((SENDING_TIME, self._sending_time()))
        if orig is not None:
            header.append((ORIG_SENDING_TIME, orig))
        header.sort(key=_tag_key)
        return self._encode(self.begin_string, mt, header + body)

    def check_logon(self, logon: Any, peer: Any = None) -> str | None:
        """None if this acceptor session may accept ``logon`` from ``peer``, else why not.

        Pure: reads the logon policy (password, address, certificate), changes nothing.
        """
        policy = self.config.logon_policy
        if policy is None or self.config.initiator:
            return None
        return policy.check(logon, peer)

    def logon_refusal(self, text: str) -> bytes:
        """The Logout (58=``text``) that refuses an unauthenticated Logon.

        It carries the next sender number without taking it: the session's numbers,
        store and log of messages stay as they were for the real counterparty.
        """
        return self._encode(self.begin_string, b"5",
                            self._header(self.store.next_sender_seq, None) + [(TEXT, text)])

    def _refuse_logon(self, text: str) -> None:
        """Answer an unauthenticated Logon with a Logout and close: no state changes."""
        write, close = self._write, self._close
        self._write = self._close = None
        host = getattr(self.peer, "host", None)
        self._event(f"Logon refused{' from ' + host if host else ''}: {text}")
        if write is not None:
            write(self.logon_refusal(f"Logon refused: {text}"))
        if close is not None:
            close()
        if self.state_listener is not None:
            self.state_listener(self)

    def _next_logon(self, msg: Any) -> None:
        cfg = self.config
        if cfg.logon_policy is not None and not cfg.initiator:
            # Before anything else: a refused Logon must not refresh, reset or number anything.
            refusal = self.check_logon(msg, self.peer)
            if refusal is not None:
                self._refuse_logon(refusal)
                return
        if cfg.refresh_on_logon:
            self.store.refresh()
        if not self.enabled:
            self._event("Session is not enabled for logon")
            self.disconnect("session not enabled")
            return
        if not self.is_session_time():
            self._event("Received logon outside of valid logon time")
            self.disconnect("logon outside of session time")
            return
        reset_flag = msg.get(RESET_SEQ_NUM_FLAG) == b"Y"
        self.received_reset = reset_flag
        if reset_flag:
            self._event("Logon contains ResetSeqNumFlag=Y, resetting sequence numbers to 1")
            if not self.sent_reset:
                self.store.reset()
            # Messages queued under the old numbering must not be delivered under the new one.
            self._queue.clear()
            self._resend_range = None
        if cfg.initiator and not self.sent_logon and not reset_flag:
            self._event("Received logon response before sending request")
            self.disconnect()
            return
        if not cfg.initiator and cfg.reset_on_logon:
            self.store.reset()
        if not self._verify(msg, False, True):
            return
        self.received_logon = True
        seq = msg.seq_num
        expected = self.store.next_target_seq
        too_high = seq > expected and not reset_flag
        if not cfg.initiator or (self.received_reset and not self.sent_reset):
            hb = msg.get(HEART_BT_INT)
            self.heartbeat_interval = int(hb) if hb else 0
            self._event("Received logon request")
            self._generate_logon_response(msg, expected if too_high else expected + 1)
            self._event("Responding to logon request")
        else:
            self._event("Received logon response")
        self.sent_reset = False
        self.received_reset = False
        if cfg.enable_next_expected_msg_seq_num:
            if not self._check_next_expected(msg):
                return
        if too_high:
            self._target_too_high(msg, seq)
        else:
            self.store.incr_next_target_seq()
            self._next_queued()
        if self.is_logged_on:
            self._call_hook(self.app.on_logon, self.session_id)
            if self.state_listener is not None:
                self.state_listener(self)

    def _check_next_expected(self, logon: Any) -> bool:
        """NextExpectedMsgSeqNum (789) on a Logon: resend what the peer missed."""
        raw = logon.get(NEXT_EXPECTED_MSG_SEQ_NUM)
        if not raw:
            return True
        want = int(raw)
        next_sender = self.store.next_sender_seq
        # Our own Logon answer has just consumed a number: it is not missing.
        sent_now = next_sender - 1 if not self.config.initiator else next_sender
        if want > sent_now:
            text = (
                f"NextExpectedMsgSeqNum too high, expecting {sent_now} but received {want}"
            )
            self._generate_logout(text)
            self.disconnect(text)
            return False
        if want < sent_now:
            self._event(f"NextExpectedMsgSeqNum {want}: resending {want} to {sent_now - 1}")
            self._resend(want, sent_now - 1)
        return True

    # ------------------------------------------------------------------ timer

    def timer(self) -> None:
        """Periodic work (QuickFIX ``Session::next()``): call about once a second."""
        now = self._clock()
        sch = self.config.schedule
        if sch is not None and now - self._period_checked >= 1.0:
            self._period_checked = now
            if not self._check_schedule():
                return
        if self._write is None:
            return
        if not self.enabled and self.is_logged_on and not self.sent_logout:
            self._generate_logout(self._logout_reason)
        if not self.received_logon:
            if self.sent_logon or not self.config.initiator:
                if now - self.last_received >= self.config.logon_timeout:
                    self._event("Timed out waiting for logon")
                    self.disconnect("logon timeout")
            return
        hb = self.heartbeat_interval
        if self.sent_logout and now - self.last_sent >= self.config.logout_timeout:
            self._event("Timed out waiting for logout response")
            self.disconnect("logout timeout")
            return
        if hb <= 0:
            return
        since_recv = now - self.last_received
        if now - self.last_sent < hb and since_recv < hb:
            return
        if since_recv >= 2.4 * hb:
            self._event("Timed out waiting for heartbeat")
            self.disconnect("heartbeat timeout")
        elif since_recv >= (1.0 + self.config.test_request_delay_multiplier) * (
            self._test_requests + 1
        ) * hb:
            self._generate_test_request(b"TEST")
            self._test_requests += 1
            self._event("Sent test request TEST")
        elif now - self.last_sent >= hb and not self._test_requests:
            self._generate_heartbeat()

    def _check_schedule(self) -> bool:
        """Outside the window: logout and disconnect. A new period: reset the store."""
        sch = self.config.schedule
        now = self._now_dt()
        start = sch.session_start(now)
        if start is None:
            if self._write is not None:
                if self.is_logged_on and not self.sent_logout:
                    self._generate_logout("Session end")
                self.disconnect("outside session time")
            return False
        created = self.store.creation_time
        if not sch.is_same_session(created, now):
            self._event("New session period: resetting sequence numbers")
            self.reset()
            return False
        return True


def _tag_key(f: tuple[int, Any]) -> int:
    return f[0]
