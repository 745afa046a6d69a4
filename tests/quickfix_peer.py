"""Run QuickFIX C++ example acceptors (``executor``, ``ordermatch``) as FIX peers.

Debian's ``libquickfix-doc`` ships the example programs gzipped under
``/usr/share/doc/libquickfix-doc/examples``; they need ``libquickfix17``. This
module unpacks them to a temporary directory, writes a QuickFIX settings file,
starts the program on a free loopback port with its own file store, and stops it
by PID.

- ``executor`` (FIX.4.0–5.0): fills every limit NewOrderSingle at its price with
  one ExecutionReport (ExecType F/2, OrdStatus 2); other order types are rejected.
- ``ordermatch`` (FIX.4.2 only): a real order book; reports New, then fills.

>>> with QuickFixPeer("executor", [("FIX.4.4", "EXEC", "CLIENT")]) as peer:  # doctest: +SKIP
...     connect_to("127.0.0.1", peer.port)
"""

from __future__ import annotations

import atexit
import gzip
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fastfix.settings import SessionSettings

EXAMPLES = Path("/usr/share/doc/libquickfix-doc/examples")
PROGRAMS = {
    "executor": EXAMPLES / "executor" / "C++" / ".libs" / "executor.gz",
    "ordermatch": EXAMPLES / "ordermatch" / ".libs" / "ordermatch.gz",
}
LIBRARY_GLOB = ("/usr/lib/*/libquickfix.so.17*", "/lib/*/libquickfix.so.17*")

_bin_dir: Path | None = None


def available(program: str = "executor") -> bool:
    """True if the gzipped example and the QuickFIX shared library are installed."""
    import glob

    return PROGRAMS[program].is_file() and any(glob.glob(g) for g in LIBRARY_GLOB)


SKIP_REASON = "QuickFIX C++ examples not installed (apt-get install libquickfix-doc libquickfix17)"


def binary(program: str) -> Path:
    """Path of the unpacked, executable example (unpacked once per process)."""
    global _bin_dir
    if _bin_dir is None:
        _bin_dir = Path(tempfile.mkdtemp(prefix="fastfix-qf-bin-"))
        atexit.register(shutil.rmtree, _bin_dir, True)
    exe = _bin_dir / program
    if not exe.exists():
        tmp = exe.with_suffix(".tmp")
        with gzip.open(PROGRAMS[program], "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.chmod(0o755)
        tmp.rename(exe)
    return exe


def free_port() -> int:
    """A loopback port that was free a moment ago (QuickFIX needs a concrete port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuickFixPeer:
    """One QuickFIX C++ acceptor process.

    ``sessions``: ``(BeginString, SenderCompID, TargetCompID)`` as the peer sees
    them (its SenderCompID is our TargetCompID). ``settings`` adds or overrides
    ``[DEFAULT]`` keys. The file store lives in ``workdir/store`` and survives
    :meth:`restart`; the program's screen log goes to ``workdir/stdout.log``.
    """

    def __init__(
        self,
        program: str = "executor",
        sessions: Iterable[tuple[str, str, str]] = (("FIX.4.4", "EXEC", "CLIENT"),),
        settings: Mapping[str, Any] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        show_messages: bool = False,
    ):
        if program not in PROGRAMS:
            raise ValueError(f"unknown program {program!r}; expected one of {list(PROGRAMS)}")
        self.program = program
        self.sessions = list(sessions)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"fastfix-qf-{program}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store_dir = self.workdir / "store"
        self.stdout_path = self.workdir / "stdout.log"
        self.config_path = self.workdir / f"{program}.cfg"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._extra = dict(settings or {})
        self._show = show_messages

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def settings_text(self) -> str:
        default: dict[str, Any] = {
            "ConnectionType": "acceptor",
            "SocketAcceptAddress": "127.0.0.1",
            "SocketAcceptPort": self.port,
            "StartTime": "00:00:00",
            "EndTime": "00:00:00",
            "FileStorePath": str(self.store_dir),
            "UseDataDictionary": "N",
            "SocketNodelay": "Y",
            "ScreenLogShowIncoming": self._show,
            "ScreenLogShowOutgoing": self._show,
            "ScreenLogShowEvents": "Y",
            **self._extra,
        }
        sessions = [
            {"BeginString": b, "SenderCompID": s, "TargetCompID": t} for b, s, t in self.sessions
        ]
        # Validated by our own settings parser: the same format QuickFIX reads.
        return SessionSettings.from_dict(sessions, default=default).to_string()

    def start(self, timeout: float = 15.0) -> QuickFixPeer:
        """Start on a free port; returns once the port accepts connections."""
        if self.proc is not None:
            raise RuntimeError("already running")
        exe = binary(self.program)
        last_error = ""
        for _attempt in range(5):  # the free port may be taken between probe and bind
            if not self.port or _attempt:
                self.port = free_port()
            self.config_path.write_text(self.settings_text())
            with open(self.stdout_path, "ab") as out:
                # ordermatch reads commands on stdin; an open pipe keeps it idle.
                self.proc = subprocess.Popen(
                    [str(exe), str(self.config_path)],
                    cwd=self.workdir,
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_listening(timeout):
                return self
            last_error = self.stdout_path.read_text(errors="replace")[-2000:]
            self.stop()
        raise RuntimeError(f"{self.program} did not start listening: {last_error}")

    def _wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if _listening(self.proc.pid, self.port):
                return True
            time.sleep(0.02)  # polling a child process's readiness, not synchronising tests
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL) by its PID."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=timeout)
        finally:
            if proc.stdin:
                proc.stdin.close()

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            if proc.stdin:
                proc.stdin.close()

    def restart(self, timeout: float = 15.0) -> QuickFixPeer:
        """Stop and start again on the same port with the same store."""
        self.stop()
        return self.start(timeout)

    def output(self) -> str:
        """What the program printed so far (its screen log)."""
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> QuickFixPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _listening(pid: int, port: int) -> bool:
    """True if ``port`` is in LISTEN state on loopback (read from /proc, no connection made)."""
    want = f":{port:04X}"
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(want) and parts[3] == "0A":
                        return True
        except (FileNotFoundError, StopIteration):
            continue
    return False
