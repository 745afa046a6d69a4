"""Message stores: cost of persisting one outgoing message (save + incr_next_sender_seq).

Policies: ``Y`` = fsync every write, ``N`` = every write handed to the OS,
``batch`` = buffered, flushed once per 16 messages (one event-loop tick's worth).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fastfix.settings import SessionID
from fastfix.store import FileStore, MemoryStore, MessageStore, SqliteStore

SID = SessionID("FIX.4.4", "GW", "HUB")
# A typical NewOrderSingle (~200 bytes).
RAW = (
    b"8=FIX.4.4\x019=178\x0135=D\x0134=1\x0149=GW\x0152=20240102-00:00:00.000\x0156=HUB\x01"
    b"11=ORD-0000000001\x011=ACCT-1\x0121=1\x0155=005930\x0154=1\x0160=20240102-00:00:00.000\x01"
    b"38=100\x0140=2\x0144=71500\x0159=0\x01128=BROKER1\x01207=XKRX\x0110=123\x01"
)
BATCH = 16

STORES: dict[str, Callable[[Path, str], MessageStore]] = {
    "memory": lambda d, sync: MemoryStore(),
    "file": lambda d, sync: FileStore.for_session(d, SID, sync),
    "sqlite": lambda d, sync: SqliteStore.for_session(d / "fix.db", SID, sync),
}


@pytest.mark.parametrize(
    "kind,sync",
    [("memory", "N"), ("file", "N"), ("file", "batch"), ("file", "Y"),
     ("sqlite", "N"), ("sqlite", "batch"), ("sqlite", "Y")],
)  # fmt: skip
def test_save_and_incr(benchmark, tmp_path: Path, kind: str, sync: str):
    store = STORES[kind](tmp_path, sync)
    state = {"seq": 1}

    def one_message() -> None:
        seq = state["seq"]
        store.save(seq, RAW)
        store.incr_next_sender_seq()
        if seq % BATCH == 0:
            store.flush()
        state["seq"] = seq + 1

    rounds = 300 if sync == "Y" else 20_000
    try:
        benchmark.pedantic(one_message, rounds=rounds, iterations=1, warmup_rounds=10)
    finally:
        store.close()
    benchmark.extra_info.update(store=kind, sync=sync, message_bytes=len(RAW))
    # the measured writes really landed
    reopened = STORES[kind](tmp_path, sync)
    try:
        assert kind == "memory" or reopened.next_sender_seq == state["seq"]
    finally:
        reopened.close()


@pytest.mark.parametrize("kind,sync", [("file", "N"), ("file", "Y"), ("sqlite", "N")])
def test_save_sent(benchmark, tmp_path: Path, kind: str, sync: str):
    """The combined call (one record / one commit per outgoing message)."""
    store = STORES[kind](tmp_path, sync)
    state = {"seq": 1}

    def one_message() -> None:
        seq = state["seq"]
        store.save_sent(seq, RAW)
        state["seq"] = seq + 1

    try:
        benchmark.pedantic(one_message, rounds=300 if sync == "Y" else 20_000, iterations=1)
    finally:
        store.close()
    benchmark.extra_info.update(store=kind, sync=sync, message_bytes=len(RAW))


def test_get_range_resend_100(benchmark, tmp_path: Path):
    """Reading back 100 messages for a ResendRequest from a 10,000-message file store."""
    store = FileStore.for_session(tmp_path, SID, "N")
    for seq in range(1, 10_001):
        store.save(seq, RAW)
    try:
        out = benchmark(store.get_range, 5000, 5099)
        assert len(out) == 100
    finally:
        store.close()
