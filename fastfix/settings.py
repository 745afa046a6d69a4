"""FIX session settings in the QuickFIX settings-file format.

A settings file has one ``[DEFAULT]`` section and one ``[SESSION]`` section per
session; each line is ``Key=Value``; lines starting with ``#`` or ``;`` are
comments. Every session inherits the ``[DEFAULT]`` keys it does not set itself.

Every key is checked when the file is read: an unknown key, a malformed value
or a missing required key raises :class:`~fastfix.errors.ConfigError` naming the
file, the section and the line, so a typo fails at start-up rather than at the
first logon.

>>> ss = SessionSettings.from_string('''
... [DEFAULT]
... ConnectionType=initiator
... HeartBtInt=30
... SocketConnectHost=127.0.0.1
... SocketConnectPort=9876
... [SESSION]
... BeginString=FIX.4.4
... SenderCompID=CLIENT
... TargetCompID=HUB
... ''')
>>> sid, s = next(iter(ss.sessions().items()))
>>> str(sid), s.get_int("HeartBtInt")
('FIX.4.4:CLIENT->HUB', 30)
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastfix.errors import ConfigError

__all__ = [
    "SessionID",
    "Settings",
    "SessionSettings",
    "SessionSchedule",
    "KNOWN_SETTINGS",
    "register_setting",
    "ssl_context_from_settings",
]


# --------------------------------------------------------------------------- SessionID


@dataclass(frozen=True, slots=True)
class SessionID:
    """Identity of one FIX session: ``FIX.4.4:SENDER->TARGET[:QUALIFIER]``."""

    begin_string: str
    sender_comp_id: str
    target_comp_id: str
    session_qualifier: str = ""

    def __str__(self) -> str:
        s = f"{self.begin_string}:{self.sender_comp_id}->{self.target_comp_id}"
        return f"{s}:{self.session_qualifier}" if self.session_qualifier else s

    @property
    def file_prefix(self) -> str:
        """A name usable as a file-name prefix (as QuickFIX names its store files)."""
        parts = [self.begin_string, self.sender_comp_id, self.target_comp_id]
        if self.session_qualifier:
            parts.append(self.session_qualifier)
        return re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(parts))

    def reversed(self) -> SessionID:
        """The same session seen from the counterparty."""
        return SessionID(
            self.begin_string, self.target_comp_id, self.sender_comp_id, self.session_qualifier
        )


# --------------------------------------------------------------------------- value kinds


class _Origin(NamedTuple):
    filename: str
    section: str
    line: int


def _where(origin: _Origin, key: str | None = None) -> str:
    loc = f"{origin.filename}:{origin.line}" if origin.line else origin.filename
    k = f" {key}" if key else ""
    return f"{loc}: [{origin.section}]{k}"


_BOOL = {"Y": True, "N": False}
_DAYS = {
    "mo": 0, "monday": 0, "tu": 1, "tuesday": 1, "we": 2, "wednesday": 2, "th": 3,
    "thursday": 3, "fr": 4, "friday": 4, "sa": 5, "saturday": 5, "su": 6, "sunday": 6,
}  # fmt: skip


def _p_str(v: str) -> str:
    if not v:
        raise ValueError("empty value")
    return v


def _p_int(v: str) -> int:
    if not re.fullmatch(r"-?[0-9]+", v):
        raise ValueError(f"not an integer: {v!r}")
    return int(v)


def _p_nonneg(v: str) -> int:
    n = _p_int(v)
    if n < 0:
        raise ValueError(f"must be >= 0: {v!r}")
    return n


def _p_pos(v: str) -> int:
    n = _p_int(v)
    if n <= 0:
        raise ValueError(f"must be > 0: {v!r}")
    return n


def _p_port(v: str) -> int:
    n = _p_int(v)
    if not 0 <= n <= 65535:
        raise ValueError(f"not a TCP port: {v!r}")
    return n


def _p_float(v: str) -> float:
    try:
        f = float(v)
    except ValueError:
        raise ValueError(f"not a number: {v!r}") from None
    if not f > 0:
        raise ValueError(f"must be > 0: {v!r}")
    return f


def _p_bool(v: str) -> bool:
    try:
        return _BOOL[v.upper()]
    except KeyError:
        raise ValueError(f"expected Y or N, got {v!r}") from None


def _p_time(v: str) -> _dt.time:
    m = re.fullmatch(r"([0-9]{1,2}):([0-9]{2}):([0-9]{2})", v)
    if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3]) > 59:
        raise ValueError(f"expected HH:MM:SS, got {v!r}")
    return _dt.time(int(m[1]), int(m[2]), int(m[3]))


def _p_day(v: str) -> int:
    d = _DAYS.get(v.strip().lower()) if len(v.strip()) != 3 else _DAYS.get(v.strip().lower()[:2])
    if d is None:
        raise ValueError(f"not a day of the week: {v!r}")
    return d


def _p_days(v: str) -> frozenset[int]:
    days = [x.strip() for x in v.split(",")]
    if not all(days):
        raise ValueError(f"expected a comma-separated list of days, got {v!r}")
    return frozenset(_p_day(d) for d in days)


def _p_tz(v: str) -> _dt.tzinfo:
    if v.upper() in ("UTC", "GMT", "Z"):
        return _dt.UTC
    try:
        return ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone: {v!r}") from None


def _choice(*values: str) -> Callable[[str], str]:
    canon = {x.lower(): x for x in values}

    def parse(v: str) -> str:
        try:
            return canon[v.lower()]
        except KeyError:
            raise ValueError(f"expected one of {', '.join(values)}; got {v!r}") from None

    return parse


def _p_path(v: str) -> str:
    return _p_str(v)


def _p_password_hash(v: str) -> str:
    from fastfix.auth import check_password_hash

    return check_password_hash(_p_str(v))


def _p_addresses(v: str) -> Any:
    from fastfix.auth import parse_addresses

    return parse_addresses(_p_str(v))


def _p_fingerprints(v: str) -> frozenset[str]:
    from fastfix.auth import parse_fingerprints

    return parse_fingerprints(_p_str(v))


class _Setting(NamedTuple):
    parse: Callable[[str], Any]
    doc: str


#: Every accepted key, with its parser and a one-line description.
KNOWN_SETTINGS: dict[str, _Setting] = {}

# Names from QuickFIX/J, QuickFIX/n or QuickFIX C++ that mean the same thing as ours.
_ALIASES: dict[str, str] = {
    "SSLEnable": "SocketUseSSL",
    "SSLCertificate": "SocketCertificateFile",
    "ServerCertificateFile": "SocketCertificateFile",
    "ClientCertificateFile": "SocketCertificateFile",
    "ServerCertificateKeyFile": "SocketPrivateKeyFile",
    "ClientCertificateKeyFile": "SocketPrivateKeyFile",
    "SSLCACertificate": "SocketCAFile",
    "CertificationAuthoritiesFile": "SocketCAFile",
}


def register_setting(name: str, parse: Callable[[str], Any], doc: str = "") -> None:
    """Accept a further key ``name`` (for components with their own settings).

    ``parse`` turns the text value into a Python value and raises ``ValueError``
    on a bad one.
    """
    KNOWN_SETTINGS[name] = _Setting(parse, doc)


for _name, _parse, _doc in [
    ("ConnectionType", _choice("initiator", "acceptor"), "initiator or acceptor"),
    ("BeginString", _choice("FIX.4.0", "FIX.4.1", "FIX.4.2", "FIX.4.3", "FIX.4.4", "FIXT.1.1"),
     "protocol version"),
    ("SenderCompID", _p_str, "our CompID (49 on outgoing messages)"),
    ("SenderSubID", _p_str, "our SubID (50)"),
    ("SenderLocationID", _p_str, "our LocationID (142)"),
    ("TargetCompID", _p_str, "the counterparty's CompID (56)"),
    ("TargetSubID", _p_str, "the counterparty's SubID (57)"),
    ("TargetLocationID", _p_str, "the counterparty's LocationID (143)"),
    ("SessionQualifier", _p_str, "tells apart sessions with the same CompIDs"),
    ("DefaultApplVerID", _p_str, "FIXT.1.1 only: application version (e.g. FIX.5.0SP2 or 9)"),
    ("HeartBtInt", _p_nonneg, "heartbeat interval in seconds (initiator)"),
    ("SocketConnectHost", _p_str, "initiator: host to connect to"),
    ("SocketConnectPort", _p_port, "initiator: port to connect to"),
    ("ReconnectInterval", _p_pos, "initiator: seconds between connection attempts (default 30)"),
    ("SocketAcceptAddress", _p_str, "acceptor: address to listen on (default all)"),
    ("SocketAcceptPort", _p_port, "acceptor: port to listen on (0 = any free port)"),
    ("SocketNodelay", _p_bool, "TCP_NODELAY (default Y)"),
    ("SocketReuseAddress", _p_bool, "SO_REUSEADDR on the listening socket (default Y)"),
    ("SocketSendBufferSize", _p_nonneg, "SO_SNDBUF in bytes (0 = system default)"),
    ("SocketReceiveBufferSize", _p_nonneg, "SO_RCVBUF in bytes (0 = system default)"),
    ("StartTime", _p_time, "daily session start HH:MM:SS (in TimeZone)"),
    ("EndTime", _p_time, "daily session end HH:MM:SS (in TimeZone)"),
    ("StartDay", _p_day, "weekly session: first day"),
    ("EndDay", _p_day, "weekly session: last day"),
    ("Weekdays", _p_days, "days on which the daily session runs, e.g. Mon,Tue,Wed,Thu,Fri"),
    ("TimeZone", _p_tz, "IANA zone of StartTime/EndTime (default UTC)"),
    ("UseLocalTime", _p_bool, "StartTime/EndTime are in the machine's local time"),
    ("NonStopSession", _p_bool, "the session never ends (no StartTime/EndTime needed)"),
    ("ResetOnLogon", _p_bool, "reset sequence numbers at every logon"),
    ("ResetOnLogout", _p_bool, "reset sequence numbers at logout"),
    ("ResetOnDisconnect", _p_bool, "reset sequence numbers when the connection drops"),
    ("RefreshOnLogon", _p_bool, "reload the store from disk at logon (hot standby)"),
    ("MessageStore", _choice("file", "sqlite", "memory"), "message store kind"),
    ("FileStorePath", _p_path, "directory of the file store"),
    ("FileStoreSync", _choice("Y", "N", "batch"),
     "Y: fsync every write; N: hand every write to the OS (default); batch: write at flush()"),
    ("SQLiteStorePath", _p_path, "database file of the SQLite store"),
    ("FileLogPath", _p_path, "directory of the message and event logs"),
    ("ScreenLogShowIncoming", _p_bool, "print incoming messages"),
    ("ScreenLogShowOutgoing", _p_bool, "print outgoing messages"),
    ("ScreenLogShowEvents", _p_bool, "print session events"),
    ("DataDictionary", _p_str, "data dictionary (QuickFIX XML file) for FIX.4.x"),
    ("TransportDataDictionary", _p_str, "FIXT.1.1: session-level dictionary"),
    ("AppDataDictionary", _p_str, "FIXT.1.1: application-level dictionary"),
    ("UseDataDictionary", _p_bool, "validate against the data dictionary (default Y)"),
    ("ValidateFieldsOutOfOrder", _p_bool, "reject header/body/trailer fields out of place"),
    ("ValidateFieldsHaveValues", _p_bool, "reject empty field values"),
    ("ValidateUserDefinedFields", _p_bool, "validate tags >= 5000 against the dictionary"),
    ("AllowUnknownMsgFields", _p_bool, "accept fields the dictionary does not know"),
    ("ValidateIncomingMessage", _p_bool, "validate incoming application messages"),
    ("ValidateLengthAndChecksum", _p_bool, "reject messages with a bad BodyLength/CheckSum"),
    ("ResendRequestChunkSize", _p_nonneg, "ask for at most this many messages per ResendRequest (0 = all)"),
    ("CheckLatency", _p_bool, "reject messages whose SendingTime is off by more than MaxLatency"),
    ("MaxLatency", _p_pos, "seconds of SendingTime tolerance (default 120)"),
    ("CheckCompID", _p_bool, "reject messages with wrong CompIDs (default Y)"),
    ("LogonTimeout", _p_pos, "seconds to wait for the Logon answer (default 10)"),
    ("LogoutTimeout", _p_pos, "seconds to wait for the Logout answer (default 2)"),
    ("TestRequestDelayMultiplier", _p_float,
     "silence of this many HeartBtInt (plus the interval) triggers a TestRequest (default 0.2, as QuickFIX C++)"),
    ("PersistMessages", _p_bool, "store outgoing application messages for resend (default Y)"),
    ("SendRedundantResendRequests", _p_bool, "send a ResendRequest even if one is pending"),
    ("EnableNextExpectedMsgSeqNum", _p_bool, "send and honour NextExpectedMsgSeqNum (789) on Logon"),
    ("MillisecondsInTimeStamp", _p_bool, "millisecond timestamps (if TimeStampPrecision unset)"),
    ("TimeStampPrecision", _choice("0", "3", "6", "9"), "digits of fractional seconds"),
    ("SocketUseSSL", _p_bool, "TLS on the connection (alias SSLEnable)"),
    ("SocketCertificateFile", _p_path,
     "PEM certificate chain we present (aliases SSLCertificate, ServerCertificateFile)"),
    ("SocketPrivateKeyFile", _p_path, "PEM private key of that certificate (default: in the same file)"),
    ("SSLCertificatePassword", _p_str, "password of the private key"),
    ("SocketCAFile", _p_path, "PEM CA bundle to verify the peer (aliases SSLCACertificate)"),
    ("SSLValidateCertificates", _p_bool, "verify the peer's certificate (default Y)"),
    ("SSLRequireClientCertificate", _p_bool, "acceptor: require a client certificate"),
    ("SSLServerName", _p_str, "initiator: expected server host name (SNI and verification)"),
    # Logon authentication (fastfix.auth, docs/security.md)
    ("Username", _p_str, "Username (553): sent by an initiator; required from the peer by an acceptor"),
    ("Password", _p_str, "initiator: Password (554) sent on Logon (see PasswordFile, PasswordEnv)"),
    ("PasswordFile", _p_path, "initiator: file whose first line is the Password (554)"),
    ("PasswordEnv", _p_str, "initiator: environment variable holding the Password (554)"),
    ("PasswordHash", _p_password_hash,
     "acceptor: scrypt or PBKDF2 hash the peer's Password must match (python -m fastfix.auth)"),
    ("AllowedRemoteAddresses", _p_addresses,
     "acceptor: IP addresses, networks (CIDR) or host names the peer may connect from"),
    ("SSLCheckClientCertificateCompID", _p_bool,
     "acceptor: the client certificate's CN or a DNS SAN must be the SenderCompID "
     "(default: SSLRequireClientCertificate)"),
    ("SSLClientCertificateFingerprint", _p_fingerprints,
     "acceptor: SHA-256 fingerprints of the client certificates allowed for this session"),
]:  # fmt: skip
    register_setting(_name, _parse, _doc)

# Settings naming a file or directory: relative to the settings file they are read from.
_FILE_SETTINGS = (
    "FileStorePath", "FileLogPath", "SQLiteStorePath", "DataDictionary", "TransportDataDictionary",
    "AppDataDictionary", "SocketCertificateFile", "SocketPrivateKeyFile", "SocketCAFile",
    "PasswordFile",
)  # fmt: skip

_FAILOVER = re.compile(r"(SocketConnectHost|SocketConnectPort)([1-9][0-9]*)")

_REQUIRED_ALL = ("ConnectionType", "BeginString", "SenderCompID", "TargetCompID")
_REQUIRED = {
    "initiator": ("HeartBtInt", "SocketConnectHost", "SocketConnectPort"),
    "acceptor": ("SocketAcceptPort",),
}


def _lookup(key: str) -> tuple[str, _Setting]:
    key = _ALIASES.get(key, key)
    spec = KNOWN_SETTINGS.get(key)
    if spec is None:
        m = _FAILOVER.fullmatch(key)
        if m is None:
            raise KeyError(key)
        spec = KNOWN_SETTINGS[m[1]]
    return key, spec


def _to_text(value: Any) -> str:
    """Python value -> settings-file text (for :meth:`SessionSettings.from_dict`)."""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, _dt.time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, SessionID):
        raise TypeError("a SessionID is not a setting value")
    return str(value)


# --------------------------------------------------------------------------- Settings


_MISSING: Any = object()


class Settings(Mapping[str, str]):
    """The settings of one session (``[DEFAULT]`` merged in), with typed getters.

    As a mapping it gives the raw text values. Getters raise ``ConfigError``
    naming where the key was set (or that it is missing), unless a default is given.
    """

    __slots__ = ("_values", "_origins", "_section")

    def __init__(self, values: dict[str, str], origins: dict[str, _Origin], section: _Origin):
        self._values = values
        self._origins = origins
        self._section = section

    # Mapping protocol: raw text values
    def __getitem__(self, key: str) -> str:
        return self._values[_ALIASES.get(key, key)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _ALIASES.get(key, key) in self._values

    def __repr__(self) -> str:
        return f"Settings({self._values!r})"

    def origin(self, key: str) -> str:
        """``file:line: [section] key`` where ``key`` was set (for error messages)."""
        key = _ALIASES.get(key, key)
        return _where(self._origins.get(key, self._section), key)

    def _get(self, key: str, default: Any, parse: Callable[[str], Any]) -> Any:
        key = _ALIASES.get(key, key)
        raw = self._values.get(key)
        if raw is None:
            if default is _MISSING:
                raise ConfigError(f"{_where(self._section)}: missing required key {key}")
            return default
        try:
            return parse(raw)
        except ValueError as e:
            raise ConfigError(f"{self.origin(key)}: {e}") from None

    def get_str(self, key: str, default: Any = _MISSING) -> str:
        return self._get(key, default, _p_str)

    def get_int(self, key: str, default: Any = _MISSING) -> int:
        return self._get(key, default, _p_int)

    def get_float(self, key: str, default: Any = _MISSING) -> float:
        return self._get(key, default, _p_float)

    def get_bool(self, key: str, default: Any = _MISSING) -> bool:
        """``Y`` -> True, ``N`` -> False."""
        return self._get(key, default, _p_bool)

    def get_time(self, key: str, default: Any = _MISSING) -> _dt.time:
        """``HH:MM:SS`` -> :class:`datetime.time`."""
        return self._get(key, default, _p_time)

    def get_day(self, key: str, default: Any = _MISSING) -> int:
        """Day name (``Mon``, ``monday``, ``mo``...) -> 0 = Monday ... 6 = Sunday."""
        return self._get(key, default, _p_day)

    def get_days(self, key: str, default: Any = _MISSING) -> frozenset[int]:
        return self._get(key, default, _p_days)

    def get_tz(self, key: str = "TimeZone", default: Any = _MISSING) -> _dt.tzinfo:
        return self._get(key, default, _p_tz)

    def get_path(self, key: str, default: Any = _MISSING) -> Path:
        """A path; a relative one is taken relative to the settings file's directory."""
        value = self._get(key, default, _p_path)
        if value is default:
            return value
        p = Path(value).expanduser()
        origin = self._origins.get(_ALIASES.get(key, key), self._section)
        if not p.is_absolute() and not origin.filename.startswith("<"):
            p = Path(origin.filename).resolve().parent / p
        return p

    def get_value(self, key: str, default: Any = _MISSING) -> Any:
        """The value parsed by the key's own kind (int for ports, time for StartTime...)."""
        try:
            _, spec = _lookup(key)
        except KeyError:
            raise ConfigError(f"unknown setting {key}") from None
        return self._get(key, default, spec.parse)

    # Convenience accessors used by the engine.
    @property
    def is_initiator(self) -> bool:
        return self.get_str("ConnectionType") == "initiator"

    def connect_addresses(self) -> list[tuple[str, int]]:
        """``SocketConnectHost/Port`` then the failovers ``SocketConnectHost1/Port1``..."""
        out = [(self.get_str("SocketConnectHost"), self.get_int("SocketConnectPort"))]
        n = 1
        while f"SocketConnectHost{n}" in self._values or f"SocketConnectPort{n}" in self._values:
            out.append((self.get_str(f"SocketConnectHost{n}"), self.get_int(f"SocketConnectPort{n}")))
            n += 1
        return out

    def schedule(self) -> SessionSchedule:
        """The session's time window (StartTime/EndTime/StartDay/EndDay/Weekdays)."""
        return SessionSchedule.from_settings(self)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS context from the ``Socket*``/``SSL*`` keys, or None without ``SocketUseSSL=Y``."""
        return ssl_context_from_settings(self)

    def password(self) -> str | None:
        """An initiator's Logon Password (554): ``Password``, the first line of
        ``PasswordFile`` or the variable ``PasswordEnv`` names; None if none is set."""
        if "Password" in self:
            return self.get_str("Password")
        if "PasswordFile" in self:
            path = self.get_path("PasswordFile")
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"{self.origin('PasswordFile')}: cannot read {path}: {e}") from None
            line = text.splitlines()[0] if text else ""
            if not line:
                raise ConfigError(f"{self.origin('PasswordFile')}: {path} is empty")
            return line
        if "PasswordEnv" in self:
            name = self.get_str("PasswordEnv")
            value = os.environ.get(name)
            if not value:
                raise ConfigError(f"{self.origin('PasswordEnv')}: environment variable {name} is not set")
            return value
        return None


# --------------------------------------------------------------------------- SessionSettings


class SessionSettings:
    """All sessions of a settings file (or of an equivalent Python structure)."""

    def __init__(self, default: Settings, sessions: dict[SessionID, Settings]):
        self.default = default
        self._sessions = sessions

    def sessions(self) -> dict[SessionID, Settings]:
        """SessionID -> merged settings, in file order."""
        return dict(self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    def __getitem__(self, sid: SessionID) -> Settings:
        return self._sessions[sid]

    def __iter__(self) -> Iterator[SessionID]:
        return iter(self._sessions)

    # ---- constructors

    @classmethod
    def from_file(cls, path: str | Path) -> SessionSettings:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{p}: cannot read settings file: {e.strerror}") from None
        return cls.from_string(text, filename=str(p))

    @classmethod
    def from_string(cls, text: str, filename: str = "<string>") -> SessionSettings:
        sections: list[tuple[_Origin, list[tuple[str, str, int]]]] = []
        current: list[tuple[str, str, int]] | None = None
        default_seen = False
        for lineno, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("["):
                if not s.endswith("]"):
                    raise ConfigError(f"{filename}:{lineno}: malformed section header {s!r}")
                name = s[1:-1].strip().upper()
                if name not in ("DEFAULT", "SESSION"):
                    raise ConfigError(
                        f"{filename}:{lineno}: unknown section [{s[1:-1].strip()}] "
                        "(expected [DEFAULT] or [SESSION])"
                    )
                if name == "DEFAULT":
                    if default_seen:
                        raise ConfigError(f"{filename}:{lineno}: second [DEFAULT] section")
                    default_seen = True
                current = []
                sections.append((_Origin(filename, name, lineno), current))
                continue
            if "=" not in s:
                raise ConfigError(f"{filename}:{lineno}: expected Key=Value, got {s!r}")
            if current is None:
                raise ConfigError(f"{filename}:{lineno}: Key=Value before any [DEFAULT]/[SESSION]")
            key, value = s.split("=", 1)
            current.append((key.strip(), value.strip(), lineno))
        return cls._build(sections)

    @classmethod
    def from_dict(
        cls,
        sessions: Iterable[Mapping[str, Any]],
        default: Mapping[str, Any] | None = None,
    ) -> SessionSettings:
        """Build settings without a file; values may be text or Python values
        (``None`` leaves the key unset).

        >>> ss = SessionSettings.from_dict(
        ...     [{"SenderCompID": "A", "TargetCompID": "B"}],
        ...     default={"ConnectionType": "acceptor", "BeginString": "FIX.4.2",
        ...              "SocketAcceptPort": 0, "ResetOnLogon": True},
        ... )
        >>> [str(s) for s in ss.sessions()]
        ['FIX.4.2:A->B']
        """
        sections: list[tuple[_Origin, list[tuple[str, str, int]]]] = []
        if default:
            sections.append(
                (
                    _Origin("<dict>", "DEFAULT", 0),
                    [(k, _to_text(v), 0) for k, v in default.items() if v is not None],
                )
            )
        for i, sess in enumerate(sessions, 1):
            sections.append(
                (
                    _Origin("<dict>", f"SESSION {i}", 0),
                    [(k, _to_text(v), 0) for k, v in sess.items() if v is not None],
                )
            )
        return cls._build(sections)

    @classmethod
    def _build(cls, sections: list[tuple[_Origin, list[tuple[str, str, int]]]]) -> SessionSettings:
        def check(origin: _Origin, items: list[tuple[str, str, int]]):
            values: dict[str, str] = {}
            origins: dict[str, _Origin] = {}
            for key, value, lineno in items:
                o = _Origin(origin.filename, origin.section, lineno)
                try:
                    canon, spec = _lookup(key)
                except KeyError:
                    raise ConfigError(f"{_where(o, key)}: unknown setting {key!r}") from None
                if canon in values:
                    raise ConfigError(
                        f"{_where(o, key)}: set twice (first at line {origins[canon].line})"
                    )
                try:
                    spec.parse(value)
                except ValueError as e:
                    raise ConfigError(f"{_where(o, key)}: {e}") from None
                values[canon] = value
                origins[canon] = o
            return values, origins

        dvalues: dict[str, str] = {}
        dorigins: dict[str, _Origin] = {}
        dorigin = _Origin("<none>", "DEFAULT", 0)
        for origin, items in sections:
            if origin.section == "DEFAULT":
                dvalues, dorigins = check(origin, items)
                dorigin = origin
        result: dict[SessionID, Settings] = {}
        for origin, items in sections:
            if origin.section == "DEFAULT":
                continue
            values, origins = check(origin, items)
            merged = {**dvalues, **values}
            morigins = {**dorigins, **origins}
            s = Settings(merged, morigins, origin)
            _validate_session(s)
            sid = SessionID(
                s.get_str("BeginString"),
                s.get_str("SenderCompID"),
                s.get_str("TargetCompID"),
                s.get_str("SessionQualifier", ""),
            )
            if sid in result:
                raise ConfigError(f"{_where(origin)}: session {sid} defined twice")
            result[sid] = s
        return cls(Settings(dvalues, dorigins, dorigin), result)

    def with_overrides(
        self,
        common: Mapping[str, Any] | None = None,
        by_target: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> SessionSettings:
        """The sessions with ``common`` set on each and ``by_target[TargetCompID]`` on
        that session. Relative file paths are made absolute first, so the copy means
        the same files wherever it is used or written out.
        """
        sessions = []
        for sid, s in self._sessions.items():
            values: dict[str, Any] = dict(s.items())
            for key in _FILE_SETTINGS:
                if key in values:
                    values[key] = str(s.get_path(key))
            values.update(common or {})
            values.update((by_target or {}).get(sid.target_comp_id, {}))
            sessions.append(values)
        return SessionSettings.from_dict(sessions)

    # ---- output

    def to_string(self) -> str:
        """The settings in the QuickFIX file format (each session written out in full)."""
        lines = ["[DEFAULT]"]
        lines += [f"{k}={v}" for k, v in self.default.items()]
        for s in self._sessions.values():
            lines.append("")
            lines.append("[SESSION]")
            lines += [f"{k}={v}" for k, v in s.items() if self.default.get(k) != v]
        return "\n".join(lines) + "\n"


def _validate_session(s: Settings) -> None:
    """Required keys per ConnectionType and cross-key rules."""
    for key in _REQUIRED_ALL:
        s.get_str(key)
    ctype = s.get_str("ConnectionType")
    for key in _REQUIRED[ctype]:
        s.get_str(key)
    if ctype == "initiator":
        s.connect_addresses()  # each failover host needs its port and vice versa
    if s.get_str("BeginString") == "FIXT.1.1" and ctype == "initiator":
        s.get_str("DefaultApplVerID")
    nonstop = s.get_bool("NonStopSession", False)
    has_start, has_end = "StartTime" in s, "EndTime" in s
    if has_start != has_end and not nonstop:
        missing = "EndTime" if has_start else "StartTime"
        raise ConfigError(f"{_where(s._section)}: {missing} is required with "
                          f"{'StartTime' if has_start else 'EndTime'}")  # fmt: skip
    if ("StartDay" in s) != ("EndDay" in s):
        raise ConfigError(f"{_where(s._section)}: StartDay and EndDay go together")
    if "Weekdays" in s and "StartDay" in s:
        raise ConfigError(f"{_where(s._section)}: Weekdays and StartDay/EndDay exclude each other")
    store = s.get_str("MessageStore", "")
    if store == "file" and "FileStorePath" not in s:
        raise ConfigError(f"{_where(s._section)}: MessageStore=file needs FileStorePath")
    if store == "sqlite" and "SQLiteStorePath" not in s:
        raise ConfigError(f"{_where(s._section)}: MessageStore=sqlite needs SQLiteStorePath")
    if s.get_bool("SocketUseSSL", False) and ctype == "acceptor" and "SocketCertificateFile" not in s:
        raise ConfigError(f"{_where(s._section)}: SocketUseSSL=Y on an acceptor needs SocketCertificateFile")
    if "SocketPrivateKeyFile" in s and "SocketCertificateFile" not in s:
        raise ConfigError(f"{_where(s._section)}: SocketPrivateKeyFile needs SocketCertificateFile")
    given = [k for k in ("Password", "PasswordFile", "PasswordEnv") if k in s]
    if ctype == "acceptor" and given:
        raise ConfigError(f"{s.origin(given[0])}: an acceptor checks PasswordHash and never holds "
                          "the clear password (make the hash with: python -m fastfix.auth)")
    if len(given) > 1:
        raise ConfigError(f"{s.origin(given[1])}: {given[1]} and {given[0]} exclude each other")
    if ctype == "initiator":
        for key in ("PasswordHash", "AllowedRemoteAddresses", "SSLCheckClientCertificateCompID",
                    "SSLClientCertificateFingerprint"):
            if key in s:
                raise ConfigError(f"{s.origin(key)}: is an acceptor setting (ConnectionType=initiator)")
    elif s.get_bool("SSLCheckClientCertificateCompID", False) or "SSLClientCertificateFingerprint" in s:
        key = "SSLClientCertificateFingerprint" if "SSLClientCertificateFingerprint" in s \
            else "SSLCheckClientCertificateCompID"
        if not (s.get_bool("SocketUseSSL", False) and s.get_bool("SSLRequireClientCertificate", False)):
            raise ConfigError(f"{s.origin(key)}: checks the client certificate, so it needs "
                              "SocketUseSSL=Y and SSLRequireClientCertificate=Y")


# --------------------------------------------------------------------------- schedule


class SessionSchedule:
    """When a session is open: daily (StartTime..EndTime, may cross midnight),
    weekly (StartDay StartTime .. EndDay EndTime), or non-stop.

    Without StartTime/EndTime (or with NonStopSession=Y) the session never ends.
    With StartTime == EndTime the daily session lasts 24 hours and resets at that time.
    """

    def __init__(
        self,
        start: _dt.time | None = None,
        end: _dt.time | None = None,
        start_day: int | None = None,
        end_day: int | None = None,
        weekdays: frozenset[int] | None = None,
        tz: _dt.tzinfo = _dt.UTC,
    ):
        self.start, self.end = start, end
        self.start_day, self.end_day = start_day, end_day
        self.weekdays, self.tz = weekdays, tz

    @classmethod
    def from_settings(cls, s: Settings) -> SessionSchedule:
        if s.get_bool("NonStopSession", False) or "StartTime" not in s:
            return cls()
        if s.get_bool("UseLocalTime", False):
            tz = _dt.datetime.now().astimezone().tzinfo or _dt.UTC
        else:
            tz = s.get_tz("TimeZone", _dt.UTC)
        return cls(
            s.get_time("StartTime"),
            s.get_time("EndTime"),
            s.get_day("StartDay", None),
            s.get_day("EndDay", None),
            s.get_days("Weekdays", None),
            tz,
        )

    @property
    def non_stop(self) -> bool:
        return self.start is None

    def _local(self, when: _dt.datetime | None) -> _dt.datetime:
        when = when or _dt.datetime.now(_dt.UTC)
        if when.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one (UTC)")
        return when.astimezone(self.tz)

    def session_start(self, when: _dt.datetime | None = None) -> _dt.datetime | None:
        """Start of the session period containing ``when``, or None if outside (or non-stop)."""
        if self.start is None or self.end is None:
            return None
        t = self._local(when)
        if self.start_day is not None and self.end_day is not None:
            # Weekly: seconds since Monday 00:00 locate the instant in the week.
            def wk(day: int, tm: _dt.time) -> int:
                return day * 86400 + tm.hour * 3600 + tm.minute * 60 + tm.second

            now = wk(t.weekday(), t.time())
            a, b = wk(self.start_day, self.start), wk(self.end_day, self.end)
            since = (now - a) % (7 * 86400)
            length = (b - a) % (7 * 86400) or 7 * 86400
            if since > length:
                return None
            return (t - _dt.timedelta(seconds=since)).replace(microsecond=0)
        # Daily.
        a = self.start.hour * 3600 + self.start.minute * 60 + self.start.second
        b = self.end.hour * 3600 + self.end.minute * 60 + self.end.second
        now = t.hour * 3600 + t.minute * 60 + t.second
        since = (now - a) % 86400
        length = (b - a) % 86400 or 86400
        if since > length:
            return None
        start = (t - _dt.timedelta(seconds=since)).replace(microsecond=0)
        if self.weekdays is not None and start.weekday() not in self.weekdays:
            return None
        return start

    def is_session_time(self, when: _dt.datetime | None = None) -> bool:
        """True if ``when`` (aware; default now) is inside the session window."""
        return self.non_stop or self.session_start(when) is not None

    def is_same_session(self, a: _dt.datetime, b: _dt.datetime) -> bool:
        """True if both instants fall in the same session period (store need not be reset)."""
        if self.non_stop:
            return True
        sa, sb = self.session_start(a), self.session_start(b)
        return sa is not None and sa == sb


# --------------------------------------------------------------------------- TLS


def ssl_context_from_settings(s: Settings, server_side: bool | None = None) -> ssl.SSLContext | None:
    """An :class:`ssl.SSLContext` from the TLS keys, or None if ``SocketUseSSL`` is not Y.

    Acceptors present ``SocketCertificateFile`` (+ ``SocketPrivateKeyFile``) and
    verify clients only with ``SSLRequireClientCertificate=Y``. Initiators verify
    the server against ``SocketCAFile`` (or the system CAs) unless
    ``SSLValidateCertificates=N``, and present a client certificate if one is set.
    """
    if not s.get_bool("SocketUseSSL", False):
        return None
    if server_side is None:
        server_side = not s.is_initiator
    validate = s.get_bool("SSLValidateCertificates", True)
    cafile = s.get_path("SocketCAFile", None)
    try:
        if server_side:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cafile)
            ctx.verify_mode = (
                ssl.CERT_REQUIRED if s.get_bool("SSLRequireClientCertificate", False) else ssl.CERT_NONE
            )
        else:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
            if not validate:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        cert = s.get_path("SocketCertificateFile", None)
        if cert is not None:
            ctx.load_cert_chain(
                cert,
                s.get_path("SocketPrivateKeyFile", None),
                s.get_str("SSLCertificatePassword", None),
            )
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"{s.origin('SocketUseSSL')}: cannot set up TLS: {e}") from None
    return ctx
