"""The broker simulator as a service: two FIX initiator sessions, the ledger, a status file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from server.broker.app import BrokerApplication
from server.broker.config import BrokerConfig
from server.broker.ledger import Ledger
from server.hub.service import write_json_atomic

__all__ = ["BrokerServer", "serve"]

log = logging.getLogger("fastfix.broker")


def _settings(cfg: BrokerConfig) -> Any:
    """The FIX settings file, with the configured port overrides applied."""
    from fastfix.settings import SessionSettings

    ss = SessionSettings.from_file(cfg.fix_settings)
    overrides = {cfg.hub: cfg.hub_port, cfg.exchange: cfg.exchange_port}
    if all(v is None for v in overrides.values()):
        return ss
    sessions = []
    for sid, s in ss.sessions().items():
        values = dict(s.items())
        port = overrides.get(sid.target_comp_id)
        if port is not None:
            values["SocketConnectPort"] = str(port)
        for key in ("FileStorePath", "FileLogPath", "SQLiteStorePath", "DataDictionary"):
            if key in values:  # relative paths stay relative to the settings file
                values[key] = str(s.get_path(key))
        sessions.append(values)
    return SessionSettings.from_dict(sessions)


class BrokerServer:
    """Initiator sessions to the hub and to the exchange around a :class:`BrokerApplication`."""

    def __init__(self, cfg: BrokerConfig) -> None:
        self.cfg = cfg
        self.ledger = Ledger(cfg.accounts, cfg.database)
        self.app = BrokerApplication(cfg, self.ledger)
        self.app.on_change = self._write_status
        self.settings = _settings(cfg)
        self._initiator: Any = None
        self._flusher: asyncio.Task[None] | None = None

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
        self._flusher = asyncio.get_running_loop().create_task(self._flush_logs())
        log.info("broker %s: accounts %s", self.app.comp_id, ", ".join(self.ledger.accounts))

    async def _flush_logs(self) -> None:
        while True:  # the audit logs reach the OS once a second
            await asyncio.sleep(1.0)
            for s in self._initiator.sessions().values():
                if s.log is not None:
                    with contextlib.suppress(Exception):
                        s.log.flush()

    async def wait_ready(self, timeout: float) -> None:
        """Both sessions logged on."""
        for sid in (self.app.hub_sid, self.app.exchange_sid):
            await self._initiator.wait_logged_on(sid, timeout=timeout)

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._initiator is not None:
            await self._initiator.stop()
            self._initiator = None
        self.ledger.close()
        if self.cfg.status_file is not None:
            with contextlib.suppress(OSError):
                self.cfg.status_file.unlink()


async def serve(cfg: BrokerConfig) -> None:
    """Run the broker until SIGINT/SIGTERM."""
    server = BrokerServer(cfg)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
