"""Single-price auctions and the KRX trading day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from _exchange_helpers import SAM, Helper, of, one, trades

from server.exchange.clock import AlwaysOpenClock, KrxClock, ManualTime, Phase, seoul
from server.exchange.matching import (
    Accepted,
    Converted,
    Expired,
    MatchingEngine,
    OrdType,
    Rejected,
    Side,
    TimeInForce,
    Trade,
)
from server.exchange.rules import Reason
from server.krx import price_limits

BUY, SELL = Side.BUY, Side.SELL
MONDAY = (2024, 3, 4)


def _auction_engine():
    """An engine collecting orders for an auction (pre-open) on a manual clock."""
    t = ManualTime(seoul(*MONDAY, 8, 45))
    engine = MatchingEngine(clock=KrxClock(t))
    assert engine.phase is Phase.PRE_OPEN
    return engine, Helper(engine), t


# ---------------------------------------------------------------- the uniform price


def test_auction_maximises_volume_with_price_then_time_priority():
    engine, h, _ = _auction_engine()
    b1 = h.rest(BUY, 10, 70_100)
    b2 = h.rest(BUY, 5, 70_000)
    b3 = h.rest(BUY, 5, 70_000)
    s1 = h.rest(SELL, 8, 69_900)
    s2 = h.rest(SELL, 6, 70_000)
    assert engine.auction_price(SAM) == (70_000, 14)
    ev = engine.run_auction(SAM)
    ts = of(ev, Trade)
    assert {t.price for t in ts} == {70_000} and sum(t.qty for t in ts) == 14
    assert all(t.aggressor is None for t in ts)
    bought = {}
    for t in ts:
        bought[t.buy.order.order_id] = bought.get(t.buy.order.order_id, 0) + t.qty
    assert bought == {b1: 10, b2: 4}  # b3 (same price, later) gets nothing
    assert engine.order(b2).leaves_qty == 1 and engine.order(b3).leaves_qty == 5
    assert engine.order(s1) is None and engine.order(s2) is None
    assert engine.book(SAM).last_price == 70_000


def test_auction_minimum_imbalance_beats_reference_closeness():
    engine, h, _ = _auction_engine()
    h.rest(BUY, 10, 70_000)
    h.rest(BUY, 5, 70_200)
    h.rest(SELL, 5, 70_000)
    # 70,000: volume 5, imbalance 10; 70,100 (between the order prices): volume 5, imbalance 0.
    assert engine.auction_price(SAM) == (70_100, 5)
    assert trades(engine.run_auction(SAM)) == [(70_100, 5)]


def test_auction_closest_to_reference_price():
    engine, h, _ = _auction_engine()
    h.rest(BUY, 5, 70_200)
    h.rest(SELL, 5, 69_800)
    # Every price 69,800-70,200 executes 5 with no imbalance: the reference decides.
    assert engine.auction_price(SAM) == (70_000, 5)
    assert engine.auction_price(SAM, reference=71_000) == (70_200, 5)
    assert engine.auction_price(SAM, reference=60_000) == (69_800, 5)


def test_auction_market_orders_have_priority():
    engine, h, _ = _auction_engine()
    lim = h.rest(BUY, 5, 70_100)
    mkt = h.rest(BUY, 5, None, type=OrdType.MARKET)
    h.rest(SELL, 12, 70_000)
    mkt2 = h.rest(BUY, 4, None, type=OrdType.MARKET)
    ev = engine.run_auction(SAM)
    ts = of(ev, Trade)
    assert {t.price for t in ts} == {70_000}
    # Market orders first (in time order), then the earlier but priced limit order.
    assert [(t.buy.order.order_id, t.qty) for t in ts] == [(mkt, 5), (mkt2, 4), (lim, 3)]
    assert not of(ev, Expired) and engine.order(lim).leaves_qty == 2
    assert not engine.book(SAM).bids.market


def test_auction_imbalance_can_push_price_past_limit_orders():
    """Unmatched market demand counts: the price moves to where the imbalance is least."""
    engine, h, _ = _auction_engine()
    h.rest(BUY, 5, 70_100)
    h.rest(BUY, 9, None, type=OrdType.MARKET)
    h.rest(SELL, 6, 70_000)
    # 70,000 and 70,100: volume 6, imbalance 8; from 70,200 up only the market buys remain:
    # volume 6, imbalance 3. The closest of those to the reference is 70,200.
    assert engine.auction_price(SAM) == (70_200, 6)
    ev = engine.run_auction(SAM)
    exp = one(ev, Expired)
    assert exp.reason is Reason.AUCTION_REMAINDER and exp.cum_qty == 6 and exp.qty == 9


def test_auction_only_market_orders_trade_at_reference():
    engine, h, _ = _auction_engine()
    h.rest(BUY, 5, None, type=OrdType.MARKET)
    h.rest(SELL, 3, None, type=OrdType.MARKET)
    ev = engine.run_auction(SAM)
    assert trades(ev) == [(70_000, 3)]
    assert one(ev, Expired).leaves_qty == 0


def test_auction_without_cross_trades_nothing():
    engine, h, _ = _auction_engine()
    b = h.rest(BUY, 5, 69_900)
    h.rest(SELL, 5, 70_000)
    m = h.rest(SELL, 5, None, type=OrdType.MARKET)  # market sell meets the bid
    assert engine.auction_price(SAM) == (69_900, 5)
    engine.cancel(m)
    assert engine.auction_price(SAM) is None
    assert not engine.run_auction(SAM)
    assert engine.order(b).live


# ---------------------------------------------------------------- the KRX clock


@pytest.mark.parametrize(
    "hm,phase",
    [
        ((0, 0), Phase.CLOSED),
        ((8, 29), Phase.CLOSED),
        ((8, 30), Phase.PRE_OPEN),
        ((8, 59), Phase.PRE_OPEN),
        ((9, 0), Phase.CONTINUOUS),
        ((15, 19), Phase.CONTINUOUS),
        ((15, 20), Phase.CLOSING_CALL),
        ((15, 29), Phase.CLOSING_CALL),
        ((15, 30), Phase.POST_CLOSE),
        ((15, 39), Phase.POST_CLOSE),
        ((15, 40), Phase.CLOSE_PRICE),
        ((15, 59), Phase.CLOSE_PRICE),
        ((16, 0), Phase.AFTER_HOURS),
        ((17, 59), Phase.AFTER_HOURS),
        ((18, 0), Phase.CLOSED),
        ((23, 59), Phase.CLOSED),
    ],
)
def test_krx_clock_phases(hm, phase):
    assert KrxClock(lambda: seoul(*MONDAY, *hm)).phase() is phase


def test_krx_clock_uses_seoul_time_and_weekends():
    # 00:00 UTC is 09:00 in Seoul (no daylight saving).
    assert KrxClock(lambda: datetime(2024, 3, 4, 0, 0, tzinfo=UTC)).phase() is Phase.CONTINUOUS
    assert KrxClock(lambda: seoul(2024, 3, 9, 10)).phase() is Phase.CLOSED  # Saturday
    assert KrxClock(lambda: seoul(2024, 3, 4)).trading_date() == "20240304"
    assert AlwaysOpenClock(lambda: seoul(2024, 3, 9, 3)).phase() is Phase.CONTINUOUS
    with pytest.raises(ValueError):
        ManualTime(datetime(2024, 3, 4))


def test_orders_rejected_outside_entry_hours_unless_always_open():
    t = ManualTime(seoul(*MONDAY, 8, 0))
    engine = MatchingEngine(clock=KrxClock(t))
    h = Helper(engine)
    assert one(h.buy(1, 70_000), Rejected).reason is Reason.MARKET_CLOSED
    t.set(seoul(*MONDAY, 15, 35))
    assert one(h.buy(1, 70_000), Rejected).reason is Reason.MARKET_CLOSED
    t.set(seoul(*MONDAY, 18, 0))
    assert one(h.buy(1, 70_000), Rejected).reason is Reason.MARKET_CLOSED
    t.set(seoul(2024, 3, 9, 10, 0))  # Saturday
    assert one(h.buy(1, 70_000), Rejected).reason is Reason.MARKET_CLOSED
    always = Helper(MatchingEngine(clock=AlwaysOpenClock(t)))
    one(always.buy(1, 70_000), Accepted)


def test_call_phase_restrictions():
    engine, h, _ = _auction_engine()
    assert one(h.buy(1, type=OrdType.BEST_LIMIT), Rejected).reason is Reason.ORDER_TYPE_NOT_ALLOWED
    assert one(h.buy(1, type=OrdType.PRIMARY_BEST), Rejected).reason is Reason.ORDER_TYPE_NOT_ALLOWED
    assert one(h.buy(1, 70_000, tif=TimeInForce.IOC), Rejected).reason is Reason.CONDITION_NOT_ALLOWED
    # Crossing orders are only collected before the open.
    h.rest(SELL, 1, 69_000)
    h.rest(BUY, 1, 71_000)
    one(h.buy(1, 70_000, type=OrdType.CONDITIONAL_LIMIT), Accepted)


def test_a_whole_trading_day():
    t = ManualTime(seoul(*MONDAY, 8, 30))
    engine = MatchingEngine(clock=KrxClock(t))
    h = Helper(engine)
    # Pre-open: crossing interest, no trades yet.
    h.rest(BUY, 10, 70_500)
    h.rest(SELL, 6, 70_000)
    h.rest(SELL, 10, 71_000)
    assert engine.phase is Phase.PRE_OPEN

    # 09:00: the opening auction runs on the first request (or poll) after the bell.
    t.set(seoul(*MONDAY, 9, 0, 1))
    ev = engine.poll()
    # 70,000..70,500 all execute 6, imbalance 4: the base price 70,000 is closest.
    assert trades(ev) == [(70_000, 6)] and engine.phase is Phase.CONTINUOUS

    # Continuous trading.
    assert trades(h.sell(2, 70_500)) == [(70_500, 2)]
    cond = one(h.buy(20, 69_000, type=OrdType.CONDITIONAL_LIMIT), Accepted).order
    plain = h.rest(BUY, 5, 68_000)

    # 15:20: conditional limits become market orders for the closing auction.
    t.set(seoul(*MONDAY, 15, 20))
    ev = engine.poll()
    conv = one(ev, Converted)
    assert conv.order is cond and conv.price is None and cond.price is None
    assert engine.phase is Phase.CLOSING_CALL
    assert one(h.buy(1, 70_000, type=OrdType.CONDITIONAL_LIMIT), Rejected).reason is (
        Reason.ORDER_TYPE_NOT_ALLOWED
    )
    h.rest(SELL, 3, 70_800)  # in the call: no immediate trade

    # 15:30: closing auction, then every remaining order expires.
    t.set(seoul(*MONDAY, 15, 30))
    ev = engine.poll()
    # The converted order (now a market buy of 20) takes both offers at one price: at
    # 71,000 it executes 13 (all there is), where 70,800 would execute only 3.
    assert trades(ev) == [(71_000, 3), (71_000, 10)]
    expired = of(ev, Expired)
    assert {e.order.order_id for e in expired} >= {cond.order_id, plain}
    reasons = {e.order.order_id: e.reason for e in expired}
    assert reasons[cond.order_id] is Reason.AUCTION_REMAINDER
    assert reasons[plain] is Reason.END_OF_DAY
    assert not engine.orders and engine.phase is Phase.POST_CLOSE
    assert engine.close_prices[SAM] == 71_000

    # Next morning: the close is the new base price.
    t.set(seoul(2024, 3, 5, 8, 31))
    engine.poll()
    assert engine.phase is Phase.PRE_OPEN
    assert engine.base_prices[SAM] == 71_000 and engine.limits[SAM] == price_limits(71_000)


def test_skipped_phases_run_in_order():
    """A poll long after the last one still runs the opening then the closing auction."""
    t = ManualTime(seoul(*MONDAY, 8, 40))
    engine = MatchingEngine(clock=KrxClock(t))
    h = Helper(engine)
    h.rest(BUY, 5, 70_000)
    h.rest(SELL, 5, 70_000)
    h.rest(BUY, 2, 69_000)
    t.set(seoul(*MONDAY, 15, 35))
    ev = engine.poll()
    assert trades(ev) == [(70_000, 5)]
    assert one(ev, Expired).reason is Reason.END_OF_DAY
    assert engine.phase is Phase.POST_CLOSE
