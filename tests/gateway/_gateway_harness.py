"""Start a gateway process, talk to it over HTTP/1.1 and WebSocket (test and bench helper)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from server._service import stop_process

REPO = Path(__file__).resolve().parents[2]
KEYS = {"alpha": "key-alpha-0123456789", "beta": "key-beta-0123456789", "gamma": "key-gamma-0123456789"}


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def gateway_toml(link: str = "loopback", fix_settings: str | None = None, extra: str = "",
                 clients: str | None = None) -> str:
    fix = f'fix_settings = "{fix_settings}"\n' if fix_settings else ""
    return f"""
[gateway]
rest_port = 0
ws_port = 0
link = "{link}"
{fix}database = "gw.db"
ports_file = "ports.json"
tick_size = "krx"
ws_heartbeat = 1.0
log_level = "warning"
{extra}

[[brokers]]
id = "BRKA"
name = "Broker A"

[[brokers]]
id = "BRKB"
name = "Broker B"

[[brokers]]
id = "BRKC"
name = "Broker C"
""" + (clients if clients is not None else f"""
[[clients]]
id = "alpha"
api_key_sha256 = "{sha(KEYS['alpha'])}"
accounts = ["ACC1"]
brokers = ["BRKA", "BRKB"]
rate = 2000
burst = 4000
max_order_qty = 100000
max_notional = 1000000000

[[clients]]
id = "beta"
api_key_sha256 = "{sha(KEYS['beta'])}"
brokers = ["BRKA"]
rate = 2000
burst = 4000

[[clients]]
id = "gamma"
api_key_sha256 = "{sha(KEYS['gamma'])}"
rate = 1
burst = 2
""")


class GatewayProcess:
    """The gateway as a subprocess in ``workdir``; ports are read from the ports file it writes."""

    def __init__(self, workdir: Path, toml: str) -> None:
        self.workdir = workdir
        self.config = workdir / "gw.toml"
        self.config.write_text(toml)
        self.proc: subprocess.Popen[bytes] | None = None
        self.rest = 0
        self.ws = 0
        self.env: dict[str, str] = {}  # added to the process's environment

    def start(self, timeout: float = 30.0, hook: str | None = None) -> GatewayProcess:
        """Start the process; ``hook`` names a crash hook of ``_hooked_gateway.py``."""
        ports = self.workdir / "ports.json"
        ports.unlink(missing_ok=True)
        log = open(self.workdir / "gateway.log", "ab")  # noqa: SIM115 - closed with the process
        env = dict(os.environ, PYTHONPATH=str(REPO), **self.env)
        cmd = [sys.executable, "-m", "fastfix.cli", "gateway"]
        if hook is not None:
            cmd = [sys.executable, str(Path(__file__).with_name("_hooked_gateway.py")), hook]
        self.proc = subprocess.Popen([*cmd, "--config", str(self.config)],
                                     cwd=self.workdir, stdout=log, stderr=log, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.log()[-3000:]}")
            if ports.exists():
                try:
                    p = json.loads(ports.read_text())
                    self.rest, self.ws = p["rest"], p["ws"]
                    break
                except (ValueError, KeyError):
                    pass
            time.sleep(0.02)
        else:
            self.stop()
            raise TimeoutError(f"gateway did not start: {self.log()[-3000:]}")
        # Ready when /healthz answers (bounded).
        while time.monotonic() < deadline:
            try:
                status, _ = asyncio.run(_once("GET", self.rest, "/healthz"))
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise TimeoutError("gateway /healthz did not answer")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        rc = stop_process(self.proc, timeout, sig)
        self.proc = None
        return rc

    def log(self) -> str:
        p = self.workdir / "gateway.log"
        return p.read_text(errors="replace") if p.exists() else ""


class Http:
    """Minimal keep-alive HTTP/1.1 client on asyncio streams (Content-Length responses)."""

    def __init__(self, port: int, key: str | None = None) -> None:
        self.port = port
        self.key = key
        self._r: asyncio.StreamReader | None = None
        self._w: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Http:
        self._r, self._w = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._w is not None:
            self._w.close()

    async def raw(self, method: str, path: str, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        assert self._r is not None and self._w is not None
        h = {"host": "127.0.0.1", **(headers or {})}
        if self.key is not None and "x-api-key" not in {k.lower() for k in h}:
            h["X-API-Key"] = self.key
        if body is not None:
            h["content-type"] = "application/json"
            h["content-length"] = str(len(body))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self._w.write(head.encode() + (body or b""))
        status_line = await asyncio.wait_for(self._r.readline(), 10)
        status = int(status_line.split()[1])
        resp_headers: dict[str, str] = {}
        while True:
            line = await self._r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            resp_headers[k.strip().lower()] = v.strip()
        n = int(resp_headers.get("content-length", "0"))
        data = await self._r.readexactly(n) if n else b""
        return status, resp_headers, data

    async def call(self, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        raw = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        status, h, data = await self.raw(method, path, raw, headers)
        ctype = h.get("content-type", "")
        return status, json.loads(data) if data and ctype.startswith("application/json") else data


async def _once(method: str, port: int, path: str) -> tuple[int, Any]:
    async with Http(port) as h:
        return await h.call(method, path)


def order(cl: str, **kw: Any) -> dict[str, Any]:
    body = {"ClOrdID": cl, "DeliverToCompID": "BRKA", "Symbol": "005930", "Side": "1", "OrdType": "2",
            "OrderQty": "10", "Price": "70000"}
    body.update(kw)
    return {k: v for k, v in body.items() if v is not None}


async def ws_connect(port: int, key: str | None, since: int | None = None) -> Any:
    from picows.websockets.asyncio.client import connect

    q = "" if since is None else f"?since={since}"
    headers = {"X-API-Key": key} if key else None
    return await connect(f"ws://127.0.0.1:{port}/v1/stream{q}", additional_headers=headers)


async def ws_next(ws: Any, kind: str = "message", timeout: float = 10.0) -> dict[str, Any]:
    """The next frame of type ``kind`` (skipping heartbeats unless asked for)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {kind} frame")
        frame = json.loads(await asyncio.wait_for(ws.recv(), left))
        if frame["type"] == kind:
            return frame
        if frame["type"] == "error":
            raise AssertionError(f"stream error: {frame}")


async def ws_collect(ws: Any, until: Any, timeout: float = 10.0, limit: int = 10000) -> list[dict[str, Any]]:
    """Messages until ``until(list)`` is true."""
    out: list[dict[str, Any]] = []
    for _ in range(limit):
        if until(out):
            return out
        out.append(await ws_next(ws, timeout=timeout))
    raise AssertionError("too many frames")


async def started_gateway(tmp: Path, link: Any = None, toml: str | None = None) -> Any:
    """A Gateway in this process (no HTTP), recovered and with its link started: the
    configuration of :func:`gateway_toml` (loopback link unless ``link`` is given)."""
    import tomllib

    from server.gateway.app import build_link
    from server.gateway.config import parse_config
    from server.gateway.mapping import JsonMapper
    from server.gateway.metrics import Metrics
    from server.gateway.service import Gateway

    cfg = parse_config(tomllib.loads(toml or gateway_toml()), tmp / "gw.toml")
    link = link if link is not None else build_link(cfg)
    gw = Gateway(cfg, link, JsonMapper(link.begin_string, max_bytes=cfg.max_body_bytes), Metrics())
    gw.recover()
    await link.start()
    return gw
