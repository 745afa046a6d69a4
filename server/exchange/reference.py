"""Reference data and trading-session status of the exchange, as FIX 4.4 field lists.

No sessions here: :class:`~server.exchange.fix_app.ExchangeApplication` sends what
these functions build.

Instrument identity uses FIX 4.4's Instrument component: Symbol (55) the short
code, SecurityID (48) the ISIN with SecurityIDSource (22) ``4``, Product (460)
``5`` equity, SecurityType (167) ``CS``, SecuritySubType (762) the market
(KOSPI), SecurityExchange (207) ``XKRX``, SecurityDesc (107) the name.

FIX 4.4 has no fields for a tick size or price limits, so:

- a SecurityList (y) entry, whose group admits FIX 4.4 members only, carries the
  tick size and the daily limits as Stipulations (232): ``MININCR`` = tick size,
  ``PRICE`` = ``lower-upper``; the base price as BenchmarkPrice (662);
- a SecurityDefinition (d) carries them as the FIX 5.0 fields MinPriceIncrement
  (969), LowLimitPrice (1148), HighLimitPrice (1149), and BenchmarkPrice (662)
  for the base price; a receiver needs ``AllowUnknownMsgFields=Y``.

Trading sessions (TradingSessionID 336) and their states (TradSesStatus 340,
TradingSessionSubID 625) are listed in :data:`SESSIONS` and :func:`session_states`.
"""

from __future__ import annotations

from typing import Any

from server.exchange.clock import Phase
from server.exchange.instruments import Instrument
from server.exchange.matching import MatchingEngine, VolatilityEnded, VolatilityInterruption
from server.krx import tick_size

__all__ = ["SESSIONS", "instrument_fields", "instrument_state", "security_definition", "security_list_entry",
           "session_states", "volatility_status"]

Fields = list[tuple[int, Any]]

REGULAR, PRE_CLOSE_PRICE, POST_CLOSE_PRICE, AFTER_HOURS = (
    "REGULAR", "PRE_CLOSE_PRICE", "POST_CLOSE_PRICE", "AFTER_HOURS")
#: TradingSessionID (336) values: the KRX sessions of one day.
SESSIONS = (REGULAR, PRE_CLOSE_PRICE, POST_CLOSE_PRICE, AFTER_HOURS)

# TradSesStatus (340)
HALTED, OPEN, CLOSED, PRE_OPEN, PRE_CLOSE = 1, 2, 3, 4, 5

_REGULAR_STATE = {
    Phase.CLOSED: (CLOSED, "CLOSED"),
    Phase.PRE_OPEN: (PRE_OPEN, "OPENING_CALL"),
    Phase.CONTINUOUS: (OPEN, "CONTINUOUS"),
    Phase.CLOSING_CALL: (PRE_CLOSE, "CLOSING_CALL"),
    Phase.POST_CLOSE: (CLOSED, "CLOSED"),
    Phase.CLOSE_PRICE: (CLOSED, "CLOSED"),
    Phase.AFTER_HOURS: (CLOSED, "CLOSED"),
}


def session_states(market: MatchingEngine) -> dict[str, tuple[int, str]]:
    """TradingSessionID -> (TradSesStatus, TradingSessionSubID) now."""
    phase = market.phase
    return {
        REGULAR: _REGULAR_STATE[phase],
        PRE_CLOSE_PRICE: (OPEN, "CLOSE_PRICE") if market.pre_close_price else (CLOSED, "CLOSED"),
        POST_CLOSE_PRICE: (OPEN, "CLOSE_PRICE") if phase is Phase.CLOSE_PRICE else (CLOSED, "CLOSED"),
        AFTER_HOURS: (OPEN, "SINGLE_PRICE_CALL") if phase is Phase.AFTER_HOURS else (CLOSED, "CLOSED"),
    }


def instrument_state(market: MatchingEngine, code: str) -> tuple[str, str]:
    """(TradingSessionID, TradingSessionSubID) that applies to one instrument now."""
    vi = market.vi.get(code)
    if vi is not None:
        return REGULAR, f"VI_{vi.kind.upper()}"
    phase = market.phase
    if phase is Phase.CLOSE_PRICE:
        return POST_CLOSE_PRICE, "CLOSE_PRICE"
    if phase is Phase.AFTER_HOURS:
        return AFTER_HOURS, "SINGLE_PRICE_CALL"
    return REGULAR, _REGULAR_STATE[phase][1]


def instrument_fields(inst: Instrument) -> Fields:
    """The Instrument component of one listed stock."""
    return [(55, inst.code), (48, inst.isin), (22, "4"), (460, 5), (167, "CS"), (762, inst.market),
            (207, "XKRX"), (107, inst.name)]


def _prices(market: MatchingEngine, code: str) -> tuple[int, int, int, int]:
    """(tick size at the current price, base price, lower limit, upper limit)."""
    base = market.base_prices[code]
    current = market.books[code].last_price or base
    lower, upper = market.limits[code]
    return tick_size(current), base, lower, upper


def security_list_entry(market: MatchingEngine, inst: Instrument) -> Fields:
    """One NoRelatedSym (146) entry of a SecurityList: FIX 4.4 group members only."""
    tick, base, lower, upper = _prices(market, inst.code)
    session, sub = instrument_state(market, inst.code)
    return [*instrument_fields(inst), (15, inst.currency),
            (232, [[(233, "MININCR"), (234, tick)], [(233, "PRICE"), (234, f"{lower}-{upper}")]]),
            (662, base), (663, 2),  # BenchmarkPrice: the base price, per share
            (561, inst.lot_size), (562, inst.lot_size), (336, session), (625, sub)]


def security_definition(market: MatchingEngine, inst: Instrument) -> Fields:
    """The body of a SecurityDefinition after its ids: identity, prices, session state."""
    tick, base, lower, upper = _prices(market, inst.code)
    session, sub = instrument_state(market, inst.code)
    return [*instrument_fields(inst), (15, inst.currency), (336, session), (625, sub),
            (561, inst.lot_size), (562, inst.lot_size),
            (969, tick), (1148, lower), (1149, upper), (662, base)]


def volatility_status(event: VolatilityInterruption | VolatilityEnded, static_percent: int,
                      dynamic_percent: int) -> Fields:
    """TradingSessionStatus fields (after the ids) for the start or end of an interruption."""
    if isinstance(event, VolatilityInterruption):
        pct = static_percent if event.kind == "static" else dynamic_percent
        text = (f"{event.kind} volatility interruption on {event.symbol}: {event.price:,} is beyond "
                f"±{pct}% of {event.reference:,}; single-price call for 2 minutes plus a random extra")
        return [(336, REGULAR), (625, f"VI_{event.kind.upper()}"), (339, 2), (340, HALTED), (55, event.symbol),
                (58, text)]
    if event.price is None:
        return [(336, REGULAR), (625, "CLOSING_CALL"), (339, 2), (340, PRE_CLOSE), (55, event.symbol),
                (58, f"volatility interruption on {event.symbol} ended by the closing call")]
    return [(336, REGULAR), (625, "CONTINUOUS"), (339, 2), (340, OPEN), (55, event.symbol),
            (58, f"volatility interruption on {event.symbol} ended: single price {event.price:,}")]
