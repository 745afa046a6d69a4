"""The lab's system under test: a gateway process in front of a FIX hub double process.

The hub double is the scripted STP-HUB + broker of the gateway tests
(``tests/gateway/_fix_hub.py``: every order acknowledged, those with Text
``fill`` filled at once, cancels and replaces answered), with a fast path for
NewOrderSingle so that one core of hub keeps up with the gateway. The gateway
runs from a generated TOML with ``clients`` API keys and no rate limit, and a
QuickFIX-style settings file pointing at the hub. ``link = "loopback"`` leaves
the hub out (the gateway's in-process broker answers).

:class:`LabTarget` starts both (``with LabTarget(workdir) as t:``) and writes
``target.json`` (URLs, keys, PIDs) for ``python -m bench.loadgen run --target``.
Both processes are stopped by PID.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

from bench._gateway_load import gateway_fix_settings, start_baseline
from server._service import stop_process

REPO = Path(__file__).resolve().parents[2]

__all__ = ["BareTarget", "LabTarget", "hub_main", "lab_key"]


def lab_key(i: int) -> str:
    return f"lab-key-{i}-0123456789abcdef"


def _gateway_toml(link: str, clients: int, sync: str, extra: str = "") -> str:
    fix = 'fix_settings = "gw.cfg"\n' if link == "fix" else ""
    out = f"""
[gateway]
rest_host = "127.0.0.1"
rest_port = 0
ws_host = "127.0.0.1"
ws_port = 0
link = "{link}"
{fix}database = "gw.db"
sync = "{sync}"
ports_file = "ports.json"
tick_size = "krx"
ws_heartbeat = 5.0
ws_buffer_limit = 67108864
log_level = "warning"
{extra}
[[brokers]]
id = "BRKA"
name = "Broker A"

[[brokers]]
id = "BRKB"
name = "Broker B"
"""
    for i in range(clients):
        out += f"""
[[clients]]
id = "lab{i}"
api_key_sha256 = "{hashlib.sha256(lab_key(i).encode()).hexdigest()}"
rate = 10000000
burst = 10000000
"""
    return out


class LabTarget:
    """Hub double + gateway as two processes in ``workdir``."""

    def __init__(self, workdir: str | Path, clients: int = 4, link: str = "fix", sync: str = "normal",
                 gateway_cpu: int | None = None, gateway_extra: str = "") -> None:
        self.workdir = Path(workdir).resolve()
        self.clients = clients
        self.link = link
        self.sync = sync
        self.gateway_cpu = gateway_cpu
        self.gateway_extra = gateway_extra  # more [gateway] settings, TOML lines
        self.hub: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> LabTarget:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        import shutil

        for stale in ("gw.db", "gw.db-wal", "gw.db-shm", "ports.json"):
            (self.workdir / stale).unlink(missing_ok=True)
        shutil.rmtree(self.workdir / "gw.journal", ignore_errors=True)
        log = open(self.workdir / "lab.log", "ab")  # noqa: SIM115 - handed to the children
        try:
            if self.link == "fix":
                self.hub = subprocess.Popen([sys.executable, "-m", "bench.loadgen.target", "--hub"],
                                            cwd=REPO, stdout=subprocess.PIPE, stderr=log, env=self._env())
                assert self.hub.stdout is not None
                line = self.hub.stdout.readline()
                if not line:
                    raise RuntimeError(f"hub double did not start: see {self.workdir / 'lab.log'}")
                hub_port = json.loads(line)["port"]
                (self.workdir / "gw.cfg").write_text(gateway_fix_settings(hub_port, sync="batch"))
                shutil.rmtree(self.workdir / "fixstore", ignore_errors=True)
            (self.workdir / "gw.toml").write_text(_gateway_toml(self.link, self.clients, self.sync, self.gateway_extra))
            cmd = [sys.executable, "-m", "fastfix.cli", "gateway", "--config", str(self.workdir / "gw.toml")]
            if self.gateway_cpu is not None and hasattr(os, "sched_setaffinity"):
                cmd = ["taskset", "-c", str(self.gateway_cpu), *cmd]
            self.gateway = subprocess.Popen(cmd, cwd=self.workdir, stdout=log, stderr=log, env=self._env())
        finally:
            log.close()
        ports = self.workdir / "ports.json"
        deadline = time.monotonic() + timeout
        p: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.gateway.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.gateway.returncode}: see {self.workdir / 'lab.log'}")
            try:
                p = json.loads(ports.read_text())
                break
            except (OSError, ValueError):
                time.sleep(0.05)
        else:
            raise TimeoutError("gateway did not write its ports file")
        rest = f"http://127.0.0.1:{p['rest']}"
        while time.monotonic() < deadline:  # ready = FIX session logged on
            try:
                with urllib.request.urlopen(rest + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise TimeoutError("gateway not ready (FIX session not logged on)")
        self.info = {
            "rest_url": rest,
            "ws_url": f"ws://127.0.0.1:{p['ws']}/v1/stream",
            "keys": [lab_key(i) for i in range(self.clients)],
            "brokers": ["BRKA", "BRKB"],
            "gateway_pid": self.gateway.pid,
            "hub_pid": self.hub.pid if self.hub is not None else None,
            "link": self.link,
            "sync": self.sync,
            "workdir": str(self.workdir),
        }
        (self.workdir / "target.json").write_text(json.dumps(self.info, indent=2) + "\n")
        return self.info

    def stop(self) -> None:
        for proc in (self.gateway, self.hub):
            if proc is not None:
                stop_process(proc)
        if self.hub is not None and self.hub.stdout is not None:
            self.hub.stdout.close()
        self.gateway = self.hub = None


class BareTarget:
    """The trivial granian RSGI + msgspec handler of the gateway gate (``bench/_gateway_load.py``)
    as a lab target: it answers every POST 202 and has no stream. The same client at the
    same rates against it gives the floor of the latency sweep: what this machine costs
    any Python server before the gateway does anything."""

    def __init__(self) -> None:
        self.server: Any = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> BareTarget:
        self.server = asyncio.run(start_baseline(None))
        self.info = {"rest_url": f"http://127.0.0.1:{self.server.port}", "ws_url": "", "keys": ["-"],
                     "gateway_pid": self.server.proc.pid}
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


# ------------------------------------------------------------------ the hub double process


def _lab_hub_class() -> Any:
    sys.path.insert(0, str(REPO / "tests" / "gateway"))
    from _fix_hub import HubDouble

    class LabHub(HubDouble):  # type: ignore[misc, valid-type]
        """The test hub double, with bounded logs and a NewOrderSingle path that reads only what it answers."""

        _TAGS = (11, 1, 38, 40, 44, 54, 55, 58, 128)

        def __init__(self) -> None:
            super().__init__()
            self.received = deque(maxlen=16)  # type: ignore[assignment]
            self.sent_reports = deque(maxlen=16)  # type: ignore[assignment]

        def from_app(self, msg: Any, session_id: Any) -> None:
            if msg.msg_type != b"D":
                super().from_app(msg, session_id)
                return
            self.sid = session_id
            f = {}
            for tag in self._TAGS:
                v = msg.get(tag)
                if v is not None:
                    f[tag] = v.decode()
            self._new(f)

    return LabHub


def hub_main() -> None:
    """Run the hub double on an ephemeral loopback port; print ``{"port": P, "pid": N}``; stop on SIGTERM."""
    import asyncio

    import uvloop

    sys.path.insert(0, str(REPO / "tests" / "gateway"))
    from _fix_hub import acceptor_settings

    from fastfix.engine import Acceptor

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        acc = Acceptor(acceptor_settings(Path(".")), _lab_hub_class()(), host="127.0.0.1", port=0)
        await acc.start()
        print(json.dumps({"port": acc.port, "pid": os.getpid()}), flush=True)
        await stop.wait()
        await acc.stop()

    uvloop.run(main())


if __name__ == "__main__":
    if sys.argv[1:] == ["--hub"]:
        hub_main()
    else:
        print("usage: python -m bench.loadgen target ...  (this module's own entry is the hub double: --hub)")
        sys.exit(2)
