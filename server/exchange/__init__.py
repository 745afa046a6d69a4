"""KRX exchange simulator: instruments, market rules, order books, matching engine.

The matching core (:mod:`.rules`, :mod:`.book`, :mod:`.matching`, :mod:`.clock`)
knows nothing about FIX: it takes plain requests and returns plain events.
:mod:`.fix_app` maps FIX messages onto it, :mod:`.reference` builds the reference data and
trading-session status it sends, :mod:`.config` reads the TOML file and :mod:`.service` runs
it all behind one FIX acceptor. The tick table and price limits are :mod:`server.krx`,
shared with the gateway.
"""

from server.exchange.clock import AlwaysOpenClock, KrxClock, ManualTime, Phase
from server.exchange.instruments import INSTRUMENTS, Instrument, isin_check_digit, lookup
from server.exchange.matching import (
    Accepted,
    Cancelled,
    CancelRejected,
    Converted,
    Expired,
    MatchingEngine,
    NewOrder,
    OrdType,
    Rejected,
    Replaced,
    SessionChanged,
    Side,
    TimeInForce,
    Trade,
    VolatilityEnded,
    VolatilityInterruption,
    VolatilityRules,
)
from server.exchange.rules import Reason
from server.krx import price_limits, tick_size

__all__ = [
    "INSTRUMENTS",
    "Accepted",
    "AlwaysOpenClock",
    "CancelRejected",
    "Cancelled",
    "Converted",
    "Expired",
    "Instrument",
    "KrxClock",
    "ManualTime",
    "MatchingEngine",
    "NewOrder",
    "OrdType",
    "Phase",
    "Reason",
    "Rejected",
    "Replaced",
    "SessionChanged",
    "Side",
    "TimeInForce",
    "Trade",
    "VolatilityEnded",
    "VolatilityInterruption",
    "VolatilityRules",
    "isin_check_digit",
    "lookup",
    "price_limits",
    "tick_size",
]
