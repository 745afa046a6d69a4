"""The single-price auction against a brute-force search over every price on the grid."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.exchange.clock import KrxClock, ManualTime, seoul
from server.exchange.matching import MatchingEngine, NewOrder, OrdType, Side, Trade
from server.krx import ticks_away

SAM = "005930"  # base 70,000, limits 49,000-91,000, tick 100

order = st.tuples(
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(1, 50),
    st.one_of(st.none(), st.integers(-8, 8)),  # None = market order, else ticks from 70,000
)


def _brute_force(orders, ref):
    lower, upper = 49_000, 91_000
    best = None
    for p in range(lower, upper + 1, 100):
        d = sum(q for s, q, px in orders if s is Side.BUY and (px is None or px >= p))
        s_ = sum(q for s, q, px in orders if s is Side.SELL and (px is None or px <= p))
        vol = min(d, s_)
        if vol == 0:
            continue
        key = (-vol, abs(d - s_), abs(p - ref), -p)
        if best is None or key < best[0]:
            best = (key, p)
    return None if best is None else (best[1], -best[0][0])


@settings(max_examples=150, deadline=None)
@given(st.lists(order, min_size=1, max_size=25), st.integers(-10, 10))
def test_auction_price_is_the_best_on_the_grid(orders, ref_ticks):
    engine = MatchingEngine(clock=KrxClock(ManualTime(seoul(2024, 3, 4, 8, 45))))
    placed = []
    for side, qty, off in orders:
        price = None if off is None else ticks_away(70_000, off)
        typ = OrdType.MARKET if price is None else OrdType.LIMIT
        engine.submit(NewOrder(SAM, side, qty, typ, price))
        placed.append((side, qty, price))
    ref = ticks_away(70_000, ref_ticks)
    expected = _brute_force(placed, ref)
    assert engine.auction_price(SAM, reference=ref) == expected
    events = engine.run_auction(SAM, reference=ref)
    trades = [e for e in events if isinstance(e, Trade)]
    if expected is None:
        assert not trades
        return
    price, volume = expected
    assert {t.price for t in trades} == {price} and sum(t.qty for t in trades) == volume
    # Nothing that could still trade at that price is left on both sides.
    book = engine.book(SAM)
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is None or ask is None or not (bid >= price >= ask)
