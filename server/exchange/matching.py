"""The matching engine: validation, continuous matching, single-price auctions, phases.

Requests go in (:class:`NewOrder`, cancel, replace) and a list of events comes
out, in the order they happened: :class:`Accepted`, :class:`Rejected`,
:class:`Trade`, :class:`Cancelled`, :class:`Expired`, :class:`Replaced`,
:class:`Converted`, :class:`CancelRejected`. Order events carry a snapshot of the
order's quantities at that moment, so a consumer can build reports from the
events alone. The engine is deterministic: the same requests at the same clock
readings (and the same ``seed``) give the same events.

Besides the regular session the engine runs the KRX off-hours sessions of the
clock (closing-price orders at the previous close 08:30-08:40 and at today's
close 15:40-16:00, after-hours single-price calls every 10 minutes 16:00-18:00
within ±10% of the close) and, given :class:`VolatilityRules`, volatility
interruptions: a trade that would move the price beyond the static band (±10%
of the last single price: the opening auction's or the base price) or the
dynamic band (±3% of the last trade) does not happen; the instrument goes into
a two-minute single-price call instead (plus a random extra of up to 30 s),
then back to continuous trading. :class:`SessionChanged`,
:class:`VolatilityInterruption` and :class:`VolatilityEnded` report these.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import accumulate

from server.exchange.book import BookSide, Order, OrderBook, OrdType, Side, TimeInForce
from server.exchange.clock import AlwaysOpenClock, KrxClock, Phase
from server.exchange.instruments import INSTRUMENTS, Instrument, lookup
from server.exchange.rules import REASON_TEXT, Reason, check_limit_price
from server.krx import is_whole_lot, price_limits, ticks_away

__all__ = [
    "SessionChanged",
    "VolatilityEnded",
    "VolatilityInterruption",
    "VolatilityRules",
    "Accepted",
    "CancelRejected",
    "Cancelled",
    "Converted",
    "Event",
    "Expired",
    "Fill",
    "MatchingEngine",
    "NewOrder",
    "Order",
    "OrdType",
    "OrderEvent",
    "Rejected",
    "Replaced",
    "Side",
    "TimeInForce",
    "Trade",
    "average_price",
]

# ---------------------------------------------------------------------------- requests/events


@dataclass(slots=True)
class NewOrder:
    """A new order request. ``owner`` and ``client_ref`` are opaque and copied onto the order."""

    symbol: str
    side: Side
    qty: int
    ord_type: OrdType = OrdType.LIMIT
    price: int | None = None
    tif: TimeInForce = TimeInForce.DAY
    owner: object = None
    client_ref: object = None


@dataclass(slots=True)
class OrderEvent:
    """Something happened to an order; the quantities are a snapshot taken at that moment."""

    order: Order
    price: int | None
    qty: int
    cum_qty: int
    leaves_qty: int
    value: int

    @property
    def avg_px(self) -> Decimal:
        return average_price(self.value, self.cum_qty)


@dataclass(slots=True)
class Accepted(OrderEvent):
    """The order passed validation and entered the exchange."""


@dataclass(slots=True)
class Cancelled(OrderEvent):
    """The order was cancelled on request."""

    reason: Reason = Reason.CANCEL_REQUESTED


@dataclass(slots=True)
class Expired(OrderEvent):
    """The order ended without a request: IOC/FOK/market remainder, auction remainder, close."""

    reason: Reason = Reason.END_OF_DAY


@dataclass(slots=True)
class Replaced(OrderEvent):
    """Price and/or quantity changed; ``priority_kept`` is False if it went to the back."""

    old_price: int | None = None
    old_qty: int = 0
    old_client_ref: object = None
    priority_kept: bool = True


@dataclass(slots=True)
class Converted(OrderEvent):
    """A conditional limit order became a market order for the closing auction."""


@dataclass(slots=True)
class Fill:
    """One side of a trade, with the order's quantities right after it."""

    order: Order
    cum_qty: int
    leaves_qty: int
    value: int

    @property
    def avg_px(self) -> Decimal:
        return average_price(self.value, self.cum_qty)


@dataclass(slots=True)
class Trade:
    """A match of ``qty`` at ``price``; ``aggressor`` is None for auction trades."""

    trade_id: int
    symbol: str
    price: int
    qty: int
    buy: Fill
    sell: Fill
    aggressor: Side | None


@dataclass(slots=True)
class Rejected:
    """A new order refused by validation; no order exists."""

    request: NewOrder
    reason: Reason
    text: str


@dataclass(slots=True)
class CancelRejected:
    """A cancel (``replace`` False) or replace request refused."""

    order_id: int
    reason: Reason
    text: str
    replace: bool
    order: Order | None = None


@dataclass(slots=True)
class SessionChanged:
    """The trading phase changed, or the pre-market closing-price session opened or closed."""

    phase: Phase
    pre_close_price: bool  # the 08:30-08:40 closing-price session is open


@dataclass(slots=True)
class VolatilityInterruption:
    """Continuous trading in ``symbol`` stopped: a single-price call until ``ends_at``."""

    symbol: str
    kind: str  # "static" or "dynamic"
    reference: int  # the price the band is taken from
    price: int  # the price that would have traded
    ends_at: datetime


@dataclass(slots=True)
class VolatilityEnded:
    """The interruption's call ended; ``price`` is its single price (None: nothing crossed)."""

    symbol: str
    price: int | None


@dataclass(slots=True, frozen=True)
class VolatilityRules:
    """KRX volatility interruptions (정적/동적 VI)."""

    static_percent: int = 10  # from the last single price (opening/VI auction, or the base price)
    dynamic_percent: int = 3  # from the last trade
    call_seconds: float = 120.0
    random_extra_seconds: float = 30.0  # the call ends at a random moment within this much more


Event = (Accepted | Rejected | Trade | Cancelled | Expired | Replaced | Converted | CancelRejected
         | SessionChanged | VolatilityInterruption | VolatilityEnded)


def average_price(value: int, qty: int) -> Decimal:
    """Average fill price as a Decimal (exact up to 6 decimals), 0 without fills."""
    if qty == 0:
        return Decimal(0)
    if value % qty == 0:
        return Decimal(value // qty)
    frac = Fraction(value, qty)
    return (Decimal(frac.numerator) / Decimal(frac.denominator)).quantize(Decimal("0.000001"))


def _snap(cls: type, order: Order, **extra: object) -> OrderEvent:
    return cls(
        order, order.price, order.qty, order.cum_qty, order.qty - order.cum_qty if order.live else 0,
        order.value, **extra,
    )


# ---------------------------------------------------------------------------- engine

_CONDITIONS_OK = frozenset((OrdType.LIMIT, OrdType.MARKET, OrdType.BEST_LIMIT))
_QUOTE_PRICED = frozenset((OrdType.BEST_LIMIT, OrdType.PRIMARY_BEST))
# Plain sets: cheaper per order than the Phase properties.
_ENTRY_PHASES = frozenset(p for p in Phase if p.accepts_orders)
_CALL_PHASES = frozenset(p for p in Phase if p.is_call)
_PHASE_CYCLE = (Phase.CLOSED, Phase.PRE_OPEN, Phase.CONTINUOUS, Phase.CLOSING_CALL, Phase.POST_CLOSE,
                Phase.CLOSE_PRICE, Phase.AFTER_HOURS)
AFTER_HOURS_PERCENT = 10  # after-hours single-price orders: within ±10% of the close


def _beyond(price: int, reference: int, percent: int) -> bool:
    """True if ``price`` is more than ``percent`` % away from ``reference``."""
    return abs(price - reference) * 100 > reference * percent


class MatchingEngine:
    """All books of the exchange plus the trading-phase state machine.

    Every request first brings the engine up to the clock's phase (running the
    opening auction, the conversion of conditional limits, the closing auction
    and the end-of-day expiry as they become due); :meth:`poll` does only that,
    for a timer to call when no orders arrive.
    """

    def __init__(
        self,
        instruments: dict[str, Instrument] | Iterable[Instrument] | None = None,
        clock: KrxClock | None = None,
        volatility: VolatilityRules | None = None,
        seed: int | None = None,
    ) -> None:
        if instruments is None:
            instruments = INSTRUMENTS
        elif not isinstance(instruments, dict):
            instruments = {i.code: i for i in instruments}
        self.instruments: dict[str, Instrument] = dict(instruments)
        self.clock = clock or AlwaysOpenClock()
        self.books: dict[str, OrderBook] = {code: OrderBook(code) for code in self.instruments}
        self.base_prices: dict[str, int] = {c: i.base_price for c, i in self.instruments.items()}
        self.limits: dict[str, tuple[int, int]] = {
            c: price_limits(p) for c, p in self.base_prices.items()
        }
        self.close_prices: dict[str, int] = {}
        self.orders: dict[int, Order] = {}  # live orders only
        self.phase = self.clock.phase()
        # Closing-price orders rest in books of their own (the opening call runs beside them).
        self.close_books: dict[str, OrderBook] = {code: OrderBook(code) for code in self.instruments}
        self.pre_close_price = self.clock.pre_market_close_price()
        self.volatility = volatility
        self._rng = random.Random(seed)
        self.static_ref: dict[str, int] = dict(self.base_prices)  # the last single price
        self.vi: dict[str, VolatilityInterruption] = {}  # instruments in a volatility interruption
        self._after_hours_limits: dict[str, tuple[int, int]] = {}
        self._last_poll = self.clock.now()
        self._next_order_id = 1
        self._next_trade_id = 1
        self._seq = 0

    # ----------------------------------------------------------------- queries

    def book(self, symbol: str) -> OrderBook:
        inst = lookup(symbol, self.instruments)
        if inst is None:
            raise KeyError(symbol)
        return self.books[inst.code]

    def order(self, order_id: int) -> Order | None:
        """A live order by id (None once it is filled, cancelled or expired)."""
        return self.orders.get(order_id)

    # ----------------------------------------------------------------- phases

    def poll(self) -> list[Event]:
        """Advance to the clock's phase, running every transition that became due."""
        target, pre_close = self.clock.state()
        if (target is self.phase and pre_close is self.pre_close_price and not self.vi
                and target is not Phase.AFTER_HOURS):
            return []  # the common case, once per request: nothing due
        now = self.clock.now()
        events: list[Event] = []
        if self.vi:
            self._end_interruptions(now, events)
        if self.pre_close_price and not pre_close:
            self._expire_close_price(events)
            self.pre_close_price = False
            events.append(SessionChanged(self.phase, False))
        if target is not self.phase:
            i = _PHASE_CYCLE.index(self.phase)
            for _ in range(len(_PHASE_CYCLE)):
                i = (i + 1) % len(_PHASE_CYCLE)
                nxt = _PHASE_CYCLE[i]
                prev, self.phase = self.phase, nxt
                self._enter(nxt, prev, events)
                events.append(SessionChanged(nxt, self.pre_close_price))
                if nxt is target:
                    break
        elif self.phase is Phase.AFTER_HOURS and self.clock.after_hours_calls(self._last_poll, now):
            self._after_hours_call(events)
        if pre_close and not self.pre_close_price:
            self.pre_close_price = True
            events.append(SessionChanged(self.phase, True))
        self._last_poll = now
        return events

    def _enter(self, phase: Phase, prev: Phase, events: list[Event]) -> None:
        if phase is Phase.CONTINUOUS:
            for book in self.books.values():
                code = book.symbol
                self.static_ref[code] = self._auction(book, self.base_prices[code], events) or \
                    self.base_prices[code]
        elif phase is Phase.CLOSING_CALL:
            for symbol in list(self.vi):
                # The closing call takes over: the interruption's orders wait for the close.
                del self.vi[symbol]
                events.append(VolatilityEnded(symbol, None))
            self._convert_conditional(events)
        elif phase is Phase.AFTER_HOURS:
            self._expire_close_price(events)
            self._after_hours_limits = {
                code: self._after_hours_band(code) for code in self.books
            }
        elif phase is Phase.CLOSED:
            if prev is Phase.AFTER_HOURS:
                self._after_hours_call(events)  # the 18:00 call
            self._expire_all(events)
            self._new_day()
        elif phase is Phase.POST_CLOSE:
            for book in self.books.values():
                ref = book.last_price or self.base_prices[book.symbol]
                self._auction(book, ref, events)
                if book.last_price is not None:
                    self.close_prices[book.symbol] = book.last_price
            self._expire_all(events)

    def _new_day(self) -> None:
        """The previous close becomes the base price of the new day's limits."""
        for code, price in self.close_prices.items():
            self.base_prices[code] = price
            self.limits[code] = price_limits(price)
        self.close_prices.clear()
        self.static_ref = dict(self.base_prices)
        self._after_hours_limits.clear()
        for book in self.books.values():
            book.last_price = None

    def close_price(self, code: str) -> int:
        """Today's closing price (the base price while nothing has traded)."""
        return self.close_prices.get(code) or self.base_prices[code]

    def limits_now(self, code: str) -> tuple[int, int]:
        """The (lower, upper) prices an order may have now: daily limits, or the after-hours band."""
        if self.phase is Phase.AFTER_HOURS:
            return self._after_hours_limits.get(code) or self._after_hours_band(code)
        return self.limits[code]

    def _after_hours_band(self, code: str) -> tuple[int, int]:
        lower, upper = price_limits(self.close_price(code), AFTER_HOURS_PERCENT)
        day_lower, day_upper = self.limits[code]
        return max(lower, day_lower), min(upper, day_upper)

    def _after_hours_call(self, events: list[Event]) -> None:
        """One after-hours single-price call on every book, around today's close."""
        for book in self.books.values():
            self._auction(book, self.close_price(book.symbol), events)

    def _book_of(self, order: Order) -> OrderBook:
        if order.ord_type is OrdType.CLOSE_PRICE:
            return self.close_books[order.symbol]
        return self.books[order.symbol]

    def _expire_close_price(self, events: list[Event]) -> None:
        """The closing-price session ended: its unexecuted orders expire."""
        for order in sorted(self.orders.values(), key=lambda o: o.order_id):
            if order.ord_type is OrdType.CLOSE_PRICE:
                self.close_books[order.symbol].side(order.side).remove(order)
                order.live = False
                del self.orders[order.order_id]
                events.append(_snap(Expired, order, reason=Reason.CLOSE_PRICE_SESSION_END))

    # ----------------------------------------------------------------- volatility interruptions

    def _interrupts(self, book: OrderBook, price: int) -> tuple[str, int] | None:
        """(kind, reference) if a continuous trade at ``price`` would trigger an interruption."""
        rules = self.volatility
        if rules is None or self.phase is not Phase.CONTINUOUS:
            return None
        ref = self.static_ref.get(book.symbol) or self.base_prices[book.symbol]
        if _beyond(price, ref, rules.static_percent):
            return "static", ref
        last = book.last_price
        if last is not None and _beyond(price, last, rules.dynamic_percent):
            return "dynamic", last
        return None

    def _interrupt(self, symbol: str, kind: str, reference: int, price: int, events: list[Event]) -> None:
        rules = self.volatility
        assert rules is not None
        extra = self._rng.uniform(0, rules.random_extra_seconds)
        ends = self.clock.now() + timedelta(seconds=rules.call_seconds + extra)
        vi = VolatilityInterruption(symbol, kind, reference, price, ends)
        self.vi[symbol] = vi
        events.append(vi)

    def _end_interruptions(self, now: datetime, events: list[Event]) -> None:
        for symbol, vi in sorted(self.vi.items(), key=lambda kv: kv[1].ends_at):
            if vi.ends_at > now or self.phase is not Phase.CONTINUOUS:
                continue
            del self.vi[symbol]
            book = self.books[symbol]
            price = self._auction(book, book.last_price or self.static_ref[symbol], events)
            if price is not None:
                self.static_ref[symbol] = price
            events.append(VolatilityEnded(symbol, price))

    def _sweep_price(self, book: OrderBook, order_side: Side, limit: int | None, qty: int) -> int | None:
        """The worst price an incoming order of ``qty`` would trade at (None: nothing to take)."""
        opp = book.side(order_side.opposite)
        worst = None
        for p in opp.prices():
            if limit is not None and (p > limit if order_side is Side.BUY else p < limit):
                break
            worst = p
            qty -= opp.levels[p].qty
            if qty <= 0:
                break
        return worst

    def _convert_conditional(self, events: list[Event]) -> None:
        for book in self.books.values():
            for bside in (book.bids, book.asks):
                for order in bside.live_orders():
                    if order.ord_type is OrdType.CONDITIONAL_LIMIT and order.price is not None:
                        bside.remove(order)
                        order.price = None
                        self._seq += 1
                        order.seq = self._seq
                        bside.add(order)
                        events.append(_snap(Converted, order))

    def _expire_all(self, events: list[Event]) -> None:
        for order in sorted(self.orders.values(), key=lambda o: o.order_id):
            self._book_of(order).side(order.side).remove(order)
            order.live = False
            events.append(_snap(Expired, order, reason=Reason.END_OF_DAY))
        self.orders.clear()

    # ----------------------------------------------------------------- new orders

    def _reject(self, req: NewOrder, reason: Reason) -> list[Event]:
        return [Rejected(req, reason, REASON_TEXT[reason])]

    def submit(self, req: NewOrder) -> list[Event]:
        """Validate and enter a new order; returns the events it caused."""
        events = self.poll()
        phase = self.phase
        if phase not in _ENTRY_PHASES:
            return events + self._reject(req, Reason.MARKET_CLOSED)
        in_call = phase in _CALL_PHASES
        inst = self.instruments.get(req.symbol) or lookup(req.symbol, self.instruments)
        if inst is None:
            return events + self._reject(req, Reason.UNKNOWN_SYMBOL)
        if not isinstance(req.side, Side):
            return events + self._reject(req, Reason.INVALID_SIDE)
        qty = req.qty
        if not is_whole_lot(qty, inst.lot_size):
            return events + self._reject(req, Reason.INVALID_QUANTITY)
        ord_type = req.ord_type
        tif = req.tif
        if ord_type is OrdType.CLOSE_PRICE:
            return self._submit_close_price(req, inst, events)
        if phase is Phase.CLOSE_PRICE:
            return events + self._reject(req, Reason.CLOSE_PRICE_ONLY)
        if phase is Phase.AFTER_HOURS and (ord_type is not OrdType.LIMIT or tif is not TimeInForce.DAY):
            return events + [Rejected(req, Reason.ORDER_TYPE_NOT_ALLOWED,
                                      "after-hours single-price session: day limit orders only")]
        in_call = in_call or inst.code in self.vi
        if tif is not TimeInForce.DAY and (ord_type not in _CONDITIONS_OK or in_call):
            return events + self._reject(req, Reason.CONDITION_NOT_ALLOWED)
        if in_call and ord_type in _QUOTE_PRICED:
            return events + self._reject(req, Reason.ORDER_TYPE_NOT_ALLOWED)
        if phase is Phase.CLOSING_CALL and ord_type is OrdType.CONDITIONAL_LIMIT:
            return events + self._reject(req, Reason.ORDER_TYPE_NOT_ALLOWED)
        book = self.books[inst.code]
        price = req.price
        if ord_type is OrdType.LIMIT or ord_type is OrdType.CONDITIONAL_LIMIT:
            if price is None:
                return events + self._reject(req, Reason.PRICE_REQUIRED)
            lower, upper = self.limits_now(inst.code)
            bad = check_limit_price(price, lower, upper) if type(price) is int else Reason.INVALID_TICK
            if bad is not None:
                if bad is Reason.OUTSIDE_PRICE_LIMITS and phase is Phase.AFTER_HOURS:
                    return events + [Rejected(req, bad, f"after-hours price must be within ±"
                                              f"{AFTER_HOURS_PERCENT}% of the close: {lower:,}-{upper:,}")]
                return events + self._reject(req, bad)
        elif price is not None:
            return events + self._reject(req, Reason.PRICE_NOT_ALLOWED)
        elif ord_type is OrdType.BEST_LIMIT:
            price = book.side(req.side.opposite).best_price()
            if price is None:
                return events + self._reject(req, Reason.NO_OPPOSITE_QUOTE)
        elif ord_type is OrdType.PRIMARY_BEST:
            price = book.side(req.side).best_price()
            if price is None:
                return events + self._reject(req, Reason.NO_SAME_SIDE_QUOTE)

        order = Order(
            self._next_order_id, inst.code, req.side, ord_type, tif, price, qty,
            req.owner, req.client_ref,
        )
        self._next_order_id += 1
        self._seq += 1
        order.seq = self._seq
        events.append(_snap(Accepted, order))

        if in_call:
            # Orders are only collected until the auction; nothing matches now.
            self.orders[order.order_id] = order
            book.side(order.side).add(order)
            return events

        if tif is TimeInForce.FOK and (
            book.side(req.side.opposite).available(price) < qty
            or ((worst := self._sweep_price(book, req.side, price, qty)) is not None
                and self._interrupts(book, worst) is not None)
        ):
            # (A FOK that would trip a volatility interruption cannot be filled in full either.)
            order.live = False
            events.append(_snap(Expired, order, reason=Reason.FOK_NOT_FILLABLE))
            return events
        self._match(book, order, events)
        if order.cum_qty < order.qty:
            if inst.code in self.vi and tif is TimeInForce.DAY:
                # Interrupted: the rest waits for the interruption's single-price auction.
                self.orders[order.order_id] = order
                book.side(order.side).add(order)
            elif price is None:
                order.live = False
                events.append(_snap(Expired, order, reason=Reason.MARKET_REMAINDER))
            elif tif is not TimeInForce.DAY:
                order.live = False
                events.append(_snap(Expired, order, reason=Reason.IOC_REMAINDER))
            else:
                self.orders[order.order_id] = order
                book.side(order.side).add(order)
        else:
            order.live = False
        return events

    def _submit_close_price(self, req: NewOrder, inst: Instrument, events: list[Event]) -> list[Event]:
        """A closing-price order: time priority at one price, the previous or today's close."""
        if self.phase is Phase.CLOSE_PRICE:
            px = self.close_price(inst.code)
        elif self.pre_close_price:
            px = self.base_prices[inst.code]
        else:
            return events + [Rejected(req, Reason.ORDER_TYPE_NOT_ALLOWED,
                                      "closing-price orders are taken 08:30-08:40 and 15:40-16:00 only")]
        if req.tif is not TimeInForce.DAY:
            return events + self._reject(req, Reason.CONDITION_NOT_ALLOWED)
        if req.price is not None and req.price != px:
            return events + [Rejected(req, Reason.CLOSE_PRICE_ONLY,
                                      f"closing-price orders trade at {px:,} only")]
        order = Order(self._next_order_id, inst.code, req.side, OrdType.CLOSE_PRICE, TimeInForce.DAY, px,
                      req.qty, req.owner, req.client_ref)
        self._next_order_id += 1
        self._seq += 1
        order.seq = self._seq
        events.append(_snap(Accepted, order))
        book = self.close_books[inst.code]
        self._match(book, order, events, bands=False)
        if order.cum_qty < order.qty:
            self.orders[order.order_id] = order
            book.side(order.side).add(order)
        else:
            order.live = False
        return events

    def _match(self, book: OrderBook, order: Order, events: list[Event], bands: bool = True) -> None:
        """Match an incoming order against the opposite side, best price first, then time.

        With ``bands``, a trade that would trip a volatility interruption stops the matching.
        """
        is_buy = order.side is Side.BUY
        opp: BookSide = book.asks if is_buy else book.bids
        limit = order.price
        remaining = order.qty - order.cum_qty
        orders = self.orders
        while remaining:
            level = opp.best_level()
            if level is None:
                break
            lp = level.price
            if limit is not None and (lp > limit if is_buy else lp < limit):
                break
            if bands and self.volatility is not None and (hit := self._interrupts(book, lp)) is not None:
                self._interrupt(book.symbol, hit[0], hit[1], lp, events)
                break
            entries = level.entries
            while remaining and entries:
                seq, resting = entries[0]
                if not resting.live or resting.seq != seq or resting.price != lp:
                    entries.popleft()
                    continue
                q = resting.qty - resting.cum_qty
                if q > remaining:
                    q = remaining
                resting.cum_qty += q
                resting.value += q * lp
                order.cum_qty += q
                order.value += q * lp
                remaining -= q
                level.qty -= q
                if resting.cum_qty == resting.qty:
                    entries.popleft()
                    level.count -= 1
                    resting.live = False
                    del orders[resting.order_id]
                r_fill = Fill(resting, resting.cum_qty, resting.qty - resting.cum_qty, resting.value)
                a_fill = Fill(order, order.cum_qty, order.qty - order.cum_qty, order.value)
                events.append(
                    Trade(
                        self._next_trade_id, book.symbol, lp, q,
                        a_fill if is_buy else r_fill, r_fill if is_buy else a_fill, order.side,
                    )
                )
                self._next_trade_id += 1
                book.last_price = lp
            if level.count == 0:
                opp.drop_level(level)

    # ----------------------------------------------------------------- cancel/replace

    def _cancel_reject(self, order_id: int, reason: Reason, replace: bool) -> list[Event]:
        return [CancelRejected(order_id, reason, REASON_TEXT[reason], replace, self.orders.get(order_id))]

    def cancel(self, order_id: int) -> list[Event]:
        """Cancel a live order."""
        events = self.poll()
        order = self.orders.pop(order_id, None)
        if order is None:
            return events + self._cancel_reject(order_id, Reason.UNKNOWN_ORDER, False)
        self._book_of(order).side(order.side).remove(order)
        order.live = False
        events.append(_snap(Cancelled, order))
        return events

    def replace(
        self,
        order_id: int,
        qty: int | None = None,
        price: int | None = None,
        client_ref: object = None,
    ) -> list[Event]:
        """Change a live order's total quantity and/or price.

        Time priority is kept only when the quantity goes down and the price
        stays; a price change or a quantity increase sends the order to the
        back of its (new) price level. A repriced order may trade at once.
        """
        events = self.poll()
        order = self.orders.get(order_id)
        if order is None:
            return events + self._cancel_reject(order_id, Reason.UNKNOWN_ORDER, True)
        new_qty = order.qty if qty is None else qty
        new_price = order.price if price is None else price
        if not is_whole_lot(new_qty, self.instruments[order.symbol].lot_size):
            return events + self._cancel_reject(order_id, Reason.INVALID_QUANTITY, True)
        if new_qty <= order.cum_qty:
            return events + self._cancel_reject(order_id, Reason.QUANTITY_BELOW_EXECUTED, True)
        if order.price is None and price is not None:
            return events + self._cancel_reject(order_id, Reason.PRICE_NOT_ALLOWED, True)
        if order.ord_type is OrdType.CLOSE_PRICE and new_price != order.price:
            return events + self._cancel_reject(order_id, Reason.CLOSE_PRICE_ONLY, True)
        if new_price is not None and new_price != order.price:
            lower, upper = self.limits_now(order.symbol)
            bad = check_limit_price(new_price, lower, upper) if type(new_price) is int else Reason.INVALID_TICK
            if bad is not None:
                return events + self._cancel_reject(order_id, bad, True)

        bside = self._book_of(order).side(order.side)
        old_price, old_qty, old_ref = order.price, order.qty, order.client_ref
        keep = new_price == old_price and new_qty <= old_qty
        if keep:
            bside.reduce(order, old_qty - new_qty)
            order.qty = new_qty
        else:
            bside.remove(order)
            order.qty = new_qty
            order.price = new_price
            self._seq += 1
            order.seq = self._seq
        if client_ref is not None:
            order.client_ref = client_ref
        events.append(
            _snap(Replaced, order, old_price=old_price, old_qty=old_qty, old_client_ref=old_ref,
                  priority_kept=keep)
        )
        if keep:
            return events
        book = self.books[order.symbol]
        if self.phase is Phase.CONTINUOUS and new_price != old_price and order.symbol not in self.vi:
            self._match(book, order, events)
        if order.cum_qty < order.qty:
            bside.add(order)
        else:
            order.live = False
            del self.orders[order.order_id]
        return events

    # ----------------------------------------------------------------- auctions

    def auction_price(self, symbol: str, reference: int | None = None) -> tuple[int, int] | None:
        """(price, volume) the single-price auction would use now, or None if nothing crosses."""
        book = self.book(symbol)
        ref = reference if reference is not None else (book.last_price or self.base_prices[book.symbol])
        return _uncross_price(book, ref, self.limits_now(book.symbol))

    def run_auction(self, symbol: str, reference: int | None = None) -> list[Event]:
        """Run a single-price auction on one book now (the clock runs them at 09:00 and 15:30)."""
        book = self.book(symbol)
        ref = reference if reference is not None else (book.last_price or self.base_prices[book.symbol])
        events: list[Event] = []
        self._auction(book, ref, events)
        return events

    def _auction(self, book: OrderBook, ref: int, events: list[Event]) -> int | None:
        """Run a single-price auction on ``book``; returns its price (None: nothing crossed)."""
        found = _uncross_price(book, ref, self.limits_now(book.symbol))
        price = None
        if found is not None:
            price, volume = found
            buys = _eligible(book.bids, price)
            sells = _eligible(book.asks, price)
            self._allocate(book, price, volume, buys, sells, events)
            book.last_price = price
        # A market order never outlives the auction it was entered for.
        for bside in (book.bids, book.asks):
            for seq, order in list(bside.market):
                if order.live and order.seq == seq:
                    order.live = False
                    self.orders.pop(order.order_id, None)
                    events.append(_snap(Expired, order, reason=Reason.AUCTION_REMAINDER))
            bside.market.clear()
        return price

    def _allocate(
        self,
        book: OrderBook,
        price: int,
        volume: int,
        buys: list[Order],
        sells: list[Order],
        events: list[Event],
    ) -> None:
        """Fill ``volume`` at ``price``: each side in priority order, paired off in sequence."""
        bi = si = 0
        left = volume
        while left and bi < len(buys) and si < len(sells):
            b, s = buys[bi], sells[si]
            q = min(left, b.qty - b.cum_qty, s.qty - s.cum_qty)
            fills = []
            for o in (b, s):
                bside = book.side(o.side)
                if o.price is not None:
                    bside.levels[o.price].qty -= q
                o.cum_qty += q
                o.value += q * price
                if o.cum_qty == o.qty:
                    if o.price is not None:
                        bside.remove(o)  # open quantity is 0 now: only the count drops
                    o.live = False
                    self.orders.pop(o.order_id, None)
                fills.append(Fill(o, o.cum_qty, o.qty - o.cum_qty, o.value))
            events.append(Trade(self._next_trade_id, book.symbol, price, q, fills[0], fills[1], None))
            self._next_trade_id += 1
            left -= q
            if b.cum_qty == b.qty:
                bi += 1
            if s.cum_qty == s.qty:
                si += 1


def _eligible(bside: BookSide, price: int) -> list[Order]:
    """Orders of one side that trade at the auction price, in priority order."""
    out = [o for seq, o in bside.market if o.live and o.seq == seq]
    for p in bside.prices():
        if (p < price) if bside.is_buy else (p > price):
            break
        out.extend(bside.levels[p].orders())
    return out


def _uncross_price(book: OrderBook, ref: int, limits: tuple[int, int]) -> tuple[int, int] | None:
    """The KRX single-price: maximum executed volume, then minimum imbalance, then closest
    to the reference price (then the higher price, to stay deterministic)."""
    mkt_buy = sum(o.qty - o.cum_qty for seq, o in book.bids.market if o.live and o.seq == seq)
    mkt_sell = sum(o.qty - o.cum_qty for seq, o in book.asks.market if o.live and o.seq == seq)
    bid_prices = sorted(book.bids.levels)
    ask_prices = sorted(book.asks.levels)
    if (not bid_prices and not mkt_buy) or (not ask_prices and not mkt_sell):
        return None
    # Demand at p: market buys + bids priced >= p; supply: market sells + asks priced <= p.
    bid_suffix = list(accumulate(book.bids.levels[p].qty for p in reversed(bid_prices)))[::-1] + [0]
    ask_prefix = [0] + list(accumulate(book.asks.levels[p].qty for p in ask_prices))

    def demand(p: int) -> int:
        return mkt_buy + bid_suffix[bisect_left(bid_prices, p)]

    def supply(p: int) -> int:
        return mkt_sell + ask_prefix[bisect_right(ask_prices, p)]

    lower, upper = limits
    prices = sorted(set(bid_prices) | set(ask_prices))
    candidates = set(prices)
    # Between two adjacent order prices demand and supply are constant, and can beat both
    # ends on imbalance; the best representative of such a gap is the tick nearest the
    # reference. The same goes for the open ranges below the lowest and above the highest.
    bounds = [lower - 1, *prices, upper + 1]
    for a, b in zip(bounds, bounds[1:], strict=False):
        lo = a + 1 if a < lower else ticks_away(a, 1)
        hi = b - 1 if b > upper else ticks_away(b, -1)
        if lo <= hi:
            candidates.add(min(max(ref, lo), hi))
    best: tuple[int, int, int, int] | None = None
    best_price = 0
    for p in candidates:
        d, s = demand(p), supply(p)
        vol = min(d, s)
        if vol <= 0:
            continue
        key = (-vol, abs(d - s), abs(p - ref), -p)
        if best is None or key < best:
            best, best_price = key, p
    if best is None:
        return None
    return best_price, -best[0]
