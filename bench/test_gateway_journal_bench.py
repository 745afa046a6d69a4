"""The gateway's durable point and its projection.

``test_journal_commit_order``: what an order costs at its durable point: stage one
order record and commit it (one ``write`` of one journal record), on the event loop.

``test_projection_apply``: the projection's writer thread applying journal records
to SQLite, ``BATCH`` orders per transaction, into a database that already holds
``PREFILL`` orders, by the shape of the clients' ClOrdIDs (counters or random UUIDs).
``extra_info`` has the WAL bytes written per order: orders are stored by number, so
random ids cost about what counters cost.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from server.gateway import projection as projection_module
from server.gateway.journal import Journal, JournalFile
from server.gateway.orders import Order
from server.gateway.projection import Projection, _apply

PREFILL = 50_000
BATCH = 10
FIX_BODY = b"11=bench:o-1\x0121=1\x0138=10\x0140=2\x0144=70000\x0154=1\x0155=005930\x0160=20240102-09:00:00.000\x01"


def _order(cl: str, now: int) -> Order:
    return Order(client_id="bench", ClOrdID=cl, broker="BRKA", Symbol="005930", Side="1", OrdType="2",
                 OrderQty="10", Price="70000", LeavesQty="10", created_ns=now, updated_ns=now,
                 body_hash="0" * 32, fix_body=FIX_BODY)


def _opened(tmp: Path) -> tuple[JournalFile, Projection, Journal, list[Any]]:
    file = JournalFile(tmp / "gw.journal")
    proj = Projection(tmp / "gw.db")
    records: list[Any] = []
    journal = Journal(file, proj.number, lambda lsn, rows: records.append((lsn, rows)))
    file.open()
    proj.open()
    proj.catch_up(file)
    return file, proj, journal, records


def test_journal_commit_order(benchmark: Any, tmp_path: Path) -> None:
    file, _, journal, records = _opened(tmp_path)
    ids = iter(range(1, 10**9))

    def one() -> None:
        journal.put_order(_order(f"o-{next(ids)}", time.time_ns()))
        journal.commit()
        records.clear()

    try:
        benchmark.pedantic(one, rounds=2000, iterations=1, warmup_rounds=50)
        benchmark.extra_info["journal_bytes_per_order"] = round(
            sum(p.stat().st_size for p in file.segments()) / file.last)
    finally:
        file.close()


@pytest.mark.parametrize("ids", ["counter", "uuid"])
def test_projection_apply(benchmark: Any, tmp_path: Path, monkeypatch: Any, ids: str) -> None:
    monkeypatch.setattr(projection_module, "CHECKPOINT_INTERVAL", 3600.0)
    counter = iter(range(1, 10**9))

    def next_id() -> str:
        n = next(counter)
        return str(uuid.uuid4()) if ids == "uuid" else f"o-{n}"

    file, proj, journal, records = _opened(tmp_path)
    conn = sqlite3.connect(tmp_path / "gw.db", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    for _ in range(PREFILL // 1000):
        now = time.time_ns()
        for _ in range(1000):
            journal.put_order(_order(next_id(), now))
        journal.commit()
    _apply(conn, records)
    records.clear()

    def one_batch() -> None:
        now = time.time_ns()
        for _ in range(BATCH):
            journal.put_order(_order(next_id(), now))
            journal.commit()
        _apply(conn, records)
        records.clear()

    wal = tmp_path / "gw.db-wal"
    before = wal.stat().st_size if wal.exists() else 0
    try:
        benchmark.pedantic(one_batch, rounds=300, iterations=1, warmup_rounds=10)
        grown = (wal.stat().st_size if wal.exists() else 0) - before
        orders = 310 * BATCH
        benchmark.extra_info["orders_per_transaction"] = BATCH
        benchmark.extra_info["prefilled_orders"] = PREFILL
        if grown > 0:
            benchmark.extra_info["wal_bytes_per_order"] = round(grown / orders)
    finally:
        conn.close()
        file.close()
