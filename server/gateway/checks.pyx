# cython: language_level=3, boundscheck=False, wraparound=False
"""Gateway-level order checks, on top of the dictionary validation of the JSON mapper.

Each check appends :class:`FieldProblem` entries instead of raising, so one
answer lists every problem of a request. This runs for every order (and every
list member), so it is compiled: a quantity or KRW price that arrives as a
string of digits, as nearly all do, is read and checked in C; anything else
takes the Decimal way.
"""

from decimal import Decimal, InvalidOperation

from server.exchange.instruments import lookup
from server.krx import TICK_BANDS, price_limits
from server.gateway.errors import FieldProblem

__all__ = ["krx_tick", "check_order_fields", "market_price", "set_reference_prices", "to_decimal",
           "PRICED_ORD_TYPES"]

# OrdType values that carry a limit price (44): limit, stop limit, limit or better,
# limit with or without, previously quoted/indicated, and the KRX conditional limit
# as brokers usually map it (2 with TimeInForce 7 "at the close" needs a price too).
PRICED_ORD_TYPES = frozenset(("2", "4", "7", "8", "B", "E", "F"))

# KRX price bands (lower bound, tick), the exchange simulator's table: one source for both.
cdef enum:
    _MAX_BANDS = 16
cdef long long _FLOORS[_MAX_BANDS]
cdef long long _TICKS[_MAX_BANDS]
cdef int _NBANDS = len(TICK_BANDS)
assert 0 < _NBANDS <= _MAX_BANDS and TICK_BANDS[0][0] == 0
for _i, (_floor, _tick) in enumerate(TICK_BANDS):
    _FLOORS[_i] = _floor
    _TICKS[_i] = _tick


cdef inline long long _krx_tick_c(long long price) noexcept:
    cdef int i = _NBANDS - 1
    while i > 0 and price < _FLOORS[i]:
        i -= 1
    return _TICKS[i]


def krx_tick(price):
    """KRX tick size (KOSPI and KOSDAQ, since 2023) for a positive price in KRW (an int or a Decimal)."""
    cdef int i = _NBANDS - 1
    while i > 0 and price < _FLOORS[i]:
        i -= 1
    return _TICKS[i]


# Market orders (and every order without a limit price) are valued for the notional limit at
# the upper daily price limit of the symbol's reference price, as a broker values a market
# buy: the most the order can cost. Reference prices: the gateway's configuration, else the
# listing's base price (server/exchange/instruments.py). symbol -> upper limit, memoised.
cdef dict _REFERENCE = {}
cdef dict _UPPER = {}


def set_reference_prices(dict prices):
    """Reference prices (KRW, by symbol) that value orders without a limit price."""
    _REFERENCE.clear()
    _REFERENCE.update(prices)
    _UPPER.clear()


def market_price(symbol):
    """The price a market order in ``symbol`` is valued at (its upper daily limit), or None
    when the gateway has no reference price for it."""
    if type(symbol) is not str:
        return None
    upper = _UPPER.get(symbol)
    if upper is not None:
        return upper
    ref = _REFERENCE.get(symbol)
    if ref is None:
        inst = lookup(symbol)
        if inst is None:
            return None
        ref = _REFERENCE.get(inst.code, inst.base_price)
    upper = price_limits(ref)[1]
    if len(_UPPER) < 65536:  # symbols seen; a client inventing symbols cannot grow it past this
        _UPPER[symbol] = upper
    return upper


def to_decimal(value):
    """A FIX-JSON value (string, or a liberal JSON number) as a finite Decimal, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, (int, float)):
        value = repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        return None
    try:
        d = Decimal(value.strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


_RANGE = "out of range: at most 20 digits before and 20 after the decimal point"


cdef bint _in_range(d):
    """Magnitudes an order can have; beyond them Decimal arithmetic (tick grid, notional)
    overflows its context or needs absurd work (1e999999999 is a valid JSON number)."""
    return d.is_zero() or -20 <= d.adjusted() < 20


cdef long long _plain_int(object value) noexcept:
    """``value`` as an integer when it is a string of 1 to 18 ASCII digits (how nearly every
    quantity and KRW price arrives), else -1: the caller then goes the Decimal way."""
    if type(value) is not str:
        return -1
    cdef str s = <str>value
    cdef Py_ssize_t n = len(s)
    if n == 0 or n > 18:
        return -1
    cdef long long out = 0
    cdef Py_UCS4 ch
    for ch in s:
        if ch < 48 or ch > 57:  # not '0'..'9'
            return -1
        out = out * 10 + (<long long>ch - 48)
    return out


cdef object _positive(dict entry, str field, str path, list problems, bint required):
    """``entry[field]`` as a positive number in range (an int for plain digits, else a
    Decimal), or None: absent (a problem if ``required``) or refused (its problem noted)."""
    raw = entry.get(field)
    cdef long long plain = _plain_int(raw)  # in range by construction
    if plain > 0:
        return plain
    value = plain if plain == 0 else None
    if value is None:
        value = to_decimal(raw)
        if value is not None and not _in_range(value):
            problems.append(FieldProblem(field, _RANGE, f"{path}.{field}"))
            return None
    if value is None:
        if field in entry:
            problems.append(FieldProblem(field, "not a number", f"{path}.{field}"))
        elif required:
            problems.append(FieldProblem(field, "required, a positive number", f"{path}.{field}"))
        return None
    if value <= 0:
        problems.append(FieldProblem(field, "must be positive", f"{path}.{field}"))
        return None
    return value


def check_order_fields(dict entry, client, str tick_size, str path, list problems, bint require_qty=True):
    """Quantity, price, tick, account and pre-trade limits of one order (or list member)."""
    qty = _positive(entry, "OrderQty", path, problems, require_qty)
    if isinstance(qty, Decimal) and qty != qty.to_integral_value():
        problems.append(FieldProblem("OrderQty", "must be a whole number of shares (lot size 1)",
                                     f"{path}.OrderQty"))
    ord_type = entry.get("OrdType")
    price = _positive(entry, "Price", path, problems, False)
    if isinstance(ord_type, str) and ord_type in PRICED_ORD_TYPES and "Price" not in entry:
        problems.append(FieldProblem("Price", f"required for OrdType {ord_type} (limit orders)",
                                     f"{path}.Price"))
    cdef long long p, tick
    if price is not None and tick_size == "krx":
        if type(price) is int:
            p = price
            tick = _krx_tick_c(p)
            off_grid = p % tick != 0
        else:
            tick = krx_tick(price)
            off_grid = price % tick != 0
        if off_grid:
            problems.append(FieldProblem("Price", f"not on the KRX tick grid: tick is {tick} at this price",
                                         f"{path}.Price"))
    accounts = client.accounts
    account = entry.get("Account")
    if accounts and account is not None and account not in accounts:
        problems.append(FieldProblem("Account", "account not allowed for this client", f"{path}.Account"))
    elif accounts and account is None and len(accounts) > 1:
        problems.append(FieldProblem("Account", "required: this client trades several accounts",
                                     f"{path}.Account"))
    max_qty = client.max_order_qty
    if qty is not None and max_qty is not None and qty > max_qty:
        problems.append(FieldProblem("OrderQty", f"above the client's maximum order quantity "
                                     f"{max_qty}", f"{path}.OrderQty"))
    max_notional = client.max_notional
    if qty is not None and price is not None and max_notional is not None:
        if qty * price > max_notional:
            problems.append(FieldProblem("OrderQty", f"notional {qty * price} above the client's maximum "
                                         f"{max_notional}", f"{path}.OrderQty"))
    elif qty is not None and max_notional is not None and "Price" not in entry and not (
            isinstance(ord_type, str) and ord_type in PRICED_ORD_TYPES):
        # No limit price (market and the like): valued at the upper daily limit. (A limit
        # order without its price has its problem already.)
        upper = market_price(entry.get("Symbol"))
        if upper is None:
            problems.append(FieldProblem("Symbol", "no reference price for this symbol: an order without a "
                                         "limit price cannot be checked against the client's notional limit",
                                         f"{path}.Symbol"))
        elif qty * upper > max_notional:
            problems.append(FieldProblem("OrderQty", f"notional {qty * upper} (no limit price: valued at the "
                                         f"upper price limit {upper}) above the client's maximum {max_notional}",
                                         f"{path}.OrderQty"))
