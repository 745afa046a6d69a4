"""The power-cut shim itself: what was fsynced stays, everything else is undone.

Each case runs a small Python program with the shim preloaded (the changes go through
the C library as the gateway's do), then reverts and reads the files back.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _powercut import Reverted, build_shim, revert, shim_env


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(tmp_path_factory.mktemp("shim"))


class Box:
    """A tracked directory, its logs, and a runner of programs under the shim."""

    def __init__(self, shim: Path, tmp: Path) -> None:
        self.dir = tmp / "data"
        self.dir.mkdir()
        self.logs = tmp / "logs"
        self.env = shim_env(shim, self.dir, self.logs)

    def run(self, code: str, killed: bool = False) -> None:
        """Run ``code`` (``D`` is the tracked directory); ``killed``: it ends with SIGKILL."""
        prog = "import os\nD = " + repr(str(self.dir)) + "\n" + textwrap.dedent(code)
        rc = subprocess.run([sys.executable, "-c", prog], env=self.env, timeout=60).returncode
        assert rc == (-9 if killed else 0)

    def cut(self) -> Reverted:
        return revert(self.dir, self.logs)

    def read(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()


@pytest.fixture
def box(shim: Path, tmp_path: Path) -> Box:
    return Box(shim, tmp_path)


DURABLE = """
def durable(name, data):
    fd = os.open(os.path.join(D, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    return fd
"""


def test_write_without_fsync_is_gone(box: Box) -> None:
    box.run(DURABLE + """
fd = durable("f", b"kept")
os.write(fd, b"+lost")
with open(os.path.join(D, "fresh"), "wb") as f:  # created and written, never synced
    f.write(b"never synced")
""")
    assert box.read("f") == b"kept+lost"
    r = box.cut()
    assert box.read("f") == b"kept"
    assert not (box.dir / "fresh").exists()
    assert r.bytes_dropped == len(b"+lost") + len(b"never synced")


def test_write_then_fsync_is_kept(box: Box) -> None:
    box.run(DURABLE + """
fd = durable("f", b"one")
os.write(fd, b"two")
os.fdatasync(fd)
""")
    r = box.cut()
    assert box.read("f") == b"onetwo"
    assert r.bytes_dropped == 0 and r.records == 0


def test_pwrite_in_the_middle_and_past_the_end_is_reverted(box: Box) -> None:
    box.run(DURABLE + """
fd = durable("f", b"0123456789")
os.pwrite(fd, b"XX", 3)
os.pwrite(fd, b"YYYY", 8)
os.pwritev(fd, [b"a", b"b"], 0)
""")
    assert box.read("f") == b"ab2XX567YYYY"
    box.cut()
    assert box.read("f") == b"0123456789"


def test_o_append_and_writev(box: Box) -> None:
    box.run(DURABLE + """
os.close(durable("f", b""))
fd = os.open(os.path.join(D, "f"), os.O_WRONLY | os.O_APPEND)
os.lseek(fd, 0, os.SEEK_SET)  # O_APPEND writes at the end whatever the position
os.write(fd, b"r1;")
os.fsync(fd)
os.write(fd, b"r2;")
os.writev(fd, [b"r3", b";"])
""")
    assert box.read("f") == b"r1;r2;r3;"
    box.cut()
    assert box.read("f") == b"r1;"


def test_ftruncate_and_o_trunc_are_reverted(box: Box) -> None:
    box.run(DURABLE + """
os.close(durable("a", b"abcdefgh"))
os.close(durable("b", b"old contents"))
fd = os.open(os.path.join(D, "a"), os.O_RDWR)
os.ftruncate(fd, 3)
os.ftruncate(fd, 20)
with open(os.path.join(D, "b"), "wb") as f:
    f.write(b"new")
""")
    assert box.read("a") == b"abc" + bytes(17) and box.read("b") == b"new"
    box.cut()
    assert box.read("a") == b"abcdefgh"
    assert box.read("b") == b"old contents"


def test_creation_durable_by_directory_fsync_and_rename(box: Box) -> None:
    box.run(DURABLE + """
fd = os.open(os.path.join(D, "entry"), os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"content not synced")
dfd = os.open(D, os.O_RDONLY)
os.fsync(dfd)  # the name is durable, the content is not
os.close(durable("target", b"old"))
os.close(durable("tmp", b"replacement"))
os.replace(os.path.join(D, "tmp"), os.path.join(D, "target"))
""")
    box.cut()
    assert box.read("entry") == b""
    assert box.read("target") == b"replacement" and not (box.dir / "tmp").exists()


def test_files_outside_the_directory_are_untouched(box: Box, tmp_path: Path) -> None:
    other = tmp_path / "other"
    box.run(f"""
with open({str(other)!r}, "wb") as f:
    f.write(b"not tracked")
""")
    box.cut()
    assert other.read_bytes() == b"not tracked"


@pytest.mark.parametrize("synchronous", ["FULL", "OFF"])
def test_sqlite_commits(box: Box, synchronous: str) -> None:
    """SQLite in WAL mode through the shim: FULL keeps every commit, OFF loses them."""
    box.run(f"""
import sqlite3
c = sqlite3.connect(os.path.join(D, "t.db"), isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
c.execute("PRAGMA synchronous=FULL")
c.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, v BLOB)")
c.execute("PRAGMA synchronous={synchronous}")
for i in range(200):
    c.execute("INSERT INTO t VALUES (?, ?)", (i, bytes(100)))
os.kill(os.getpid(), 9)
""", killed=True)
    box.cut()
    c = sqlite3.connect(box.dir / "t.db")
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n = c.execute("SELECT count(*) FROM t").fetchone()[0]
    c.close()
    assert n == (200 if synchronous == "FULL" else 0)
