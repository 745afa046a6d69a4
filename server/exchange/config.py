"""Exchange simulator configuration, read from a TOML file.

The file names the QuickFIX-style settings file of the acceptor sessions
and the simulator options::

    [exchange]
    fix_settings = "exchange.cfg"   # relative to this file
    clock = "krx"                   # "krx" (Asia/Seoul session) or "always-open"
    liquidity = true                # synthetic resting orders around the base prices
    liquidity_seed = 7
    liquidity_levels = 10
    volatility_interruptions = true # static (±10%) and dynamic (±3%) VIs; random ends seeded by liquidity_seed
    # fix_port = 0                  # overrides SocketAcceptPort (0 = any free port)
    # ports_file = "exchange.ports" # written once listening: {"fix": PORT}

    [exchange.base_prices]          # optional, previous close per short code
    "005930" = 71000

Errors name the file and the key (``exchange.toml: exchange.clock: ...``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from server._config import (
    FixSettings,
    LogLevel,
    Port,
    Table,
    config_error,
    convert,
    existing_file,
    read_toml,
)
from server.exchange.instruments import INSTRUMENTS, Instrument
from server.krx import is_on_tick

__all__ = ["ExchangeConfig", "ExchangeSection", "load_config", "parse_config"]


class ExchangeSection(Table):
    """The ``[exchange]`` table."""

    fix_settings: FixSettings
    clock: Literal["krx", "always-open"] = "krx"  # the Asia/Seoul session, or always open
    liquidity: bool = True  # synthetic resting orders around the base prices
    liquidity_seed: int = 0
    liquidity_levels: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    volatility_interruptions: bool = True  # static and dynamic volatility interruptions
    fix_port: Port | None = None  # overrides SocketAcceptPort
    ports_file: Path | None = None
    log_level: LogLevel = "info"
    poll_interval: Annotated[float, msgspec.Meta(ge=0.01, le=60, description="seconds")] = 1.0
    base_prices: dict[str, Annotated[int, msgspec.Meta(gt=0)]] = msgspec.field(default_factory=dict)
    volatility_interruptions: bool = True  # static (±10%) and dynamic (±3%) VIs


class ExchangeConfig(ExchangeSection, kw_only=True):
    """Everything the exchange process needs."""

    path: Path

    def instruments(self) -> dict[str, Instrument]:
        """The listed instruments with the configured base prices applied."""
        out = dict(INSTRUMENTS)
        for code, price in self.base_prices.items():
            out[code] = replace(out[code], base_price=price)
        return out


class _File(Table):
    exchange: ExchangeSection


def load_config(path: str | Path) -> ExchangeConfig:
    """Read and check an exchange TOML file."""
    p = Path(path)
    return parse_config(read_toml(p), p)


def parse_config(data: dict[str, Any], path: Path) -> ExchangeConfig:
    """Check a parsed TOML document; errors name the file and the key."""
    path = Path(path)
    name = path.name
    doc = convert(data, _File, name, path.parent.resolve())
    cfg = ExchangeConfig(path=path, **msgspec.structs.asdict(doc.exchange))
    existing_file(name, "exchange.fix_settings", cfg.fix_settings)
    for code, price in cfg.base_prices.items():
        if code not in INSTRUMENTS:
            raise config_error(name, f"exchange.base_prices.{code}", "unknown instrument")
        if not is_on_tick(price):
            raise config_error(name, f"exchange.base_prices.{code}",
                               f"must be a positive price on the tick grid, got {price!r}")
    return cfg
