"""What the FIX service processes (exchange, hub, brokers) do the same way.

Status files written in one step, housekeeping timers that survive their own
errors, and running a service until SIGINT/SIGTERM. A service is anything with
``async start()`` and ``async stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "Periodic",
    "Service",
    "flush_session_logs",
    "remove_file",
    "run_until_stopped",
    "stop_on_signals",
    "stop_process",
    "write_json_atomic",
]


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def stop_process(proc: subprocess.Popen[Any], grace: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
    """Stop a child process: ``sig`` (SIGTERM), up to ``grace`` seconds to exit, then SIGKILL.
    Returns its exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)
    return proc.returncode


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON in one step (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, path)


def remove_file(path: Path | None) -> None:
    """Remove a ports or status file on the way out (gone already is fine)."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def flush_session_logs(engine: Any) -> None:
    """Hand the audit log of every session of ``engine`` to the OS."""
    for s in engine.sessions().values():
        if s.log is not None:
            s.log.flush()


class Periodic:
    """Calls ``fn`` every ``interval`` seconds on the running loop, from :meth:`start` to :meth:`stop`.

    An exception is logged (as ``what``) and the timer goes on: one bad tick must not
    stop the auctions, expiries or log flushing that depend on it.
    """

    def __init__(self, interval: float, fn: Callable[[], None], log: logging.Logger, what: str) -> None:
        self.interval = interval
        self._fn = fn
        self._log = log
        self._what = what
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self._fn()
            except Exception:  # keep the timer alive; the error is logged
                self._log.exception(self._what)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGINT or SIGTERM (where the loop can handle signals)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run_until_stopped(service: Service, stop: asyncio.Event | None = None) -> None:
    """Start ``service``, wait for SIGINT/SIGTERM (or ``stop``), then stop it."""
    await service.start()
    if stop is None:
        stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        await stop.wait()
    finally:
        await service.stop()
