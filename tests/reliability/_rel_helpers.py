"""Shared pieces of the reliability tests: a deduplicating hub double on a file
store, process gauges (RSS, open descriptors) read from /proc, and the checks
that compare both sides' records after crashes and faults."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _fix_hub import HubDouble, initiator_settings_text
from _gateway_harness import KEYS, GatewayProcess, Http, gateway_toml, ws_connect
from helpers import ALL_DAY, acceptor, fix_settings, session

from fastfix.codec import parse
from fastfix.engine import Acceptor
from fastfix.settings import SessionID, SessionSettings
from server._service import stop_process

__all__ = [
    "KEYS", "GatewayProcess", "Http", "gateway_toml", "ws_connect", "initiator_settings_text",
    "DedupHub", "start_file_hub", "rss_kib", "open_fds", "wait_for", "collect_events",
    "sent_app_messages", "check_event_stream", "ServiceProcess",
]

_REPO = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """``fastfix ROLE --config CONFIG`` run in ``cwd``, its output in ``cwd/ROLE.log``;
    killed with SIGKILL or stopped with SIGTERM, always by its PID."""

    def __init__(self, role: str, cwd: Path, config: Path | str) -> None:
        self.role, self.cwd, self.config = role, cwd, config
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.cwd / f"{self.role}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastfix.cli", self.role, "--config", str(self.config)],
            cwd=self.cwd, stdout=log, stderr=log, env=dict(os.environ, PYTHONPATH=str(_REPO)))
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def log(self) -> str:
        p = self.cwd / f"{self.role}.log"
        return p.read_text(errors="replace") if p.exists() else ""

HUB_SID = SessionID("FIX.4.4", "HUB", "GATEWAY")
GW_SID = SessionID("FIX.4.4", "GATEWAY", "HUB")


class DedupHub(HubDouble):
    """The scripted hub double, deduplicating orders by ClOrdID as a real receiver must.

    Every NewOrderSingle is recorded with its PossDupFlag/PossResend; a ClOrdID seen
    before is not answered again. ``fresh_duplicates`` lists ClOrdIDs that came twice
    without either flag: the sender re-sent an order as if it were new.
    """

    def __init__(self, begin: str = "FIX.4.4") -> None:
        super().__init__(begin)
        self.receipts: dict[str, list[tuple[bool, bool]]] = {}
        self.fresh_duplicates: list[str] = []

    def from_app(self, msg: Any, session_id: Any) -> None:
        if msg.msg_type == b"D":
            cl = (msg.get(11) or b"").decode()
            flags = (msg.get(43) == b"Y", msg.get(97) == b"Y")
            seen = self.receipts.setdefault(cl, [])
            seen.append(flags)
            if len(seen) > 1:
                if not any(flags):
                    self.fresh_duplicates.append(cl)
                self.sid = session_id
                return
        super().from_app(msg, session_id)


def hub_settings(workdir: Path, begin: str = "FIX.4.4", heartbeat: int = 5) -> SessionSettings:
    """Acceptor HUB<-GATEWAY with a durable file store (the store survives gateway crashes)."""
    return SessionSettings.from_string(fix_settings(
        session(begin, "HUB", "GATEWAY"), **acceptor(), **ALL_DAY, HeartBtInt=heartbeat,
        UseDataDictionary=True, FileStorePath=workdir / "hubstore"))


async def start_file_hub(workdir: Path, begin: str = "FIX.4.4") -> tuple[Acceptor, DedupHub]:
    app = DedupHub(begin)
    acceptor = Acceptor(hub_settings(workdir, begin), app, host="127.0.0.1", port=0)
    await acceptor.start()
    return acceptor, app


def sent_app_messages(store: Any, msg_type: bytes = b"8") -> list[Any]:
    """Parsed application messages of ``msg_type`` a FIX store holds as sent (one per seq)."""
    out = []
    for _, raw in store.get_range(1, 0):
        m = parse(raw)
        if m.msg_type == msg_type:
            out.append(m)
    return out


# ------------------------------------------------------------------ process gauges


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def wait_for(pred: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``pred()`` (sync or async) until true; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = pred()
        if asyncio.iscoroutine(res):
            res = await res
        if res:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def collect_events(ws_port: int, key: str, until: Any, timeout: float) -> list[dict[str, Any]]:
    """Every ``message`` frame from ``since=0`` until ``until(frames)`` is true (or timeout)."""
    ws = await ws_connect(ws_port, key, since=0)
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        for _ in range(1_000_000):
            if until(frames):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), left))
            except TimeoutError:
                break
            if frame["type"] == "message":
                frames.append(frame)
            elif frame["type"] == "error":
                raise AssertionError(f"stream error: {frame}")
    finally:
        await ws.close()
    return frames


def check_event_stream(frames: list[dict[str, Any]], expected_exec_ids: set[str]) -> None:
    """Sequence numbers 1..N without gap or repeat; each ExecID delivered exactly once."""
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(1, len(seqs) + 1)), f"sequence gap or repeat: {_first_break(seqs)}"
    ids = [f["message"]["Body"].get("ExecID") for f in frames if f["message"]["Header"].get("MsgType") == "8"]
    dup = [i for i, n in Counter(ids).items() if n > 1]
    assert not dup, f"ExecutionReports delivered twice: {dup[:10]}"
    missing = expected_exec_ids - set(ids)
    assert not missing, f"{len(missing)} ExecutionReports never reached the client: {sorted(missing)[:10]}"
    extra = set(ids) - expected_exec_ids
    assert not extra, f"reports the hub never sent: {sorted(extra)[:10]}"


def _first_break(seqs: list[int]) -> str:
    for i, s in enumerate(seqs):
        if s != i + 1:
            return f"position {i}: expected {i + 1}, got {s} (around {seqs[max(0, i - 2):i + 3]})"
    return "none"
