"""One owner per FIX session: a lease in a JetStream key-value bucket.

The lease of a session is one key whose value is ``(owner, epoch)``. Every write is a
compare-and-set on the key's revision (``create`` when absent, ``update(last=revision)``
after), so of two instances trying at once exactly one wins.

* The owner renews every ``renew_interval`` by rewriting its value (a new revision).
  It counts itself the owner only while its last successful renewal *started* less
  than ``term - renew_interval`` ago on its own monotonic clock: an owner that cannot
  renew (NATS unreachable, no quorum, the process paused) gives the session up before
  any standby may take it.
* A standby reads the key every ``renew_interval``. When the revision has not changed
  for ``term`` on the standby's clock (it has been silent that long), the standby writes
  ``(itself, epoch + 1)`` with ``last=`` the revision it saw: if the owner renewed in the
  meantime the write fails and the standby keeps waiting.
* An owner that stops cleanly writes ``("", epoch)``: the session is free at once.

Only time intervals on each instance's own clock are compared, never clocks of two
machines. The lease alone does not fence a writer that was paused past its term and
wakes up: the epoch marker each new owner appends to the session's log does
(``journal.SessionLog``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["Lease", "LeaseState", "open_bucket"]

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(tuple[str, int])


async def open_bucket(js: Any, stream: str, replicas: int) -> Any:
    """The lease bucket of the journal ``stream`` (created when missing)."""
    from nats.js.errors import BucketNotFoundError

    name = f"{stream}_leases"
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=name, history=1, replicas=replicas)


class LeaseState(msgspec.Struct, frozen=True):
    """What the bucket says about a session."""

    owner: str  # "" = free
    epoch: int
    revision: int  # 0 = never written


class Lease:
    """The lease of one FIX session as seen by one instance."""

    def __init__(self, kv: Any, key: str, instance: str, term: float, renew_interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if renew_interval * 2 > term:
            raise ValueError("renew_interval must be at most half of the lease term")
        self.kv = kv
        self.key = key
        self.instance = instance
        self.term = term
        self.renew_interval = renew_interval
        self.clock = clock
        self.epoch = 0
        self._revision = 0  # our last write, while we own it
        self._renewed_at: float | None = None  # start of our last successful write
        self._seen: tuple[int, float] = (-1, 0.0)  # (revision, when first seen) as a standby

    @property
    def held(self) -> bool:
        """Whether this instance may act as the owner right now (see module docs)."""
        return (self._renewed_at is not None
                and self.clock() - self._renewed_at < self.term - self.renew_interval)

    async def read(self) -> LeaseState:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.kv.get(self.key)
        except KeyNotFoundError:
            return LeaseState("", 0, 0)
        if not entry.value:
            return LeaseState("", 0, entry.revision)
        owner, epoch = _dec.decode(entry.value)
        return LeaseState(owner, epoch, entry.revision)

    async def _write(self, owner: str, epoch: int, last: int) -> int | None:
        """CAS write; the new revision, or None when somebody else wrote first."""
        from nats.js.errors import KeyWrongLastSequenceError

        value = _enc.encode((owner, epoch))
        try:
            if last == 0:
                return await self.kv.create(self.key, value)
            return await self.kv.update(self.key, value, last=last)
        except KeyWrongLastSequenceError:
            return None

    async def try_acquire(self) -> bool:
        """Take the lease if it is free or has been silent for a whole term; True if we own it
        now (a new epoch). Errors reaching NATS propagate."""
        started = self.clock()
        state = await self.read()
        if state.owner == self.instance and self.held and state.revision == self._revision:
            return True
        if state.owner and state.revision != self._seen[0]:
            self._seen = (state.revision, started)  # a new renewal: the term starts again
            return False
        if state.owner and started - self._seen[1] < self.term:
            return False
        rev = await self._write(self.instance, state.epoch + 1, state.revision)
        if rev is None:
            return False
        self.epoch = state.epoch + 1
        self._revision = rev
        self._renewed_at = started
        return True

    async def renew(self) -> bool:
        """Extend our lease; False (and no longer held) if somebody else has written since."""
        if self._renewed_at is None:
            return False
        started = self.clock()
        rev = await self._write(self.instance, self.epoch, self._revision)
        if rev is None:
            self._renewed_at = None
            return False
        self._revision = rev
        self._renewed_at = started
        return True

    def lose(self) -> None:
        """Stop counting ourselves the owner (renewal failed, or the log fenced us)."""
        self._renewed_at = None

    async def release(self) -> None:
        """Give the session up at once (clean stop): a standby need not wait for the term."""
        if self._renewed_at is not None:
            self._renewed_at = None
            await self._write("", self.epoch, self._revision)
