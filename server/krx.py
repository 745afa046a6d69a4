"""KRX market conventions shared by the gateway and the exchange simulator.

The tick table (KOSPI and KOSDAQ alike since 2023), the daily price limits
rounded onto that grid, and the lot size of common stock. The gateway checks
orders against them before they leave; the exchange simulator enforces them.
Prices are integer KRW.
"""

from __future__ import annotations

from bisect import bisect_right

__all__ = [
    "LIMIT_PERCENT",
    "LOT_SIZE",
    "TICK_BANDS",
    "is_on_tick",
    "is_whole_lot",
    "price_limits",
    "round_down_to_tick",
    "round_up_to_tick",
    "tick_size",
    "ticks_away",
]

# (lower bound of the price band, tick size) — KOSPI and KOSDAQ alike since 2023.
TICK_BANDS: tuple[tuple[int, int], ...] = (
    (0, 1),
    (2_000, 5),
    (5_000, 10),
    (20_000, 50),
    (50_000, 100),
    (200_000, 500),
    (500_000, 1_000),
)
_BAND_FLOORS = [lo for lo, _ in TICK_BANDS]
_BAND_TICKS = [tick for _, tick in TICK_BANDS]

LIMIT_PERCENT = 30


def tick_size(price: int) -> int:
    """Tick size that applies to ``price`` (KRW)."""
    if price < 0:
        raise ValueError("price must not be negative")
    return _BAND_TICKS[bisect_right(_BAND_FLOORS, price) - 1]


def is_on_tick(price: int) -> bool:
    """True if ``price`` is a positive multiple of its own band's tick size."""
    return price > 0 and price % tick_size(price) == 0


def round_down_to_tick(price: int) -> int:
    """Largest price on the tick grid that is <= ``price``."""
    # Every band floor is a multiple of its own tick, so rounding down with the
    # tick of ``price`` stays inside the band.
    return price - price % tick_size(price)


def round_up_to_tick(price: int) -> int:
    """Smallest price on the tick grid that is >= ``price``."""
    t = tick_size(price)
    r = price % t
    return price if r == 0 else price + t - r


def ticks_away(price: int, n: int) -> int:
    """The price ``n`` ticks above (n > 0) or below (n < 0) ``price`` on the tick grid."""
    p = price
    if n > 0:
        for _ in range(n):
            p += tick_size(p)
    else:
        for _ in range(-n):
            # The step below a band floor uses the tick of the band beneath it.
            p -= tick_size(p - 1)
    return p


def price_limits(base_price: int, percent: int = LIMIT_PERCENT) -> tuple[int, int]:
    """Daily (lower, upper) limit prices: base ±percent, rounded inward onto the tick grid."""
    if base_price <= 0:
        raise ValueError("base price must be positive")
    # Integer arithmetic: floor for the upper limit, ceiling for the lower one.
    upper_raw = base_price * (100 + percent) // 100
    lower_raw = -((-base_price * (100 - percent)) // 100)
    lower = max(round_up_to_tick(lower_raw), 1)
    return lower, round_down_to_tick(upper_raw)

LOT_SIZE = 1  # shares: KRX common stock trades in single shares


def is_whole_lot(qty: object, lot_size: int = LOT_SIZE) -> bool:
    """True if ``qty`` is a positive whole number of lots (an int, not a bool)."""
    return type(qty) is int and qty > 0 and qty % lot_size == 0
