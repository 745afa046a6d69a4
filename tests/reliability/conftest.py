"""Reliability tests: crash, network faults, hostile clients, fuzzing, soak."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: steady load over time, RSS/descriptors/errors must stay flat")
    config.addinivalue_line("markers", "fuzz: bounded fuzzing run (longer runs: make fuzz)")
