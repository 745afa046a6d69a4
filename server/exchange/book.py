"""Price-time priority order book for one instrument.

Each side keeps its price levels in a dict (price -> level) plus a heap of the
prices for the best-price lookup, so adding an order is O(log L) in the number
of price levels and a fill or a cancel is O(1) amortised. A level is a FIFO
deque of ``(seq, order)`` entries; a cancelled or re-queued order leaves a stale
entry behind (its ``seq`` no longer matches), dropped when it reaches the head.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from enum import Enum
from heapq import heappop, heappush


class Side(Enum):
    BUY = "buy"
    SELL = "sell"

    # Members are singletons: identity hashing keeps set/dict look-ups in C.
    __hash__ = object.__hash__

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrdType(Enum):
    LIMIT = "limit"  # 지정가
    MARKET = "market"  # 시장가
    CONDITIONAL_LIMIT = "conditional-limit"  # 조건부지정가: market order for the closing auction
    BEST_LIMIT = "best-limit"  # 최유리지정가: priced at the best opposite quote on arrival
    PRIMARY_BEST = "primary-best"  # 최우선지정가: priced at the best same-side quote on arrival
    CLOSE_PRICE = "close-price"  # 시간외 종가: trades at the closing price in the closing-price sessions

    __hash__ = object.__hash__


class TimeInForce(Enum):
    DAY = "day"
    IOC = "ioc"
    FOK = "fok"

    __hash__ = object.__hash__


class Order:
    """An order accepted by the exchange. ``price`` is None while it is a market order."""

    __slots__ = (
        "order_id",
        "symbol",
        "side",
        "ord_type",
        "tif",
        "price",
        "qty",
        "cum_qty",
        "value",
        "seq",
        "live",
        "owner",
        "client_ref",
    )

    def __init__(
        self,
        order_id: int,
        symbol: str,
        side: Side,
        ord_type: OrdType,
        tif: TimeInForce,
        price: int | None,
        qty: int,
        owner: object = None,
        client_ref: object = None,
    ) -> None:
        self.order_id = order_id
        self.symbol = symbol
        self.side = side
        self.ord_type = ord_type
        self.tif = tif
        self.price = price
        self.qty = qty
        self.cum_qty = 0
        self.value = 0  # sum of price * quantity over fills, for the average price
        self.seq = 0  # time-priority stamp, renewed whenever priority is lost
        self.live = True
        self.owner = owner
        self.client_ref = client_ref

    @property
    def leaves_qty(self) -> int:
        return self.qty - self.cum_qty if self.live else 0

    def __repr__(self) -> str:
        return (
            f"Order({self.order_id}, {self.symbol}, {self.side.value}, {self.ord_type.value}, "
            f"price={self.price}, qty={self.qty}, cum={self.cum_qty}, live={self.live})"
        )


class Level:
    """Orders resting at one price, in arrival order."""

    __slots__ = ("price", "entries", "qty", "count")

    def __init__(self, price: int) -> None:
        self.price = price
        self.entries: deque[tuple[int, Order]] = deque()
        self.qty = 0  # total leaves quantity of the live orders
        self.count = 0  # number of live orders

    def orders(self) -> Iterator[Order]:
        """Live orders in time priority."""
        price = self.price
        for seq, order in self.entries:
            if order.live and order.seq == seq and order.price == price:
                yield order


class BookSide:
    """One side of the book: limit price levels plus the market orders of a call phase."""

    __slots__ = ("side", "is_buy", "levels", "_heap", "_in_heap", "market")

    def __init__(self, side: Side) -> None:
        self.side = side
        self.is_buy = side is Side.BUY
        self.levels: dict[int, Level] = {}
        self._heap: list[int] = []  # prices, negated for bids so heap[0] is the best
        self._in_heap: set[int] = set()
        # Market orders only rest while orders are collected for an auction.
        self.market: deque[tuple[int, Order]] = deque()

    def best_level(self) -> Level | None:
        heap = self._heap
        levels = self.levels
        while heap:
            key = heap[0]
            level = levels.get(-key if self.is_buy else key)
            if level is not None:
                return level
            self._in_heap.discard(-key if self.is_buy else key)
            heappop(heap)
        return None

    def best_price(self) -> int | None:
        level = self.best_level()
        return None if level is None else level.price

    def add(self, order: Order) -> None:
        """Queue a live order at the back of its price level (or of the market queue)."""
        price = order.price
        if price is None:
            self.market.append((order.seq, order))
            return
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = Level(price)
            if price not in self._in_heap:
                self._in_heap.add(price)
                heappush(self._heap, -price if self.is_buy else price)
        level.entries.append((order.seq, order))
        level.qty += order.qty - order.cum_qty
        level.count += 1

    def remove(self, order: Order) -> None:
        """Take a live order out of the book accounting; its deque entry goes stale lazily."""
        price = order.price
        if price is None:
            self.market = deque(e for e in self.market if e[1] is not order)
            return
        level = self.levels[price]
        level.qty -= order.qty - order.cum_qty
        level.count -= 1
        if level.count == 0:
            del self.levels[price]

    def reduce(self, order: Order, by: int) -> None:
        """Reduce a resting order's open quantity in place (keeps its time priority)."""
        if order.price is not None:
            self.levels[order.price].qty -= by

    def drop_level(self, level: Level) -> None:
        del self.levels[level.price]

    def prices(self) -> list[int]:
        """Prices with live orders, best first."""
        return sorted(self.levels, reverse=self.is_buy)

    def depth(self, n: int | None = None) -> list[tuple[int, int]]:
        """(price, open quantity) per level, best first."""
        prices = self.prices()
        if n is not None:
            prices = prices[:n]
        return [(p, self.levels[p].qty) for p in prices]

    def available(self, limit: int | None) -> int:
        """Open quantity an incoming opposite order with this limit (None = market) could take."""
        if limit is None:
            return sum(level.qty for level in self.levels.values())
        if self.is_buy:  # bids an incoming sell limited at ``limit`` can reach
            return sum(lv.qty for p, lv in self.levels.items() if p >= limit)
        return sum(lv.qty for p, lv in self.levels.items() if p <= limit)

    def live_orders(self) -> list[Order]:
        """All live orders: market ones first (arrival order), then by price and time."""
        out = [o for seq, o in self.market if o.live and o.seq == seq]
        for p in self.prices():
            out.extend(self.levels[p].orders())
        return out

    def __len__(self) -> int:
        return sum(level.count for level in self.levels.values()) + sum(
            1 for seq, o in self.market if o.live and o.seq == seq
        )


class OrderBook:
    """Both sides of one instrument's book."""

    __slots__ = ("symbol", "bids", "asks", "last_price")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = BookSide(Side.BUY)
        self.asks = BookSide(Side.SELL)
        self.last_price: int | None = None

    def side(self, side: Side) -> BookSide:
        return self.bids if side is Side.BUY else self.asks

    def best_bid(self) -> int | None:
        return self.bids.best_price()

    def best_ask(self) -> int | None:
        return self.asks.best_price()

    def depth(self, n: int | None = 5) -> dict[str, list[tuple[int, int]]]:
        return {"bids": self.bids.depth(n), "asks": self.asks.depth(n)}
