"""Trading clocks: the KRX regular session (Asia/Seoul) and an always-open clock for demos.

A clock answers one question, the trading :class:`Phase` right now. The time
source is injectable so tests can walk through a trading day deterministically.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")


class Phase(Enum):
    """Trading phases of one day, in order."""

    CLOSED = "closed"  # before order entry opens (and on weekends)
    PRE_OPEN = "pre-open"  # 08:30-09:00: orders collected for the opening auction
    CONTINUOUS = "continuous"  # 09:00-15:20: continuous price-time matching
    CLOSING_CALL = "closing-call"  # 15:20-15:30: orders collected for the closing auction
    POST_CLOSE = "post-close"  # after the 15:30 closing auction

    __hash__ = object.__hash__

    @property
    def accepts_orders(self) -> bool:
        return self in (Phase.PRE_OPEN, Phase.CONTINUOUS, Phase.CLOSING_CALL)

    @property
    def is_call(self) -> bool:
        """True while orders are collected for a single-price auction."""
        return self in (Phase.PRE_OPEN, Phase.CLOSING_CALL)


TimeSource = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ManualTime:
    """A settable time source for tests: ``t = ManualTime(dt); t.advance(minutes=5)``."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualTime needs an aware datetime")
        self.value = start

    def __call__(self) -> datetime:
        return self.value

    def set(self, value: datetime) -> None:
        if value.tzinfo is None:
            raise ValueError("ManualTime needs an aware datetime")
        self.value = value

    def advance(self, **delta: float) -> None:
        self.value = self.value + timedelta(**delta)


class KrxClock:
    """KRX regular session in Asia/Seoul; weekends are closed (holidays are not modelled)."""

    ENTRY_OPEN = time(8, 30)
    OPEN = time(9, 0)
    CLOSING_CALL = time(15, 20)
    CLOSE = time(15, 30)

    def __init__(self, now: TimeSource | None = None) -> None:
        self._now = now or _utc_now

    def now(self) -> datetime:
        return self._now()

    def trading_date(self) -> str:
        """Local (Seoul) date as YYYYMMDD, the trade date of reports."""
        return self._now().astimezone(SEOUL).strftime("%Y%m%d")

    def phase(self) -> Phase:
        local = self._now().astimezone(SEOUL)
        if local.weekday() >= 5:
            return Phase.CLOSED
        t = local.time()
        if t < self.ENTRY_OPEN:
            return Phase.CLOSED
        if t < self.OPEN:
            return Phase.PRE_OPEN
        if t < self.CLOSING_CALL:
            return Phase.CONTINUOUS
        if t < self.CLOSE:
            return Phase.CLOSING_CALL
        return Phase.POST_CLOSE


class AlwaysOpenClock(KrxClock):
    """Continuous trading at any hour: for demos and for tests that ignore the calendar."""

    def phase(self) -> Phase:
        return Phase.CONTINUOUS


def seoul(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """An aware datetime in Asia/Seoul (handy for tests and scripted days)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=SEOUL)
