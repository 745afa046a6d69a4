"""Fixtures for the exchange simulator tests."""

from __future__ import annotations

import pytest
from _exchange_helpers import Helper

from server.exchange.clock import AlwaysOpenClock
from server.exchange.matching import MatchingEngine


@pytest.fixture
def engine():
    return MatchingEngine(clock=AlwaysOpenClock())


@pytest.fixture
def h(engine):
    return Helper(engine)
