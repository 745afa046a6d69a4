"""Why the exchange simulator refuses or ends an order; the limit-price check.

The tick table and price limits themselves are in :mod:`server.krx`, shared with the gateway.
"""

from __future__ import annotations

from enum import StrEnum

from server.krx import is_on_tick


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
