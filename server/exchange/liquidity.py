"""Synthetic resting liquidity so that market orders in the sandbox find a counterparty.

A :class:`LiquidityProvider` keeps a ladder of limit orders a few ticks either
side of each instrument's reference price (the last trade, else the base price).
Quantities come from a seeded ``random.Random``, so a run is reproducible.
"""

from __future__ import annotations

import random

from server.exchange.book import OrdType, Side
from server.exchange.matching import Accepted, Event, MatchingEngine, NewOrder
from server.krx import ticks_away

LIQUIDITY_OWNER = "liquidity"


class LiquidityProvider:
    """Posts and tops up a ``levels``-deep ladder per side for every instrument."""

    def __init__(
        self,
        engine: MatchingEngine,
        seed: int = 0,
        levels: int = 10,
        owner: object = LIQUIDITY_OWNER,
        symbols: list[str] | None = None,
    ) -> None:
        if levels < 1:
            raise ValueError("levels must be at least 1")
        self.engine = engine
        self.levels = levels
        self.owner = owner
        self.symbols = list(symbols) if symbols is not None else list(engine.instruments)
        self._rng = random.Random(seed)
        self._ladders: dict[tuple[int, int, int], tuple[list[int], list[int]]] = {}

    def _ladder(self, ref: int, lower: int, upper: int) -> tuple[list[int], list[int]]:
        """(bid prices, ask prices) of the ladder around ``ref``, cached per reference."""
        key = (ref, lower, upper)
        ladder = self._ladders.get(key)
        if ladder is None:
            bids = [p for k in range(1, self.levels + 1) if lower <= (p := ticks_away(ref, -k)) <= upper]
            asks = [p for k in range(1, self.levels + 1) if lower <= (p := ticks_away(ref, k)) <= upper]
            if len(self._ladders) > 10_000:  # bounded: references only drift so far in a day
                self._ladders.clear()
            ladder = self._ladders[key] = (bids, asks)
        return ladder

    def _quantity(self, price: int) -> int:
        # Roughly 5-50 million KRW per level whatever the share price.
        unit = max(1, 1_000_000 // price)
        return self._rng.randint(5, 50) * unit

    def refresh(self, symbols: list[str] | None = None) -> list[Event]:
        """Post an order on every ladder price that has none; returns the engine's events.

        Does nothing while the market does not accept orders. Ladder prices never
        cross the opposite side's best quote, so refreshing never trades.
        """
        engine = self.engine
        # Transitions that fall due now are returned too, so no report gets lost.
        events: list[Event] = engine.poll()
        if not engine.phase.is_regular:
            return events  # (off-hours sessions take no synthetic ladder)
        for code in symbols or self.symbols:
            book = engine.books[code]
            ref = book.last_price or engine.base_prices[code]
            lower, upper = engine.limits[code]
            best_bid, best_ask = book.best_bid(), book.best_ask()
            bids, asks = self._ladder(ref, lower, upper)
            for side, prices in ((Side.BUY, bids), (Side.SELL, asks)):
                levels = book.side(side).levels
                for price in prices:
                    if price in levels:
                        continue
                    if side is Side.BUY and best_ask is not None and price >= best_ask:
                        continue
                    if side is Side.SELL and best_bid is not None and price <= best_bid:
                        continue
                    req = NewOrder(
                        code, side, self._quantity(price), OrdType.LIMIT, price,
                        owner=self.owner, client_ref=f"LQ-{code}-{side.value}-{price}",
                    )
                    events.extend(engine.submit(req))
        return events

    def posted(self, events: list[Event]) -> int:
        """How many of ``events`` are this provider's own acceptances."""
        return sum(1 for e in events if isinstance(e, Accepted) and e.order.owner == self.owner)
