"""A power cut on demand for processes run with ``powercut_shim.c`` preloaded.

:func:`build_shim` compiles the shim with gcc (into a temporary directory, never into the
tree); :func:`shim_env` is the environment that makes a process keep undo logs for the files
under a directory; after every such process is killed, :func:`revert` applies the logs so
the directory holds exactly what had been fsynced (see the shim's header for the model:
a file's own fsync persists its creation, renames and unlinks are durable when made,
SQLite's ``-shm`` index is deleted as a restart after a power cut would find it stale).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SHIM_SOURCE = Path(__file__).with_name("powercut_shim.c")
_HEAD = struct.Struct("<cQQQ")


def build_shim(out_dir: Path) -> Path:
    """``powercut.so`` compiled from the shim's source into ``out_dir`` (skips without gcc)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the power-cut shim")
    so = out_dir / "powercut.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(so), str(SHIM_SOURCE), "-ldl", "-lpthread"],
                   check=True, capture_output=True, timeout=120)
    return so


def shim_env(so: Path, tracked: Path, logs: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process whose changes under ``tracked`` are logged into ``logs``."""
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if base is None else base)
    env.update(LD_PRELOAD=str(so), POWERCUT_DIR=str(tracked), POWERCUT_LOG=str(logs))
    return env


@dataclass
class Reverted:
    """What :func:`revert` undid."""

    records: int = 0  # undo records applied
    bytes_dropped: int = 0  # bytes written after the last fsync, now gone (file sizes shrunk)
    removed: list[Path] = field(default_factory=list)  # files whose creation was not durable
    files: dict[Path, int] = field(default_factory=dict)  # path -> bytes it lost
    mapped: list[Path] = field(default_factory=list)  # files changed through shared mappings


def _records(data: bytes, name: str) -> list[tuple[int, int, bytes]]:
    out = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _HEAD.size:
            raise ValueError(f"{name}: undo record cut short at {pos}")
        kind, off, size, n = _HEAD.unpack_from(data, pos)
        if kind != b"U" or pos + _HEAD.size + n > len(data):
            raise ValueError(f"{name}: bad undo record at {pos}")
        out.append((off, size, data[pos + _HEAD.size:pos + _HEAD.size + n]))
        pos += _HEAD.size + n
    return out


def revert(tracked: Path, logs: Path) -> Reverted:
    """Undo every change the logs hold (the processes must be dead), then clear the logs."""
    files: dict[tuple[int, int], Path] = {}
    for root, _, names in os.walk(tracked):
        for name in names:
            p = Path(root, name)
            st = p.lstat()
            if p.is_file() and not p.is_symlink():
                files[(st.st_dev, st.st_ino)] = p
    out = Reverted()
    entries = sorted(logs.iterdir()) if logs.exists() else []
    for log in entries:
        dev, _, ino = log.stem.partition("_")
        path = files.get((int(dev), int(ino)))
        if log.suffix == ".undo" and path is not None:
            recs = _records(log.read_bytes(), str(log))
            before = path.stat().st_size
            with open(path, "r+b") as f:
                for off, size, old in reversed(recs):
                    f.truncate(size)
                    f.seek(off)
                    f.write(old)
            out.records += len(recs)
            lost = max(0, before - path.stat().st_size)
            out.bytes_dropped += lost
            out.files[path] = lost
        elif log.suffix == ".mapped" and path is not None:
            out.mapped.append(path)
    for log in entries:
        if log.suffix == ".new":
            dev, _, ino = log.stem.partition("_")
            path = files.get((int(dev), int(ino)))
            if path is not None and path.exists():
                out.bytes_dropped += path.stat().st_size
                path.unlink()
                out.removed.append(path)
        log.unlink()
    for p in tracked.rglob("*-shm"):
        p.unlink()
    return out
