"""Continuous matching: order types, conditions, price-time priority, cancel/replace."""

from __future__ import annotations

from decimal import Decimal

import pytest
from _exchange_helpers import SAM, of, one, trades

from server.exchange.matching import (
    Accepted,
    Cancelled,
    CancelRejected,
    Expired,
    NewOrder,
    OrdType,
    Rejected,
    Replaced,
    Side,
    TimeInForce,
    Trade,
    average_price,
)
from server.exchange.rules import Reason

BUY, SELL = Side.BUY, Side.SELL
IOC, FOK = TimeInForce.IOC, TimeInForce.FOK


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "req,reason",
    [
        (NewOrder("999999", BUY, 1, OrdType.LIMIT, 70_000), Reason.UNKNOWN_SYMBOL),
        (NewOrder(SAM, BUY, 0, OrdType.LIMIT, 70_000), Reason.INVALID_QUANTITY),
        (NewOrder(SAM, BUY, -5, OrdType.LIMIT, 70_000), Reason.INVALID_QUANTITY),
        (NewOrder(SAM, BUY, 1.5, OrdType.LIMIT, 70_000), Reason.INVALID_QUANTITY),
        (NewOrder(SAM, "buy", 1, OrdType.LIMIT, 70_000), Reason.INVALID_SIDE),
        (NewOrder(SAM, BUY, 1, OrdType.LIMIT, None), Reason.PRICE_REQUIRED),
        (NewOrder(SAM, BUY, 1, OrdType.CONDITIONAL_LIMIT, None), Reason.PRICE_REQUIRED),
        (NewOrder(SAM, BUY, 1, OrdType.LIMIT, 70_050), Reason.INVALID_TICK),
        (NewOrder(SAM, BUY, 1, OrdType.LIMIT, 91_100), Reason.OUTSIDE_PRICE_LIMITS),
        (NewOrder(SAM, SELL, 1, OrdType.LIMIT, 48_900), Reason.OUTSIDE_PRICE_LIMITS),
        (NewOrder(SAM, BUY, 1, OrdType.MARKET, 70_000), Reason.PRICE_NOT_ALLOWED),
        (NewOrder(SAM, BUY, 1, OrdType.BEST_LIMIT, 70_000), Reason.PRICE_NOT_ALLOWED),
        (NewOrder(SAM, BUY, 1, OrdType.CONDITIONAL_LIMIT, 70_000, IOC), Reason.CONDITION_NOT_ALLOWED),
        (NewOrder(SAM, BUY, 1, OrdType.PRIMARY_BEST, None, FOK), Reason.CONDITION_NOT_ALLOWED),
    ],
)
def test_validation_rejects_with_reason(engine, req, reason):
    ev = engine.submit(req)
    rej = one(ev, Rejected)
    assert rej.reason is reason and rej.text and rej.request is req
    assert not engine.orders


def test_price_limits_themselves_are_accepted(h):
    one(h.buy(1, 49_000), Accepted)
    one(h.sell(1, 91_000), Accepted)


def test_symbol_by_isin_is_normalised(engine):
    ev = engine.submit(NewOrder("KR7005930003", BUY, 1, OrdType.LIMIT, 70_000))
    assert one(ev, Accepted).order.symbol == SAM


# ---------------------------------------------------------------- limit orders and priority


def test_limit_rests_then_matches_at_resting_price(h, engine):
    h.rest(SELL, 10, 70_000)
    ev = h.buy(4, 70_500)
    assert trades(ev) == [(70_000, 4)]  # the resting order sets the price
    t = one(ev, Trade)
    assert t.aggressor is BUY and t.buy.cum_qty == 4 and t.buy.leaves_qty == 0
    assert t.sell.cum_qty == 4 and t.sell.leaves_qty == 6
    assert engine.book(SAM).depth() == {"bids": [], "asks": [(70_000, 6)]}


def test_price_then_time_priority(h, engine):
    a = h.rest(SELL, 5, 70_100)
    b = h.rest(SELL, 5, 70_000)
    c = h.rest(SELL, 5, 70_000)
    ev = h.buy(12, 70_100)
    ts = of(ev, Trade)
    assert [(t.sell.order.order_id, t.price, t.qty) for t in ts] == [
        (b, 70_000, 5), (c, 70_000, 5), (a, 70_100, 2),
    ]
    assert engine.order(a).leaves_qty == 3 and engine.order(b) is None


def test_sweep_stops_at_limit_and_rests_remainder(h, engine):
    h.rest(SELL, 5, 70_000)
    h.rest(SELL, 5, 70_200)
    ev = h.buy(8, 70_100)
    assert trades(ev) == [(70_000, 5)]
    order = one(ev, Accepted).order
    assert order.live and order.leaves_qty == 3
    assert engine.book(SAM).best_bid() == 70_100 and engine.book(SAM).best_ask() == 70_200


def test_average_price_over_several_levels(h):
    h.rest(SELL, 1, 70_000)
    h.rest(SELL, 2, 70_100)
    ev = h.buy(3, 70_100)
    last = of(ev, Trade)[-1].buy
    assert last.cum_qty == 3 and last.avg_px == Decimal("70066.666667")
    assert average_price(0, 0) == 0 and average_price(140_000, 2) == Decimal(70_000)


# ---------------------------------------------------------------- market orders


def test_market_order_sweeps_levels(h):
    h.rest(SELL, 3, 70_000)
    h.rest(SELL, 3, 70_500)
    ev = h.buy(5)
    assert trades(ev) == [(70_000, 3), (70_500, 2)]
    assert not of(ev, Expired)


def test_market_order_never_rests(h, engine):
    h.rest(BUY, 2, 69_900)
    ev = h.sell(5)
    assert trades(ev) == [(69_900, 2)]
    exp = one(ev, Expired)
    assert exp.reason is Reason.MARKET_REMAINDER and exp.cum_qty == 2 and exp.leaves_qty == 0
    assert engine.book(SAM).best_ask() is None and len(engine.orders) == 0


def test_market_order_on_empty_book_expires_unfilled(h, engine):
    ev = h.buy(5)
    one(ev, Accepted)
    assert one(ev, Expired).reason is Reason.MARKET_REMAINDER
    assert not of(ev, Trade) and engine.book(SAM).best_bid() is None


# ---------------------------------------------------------------- IOC / FOK


def test_ioc_fills_what_it_can_then_cancels_rest(h, engine):
    h.rest(SELL, 3, 70_000)
    h.rest(SELL, 3, 70_200)
    ev = h.buy(10, 70_100, tif=IOC)
    assert trades(ev) == [(70_000, 3)]
    exp = one(ev, Expired)
    assert exp.reason is Reason.IOC_REMAINDER and exp.cum_qty == 3
    assert engine.book(SAM).best_bid() is None


def test_ioc_without_match_expires(h):
    h.rest(SELL, 3, 70_200)
    ev = h.buy(1, 70_100, tif=IOC)
    assert not of(ev, Trade) and one(ev, Expired).cum_qty == 0


def test_market_ioc(h):
    h.rest(SELL, 3, 70_000)
    ev = h.buy(5, tif=IOC, type=OrdType.MARKET)
    assert trades(ev) == [(70_000, 3)] and one(ev, Expired).leaves_qty == 0


def test_fok_fills_completely_or_not_at_all(h, engine):
    h.rest(SELL, 3, 70_000)
    h.rest(SELL, 3, 70_100)
    h.rest(SELL, 3, 70_300)
    ev = h.buy(7, 70_100, tif=FOK)  # only 6 within the limit
    assert not of(ev, Trade)
    assert one(ev, Expired).reason is Reason.FOK_NOT_FILLABLE
    assert engine.book(SAM).depth()["asks"] == [(70_000, 3), (70_100, 3), (70_300, 3)]
    ev = h.buy(6, 70_100, tif=FOK)
    assert trades(ev) == [(70_000, 3), (70_100, 3)] and not of(ev, Expired)


def test_market_fok(h):
    h.rest(SELL, 3, 70_000)
    assert one(h.buy(4, type=OrdType.MARKET, tif=FOK), Expired).reason is Reason.FOK_NOT_FILLABLE
    assert trades(h.buy(3, type=OrdType.MARKET, tif=FOK)) == [(70_000, 3)]


# ---------------------------------------------------------------- best limit / primary best


def test_best_limit_priced_at_best_opposite(h, engine):
    h.rest(SELL, 2, 70_000)
    h.rest(SELL, 5, 70_100)
    ev = h.buy(4, type=OrdType.BEST_LIMIT)
    acc = one(ev, Accepted)
    assert acc.price == 70_000
    # It trades only at that price, the rest rests there as a limit order.
    assert trades(ev) == [(70_000, 2)]
    assert engine.order(acc.order.order_id).price == 70_000
    assert engine.book(SAM).best_bid() == 70_000


def test_best_limit_rejected_on_empty_opposite_side(h):
    h.rest(BUY, 2, 69_000)
    rej = one(h.buy(1, type=OrdType.BEST_LIMIT), Rejected)
    assert rej.reason is Reason.NO_OPPOSITE_QUOTE


def test_best_limit_ioc_and_fok(h):
    h.rest(BUY, 2, 69_900)
    h.rest(BUY, 9, 69_800)
    ev = h.sell(5, type=OrdType.BEST_LIMIT, tif=IOC)
    assert trades(ev) == [(69_900, 2)] and one(ev, Expired).cum_qty == 2
    h.rest(BUY, 2, 69_900)
    ev = h.sell(3, type=OrdType.BEST_LIMIT, tif=FOK)
    assert not of(ev, Trade) and one(ev, Expired).reason is Reason.FOK_NOT_FILLABLE


def test_primary_best_priced_at_best_same_side(h, engine):
    h.rest(BUY, 2, 69_800)
    h.rest(BUY, 2, 69_900)
    h.rest(SELL, 2, 70_100)
    ev = h.buy(3, type=OrdType.PRIMARY_BEST)
    acc = one(ev, Accepted)
    assert acc.price == 69_900 and not of(ev, Trade)
    assert engine.book(SAM).depth()["bids"][0] == (69_900, 5)


def test_primary_best_rejected_on_empty_same_side(h):
    h.rest(SELL, 2, 70_100)
    assert one(h.buy(1, type=OrdType.PRIMARY_BEST), Rejected).reason is Reason.NO_SAME_SIDE_QUOTE


def test_conditional_limit_is_a_limit_in_continuous_trading(h, engine):
    h.rest(SELL, 2, 70_000)
    ev = h.buy(5, 70_000, type=OrdType.CONDITIONAL_LIMIT)
    assert trades(ev) == [(70_000, 2)]
    assert one(ev, Accepted).order.live and engine.book(SAM).best_bid() == 70_000


# ---------------------------------------------------------------- cancel / replace


def test_cancel(h, engine):
    oid = h.rest(BUY, 5, 69_900)
    ev = engine.cancel(oid)
    c = one(ev, Cancelled)
    assert c.reason is Reason.CANCEL_REQUESTED and c.leaves_qty == 0 and c.cum_qty == 0
    assert engine.book(SAM).best_bid() is None
    rej = one(engine.cancel(oid), CancelRejected)
    assert rej.reason is Reason.UNKNOWN_ORDER and not rej.replace


def test_cancel_after_partial_fill_reports_cum(h, engine):
    oid = h.rest(BUY, 5, 69_900)
    h.sell(2, 69_900)
    c = one(engine.cancel(oid), Cancelled)
    assert c.cum_qty == 2 and c.leaves_qty == 0


def test_cancelled_order_is_skipped_by_matching(h, engine):
    a = h.rest(SELL, 5, 70_000)
    b = h.rest(SELL, 5, 70_000)
    engine.cancel(a)
    ev = h.buy(3, 70_000)
    assert [t.sell.order.order_id for t in of(ev, Trade)] == [b]


def _sellers_at_70000(h, engine):
    a = h.rest(SELL, 5, 70_000)
    b = h.rest(SELL, 5, 70_000)
    return a, b


def _first_seller_hit(h):
    return one(h.buy(1, 70_000), Trade).sell.order.order_id


def test_replace_quantity_decrease_keeps_priority(h, engine):
    a, b = _sellers_at_70000(h, engine)
    r = one(engine.replace(a, qty=3), Replaced)
    assert r.priority_kept and r.old_qty == 5 and r.qty == 3 and r.leaves_qty == 3
    assert engine.book(SAM).depth()["asks"] == [(70_000, 8)]
    assert _first_seller_hit(h) == a


def test_replace_quantity_increase_loses_priority(h, engine):
    a, b = _sellers_at_70000(h, engine)
    r = one(engine.replace(a, qty=6), Replaced)
    assert not r.priority_kept
    assert engine.book(SAM).depth()["asks"] == [(70_000, 11)]
    assert _first_seller_hit(h) == b


def test_replace_price_change_loses_priority(h, engine):
    a, b = _sellers_at_70000(h, engine)
    engine.replace(a, price=70_100)
    engine.replace(a, price=70_000)  # back at the old price: now behind b
    assert _first_seller_hit(h) == b
    assert engine.book(SAM).depth()["asks"] == [(70_000, 9)]


def test_replace_after_partial_fill_and_new_client_ref(h, engine):
    oid = h.rest(SELL, 5, 70_000, ref="A1")
    h.buy(2, 70_000)
    r = one(engine.replace(oid, qty=4, client_ref="A2"), Replaced)
    assert r.cum_qty == 2 and r.leaves_qty == 2 and r.old_client_ref == "A1"
    assert engine.order(oid).client_ref == "A2"
    rej = one(engine.replace(oid, qty=2), CancelRejected)
    assert rej.reason is Reason.QUANTITY_BELOW_EXECUTED and rej.replace


def test_replace_reprice_crosses_and_trades(h, engine):
    h.rest(SELL, 3, 70_100)
    oid = h.rest(BUY, 5, 69_900)
    ev = engine.replace(oid, price=70_100)
    one(ev, Replaced)
    assert trades(ev) == [(70_100, 3)]
    assert engine.order(oid).leaves_qty == 2 and engine.book(SAM).best_bid() == 70_100


def test_replace_rejects_bad_price_and_unknown_order(h, engine):
    oid = h.rest(BUY, 5, 69_900)
    assert one(engine.replace(oid, price=69_950), CancelRejected).reason is Reason.INVALID_TICK
    assert one(engine.replace(oid, price=95_000), CancelRejected).reason is Reason.OUTSIDE_PRICE_LIMITS
    assert one(engine.replace(oid, qty=0), CancelRejected).reason is Reason.INVALID_QUANTITY
    assert one(engine.replace(12345, qty=1), CancelRejected).reason is Reason.UNKNOWN_ORDER
    assert engine.order(oid).price == 69_900 and engine.order(oid).qty == 5


def test_book_stays_consistent_under_random_flow(engine):
    """Property-style check: level totals equal the sum of live orders; book never crossed."""
    import random

    rng = random.Random(7)
    live: list[int] = []
    for _ in range(3_000):
        r = rng.random()
        if r < 0.6 or not live:
            side = BUY if rng.random() < 0.5 else SELL
            price = 70_000 + 100 * rng.randint(-5, 5)
            ev = engine.submit(NewOrder(SAM, side, rng.randint(1, 20), OrdType.LIMIT, price))
            live.extend(e.order.order_id for e in ev if isinstance(e, Accepted))
        elif r < 0.8:
            engine.cancel(live.pop(rng.randrange(len(live))))
        else:
            oid = live[rng.randrange(len(live))]
            engine.replace(oid, qty=rng.randint(21, 30), price=70_000 + 100 * rng.randint(-5, 5))
        book = engine.book(SAM)
        bb, ba = book.best_bid(), book.best_ask()
        assert bb is None or ba is None or bb < ba
    book = engine.book(SAM)
    for bside in (book.bids, book.asks):
        for level in bside.levels.values():
            orders = list(level.orders())
            assert level.count == len(orders) > 0
            assert level.qty == sum(o.leaves_qty for o in orders)
    assert sum(len(s) for s in (book.bids, book.asks)) == len(engine.orders)
