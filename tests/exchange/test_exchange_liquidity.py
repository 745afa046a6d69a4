"""Synthetic liquidity: deterministic ladders that let market orders fill."""

from __future__ import annotations

from _exchange_helpers import Helper, of

from server.exchange.clock import AlwaysOpenClock, KrxClock, ManualTime, seoul
from server.exchange.instruments import INSTRUMENTS
from server.exchange.liquidity import LIQUIDITY_OWNER, LiquidityProvider
from server.exchange.matching import Accepted, Expired, MatchingEngine, Side, Trade
from server.krx import ticks_away


def _seeded(seed=42, levels=5):
    engine = MatchingEngine(clock=AlwaysOpenClock())
    lp = LiquidityProvider(engine, seed=seed, levels=levels)
    events = lp.refresh()
    return engine, lp, events


def _snapshot(engine):
    return {code: engine.books[code].depth(None) for code in engine.books}


def test_ladder_around_reference_for_all_ten_symbols():
    engine, lp, events = _seeded(levels=5)
    assert lp.posted(events) == 10 * 2 * 5 == len(of(events, Accepted))
    assert not of(events, Trade)
    for code, inst in INSTRUMENTS.items():
        book = engine.books[code]
        ref = inst.base_price
        assert book.best_bid() == ticks_away(ref, -1) and book.best_ask() == ticks_away(ref, 1)
        assert [p for p, _ in book.bids.depth(None)] == [ticks_away(ref, -k) for k in range(1, 6)]
        assert all(q > 0 for _, q in book.asks.depth(None))
    assert all(e.order.owner == LIQUIDITY_OWNER for e in of(events, Accepted))


def test_same_seed_same_book_other_seed_other_book():
    a, _, _ = _seeded(seed=1)
    b, _, _ = _seeded(seed=1)
    c, _, _ = _seeded(seed=2)
    assert _snapshot(a) == _snapshot(b)
    assert _snapshot(a) != _snapshot(c)


def test_market_orders_fill_against_liquidity_for_every_symbol():
    engine, lp, _ = _seeded()
    h = Helper(engine)
    for code in INSTRUMENTS:
        for side in (Side.BUY, Side.SELL):
            ev = h.order(side, 3, symbol=code)
            assert sum(t.qty for t in of(ev, Trade)) == 3, code
            assert not of(ev, Expired)


def test_refresh_tops_up_after_a_sweep_and_recentres():
    engine, lp, _ = _seeded(levels=3)
    h = Helper(engine)
    book = engine.books["005930"]
    depth = sum(q for _, q in book.asks.depth(None))
    ev = h.buy(depth)  # sweeps every offer
    assert sum(t.qty for t in of(ev, Trade)) == depth and book.best_ask() is None
    last = book.last_price
    ev = lp.refresh(["005930"])
    assert not of(ev, Trade)
    assert book.best_ask() == ticks_away(last, 1)
    assert lp.refresh(["005930"]) == []  # nothing missing any more


def test_refresh_does_nothing_while_closed():
    t = ManualTime(seoul(2024, 3, 4, 7, 0))
    engine = MatchingEngine(clock=KrxClock(t))
    lp = LiquidityProvider(engine, seed=0, levels=2)
    assert lp.refresh() == []
    t.set(seoul(2024, 3, 4, 8, 30))
    assert lp.posted(lp.refresh()) == 40
    assert lp.refresh(["005930"]) == []  # already full
