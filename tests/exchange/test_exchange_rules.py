"""Tick sizes, daily price limits, ISINs."""

import pytest

from server.exchange.instruments import INSTRUMENTS, Instrument, isin_check_digit, krx_isin, lookup
from server.exchange.rules import Reason, check_limit_price
from server.krx import (
    LOT_SIZE,
    is_on_tick,
    is_whole_lot,
    price_limits,
    round_down_to_tick,
    round_up_to_tick,
    tick_size,
    ticks_away,
)

# (last price of the band below, first price of the band, tick below, tick from there)
BOUNDARIES = [
    (1_999, 2_000, 1, 5),
    (4_999, 5_000, 5, 10),
    (19_999, 20_000, 10, 50),
    (49_999, 50_000, 50, 100),
    (199_999, 200_000, 100, 500),
    (499_999, 500_000, 500, 1_000),
]


@pytest.mark.parametrize("below,at,tick_below,tick_at", BOUNDARIES)
def test_tick_size_at_every_band_boundary(below, at, tick_below, tick_at):
    assert tick_size(below) == tick_below
    assert tick_size(at) == tick_at
    assert tick_size(at + 1) == tick_at


def test_tick_size_small_and_huge():
    assert tick_size(1) == 1
    assert tick_size(5_000_000) == 1_000
    with pytest.raises(ValueError):
        tick_size(-1)


def test_on_tick_and_rounding():
    assert is_on_tick(1_999) and is_on_tick(2_000) and not is_on_tick(2_001)
    assert is_on_tick(70_000) and not is_on_tick(70_050)
    assert not is_on_tick(0)
    assert round_down_to_tick(70_099) == 70_000
    assert round_up_to_tick(70_001) == 70_100
    # Rounding up across a band floor lands on the floor, which is on both grids.
    assert round_up_to_tick(4_998) == 5_000
    assert round_down_to_tick(5_009) == 5_000


def test_ticks_away_crosses_bands():
    assert ticks_away(2_000, -1) == 1_999
    assert ticks_away(1_999, 1) == 2_000
    assert ticks_away(2_000, 1) == 2_005
    assert ticks_away(50_000, -2) == 49_900
    assert ticks_away(500_000, -1) == 499_500


@pytest.mark.parametrize(
    "base,lower,upper",
    [
        (70_000, 49_000, 91_000),  # exact multiples stay put
        (45_000, 31_500, 58_500),
        (800_000, 560_000, 1_040_000),
        (1_999, 1_400, 2_595),  # 2598.7 -> 2595 (tick 5 above 2,000)
        (3_333, 2_335, 4_330),  # 2333.1 -> 2335 up, 4332.9 -> 4330 down: inward
        (15_550, 10_890, 20_200),  # 10885 -> 10890; 20215 -> 20200 (tick 50)
        (180_500, 126_400, 234_500),  # 126350 -> 126400; 234650 -> 234500
        (3, 3, 3),  # 2.1 -> 3, 3.9 -> 3
    ],
)
def test_price_limits_rounded_inward(base, lower, upper):
    lo, hi = price_limits(base)
    assert (lo, hi) == (lower, upper)
    assert is_on_tick(lo) and is_on_tick(hi)
    # Inward: never beyond the exact ±30%.
    assert lo * 100 >= base * 70 and hi * 100 <= base * 130


def test_price_limits_bad_base():
    with pytest.raises(ValueError):
        price_limits(0)


def test_whole_lots():
    assert LOT_SIZE == 1 and is_whole_lot(1) and is_whole_lot(250)
    for qty in (0, -1, 1.5, True, "1", None):
        assert not is_whole_lot(qty)
    assert is_whole_lot(20, 10) and not is_whole_lot(15, 10)


def test_gateway_checks_the_same_tick_table():
    """The gateway's compiled pre-trade check reads the table of :mod:`server.krx`."""
    from server.gateway.checks import krx_tick

    for below, at, _, _ in BOUNDARIES:
        for price in (1, below, at, at + 1, 5_000_000):
            assert krx_tick(price) == tick_size(price)


def test_check_limit_price():
    lo, hi = price_limits(70_000)
    assert check_limit_price(70_000, lo, hi) is None
    assert check_limit_price(lo, lo, hi) is None and check_limit_price(hi, lo, hi) is None
    assert check_limit_price(70_050, lo, hi) is Reason.INVALID_TICK
    assert check_limit_price(0, lo, hi) is Reason.INVALID_TICK
    assert check_limit_price(hi + 1_000, lo, hi) is Reason.OUTSIDE_PRICE_LIMITS
    assert check_limit_price(lo - 100, lo, hi) is Reason.OUTSIDE_PRICE_LIMITS


def test_isin_check_digit_known_values():
    assert krx_isin("005930") == "KR7005930003"
    assert krx_isin("000660") == "KR7000660001"
    assert krx_isin("035420") == "KR7035420009"
    assert isin_check_digit("US037833100") == 5  # Apple, US0378331005
    with pytest.raises(ValueError):
        krx_isin("5930")


def test_the_ten_instruments():
    assert set(INSTRUMENTS) == {
        "005930", "000660", "035420", "035720", "005380",
        "051910", "068270", "105560", "373220", "207940",
    }
    for code, inst in INSTRUMENTS.items():
        assert inst.isin.startswith("KR7" + code + "00") and len(inst.isin) == 12
        assert int(inst.isin[-1]) == isin_check_digit(inst.isin[:11])
        assert is_on_tick(inst.base_price) and inst.currency == "KRW" and inst.lot_size == 1


def test_lookup_by_code_prefixed_code_and_isin():
    sam = INSTRUMENTS["005930"]
    assert lookup("005930") is sam and lookup("A005930") is sam and lookup("KR7005930003") is sam
    assert lookup("999999") is None and lookup("KR7999999999") is None
    custom = {"123450": Instrument("123450", "Test", 10_000)}
    assert lookup(custom["123450"].isin, custom) is custom["123450"]
