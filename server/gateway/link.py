"""The gateway's FIX link: how orders leave and reports come back.

The order path depends only on :class:`Link`: ``send`` hands an application
message to a FIX session (returning once the session has stored and queued
it), and inbound ExecutionReport / OrderCancelReject / ListStatus /
BusinessMessageReject messages are delivered to ``on_message``. Session state
changes are delivered to ``on_state``.

Two implementations:

* ``server.gateway.loopback.LoopbackLink`` — an in-process broker simulator (no
  network), for demos and for tests of the REST/WS side;
* ``server.gateway.fix_app.FixLink`` — FIX initiator sessions to the STP-HUB
  through the fastfix session engine, configured by a QuickFIX-style settings file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

__all__ = [
    "InboundMessage",
    "Link",
    "LinkDown",
    "SessionState",
]

# Message types the gateway takes from the link; anything else is ignored.
# (Reject 3 is a session message: the FIX application hands it over from ``from_admin``.)
INBOUND_TYPES = frozenset((b"8", b"9", b"N", b"j", b"3", b"r", b"h", b"y", b"d", b"AO", b"AP", b"BA", b"BG"))


class InboundMessage(Protocol):
    """What the gateway needs from a received FIX message (``fastfix.codec.Message`` fits)."""

    @property
    def msg_type(self) -> bytes: ...

    def get(self, tag: int, default: Any = None) -> Any: ...

    def fields(self) -> list[tuple[int, bytes]]: ...


class LinkDown(Exception):
    """The FIX session that should carry a message is not logged on."""


class SessionState(msgspec.Struct, kw_only=True):
    """One FIX session as shown by GET /v1/brokers and /readyz."""

    name: str
    begin_string: str
    sender_comp_id: str
    target_comp_id: str
    logged_on: bool
    state: str  # "logged_on", "connecting", "disconnected", ...


MessageHandler = Callable[[InboundMessage, str], None]
StateHandler = Callable[[str, bool], None]


class Link(ABC):
    """FIX connectivity of the gateway (one or more sessions, named)."""

    def __init__(self) -> None:
        self.on_message: MessageHandler = lambda msg, session: None
        #: Called after the messages of one read were given to ``on_message`` (the gateway
        #: journals them together, then pushes their events).
        self.on_read_end: Callable[[], None] = lambda: None
        self.on_state: StateHandler = lambda session, up: None
        #: Per session, the mark (:meth:`inbound_mark`) of the last inbound message whose
        #: effects are committed; set before :meth:`start` so a FIX session can ask again
        #: for what it had read but the gateway had not yet made durable.
        self.resume_points: dict[str, str] = {}
        #: Called (before any message flows) with a session's starting mark when it has none.
        self.on_resume_point: Callable[[str, str], None] = lambda session, mark: None

    def inbound_mark(self, session: str, msg: InboundMessage) -> str | None:
        """A durable resume point for ``msg`` (committed with its effects), or None."""
        return None

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def sessions(self) -> list[SessionState]: ...

    @property
    @abstractmethod
    def begin_string(self) -> str:
        """BeginString of the sessions (the gateway maps JSON with this FIX version)."""

    def default_session(self) -> str:
        return self.sessions()[0].name

    def is_up(self, session: str) -> bool:
        for s in self.sessions():
            if s.name == session:
                return s.logged_on
        return False

    @abstractmethod
    async def send(self, session: str, msg_type: str, fields: Sequence[tuple[int, Any]]) -> None:
        """Hand an application message to ``session``; raises :class:`LinkDown` if it is not logged on."""

    def send_bodies(self, session: str, messages: Sequence[tuple[str, bytes, Sequence[tuple[int, Any]]]]) -> None:
        """Hand pre-encoded application messages ``(msg_type, body, header fields)`` to
        ``session`` at once, synchronously (the body as ``Session.send_body`` takes it);
        raises :class:`LinkDown` if the session is not logged on."""
        raise NotImplementedError

    def write_paused(self, session: str) -> bool:
        """True while the session's transport has too much unsent data (see :meth:`writable`)."""
        return False

    async def writable(self, session: str) -> None:
        """Wait until the session's transport takes data again."""
        return None

    def sent_message(self, session: str, seq_num: int) -> InboundMessage | None:
        """The application message the session sent with MsgSeqNum ``seq_num`` (what a
        session-level Reject's RefSeqNum names), or None when it is not known."""
        return None

    def sent_ids(self, session: str) -> tuple[set[tuple[str, bytes]], int] | None:
        """(MsgType, wire ClOrdID 11 or ListID 66) of the orders, lists and cancels the session has
        stored as sent, and the time (ns) from which that record is complete; None when the link
        keeps no such record."""
        return None
