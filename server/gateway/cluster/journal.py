"""The replicated journal: a JetStream stream (R3 on a three-node NATS cluster).

Subjects, under the stream's prefix ``p`` (the stream name in lower case):

* ``p.cmd.<client>``: order commands accepted by any instance. Each carries a
  ``Nats-Msg-Id`` made of the client, the request kind and its id, so a retried
  command is stored once within the stream's duplicate window.
* ``p.fix.<session>``: one log per FIX session, written only by the session's owner:
  epoch markers, what went out (MsgSeqNum and raw message) and what came in (raw
  report and the client events derived from it). Every append carries
  ``Nats-Expected-Last-Subject-Sequence``: an owner that lost the session to another
  instance gets error 10071 and :class:`Fenced`, and must stop writing to the hub.

An acknowledged append is stored on a quorum of the stream's replicas (see
docs/cluster.md for what that means on disk).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import msgspec

__all__ = ["CommandLog", "Fenced", "JournalUnavailable", "SessionLog", "connect", "ensure_stream",
           "session_token"]

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()

WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed Expected-Last-Subject-Sequence
DUPLICATE_WINDOW = 120.0  # seconds in which a repeated Nats-Msg-Id is dropped


class Fenced(Exception):
    """Another writer appended to this session's log: this instance no longer owns it."""


class JournalUnavailable(Exception):
    """The stream did not acknowledge an append (no quorum, or no server reachable)."""


def session_token(session: str) -> str:
    """A FIX session name (``FIX.4.4:GW->HUB``) as one subject token (no '.', '*', '>')."""
    return base64.urlsafe_b64encode(session.encode()).decode().rstrip("=")


async def connect(servers: Sequence[str], name: str, timeout: float = 2.0) -> Any:
    """A NATS connection that keeps reconnecting (another node of the cluster takes over)."""
    import nats

    return await nats.connect(servers=list(servers), name=name, connect_timeout=timeout,
                              max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                              allow_reconnect=True)


async def ensure_stream(js: Any, stream: str, replicas: int) -> str:
    """Create the journal stream when missing; returns its subject prefix."""
    from nats.js import api
    from nats.js.errors import NotFoundError

    prefix = stream.lower()
    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(api.StreamConfig(
            name=stream, subjects=[f"{prefix}.>"], num_replicas=replicas,
            storage=api.StorageType.FILE, retention=api.RetentionPolicy.LIMITS,
            duplicate_window=DUPLICATE_WINDOW, allow_direct=True))
    return prefix


async def _publish(js: Any, subject: str, payload: bytes, headers: dict[str, str], timeout: float) -> Any:
    """One append; timeouts and a lost quorum become :class:`JournalUnavailable`."""
    import nats.errors
    from nats.js.errors import APIError, NoStreamResponseError

    try:
        return await js.publish(subject, payload, headers=headers, timeout=timeout)
    except APIError as exc:
        if exc.err_code == WRONG_LAST_SEQUENCE:
            raise Fenced(f"{subject}: another writer appended (expected last sequence "
                         f"{headers.get('Nats-Expected-Last-Subject-Sequence')})") from exc
        if exc.code == 503:
            raise JournalUnavailable(f"{subject}: {exc.description}") from exc
        raise
    except (nats.errors.TimeoutError, NoStreamResponseError, nats.errors.ConnectionClosedError,
            nats.errors.NoRespondersError) as exc:
        raise JournalUnavailable(f"{subject}: no acknowledgement ({type(exc).__name__})") from exc


class CommandLog:
    """Order commands: any instance appends, the session owner consumes them."""

    def __init__(self, js: Any, prefix: str, timeout: float = 2.0) -> None:
        self.js = js
        self.prefix = prefix
        self.timeout = timeout

    async def append(self, client_id: str, kind: str, key: str, command: Any) -> tuple[int, bool]:
        """Append ``command``; returns (stream sequence, duplicate). A command with the same
        (client, kind, key) within the duplicate window is stored once: its first sequence is
        returned with ``duplicate`` set."""
        ack = await _publish(self.js, f"{self.prefix}.cmd.{client_id}", _enc.encode(command),
                             {"Nats-Msg-Id": f"{client_id}:{kind}:{key}"}, self.timeout)
        return ack.seq, bool(ack.duplicate)


class SessionLog:
    """One FIX session's single-writer log; :meth:`open` replays it and arms the fence."""

    def __init__(self, js: Any, stream: str, prefix: str, session: str, timeout: float = 2.0) -> None:
        self.js = js
        self.stream = stream
        self.session = session
        self.subject = f"{prefix}.fix.{session_token(session)}"
        self.timeout = timeout
        self.last = -1  # stream sequence of the last record on the subject (-1: not opened)

    async def last_sequence(self) -> int:
        """Stream sequence of the subject's last record (0: empty)."""
        from nats.js.errors import NotFoundError

        try:
            msg = await self.js.get_last_msg(self.stream, self.subject)
        except NotFoundError:
            return 0
        return msg.seq

    async def open(self) -> list[tuple[int, tuple[Any, ...]]]:
        """Every record as (stream sequence, record), oldest first; later appends are
        fenced on the last one read."""
        last = await self.last_sequence()
        records: list[tuple[int, tuple[Any, ...]]] = []
        if last:
            sub = await self.js.subscribe(self.subject, ordered_consumer=True, stream=self.stream)
            try:
                while True:
                    msg = await sub.next_msg(timeout=self.timeout)
                    seq = msg.metadata.sequence.stream
                    records.append((seq, tuple(_dec.decode(msg.data))))
                    if seq >= last:
                        break
            finally:
                await sub.unsubscribe()
        self.last = last
        return records

    async def append(self, record: Sequence[Any]) -> int:
        """Append one record if nobody else wrote since :meth:`open` (or our last append);
        raises :class:`Fenced` otherwise, :class:`JournalUnavailable` without a quorum."""
        if self.last < 0:
            raise RuntimeError(f"{self.session}: log appended before it was opened")
        ack = await _publish(self.js, self.subject, _enc.encode(record),
                             {"Nats-Expected-Last-Subject-Sequence": str(self.last)}, self.timeout)
        self.last = ack.seq
        return ack.seq
