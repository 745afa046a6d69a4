"""The STP-HUB as a service: one FIX acceptor for every party, held messages, ports file."""

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
from server.hub.config import HubConfig
from server.hub.fix_app import HubApplication
from server.hub.held import HeldStore

__all__ = ["HubServer", "serve", "write_json_atomic"]

log = logging.getLogger("fastfix.hub")


class HubServer:
    """The hub's acceptor, its routing application and its housekeeping timer."""

    def __init__(self, cfg: HubConfig, tick: float = 1.0) -> None:
        from fastfix.settings import SessionSettings

        self.cfg = cfg
        self.settings = SessionSettings.from_file(cfg.fix_settings)
        self.held = HeldStore(cfg.database or ":memory:")
        self.app = HubApplication(cfg, self.held)
        self.app.on_change = self._write_ports
        self._acceptor: Any = None
        self._timer = Periodic(tick, self._housekeeping, log, "hub timer")

    @property
    def port(self) -> int:
        return int(self._acceptor.port)

    @property
    def acceptor(self) -> Any:
        return self._acceptor

    async def start(self) -> None:
        from fastfix.engine import Acceptor

        self._acceptor = Acceptor(self.settings, self.app, port=self.cfg.fix_port)
        await self._acceptor.start()
        self._timer.start()
        self._write_ports(set())
        log.info("hub listening on port %d; parties: %s; %d held message(s)", self.port,
                 ", ".join(f"{p.comp_id} ({p.role})" for p in self.cfg.parties.values()), self.held.count())

    def _write_ports(self, logged_on: set[str]) -> None:
        if self.cfg.ports_file is None or self._acceptor is None:
            return
        write_json_atomic(self.cfg.ports_file,
                          {"fix": self.port, "pid": os.getpid(), "logged_on": sorted(logged_on)})

    def _housekeeping(self) -> None:
        # Expire held messages and hand the audit logs to the OS once per tick.
        self.app.expire_held()
        flush_session_logs(self._acceptor)

    async def stop(self) -> None:
        await self._timer.stop()
        if self._acceptor is not None:
            await self._acceptor.stop()
            self._acceptor = None
        self.held.close()
        remove_file(self.cfg.ports_file)


async def serve(cfg: HubConfig) -> None:
    """Run the hub until SIGINT/SIGTERM."""
    await run_until_stopped(HubServer(cfg))
