"""Off-hours sessions and volatility interruptions of the KRX day, on a fake clock."""

from __future__ import annotations

from datetime import timedelta

from _exchange_helpers import SAM, Helper, of, one, trades

from server.exchange.clock import KrxClock, ManualTime, Phase, seoul
from server.exchange.matching import (
    Accepted,
    Expired,
    MatchingEngine,
    OrdType,
    Rejected,
    SessionChanged,
    Side,
    TimeInForce,
    Trade,
    VolatilityEnded,
    VolatilityInterruption,
    VolatilityRules,
)
from server.exchange.rules import Reason

BUY, SELL = Side.BUY, Side.SELL
MONDAY = (2024, 3, 4)
CLOSE_PRICE = OrdType.CLOSE_PRICE


def day(hour: int, minute: int, vi: bool = False, seed: int = 1):
    t = ManualTime(seoul(*MONDAY, hour, minute))
    engine = MatchingEngine(clock=KrxClock(t), volatility=VolatilityRules() if vi else None, seed=seed)
    return engine, Helper(engine), t


def sessions(events):
    return [(e.phase, e.pre_close_price) for e in of(events, SessionChanged)]


# ---------------------------------------------------------------- closing-price sessions


def test_pre_market_closing_price_session_trades_at_the_previous_close():
    engine, h, t = day(8, 30)
    assert engine.pre_close_price and engine.phase is Phase.PRE_OPEN
    buy = one(h.buy(5, type=CLOSE_PRICE), Accepted)
    assert buy.price == 70_000 and buy.order.ord_type is CLOSE_PRICE
    ev = h.sell(3, 70_000, type=CLOSE_PRICE)                  # the close itself is accepted as a price
    assert trades(ev) == [(70_000, 3)]
    assert one(h.sell(1, 70_100, type=CLOSE_PRICE), Rejected).reason is Reason.CLOSE_PRICE_ONLY
    assert one(h.sell(1, type=CLOSE_PRICE, tif=TimeInForce.IOC), Rejected).reason is Reason.CONDITION_NOT_ALLOWED
    # The opening call runs beside it, in its own book: a crossing regular order does not trade.
    h.rest(SELL, 4, 69_000)
    assert engine.books[SAM].best_ask() == 69_000 and engine.close_books[SAM].best_bid() == 70_000
    t.set(seoul(*MONDAY, 8, 40))
    ev = engine.poll()
    gone = one(ev, Expired)
    assert gone.order is buy.order and gone.reason is Reason.CLOSE_PRICE_SESSION_END and gone.cum_qty == 3
    assert sessions(ev) == [(Phase.PRE_OPEN, False)]
    rej = one(h.buy(1, type=CLOSE_PRICE), Rejected)
    assert rej.reason is Reason.ORDER_TYPE_NOT_ALLOWED and "08:30-08:40" in rej.text
    assert engine.books[SAM].best_ask() == 69_000              # the opening call's order is untouched


def test_after_market_closing_price_session_then_after_hours_single_price():
    engine, h, t = day(15, 20)
    h.rest(BUY, 2, 71_000)
    h.rest(SELL, 2, 71_000)
    t.set(seoul(*MONDAY, 15, 30))
    assert trades(engine.poll()) == [(71_000, 2)] and engine.close_prices[SAM] == 71_000
    assert one(h.buy(1, type=CLOSE_PRICE), Rejected).reason is Reason.MARKET_CLOSED   # 15:30-15:40
    t.set(seoul(*MONDAY, 15, 40))
    assert sessions(engine.poll()) == [(Phase.CLOSE_PRICE, False)]
    assert one(h.buy(4, type=CLOSE_PRICE), Accepted).price == 71_000
    assert trades(h.sell(3, type=CLOSE_PRICE)) == [(71_000, 3)]
    assert one(h.buy(1, 71_000), Rejected).reason is Reason.CLOSE_PRICE_ONLY
    # 16:00: the closing-price orders left expire; after-hours orders within ±10% of the close.
    t.set(seoul(*MONDAY, 16, 0))
    ev = engine.poll()
    assert one(ev, Expired).reason is Reason.CLOSE_PRICE_SESSION_END
    assert sessions(ev) == [(Phase.AFTER_HOURS, False)]
    assert engine.limits_now(SAM) == (63_900, 78_100)
    rej = one(h.buy(1, 78_200), Rejected)
    assert rej.reason is Reason.OUTSIDE_PRICE_LIMITS and "63,900-78,100" in rej.text
    assert one(h.buy(1, type=OrdType.MARKET), Rejected).reason is Reason.ORDER_TYPE_NOT_ALLOWED
    h.rest(BUY, 5, 72_000)
    h.rest(SELL, 3, 71_500)                                    # a call: nothing trades yet
    t.set(seoul(*MONDAY, 16, 9, 59))
    assert not trades(engine.poll())
    t.set(seoul(*MONDAY, 16, 10))
    # The single price nearest the close within the crossing range.
    assert trades(engine.poll()) == [(71_500, 3)]
    t.set(seoul(*MONDAY, 16, 15))
    h.rest(SELL, 1, 71_900)
    t.set(seoul(*MONDAY, 18, 0))
    ev = engine.poll()
    assert trades(ev) == [(71_900, 1)]                         # the 18:00 call, then the day ends
    assert [e.reason for e in of(ev, Expired)] == [Reason.END_OF_DAY]
    assert engine.phase is Phase.CLOSED and not engine.orders
    assert engine.base_prices[SAM] == 71_000                  # after-hours trades do not set the close


def test_every_phase_of_the_day_is_announced_in_order():
    engine, _, t = day(7, 0)
    seen = []
    for hm in ((8, 30), (8, 40), (9, 0), (15, 20), (15, 30), (15, 40), (16, 0), (18, 0)):
        t.set(seoul(*MONDAY, *hm))
        seen += sessions(engine.poll())
    assert seen == [(Phase.PRE_OPEN, False), (Phase.PRE_OPEN, True), (Phase.PRE_OPEN, False),
                    (Phase.CONTINUOUS, False), (Phase.CLOSING_CALL, False), (Phase.POST_CLOSE, False),
                    (Phase.CLOSE_PRICE, False), (Phase.AFTER_HOURS, False), (Phase.CLOSED, False)]


# ---------------------------------------------------------------- volatility interruptions


def test_static_interruption_stops_the_trade_and_calls_for_two_minutes_and_a_bit():
    engine, h, t = day(10, 0, vi=True)
    h.rest(SELL, 5, 76_000)
    h.rest(SELL, 5, 77_500)                                    # 10.7% above the base 70,000
    ev = h.buy(10, 78_000)
    assert trades(ev) == [(76_000, 5)]
    vi = one(ev, VolatilityInterruption)
    assert (vi.kind, vi.reference, vi.price, vi.symbol) == ("static", 70_000, 77_500, SAM)
    start = t.value
    assert start + timedelta(seconds=120) <= vi.ends_at <= start + timedelta(seconds=150)
    buy = one(ev, Accepted).order
    assert buy.live and engine.order(buy.order_id) is buy       # the rest waits for the auction
    # During the call: no matching, no IOC.
    assert not trades(h.buy(1, 77_500))
    assert one(h.buy(1, 77_500, tif=TimeInForce.IOC), Rejected).reason is Reason.CONDITION_NOT_ALLOWED
    t.set(start + timedelta(seconds=119))
    assert engine.poll() == []
    t.set(vi.ends_at)
    ev = engine.poll()
    # 77,500-78,000 all execute 5; at 77,600 nothing is left over (77,500 leaves a bid of 1).
    assert trades(ev) == [(77_600, 5)]
    assert one(ev, VolatilityEnded).price == 77_600 and SAM not in engine.vi
    assert engine.static_ref[SAM] == 77_600                     # the new single price
    assert trades(h.sell(1, 77_500)) == [(77_500, 1)]          # continuous again


def test_dynamic_interruption_from_the_last_trade():
    engine, h, t = day(10, 0, vi=True)
    h.rest(SELL, 5, 70_000)
    h.rest(SELL, 5, 72_200)                                    # 3.1% above the next last trade
    assert trades(h.buy(5, 70_000)) == [(70_000, 5)]
    ev = h.buy(5, type=OrdType.MARKET)
    vi = one(ev, VolatilityInterruption)
    assert (vi.kind, vi.reference, vi.price) == ("dynamic", 70_000, 72_200)
    market = one(ev, Accepted).order
    assert market.live and not of(ev, Expired)                 # a market order waits in the call too
    t.set(vi.ends_at + timedelta(seconds=1))
    ev = engine.poll()
    assert trades(ev) == [(72_200, 5)] and one(ev, VolatilityEnded).price == 72_200


def test_fok_that_would_interrupt_is_not_fillable_and_triggers_nothing():
    engine, h, _ = day(10, 0, vi=True)
    h.rest(SELL, 5, 70_000)
    h.rest(SELL, 5, 77_500)
    ev = h.buy(10, 77_500, tif=TimeInForce.FOK)
    assert one(ev, Expired).reason is Reason.FOK_NOT_FILLABLE and not trades(ev)
    assert not engine.vi


def test_random_end_depends_on_the_seed_and_the_closing_call_takes_over():
    ends = set()
    for seed in (1, 2, 3):
        engine, h, t = day(15, 19, vi=True, seed=seed)
        h.rest(SELL, 5, 77_500)
        vi = one(h.buy(5, 77_500), VolatilityInterruption)
        ends.add(vi.ends_at)
    assert len(ends) == 3
    t.set(seoul(*MONDAY, 15, 20))                              # before the (last) interruption ends
    ev = engine.poll()
    assert one(ev, VolatilityEnded).price is None and not engine.vi
    assert engine.phase is Phase.CLOSING_CALL and engine.orders  # its orders wait for the close


def test_no_interruptions_without_rules_or_outside_continuous_trading():
    engine, h, _ = day(10, 0)
    h.rest(SELL, 5, 80_000)
    assert trades(h.buy(5, 80_000)) == [(80_000, 5)]
    engine, h, t = day(8, 45, vi=True)
    h.rest(SELL, 5, 80_000)
    h.rest(BUY, 5, 80_000)
    t.set(seoul(*MONDAY, 9, 0))
    ev = engine.poll()
    assert trades(ev) == [(80_000, 5)] and not of(ev, VolatilityInterruption)
    assert engine.static_ref[SAM] == 80_000                     # the opening price is the static reference
    assert all(isinstance(e, Trade | SessionChanged) for e in ev)
