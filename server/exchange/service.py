"""The exchange simulator as a service: FIX acceptor, matching engine, timers.

Its configuration is :mod:`server.exchange.config`.
"""

from __future__ import annotations

import logging
from typing import Any

from server._service import Periodic, run_until_stopped, write_json_atomic
from server.exchange.clock import AlwaysOpenClock, KrxClock
from server.exchange.config import ExchangeConfig
from server.exchange.fix_app import ExchangeApplication
from server.exchange.liquidity import LiquidityProvider
from server.exchange.matching import MatchingEngine, VolatilityRules

__all__ = ["ExchangeServer", "serve"]

log = logging.getLogger("fastfix.exchange")


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
