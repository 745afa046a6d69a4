"""A three-node NATS JetStream cluster and a throw-away PostgreSQL database for the cluster tests.

The nodes are ``/usr/sbin/nats-server`` processes on free loopback ports, each with its
own store directory; a test can kill (SIGKILL), stop (SIGSTOP) and restart one by index.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
PG_ADMIN_DSN = os.environ.get("FASTFIX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class NatsCluster:
    """Three JetStream nodes clustered over loopback routes."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        ports = free_ports(2 * size)
        self.client_ports = ports[:size]
        self.cluster_ports = ports[size:]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.client_ports]

    def start(self, i: int | None = None) -> None:
        for k in range(len(self.procs)) if i is None else [i]:
            routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(self.cluster_ports) if j != k)
            store = self.root / f"n{k}"
            store.mkdir(parents=True, exist_ok=True)
            log = open(self.root / f"n{k}.log", "ab")  # noqa: SIM115 - the process keeps it
            self.procs[k] = subprocess.Popen(
                [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.client_ports[k]),
                 "-cluster", f"nats://127.0.0.1:{self.cluster_ports[k]}", "-cluster_name", "fastfix",
                 "-routes", routes, "-sd", str(store), "-n", f"n{k}"],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()

    def kill(self, i: int) -> None:
        p = self.procs[i]
        if p is not None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            self.procs[i] = None

    def stop(self) -> None:
        for i in range(len(self.procs)):
            self.kill(i)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until a JetStream meta leader is elected (an account info request succeeds)."""
        import nats

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                nc = await nats.connect(servers=self.urls, connect_timeout=1, max_reconnect_attempts=1)
                try:
                    await nc.jetstream().account_info()
                    return
                finally:
                    await nc.close()
            except Exception as exc:  # noqa: BLE001 - not elected yet: try again until the deadline
                last = exc
                await asyncio.sleep(0.2)
        raise TimeoutError(f"JetStream cluster not ready after {timeout}s: {last!r}")


class PgDatabase:
    """A database with a unique name on the local PostgreSQL, dropped at the end."""

    def __init__(self) -> None:
        self.name = f"fastfix_{uuid.uuid4().hex[:12]}"
        base, _, _ = PG_ADMIN_DSN.rpartition("/")
        self.dsn = f"{base}/{self.name}"

    async def _admin(self, sql: str) -> Any:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            return await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.name}"')

    async def drop(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def terminate_backends(self) -> int:
        """Kill every connection to this database (what a PostgreSQL restart does to clients)."""
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            rows = await conn.fetch("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = $1 AND pid <> pg_backend_pid()", self.name)
            return len(rows)
        finally:
            await conn.close()
