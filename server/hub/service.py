"""The STP-HUB as a service: one FIX acceptor for every party, held messages, ports file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

from server.hub.config import HubConfig
from server.hub.held import HeldStore
from server.hub.routing import HubApplication

__all__ = ["HubServer", "serve", "write_json_atomic"]

log = logging.getLogger("fastfix.hub")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON in one step (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, path)


class HubServer:
    """The hub's acceptor, its routing application and its housekeeping timer."""

    def __init__(self, cfg: HubConfig, tick: float = 1.0) -> None:
        from fastfix.settings import SessionSettings

        self.cfg = cfg
        self.settings = SessionSettings.from_file(cfg.fix_settings)
        self.held = HeldStore(cfg.database or ":memory:")
        self.app = HubApplication(cfg, self.held)
        self.app.on_change = self._write_ports
        self._tick = tick
        self._acceptor: Any = None
        self._timer: asyncio.Task[None] | None = None

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
        self._timer = asyncio.get_running_loop().create_task(self._housekeeping())
        self._write_ports(set())
        log.info("hub listening on port %d; parties: %s; %d held message(s)", self.port,
                 ", ".join(f"{p.comp_id} ({p.role})" for p in self.cfg.parties.values()), self.held.count())

    def _write_ports(self, logged_on: set[str]) -> None:
        if self.cfg.ports_file is None or self._acceptor is None:
            return
        write_json_atomic(self.cfg.ports_file,
                          {"fix": self.port, "pid": os.getpid(), "logged_on": sorted(logged_on)})

    async def _housekeeping(self) -> None:
        # Expire held messages and hand the audit logs to the OS once per tick.
        while True:
            await asyncio.sleep(self._tick)
            try:
                self.app.expire_held()
                for s in self._acceptor.sessions().values():
                    if s.log is not None:
                        s.log.flush()
            except Exception:  # keep the timer alive; the error is logged
                log.exception("hub timer")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        if self._acceptor is not None:
            await self._acceptor.stop()
            self._acceptor = None
        self.held.close()
        if self.cfg.ports_file is not None:
            with contextlib.suppress(OSError):
                self.cfg.ports_file.unlink()


async def serve(cfg: HubConfig) -> None:
    """Run the hub until SIGINT/SIGTERM."""
    server = HubServer(cfg)
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
