"""Gateway-level order checks, on top of the dictionary validation of the JSON mapper.

Each check appends :class:`FieldProblem` entries instead of raising, so one
answer lists every problem of a request.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from server.gateway.config import ClientConfig
from server.gateway.errors import FieldProblem

__all__ = ["krx_tick", "check_order_fields", "to_decimal", "PRICED_ORD_TYPES"]

# OrdType values that carry a limit price (44): limit, stop limit, limit or better,
# limit with or without, previously quoted/indicated, and the KRX conditional limit
# as brokers usually map it (2 with TimeInForce 7 "at the close" needs a price too).
PRICED_ORD_TYPES = frozenset(("2", "4", "7", "8", "B", "E", "F"))

_KRX_TICKS: tuple[tuple[int, int], ...] = (
    (2_000, 1), (5_000, 5), (20_000, 10), (50_000, 50), (200_000, 100), (500_000, 500),
)


def krx_tick(price: Decimal | int) -> int:
    """KRX tick size (KOSPI and KOSDAQ, since 2023) for a price in KRW."""
    for bound, tick in _KRX_TICKS:
        if price < bound:
            return tick
    return 1_000


def to_decimal(value: Any) -> Decimal | None:
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


def _in_range(d: Decimal) -> bool:
    """Magnitudes an order can have; beyond them Decimal arithmetic (tick grid, notional)
    overflows its context or needs absurd work (1e999999999 is a valid JSON number)."""
    return d.is_zero() or -20 <= d.adjusted() < 20


def _plain_int(value: Any) -> int | None:
    """``value`` as an int when it is a string of at most 18 ASCII digits (how nearly every
    quantity and KRW price arrives), else None: the caller then goes the Decimal way."""
    if type(value) is str and 0 < len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)
    return None


def _positive(entry: dict[str, Any], field: str, path: str, problems: list[FieldProblem],
              required: bool) -> Decimal | int | None:
    """``entry[field]`` as a positive number in range (an int for plain digits, else a
    Decimal), or None: absent (a problem if ``required``) or refused (its problem noted)."""
    raw = entry.get(field)
    value: Decimal | int | None = _plain_int(raw)  # in range by construction
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


def check_order_fields(entry: dict[str, Any], client: ClientConfig, tick_size: str, path: str,
                       problems: list[FieldProblem], require_qty: bool = True) -> None:
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
    if price is not None and tick_size == "krx":
        tick = krx_tick(price)
        if price % tick != 0:
            problems.append(FieldProblem("Price", f"not on the KRX tick grid: tick is {tick} at this price",
                                         f"{path}.Price"))
    account = entry.get("Account")
    if client.accounts and account is not None and account not in client.accounts:
        problems.append(FieldProblem("Account", "account not allowed for this client", f"{path}.Account"))
    elif client.accounts and account is None and len(client.accounts) > 1:
        problems.append(FieldProblem("Account", "required: this client trades several accounts",
                                     f"{path}.Account"))
    if qty is not None and client.max_order_qty is not None and qty > client.max_order_qty:
        problems.append(FieldProblem("OrderQty", f"above the client's maximum order quantity "
                                     f"{client.max_order_qty}", f"{path}.OrderQty"))
    if qty is not None and price is not None and client.max_notional is not None:
        if qty * price > client.max_notional:
            problems.append(FieldProblem("OrderQty", f"notional {qty * price} above the client's maximum "
                                         f"{client.max_notional}", f"{path}.OrderQty"))
