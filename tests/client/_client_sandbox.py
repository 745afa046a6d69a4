"""The real sandbox for the SDK and CLI tests (fixture in conftest.py): exchange, hub, two brokers and the gateway,
each its own process on free ports (``server.sandbox``), shared by the tests of this folder.

:meth:`SandboxRun.restart_gateway` stops the gateway process alone and starts it again on
the same ports and database, the other roles still running.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server._config import read_toml
from server._service import stop_process
from server.sandbox import Sandbox, _write_toml, load_config

ROOT = Path(__file__).resolve().parents[2]
KEY = "demo-alpha-key"        # client alpha: brokers KIWOOM and MIRAE, account ALPHA-01
BETA_KEY = "demo-beta-key"    # client beta: broker KIWOOM, 20 requests/s, burst 40


class SandboxRun:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.rest: int = sandbox.ports["rest"]
        self.ws: int = sandbox.ports["ws"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws}/v1/stream"

    def gateway(self) -> Any:
        return next(c for c in self.sb.children if c.label == "gateway")

    def env(self, key: str = KEY) -> dict[str, str]:
        return {"FASTFIX_URL": self.url, "FASTFIX_WS_URL": self.ws_url, "FASTFIX_API_KEY": key}

    def stop_gateway(self) -> None:
        child = self.gateway()
        assert child.proc is not None
        stop_process(child.proc, 15)

    def start_gateway(self, timeout: float = 60.0) -> None:
        """Start the gateway again on its ports (its copy of the configuration, fixed ports)."""
        child = self.gateway()
        data = read_toml(child.config)
        data["gateway"].update(rest_port=self.rest, ws_port=self.ws)
        _write_toml(child.config, data)
        ports = Path(data["gateway"]["ports_file"])
        ports.unlink(missing_ok=True)
        with open(child.output, "ab") as out:
            child.proc = subprocess.Popen([sys.executable, "-m", "fastfix.cli", "gateway", "--config",
                                           str(child.config)], stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert child.proc.poll() is None, child.tail()
            if ports.exists() and ready(self.rest):
                return
            time.sleep(0.05)
        raise TimeoutError(f"gateway did not come back:\n{child.tail()}")

    def restart_gateway(self) -> None:
        self.stop_gateway()
        self.start_gateway()


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(json.loads(r.read()).get("ready"))
    except (OSError, urllib.error.URLError, ValueError):
        return False


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxRun]:
    var = tmp_path_factory.mktemp("client-sandbox")
    cfg = load_config(ROOT / "examples" / "sandbox.toml", var=var, ephemeral=True)
    sb = Sandbox(cfg, echo=False)
    try:
        sb.start()
        run = SandboxRun(sb)
        deadline = time.monotonic() + 60
        while not ready(run.rest):
            assert time.monotonic() < deadline, "the gateway's FIX session never logged on"
            time.sleep(0.05)
        yield run
    finally:
        sb.stop()
