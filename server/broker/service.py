"""The broker simulator as a service: two FIX initiator sessions, the ledger, a status file."""

from __future__ import annotations

import logging
import os
from typing import Any

from server._service import (
    Periodic,
    flush_session_logs,
    remove_file,
    run_until_stopped,
    write_json_atomic,
)
from server.broker.config import BrokerConfig
from server.broker.fix_app import BrokerApplication
from server.broker.ledger import Ledger

__all__ = ["BrokerServer", "serve"]

log = logging.getLogger("fastfix.broker")


def _settings(cfg: BrokerConfig) -> Any:
    """The FIX settings file, with the configured port overrides applied."""
    from fastfix.settings import SessionSettings

    ss = SessionSettings.from_file(cfg.fix_settings)
    ports = {cfg.hub: cfg.hub_port, cfg.exchange: cfg.exchange_port}
    if all(v is None for v in ports.values()):
        return ss
    return ss.with_overrides(by_target={comp: {"SocketConnectPort": str(port)}
                                        for comp, port in ports.items() if port is not None})


class BrokerServer:
    """Initiator sessions to the hub and to the exchange around a :class:`BrokerApplication`."""

    def __init__(self, cfg: BrokerConfig) -> None:
        self.cfg = cfg
        self.ledger = Ledger(cfg.accounts, cfg.database)
        self.app = BrokerApplication(cfg, self.ledger)
        self.app.on_change = self._write_status
        self.settings = _settings(cfg)
        self._initiator: Any = None
        # The audit logs reach the OS once a second.
        self._flusher = Periodic(1.0, lambda: flush_session_logs(self._initiator), log, "broker log flush")

    @property
    def initiator(self) -> Any:
        return self._initiator

    def _write_status(self, up: dict[str, bool]) -> None:
        if self.cfg.status_file is not None:
            write_json_atomic(self.cfg.status_file, {"pid": os.getpid(), "comp_id": self.app.comp_id, **up})

    async def start(self) -> None:
        from fastfix.engine import Initiator

        self._initiator = Initiator(self.settings, self.app)
        await self._initiator.start()
        self._write_status(self.app.up)
        self._flusher.start()
        log.info("broker %s: accounts %s", self.app.comp_id, ", ".join(self.ledger.accounts))

    async def wait_ready(self, timeout: float) -> None:
        """Both sessions logged on."""
        for sid in (self.app.hub_sid, self.app.exchange_sid):
            await self._initiator.wait_logged_on(sid, timeout=timeout)

    async def stop(self) -> None:
        await self._flusher.stop()
        if self._initiator is not None:
            await self._initiator.stop()
            self._initiator = None
        self.ledger.close()
        remove_file(self.cfg.status_file)


async def serve(cfg: BrokerConfig) -> None:
    """Run the broker until SIGINT/SIGTERM."""
    await run_until_stopped(BrokerServer(cfg))
