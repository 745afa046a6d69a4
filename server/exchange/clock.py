"""Trading clocks: the KRX trading day (Asia/Seoul) and an always-open clock for demos.

A clock answers two questions: the trading :class:`Phase` right now, and whether
a closing-price session (시간외 종가) is open. The time source is injectable so
tests can walk through a trading day deterministically.

The KRX day, local time::

    08:30-08:40  pre-market closing-price session (at the previous close), while
    08:30-09:00  orders are collected for the opening single-price auction
    09:00-15:20  continuous trading (volatility interruptions: see matching)
    15:20-15:30  closing single-price call, auction at 15:30
    15:40-16:00  after-market closing-price session (at today's close)
    16:00-18:00  after-hours single-price session (시간외 단일가), a call every 10 minutes
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")


class Phase(Enum):
    """Trading phases of one day, in order."""

    CLOSED = "closed"  # before order entry opens, after 18:00 (and on weekends)
    PRE_OPEN = "pre-open"  # 08:30-09:00: orders collected for the opening auction
    CONTINUOUS = "continuous"  # 09:00-15:20: continuous price-time matching
    CLOSING_CALL = "closing-call"  # 15:20-15:30: orders collected for the closing auction
    POST_CLOSE = "post-close"  # 15:30-15:40: after the closing auction, no order entry
    CLOSE_PRICE = "close-price"  # 15:40-16:00: after-market session at today's close
    AFTER_HOURS = "after-hours"  # 16:00-18:00: single-price calls every 10 minutes

    __hash__ = object.__hash__

    @property
    def accepts_orders(self) -> bool:
        return self in (Phase.PRE_OPEN, Phase.CONTINUOUS, Phase.CLOSING_CALL, Phase.CLOSE_PRICE,
                        Phase.AFTER_HOURS)

    @property
    def is_regular(self) -> bool:
        """True during the regular session (08:30-15:30), when every order type is accepted."""
        return self in (Phase.PRE_OPEN, Phase.CONTINUOUS, Phase.CLOSING_CALL)

    @property
    def is_call(self) -> bool:
        """True while orders are collected for a single-price auction."""
        return self in (Phase.PRE_OPEN, Phase.CLOSING_CALL, Phase.AFTER_HOURS)


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
    """The KRX trading day in Asia/Seoul; weekends are closed (holidays are not modelled)."""

    ENTRY_OPEN = time(8, 30)
    PRE_CLOSE_PRICE_END = time(8, 40)
    OPEN = time(9, 0)
    CLOSING_CALL = time(15, 20)
    CLOSE = time(15, 30)
    CLOSE_PRICE = time(15, 40)
    AFTER_HOURS = time(16, 0)
    AFTER_HOURS_END = time(18, 0)
    AFTER_HOURS_CALL = timedelta(minutes=10)  # after-hours single-price call interval

    def __init__(self, now: TimeSource | None = None) -> None:
        self._now = now or _utc_now

    def now(self) -> datetime:
        return self._now()

    def trading_date(self) -> str:
        """Local (Seoul) date as YYYYMMDD, the trade date of reports."""
        return self._now().astimezone(SEOUL).strftime("%Y%m%d")

    def phase(self) -> Phase:
        return self.state()[0]

    def state(self) -> tuple[Phase, bool]:
        """(phase, pre-market closing-price session open) from one reading of the time."""
        local = self._now().astimezone(SEOUL)
        if local.weekday() >= 5:
            return Phase.CLOSED, False
        t = local.time()
        if t < self.ENTRY_OPEN:
            return Phase.CLOSED, False
        if t < self.OPEN:
            return Phase.PRE_OPEN, t < self.PRE_CLOSE_PRICE_END
        if t < self.CLOSING_CALL:
            return Phase.CONTINUOUS, False
        if t < self.CLOSE:
            return Phase.CLOSING_CALL, False
        if t < self.CLOSE_PRICE:
            return Phase.POST_CLOSE, False
        if t < self.AFTER_HOURS:
            return Phase.CLOSE_PRICE, False
        if t < self.AFTER_HOURS_END:
            return Phase.AFTER_HOURS, False
        return Phase.CLOSED, False

    def pre_market_close_price(self) -> bool:
        """True during the pre-market closing-price session (08:30-08:40, at the previous close)."""
        return self.state()[1]

    def after_hours_calls(self, since: datetime, until: datetime) -> list[datetime]:
        """The after-hours single-price call times in ``(since, until]`` (16:10, 16:20 ... 18:00)."""
        out: list[datetime] = []
        day = since.astimezone(SEOUL).date()
        last = until.astimezone(SEOUL).date()
        while day <= last:
            start = datetime.combine(day, self.AFTER_HOURS, SEOUL)
            end = datetime.combine(day, self.AFTER_HOURS_END, SEOUL)
            at = start + self.AFTER_HOURS_CALL
            while at <= end:
                if since < at <= until and day.weekday() < 5:
                    out.append(at)
                at += self.AFTER_HOURS_CALL
            day += timedelta(days=1)
        return out


class AlwaysOpenClock(KrxClock):
    """Continuous trading at any hour: for demos and for tests that ignore the calendar."""

    def phase(self) -> Phase:
        return Phase.CONTINUOUS

    def state(self) -> tuple[Phase, bool]:
        return Phase.CONTINUOUS, False

    def pre_market_close_price(self) -> bool:
        return False

    def after_hours_calls(self, since: datetime, until: datetime) -> list[datetime]:
        return []


def seoul(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """An aware datetime in Asia/Seoul (handy for tests and scripted days)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=SEOUL)
