"""The listed instruments of the simulator: KRX short codes, ISINs, base prices."""

from __future__ import annotations

from dataclasses import dataclass

from server.krx import LOT_SIZE


def isin_check_digit(body: str) -> int:
    """Check digit of an 11-character ISIN body (ISO 6166: letters to numbers, then Luhn)."""
    if len(body) != 11 or not body.isalnum():
        raise ValueError(f"an ISIN body is 11 alphanumeric characters, got {body!r}")
    digits = "".join(str(int(c, 36)) for c in body.upper())
    total = 0
    # Luhn from the right: the rightmost digit of the body sits next to the check digit,
    # so it is the one that gets doubled.
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def krx_isin(code: str) -> str:
    """ISIN of a KRX common stock: ``KR7`` + 6-digit code + ``00`` + check digit."""
    if len(code) != 6 or not code.isdigit():
        raise ValueError(f"a KRX short code is 6 digits, got {code!r}")
    body = f"KR7{code}00"
    return f"{body}{isin_check_digit(body)}"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One listed common stock. Prices are integer KRW; the lot size is one share."""

    code: str
    name: str
    base_price: int
    isin: str = ""
    currency: str = "KRW"
    lot_size: int = LOT_SIZE
    market: str = "KOSPI"  # market segment (all the listed stocks are KOSPI's)

    def __post_init__(self) -> None:
        if not self.isin:
            object.__setattr__(self, "isin", krx_isin(self.code))


# Base prices (the previous close the daily limits are computed from) are round
# figures on the tick grid, in the range these stocks have traded in.
_LISTING: tuple[tuple[str, str, int], ...] = (
    ("005930", "Samsung Electronics", 70_000),
    ("000660", "SK hynix", 180_000),
    ("035420", "NAVER", 190_000),
    ("035720", "Kakao", 45_000),
    ("005380", "Hyundai Motor", 240_000),
    ("051910", "LG Chem", 350_000),
    ("068270", "Celltrion", 180_000),
    ("105560", "KB Financial", 80_000),
    ("373220", "LG Energy Solution", 380_000),
    ("207940", "Samsung Biologics", 800_000),
)

INSTRUMENTS: dict[str, Instrument] = {
    code: Instrument(code, name, price) for code, name, price in _LISTING
}

_BY_ISIN: dict[str, Instrument] = {i.isin: i for i in INSTRUMENTS.values()}


def lookup(symbol: str, instruments: dict[str, Instrument] | None = None) -> Instrument | None:
    """Find an instrument by short code (``005930``, ``A005930``) or ISIN."""
    table = INSTRUMENTS if instruments is None else instruments
    inst = table.get(symbol)
    if inst is not None:
        return inst
    if len(symbol) == 7 and symbol[0] in "Aa":
        # Korean systems often write the short code with a leading 'A'.
        return table.get(symbol[1:])
    if len(symbol) == 12:
        if instruments is None:
            return _BY_ISIN.get(symbol.upper())
        for inst in table.values():
            if inst.isin == symbol.upper():
                return inst
    return None
