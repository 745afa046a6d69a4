"""The exchange simulator as a service: TOML configuration, FIX acceptor, timers.

A TOML file names the QuickFIX-style settings file of the acceptor sessions
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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastfix.errors import ConfigError
from server._config import read_toml, service_table, settings_file
from server._service import Periodic, run_until_stopped, write_json_atomic
from server.exchange.clock import AlwaysOpenClock, KrxClock
from server.exchange.fix_app import ExchangeApplication
from server.exchange.instruments import INSTRUMENTS, Instrument
from server.exchange.liquidity import LiquidityProvider
from server.exchange.matching import MatchingEngine, VolatilityRules
from server.exchange.rules import is_on_tick

__all__ = ["ExchangeConfig", "ExchangeServer", "load_config", "parse_config", "serve"]

log = logging.getLogger("fastfix.exchange")

_KEYS = {
    "fix_settings", "clock", "liquidity", "liquidity_seed", "liquidity_levels",
    "fix_port", "ports_file", "log_level", "base_prices", "poll_interval",
    "volatility_interruptions",
}


@dataclass(slots=True)
class ExchangeConfig:
    """Everything the exchange process needs."""

    path: Path
    fix_settings: Path
    clock: str = "krx"
    liquidity: bool = True
    liquidity_seed: int = 0
    liquidity_levels: int = 10
    fix_port: int | None = None
    ports_file: Path | None = None
    log_level: str = "info"
    poll_interval: float = 1.0
    base_prices: dict[str, int] = field(default_factory=dict)
    volatility_interruptions: bool = True

    def instruments(self) -> dict[str, Instrument]:
        """The listed instruments with the configured base prices applied."""
        out = dict(INSTRUMENTS)
        for code, price in self.base_prices.items():
            out[code] = replace(out[code], base_price=price)
        return out


def load_config(path: str | Path) -> ExchangeConfig:
    """Read and check an exchange TOML file."""
    p = Path(path)
    return parse_config(read_toml(p), p)


def parse_config(data: dict[str, Any], path: Path) -> ExchangeConfig:
    """Check a parsed TOML document; errors name the file and the key."""
    name = path.name

    def err(key: str, what: str) -> ConfigError:
        return ConfigError(f"{name}: exchange.{key}: {what}")

    ex = service_table(data, name, "exchange", _KEYS)

    def typed(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        v = ex.get(key, default)
        if v is not default and (not isinstance(v, kind) or (kind is int and isinstance(v, bool))):
            raise err(key, f"expected {getattr(kind, '__name__', kind)}, got {v!r}")
        return v

    fix = typed("fix_settings", str, None)
    fix_path = settings_file(f"{name}: exchange.fix_settings", fix, path.parent.resolve())
    cfg = ExchangeConfig(path=path, fix_settings=fix_path.resolve())
    cfg.clock = typed("clock", str, "krx")
    if cfg.clock not in ("krx", "always-open"):
        raise err("clock", f'must be "krx" or "always-open", got {cfg.clock!r}')
    cfg.liquidity = typed("liquidity", bool, True)
    cfg.liquidity_seed = typed("liquidity_seed", int, 0)
    cfg.liquidity_levels = typed("liquidity_levels", int, 10)
    cfg.volatility_interruptions = typed("volatility_interruptions", bool, True)
    if not 1 <= cfg.liquidity_levels <= 100:
        raise err("liquidity_levels", "must be 1-100")
    cfg.fix_port = typed("fix_port", int, None)
    if cfg.fix_port is not None and not 0 <= cfg.fix_port <= 65535:
        raise err("fix_port", "must be a TCP port (0 = any free port)")
    ports = typed("ports_file", str, None)
    cfg.ports_file = (path.parent / ports).resolve() if ports else None
    cfg.log_level = typed("log_level", str, "info")
    if cfg.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise err("log_level", "must be debug, info, warning or error")
    cfg.poll_interval = float(typed("poll_interval", (int, float), 1.0))
    if not 0.01 <= cfg.poll_interval <= 60:
        raise err("poll_interval", "must be 0.01-60 seconds")
    prices = typed("base_prices", dict, {})
    for code, price in prices.items():
        if code not in INSTRUMENTS:
            raise err(f"base_prices.{code}", "unknown instrument")
        if not isinstance(price, int) or isinstance(price, bool) or not is_on_tick(price):
            raise err(f"base_prices.{code}", f"must be a positive price on the tick grid, got {price!r}")
    cfg.base_prices = dict(prices)
    return cfg


class ExchangeServer:
    """The matching engine behind a FIX acceptor, plus the phase/liquidity timer."""

    def __init__(self, cfg: ExchangeConfig, clock: KrxClock | None = None) -> None:
        from fastfix.settings import SessionSettings

        self.cfg = cfg
        if clock is None:
            clock = AlwaysOpenClock() if cfg.clock == "always-open" else KrxClock()
        rules = VolatilityRules() if cfg.volatility_interruptions else None
        self.market = MatchingEngine(cfg.instruments(), clock, rules, seed=cfg.liquidity_seed)
        lp = None
        if cfg.liquidity:
            lp = LiquidityProvider(self.market, seed=cfg.liquidity_seed, levels=cfg.liquidity_levels)
        self.app = ExchangeApplication(self.market, lp)
        self.settings = SessionSettings.from_file(cfg.fix_settings)
        self._acceptor: Any = None
        # Auctions and the end-of-day expiry must happen on time even when no order arrives.
        self._timer = Periodic(cfg.poll_interval, lambda: self.app.poll(), log, "exchange timer")

    @property
    def port(self) -> int:
        return int(self._acceptor.port)

    async def start(self) -> None:
        from fastfix.engine import Acceptor

        self.app.poll()  # auctions due and the first liquidity, before anyone logs on
        self._acceptor = Acceptor(self.settings, self.app, port=self.cfg.fix_port)
        await self._acceptor.start()
        self._timer.start()
        if self.cfg.ports_file is not None:
            write_json_atomic(self.cfg.ports_file, {"fix": self.port})
        log.info("exchange listening on port %d (%s clock)", self.port, self.cfg.clock)

    async def stop(self) -> None:
        await self._timer.stop()
        if self._acceptor is not None:
            await self._acceptor.stop()
            self._acceptor = None


async def serve(cfg: ExchangeConfig) -> None:
    """Run until SIGINT/SIGTERM."""
    await run_until_stopped(ExchangeServer(cfg))
