"""KRX market rules: tick sizes, daily price limits, and order validation reasons."""

from __future__ import annotations

from bisect import bisect_right
from enum import StrEnum

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


class Reason(StrEnum):
    """Why the exchange refused or ended an order (stable codes; text in ``REASON_TEXT``)."""

    UNKNOWN_SYMBOL = "unknown-symbol"
    INVALID_QUANTITY = "invalid-quantity"
    INVALID_SIDE = "invalid-side"
    PRICE_REQUIRED = "price-required"
    PRICE_NOT_ALLOWED = "price-not-allowed"
    INVALID_TICK = "invalid-tick"
    OUTSIDE_PRICE_LIMITS = "outside-price-limits"
    MARKET_CLOSED = "market-closed"
    ORDER_TYPE_NOT_ALLOWED = "order-type-not-allowed"
    CONDITION_NOT_ALLOWED = "condition-not-allowed"
    NO_OPPOSITE_QUOTE = "no-opposite-quote"
    NO_SAME_SIDE_QUOTE = "no-same-side-quote"
    UNKNOWN_ORDER = "unknown-order"
    DUPLICATE_ORDER = "duplicate-order"
    QUANTITY_BELOW_EXECUTED = "quantity-below-executed"
    NOTHING_TO_CHANGE = "nothing-to-change"
    # Reasons an accepted order ends without a cancel request.
    IOC_REMAINDER = "ioc-remainder"
    FOK_NOT_FILLABLE = "fok-not-fillable"
    MARKET_REMAINDER = "market-remainder"
    AUCTION_REMAINDER = "auction-remainder"
    END_OF_DAY = "end-of-day"
    CANCEL_REQUESTED = "cancel-requested"
    CLOSE_PRICE_ONLY = "close-price-only"
    CLOSE_PRICE_SESSION_END = "close-price-session-end"
    MASS_CANCEL = "mass-cancel"


REASON_TEXT: dict[Reason, str] = {
    Reason.UNKNOWN_SYMBOL: "unknown symbol",
    Reason.INVALID_QUANTITY: "order quantity must be a positive whole number of shares",
    Reason.INVALID_SIDE: "side must be buy or sell",
    Reason.PRICE_REQUIRED: "this order type needs a limit price",
    Reason.PRICE_NOT_ALLOWED: "this order type takes no limit price",
    Reason.INVALID_TICK: "price is not on the tick grid",
    Reason.OUTSIDE_PRICE_LIMITS: "price is outside the daily price limits",
    Reason.MARKET_CLOSED: "market closed for order entry",
    Reason.ORDER_TYPE_NOT_ALLOWED: "order type not accepted in the current trading phase",
    Reason.CONDITION_NOT_ALLOWED: "IOC/FOK only apply to limit, market and best-limit orders in continuous trading",
    Reason.NO_OPPOSITE_QUOTE: "best-limit order needs a quote on the opposite side",
    Reason.NO_SAME_SIDE_QUOTE: "primary-best order needs a quote on the same side",
    Reason.UNKNOWN_ORDER: "unknown or already completed order",
    Reason.DUPLICATE_ORDER: "duplicate order",
    Reason.QUANTITY_BELOW_EXECUTED: "new quantity must exceed the executed quantity",
    Reason.NOTHING_TO_CHANGE: "replace changes neither price nor quantity",
    Reason.IOC_REMAINDER: "IOC remainder cancelled",
    Reason.FOK_NOT_FILLABLE: "FOK order could not be filled in full",
    Reason.MARKET_REMAINDER: "market order remainder cancelled (a market order never rests)",
    Reason.AUCTION_REMAINDER: "unexecuted market order cancelled after the auction",
    Reason.END_OF_DAY: "day order expired at the close",
    Reason.CANCEL_REQUESTED: "cancelled on request",
    Reason.CLOSE_PRICE_ONLY: "closing-price orders trade at the closing price only "
                             "(08:30-08:40 the previous close, 15:40-16:00 today's close)",
    Reason.CLOSE_PRICE_SESSION_END: "closing-price session ended",
    Reason.MASS_CANCEL: "cancelled by a mass cancel request",
}


def check_limit_price(price: int, lower: int, upper: int) -> Reason | None:
    """Validate a limit price against the tick grid and the daily limits."""
    if price <= 0 or not is_on_tick(price):
        return Reason.INVALID_TICK
    if price < lower or price > upper:
        return Reason.OUTSIDE_PRICE_LIMITS
    return None
