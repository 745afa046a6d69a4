"""Helpers shared by the exchange simulator tests."""

from __future__ import annotations

from server.exchange.matching import (
    Accepted,
    MatchingEngine,
    NewOrder,
    OrdType,
    Side,
    TimeInForce,
    Trade,
)

SAM = "005930"  # base 70,000: tick 100, limits 49,000-91,000


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def one(events, cls):
    found = of(events, cls)
    assert len(found) == 1, events
    return found[0]


def trades(events):
    return [(t.price, t.qty) for t in of(events, Trade)]


class Helper:
    """Terse order entry for tests: ``h.buy(5, 70_000)``, ``h.sell(3, type=OrdType.MARKET)``."""

    def __init__(self, engine: MatchingEngine) -> None:
        self.engine = engine

    def order(self, side, qty, price=None, type=OrdType.LIMIT, tif=TimeInForce.DAY, symbol=SAM, ref=None):
        if price is None and type is OrdType.LIMIT:
            type = OrdType.MARKET
        return self.engine.submit(NewOrder(symbol, side, qty, type, price, tif, owner="t", client_ref=ref))

    def buy(self, qty, price=None, **kw):
        return self.order(Side.BUY, qty, price, **kw)

    def sell(self, qty, price=None, **kw):
        return self.order(Side.SELL, qty, price, **kw)

    def rest(self, side, qty, price, **kw):
        """Place an order that must rest untouched; return its id."""
        ev = self.order(side, qty, price, **kw)
        assert not of(ev, Trade), ev
        return one(ev, Accepted).order.order_id
