"""Fixtures shared across the test suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _gateway_harness import GatewayProcess


@pytest.fixture(scope="module")
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway process with the in-process loopback broker, shared by the tests of a module.
    A module sets ``GATEWAY_EXTRA`` for more ``[gateway]`` keys (TOML lines)."""
    from _gateway_harness import GatewayProcess, gateway_toml

    extra = getattr(request.module, "GATEWAY_EXTRA", "")
    p = GatewayProcess(tmp_path_factory.mktemp("gw"), gateway_toml(extra=extra))
    p.start()
    try:
        yield p
    finally:
        p.stop()
