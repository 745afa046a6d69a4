"""Message stores: the shared contract, persistence, torn-tail recovery, kill -9 durability."""

from __future__ import annotations

import datetime as dt
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfix.errors import StoreError
from fastfix.settings import SessionID, SessionSettings
from fastfix.store import FileStore, MemoryStore, MessageStore, SqliteStore, store_from_settings

SID = SessionID("FIX.4.4", "GW", "HUB")


def _msg(seq: int) -> bytes:
    # distinct, variable-length payloads; SOH and newlines inside must survive
    return b"8=FIX.4.4\x019=5\x0135=D\x0134=%d\x0158=%s\x01\n10=000\x01" % (seq, b"x" * (seq % 97))


Factory = Callable[[Path, str], MessageStore]
FACTORIES: dict[str, Factory] = {
    "memory": lambda d, sync: MemoryStore(),
    "file": lambda d, sync: FileStore.for_session(d, SID, sync),
    "sqlite": lambda d, sync: SqliteStore.for_session(d / "fix.db", SID, sync),
}
DURABLE = ["file", "sqlite"]


@pytest.fixture(params=list(FACTORIES))
def kind(request) -> str:
    return request.param


@pytest.mark.parametrize("sync", ["Y", "N", "batch"])
def test_contract(kind: str, sync: str, tmp_path: Path):
    with FACTORIES[kind](tmp_path, sync) as st:
        assert st.next_sender_seq == 1 and st.next_target_seq == 1
        created = st.creation_time
        assert created.tzinfo is not None and created.utcoffset() == dt.timedelta(0)
        assert abs(dt.datetime.now(dt.UTC) - created) < dt.timedelta(minutes=1)
        for seq in range(1, 11):
            st.save(seq, _msg(seq))
            st.incr_next_sender_seq()
        st.incr_next_target_seq()
        st.flush()
        assert st.next_sender_seq == 11 and st.next_target_seq == 2
        assert st.get_range(3, 5) == [(3, _msg(3)), (4, _msg(4)), (5, _msg(5))]
        assert [s for s, _ in st.get_range(8, 0)] == [8, 9, 10]
        assert st.get_range(11, 20) == [] and st.get_range(0, 1) == [(1, _msg(1))]
        st.save(4, b"replaced")
        assert st.get_range(4, 4) == [(4, b"replaced")]
        st.save_sent(11, _msg(11))
        assert st.next_sender_seq == 12 and st.next_target_seq == 2
        assert st.get_range(11, 0) == [(11, _msg(11))]
        st.set_next_sender_seq(100)
        st.set_next_target_seq(50)
        assert (st.next_sender_seq, st.next_target_seq) == (100, 50)
        st.reset()
        assert (st.next_sender_seq, st.next_target_seq) == (1, 1)
        assert st.get_range(1, 0) == []
        assert st.creation_time >= created


def test_sparse_range_with_huge_bounds(kind: str, tmp_path: Path):
    with FACTORIES[kind](tmp_path, "N") as st:
        st.save(5, b"a")
        st.save(1_000_000, b"b")
        assert st.get_range(1, 0) == [(5, b"a"), (1_000_000, b"b")]
        assert st.get_range(6, 2_000_000_000) == [(1_000_000, b"b")]


@pytest.mark.parametrize("kind", DURABLE)
@pytest.mark.parametrize("sync", ["Y", "N", "batch"])
def test_reopen_keeps_everything(kind: str, sync: str, tmp_path: Path):
    st = FACTORIES[kind](tmp_path, sync)
    for seq in range(1, 6):
        st.save(seq, _msg(seq))
        st.incr_next_sender_seq()
    st.set_next_target_seq(7)
    st.save_sent(6, _msg(6))
    created = st.creation_time
    st.close()
    st = FACTORIES[kind](tmp_path, sync)
    assert (st.next_sender_seq, st.next_target_seq) == (7, 7)
    assert st.get_range(1, 0) == [(s, _msg(s)) for s in range(1, 7)]
    assert abs(st.creation_time - created) < dt.timedelta(microseconds=1)
    st.reset()
    new_created = st.creation_time
    st.close()
    st = FACTORIES[kind](tmp_path, sync)
    assert (st.next_sender_seq, st.next_target_seq) == (1, 1) and st.get_range(1, 0) == []
    assert abs(st.creation_time - new_created) < dt.timedelta(microseconds=1)
    st.refresh()
    assert st.next_sender_seq == 1
    st.close()


def test_sqlite_sessions_are_separate(tmp_path: Path):
    a = SqliteStore(tmp_path / "fix.db", "A")
    b = SqliteStore(tmp_path / "fix.db", "B")
    a.save(1, b"one")
    a.incr_next_sender_seq()
    assert b.next_sender_seq == 1 and b.get_range(1, 0) == []
    b.reset()
    assert a.get_range(1, 0) == [(1, b"one")]
    a.close()
    b.close()
    assert sqlite3.connect(tmp_path / "fix.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_file_store_is_locked(tmp_path: Path):
    st = FileStore.for_session(tmp_path, SID)
    with pytest.raises(StoreError, match="in use"):
        FileStore.for_session(tmp_path, SID)
    st.close()
    FileStore.for_session(tmp_path, SID).close()


def test_file_store_rejects_foreign_file(tmp_path: Path):
    (tmp_path / f"{SID.file_prefix}.store").write_bytes(b"this is not a store at all")
    with pytest.raises(StoreError, match="not a fastfix store"):
        FileStore.for_session(tmp_path, SID)


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_file_store_truncates_torn_tail(tmp_path: Path, cut: int):
    st = FileStore.for_session(tmp_path, SID)
    for seq in range(1, 4):
        st.save(seq, _msg(seq))
        st.incr_next_sender_seq()
    st.close()
    path = tmp_path / f"{SID.file_prefix}.store"
    good = path.stat().st_size
    # a fourth message whose record is cut short, as by a crash mid-write
    st = FileStore.for_session(tmp_path, SID)
    st.save(4, _msg(4))
    st.close()
    with open(path, "r+b") as f:
        f.truncate(good + cut)
    st = FileStore.for_session(tmp_path, SID)
    assert st.recovered_bytes == cut
    assert path.stat().st_size == good
    assert st.next_sender_seq == 4 and [s for s, _ in st.get_range(1, 0)] == [1, 2, 3]
    st.save(4, b"again")  # appends follow the good data
    st.close()
    st = FileStore.for_session(tmp_path, SID)
    assert st.recovered_bytes == 0 and st.get_range(4, 4) == [(4, b"again")]
    st.close()


def test_file_store_truncates_bad_crc(tmp_path: Path):
    st = FileStore.for_session(tmp_path, SID)
    st.save(1, _msg(1))
    st.save(2, b"Z" * 50)
    st.close()
    path = tmp_path / f"{SID.file_prefix}.store"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip a byte inside the last record's payload
    path.write_bytes(bytes(data))
    st = FileStore.for_session(tmp_path, SID)
    assert st.recovered_bytes > 0 and st.get_range(1, 0) == [(1, _msg(1))]
    st.close()


def test_store_from_settings(tmp_path: Path):
    base = {"ConnectionType": "acceptor", "SocketAcceptPort": 0, "BeginString": "FIX.4.4"}
    sess = {"SenderCompID": "GW", "TargetCompID": "HUB"}

    def make(**extra) -> MessageStore:
        ss = SessionSettings.from_dict([{**sess, **extra}], default=base)
        sid, s = next(iter(ss.sessions().items()))
        return store_from_settings(sid, s)

    assert isinstance(make(), MemoryStore)
    st = make(FileStorePath=str(tmp_path / "fs"), FileStoreSync="batch")
    assert isinstance(st, FileStore) and st._sync == "batch"
    assert st.path == tmp_path / "fs" / "FIX.4.4-GW-HUB.store"
    st.close()
    st = make(SQLiteStorePath=str(tmp_path / "db.sqlite"))
    assert isinstance(st, SqliteStore)
    st.close()
    st = make(FileStorePath=str(tmp_path / "fs"), MessageStore="memory")
    assert isinstance(st, MemoryStore)


# ---------------------------------------------------------------- kill -9 durability

_CHILD = r"""
import sys
from fastfix.settings import SessionID
from fastfix.store import FileStore, SqliteStore
kind, directory, sync = sys.argv[1:4]
sid = SessionID("FIX.4.4", "GW", "HUB")
st = (FileStore.for_session(directory, sid, sync) if kind == "file"
      else SqliteStore.for_session(directory + "/fix.db", sid, sync))
out = sys.stdout
for seq in range(1, 1_000_000):
    raw = b"8=FIX.4.4\x0134=%d\x0158=%s\x01" % (seq, b"p" * (seq % 300))
    if seq % 2:
        st.save_sent(seq, raw)
    else:
        st.save(seq, raw)
        st.incr_next_sender_seq()
    if seq % 3 == 0:
        st.incr_next_target_seq()
    if sync != "batch" or seq % 7 == 0:
        st.flush()  # sync point: everything up to seq must survive
        out.write("%d\n" % seq)
        out.flush()
"""


def _expected(seq: int) -> bytes:
    return b"8=FIX.4.4\x0134=%d\x0158=%s\x01" % (seq, b"p" * (seq % 300))


@pytest.mark.parametrize("kind", DURABLE)
@pytest.mark.parametrize("sync", ["N", "batch"])
def test_survives_kill_9_mid_writes(kind: str, sync: str, tmp_path: Path):
    target_acks = 1500
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, kind, str(tmp_path), sync],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    last_ack = 0
    try:
        deadline = time.monotonic() + 60
        buf = b""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while last_ack < target_acks and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
                continue
            chunk = os.read(fd, 65536)
            assert chunk, proc.stderr.read().decode()  # type: ignore[union-attr]
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if lines:
                last_ack = int(lines[-1])
        # the child is still writing: kill it mid-stream
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert last_ack >= target_acks, "child did not get far enough in time"
    assert proc.returncode == -signal.SIGKILL

    st = FACTORIES[kind](tmp_path, sync)
    try:
        messages = st.get_range(1, 0)
        top = messages[-1][0]
        # every acknowledged save is there, and nothing is corrupt or out of place
        assert top >= last_ack
        assert messages == [(s, _expected(s)) for s in range(1, top + 1)]
        # sequence numbers are consistent with the messages (a seq update may lag one save)
        assert st.next_sender_seq in (top, top + 1)
        assert st.next_sender_seq - 1 >= last_ack
        assert st.next_target_seq >= 1 + last_ack // 3
        # and the store keeps working
        st.save(top + 1, b"after")
        st.incr_next_sender_seq()
    finally:
        st.close()
    st = FACTORIES[kind](tmp_path, sync)
    assert st.get_range(top + 1, 0) == [(top + 1, b"after")]
    st.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(1, 60), st.integers(1, 200_000)), max_size=80),
       st.integers(0, 70), st.integers(0, 70))
def test_file_store_index_matches_a_dict(seqs: list[int], begin: int, end: int) -> None:
    """The FileStore's compact index (arrays for runs of MsgSeqNums, a dict for the rest)
    answers every range as a plain dict of the same puts would."""
    from fastfix.store import _Locations, _range_from

    index, model = _Locations(), {}
    for k, seq in enumerate(seqs):
        index.put(seq, 1000 + k, k)
        model[seq] = (1000 + k, k)
        assert index.get(seq) == (1000 + k, k)
    for lo, hi in ((begin, end), (begin, 0), (1, 0)):
        assert [(s, (o, n)) for s, o, n in index.between(lo, hi)] == _range_from(model, lo, hi, lambda v: v)
    assert index.get(10**9) is None


def test_file_store_resends_across_a_jump_of_the_numbers(tmp_path: Path) -> None:
    """Messages before and after a jump of MsgSeqNum (SequenceReset) are found again, also after reopening."""
    store = FileStore(tmp_path, "jump", "N")
    for seq in (1, 2, 3, 500_000, 500_001):
        store.save_sent(seq, b"m%d" % seq)
    assert store.get_range(2, 500_000) == [(2, b"m2"), (3, b"m3"), (500_000, b"m500000")]
    store.close()
    again = FileStore(tmp_path, "jump", "N")
    try:
        assert [s for s, _ in again.get_range(1, 0)] == [1, 2, 3, 500_000, 500_001]
        assert again.next_sender_seq == 500_002
    finally:
        again.close()


def test_file_store_batch_writes_one_sequence_record_per_flush(tmp_path: Path) -> None:
    """With FileStoreSync=batch the numbers of a batch of received messages cost one record,
    written at the flush; reopening finds the last numbers."""
    store = FileStore(tmp_path, "b", "batch")
    size = store.path.stat().st_size
    for _ in range(50):
        store.incr_next_target_seq()
    assert store.path.stat().st_size == size  # nothing written before the flush
    store.flush()
    assert store.path.stat().st_size - size == 9 + 16  # one record header + two u64
    store.save_sent(1, b"m1")
    store.incr_next_target_seq()
    store.close()
    again = FileStore(tmp_path, "b", "batch")
    try:
        assert (again.next_target_seq, again.next_sender_seq) == (52, 2)
    finally:
        again.close()
