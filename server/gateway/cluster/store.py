"""A fastfix :class:`~fastfix.store.MessageStore` kept in a FIX session's JetStream log.

The session engine calls its store synchronously and writes to the socket right
after (``Session._send_app``: ``save_sent`` then the write). So every change that must
survive the owner goes to the log *before* the call returns: the store hands the append
to a :class:`Bridge` (an event loop in its own thread, with its own NATS connection)
and waits for JetStream's acknowledgement. An append that fails (fenced by a newer
owner, no quorum, timeout) raises :class:`~fastfix.errors.StoreError` and marks the
store failed: the engine then writes nothing more, and ``on_failure`` tells the owner
to drop the session.

What goes in the session's log (``journal.SessionLog``):

=========================== ===================================================
``("E", owner, epoch)``     a new owner took the session (fences older writers)
``("O", seq, raw)``         an application message sent with MsgSeqNum ``seq``
``("S", next_sender)``      a session-level message used a sequence number
``("T", next_target)``      inbound sequence number (written at the end of a read)
``("I", seq, raw, rows)``   a report in, with the rows it changed (by the owner)
``("R", rows)``             other state changes of the owner
``("X", created_ns)``       the store was reset (sequence numbers back to 1)
=========================== ===================================================

A new owner replays the log (:meth:`JetStreamStore.replay`): the sender sequence
continues after the last one used, sent messages are there for the hub's
ResendRequest (the engine resends them with PossDupFlag), and the expected inbound
number follows the last report journaled or the last ``T``, whichever is later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from fastfix.errors import StoreError
from fastfix.store import MessageStore
from server.gateway.cluster.journal import Fenced, JournalUnavailable, SessionLog

__all__ = ["Bridge", "JetStreamStore"]

T = TypeVar("T")


class Bridge:
    """An asyncio loop in a thread, for blocking calls into NATS from synchronous code."""

    def __init__(self, name: str = "fastfix-nats") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the bridge loop and wait for its result (at most ``timeout``)."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


def _from_ns(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000)


def _to_ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


class JetStreamStore(MessageStore):
    """Sequence numbers and sent messages of one FIX session, in its JetStream log."""

    def __init__(self, log: SessionLog, bridge: Bridge, timeout: float = 2.0,
                 on_failure: Callable[[BaseException], None] | None = None) -> None:
        self.log = log  # opened and appended on the bridge loop
        self.bridge = bridge
        self.timeout = timeout
        self.on_failure = on_failure
        self.failed: BaseException | None = None
        self._sender = 1
        self._target = 1
        self._target_written = 1
        self._created = dt.datetime.now(dt.UTC)
        self._messages: dict[int, bytes] = {}
        self.epoch = 0
        self.owner = ""
        self.inbound: list[tuple[int, bytes, Any]] = []  # ("I" records) for the owner's replay
        self.appends = 0
        #: Called with the seconds each acknowledged append took (the journal_append_seconds metric).
        self.on_append_seconds: Callable[[float], None] = lambda seconds: None

    # ------------------------------------------------------------------ replay and ownership
    def replay(self, records: Sequence[tuple[int, Sequence[Any]]]) -> None:
        """Rebuild the state from the log's records (``SessionLog.open``)."""
        for _, rec in records:
            kind = rec[0]
            if kind == "O":
                self._messages[rec[1]] = bytes(rec[2])
                self._sender = max(self._sender, rec[1] + 1)
            elif kind == "S":
                self._sender = max(self._sender, rec[1])
            elif kind == "T":
                self._target = max(self._target, rec[1])
            elif kind == "I":
                self._target = max(self._target, rec[1] + 1)
                self.inbound.append((rec[1], bytes(rec[2]), rec[3]))
            elif kind == "E":
                self.owner, self.epoch = rec[1], rec[2]
            elif kind == "X":
                self._messages.clear()
                self._sender = self._target = 1
                self._created = _from_ns(rec[1])
                self.inbound.clear()
        self._target_written = self._target

    def take_over(self, owner: str, epoch: int) -> None:
        """Write the epoch marker of a new owner (fails if anybody wrote since the replay)."""
        self._append(("E", owner, epoch))
        self.owner, self.epoch = owner, epoch

    def append(self, record: Sequence[Any]) -> int:
        """Append an owner's record (``I`` / ``R``) through the same fence."""
        return self._append(record)

    def _append(self, record: Sequence[Any]) -> int:
        if self.failed is not None:
            raise StoreError(f"{self.log.session}: the session's log refused an earlier append: {self.failed}")
        started = time.perf_counter()
        try:
            seq = self.bridge.call(self.log.append(record), self.timeout + 0.5)
        except (Fenced, JournalUnavailable, TimeoutError, OSError) as exc:
            self.failed = exc
            if self.on_failure is not None:
                self.on_failure(exc)
            raise StoreError(f"{self.log.session}: journal append failed: {exc}") from exc
        self.appends += 1
        self.on_append_seconds(time.perf_counter() - started)
        return seq

    # ------------------------------------------------------------------ MessageStore
    @property
    def next_sender_seq(self) -> int:
        return self._sender

    @property
    def next_target_seq(self) -> int:
        return self._target

    @property
    def creation_time(self) -> dt.datetime:
        return self._created

    def set_next_sender_seq(self, n: int) -> None:
        self._append(("S", n))
        self._sender = n

    def incr_next_sender_seq(self) -> None:
        self.set_next_sender_seq(self._sender + 1)

    def set_next_target_seq(self, n: int) -> None:
        # Written at flush (the end of a read): a lower number after a failover only makes the
        # session ask for a resend, and reports already journaled move it forward on replay.
        self._target = n
        if n < self._target_written:
            self._append(("T", n))  # a rewind must not be undone by a replay
            self._target_written = n

    def incr_next_target_seq(self) -> None:
        self._target += 1

    def save(self, seq: int, raw: bytes) -> None:
        self._append(("O", seq, raw))
        self._messages[seq] = raw

    def save_sent(self, seq: int, raw: bytes) -> None:
        self._append(("O", seq, raw))
        self._messages[seq] = raw
        self._sender = max(self._sender, seq + 1)

    def get_range(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        top = end if end else max(self._messages, default=0)
        return [(s, self._messages[s]) for s in sorted(self._messages) if begin <= s <= top]

    def reset(self) -> None:
        created = dt.datetime.now(dt.UTC)
        self._append(("X", _to_ns(created)))
        self._messages.clear()
        self._sender = self._target = self._target_written = 1
        self._created = created

    def flush(self) -> None:
        if self.failed is None and self._target != self._target_written:
            self._append(("T", self._target))
            self._target_written = self._target
