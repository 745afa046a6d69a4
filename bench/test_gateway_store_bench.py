"""Gateway store: cost of committing new orders, by the shape of the clients' ClOrdIDs.

Each round commits one group of ``BATCH`` new orders (one group commit, as the gateway
makes under load) into a store that already holds ``PREFILL`` orders. ClOrdIDs are
either counters (``o-1``, ``o-2``...) or random UUIDs, as many clients send them.
``extra_info`` has the WAL bytes written per order: orders are stored by number, so
random ids cost about what counters cost (a b-tree keyed by ClOrdID took one page of its
own per order for random ids).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from server.gateway.orders import Order
from server.gateway.store import SQLiteStore
from server.gateway.store import sqlite as sqlite_store

PREFILL = 50_000
BATCH = 10
FIX_BODY = b"11=bench:o-1\x0121=1\x0138=10\x0140=2\x0144=70000\x0154=1\x0155=005930\x0160=20240102-09:00:00.000\x01"


def _order(cl: str, now: int) -> Order:
    return Order(client_id="bench", ClOrdID=cl, broker="BRKA", Symbol="005930", Side="1", OrdType="2",
                 OrderQty="10", Price="70000", LeavesQty="10", created_ns=now, updated_ns=now,
                 body_hash="0" * 32, fix_body=FIX_BODY)


@pytest.mark.parametrize("ids", ["counter", "uuid"])
def test_commit_new_orders(benchmark: Any, tmp_path: Path, monkeypatch: Any, ids: str) -> None:
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 3600.0)  # the WAL only grows: measurable
    counter = iter(range(1, 10**9))

    def next_id() -> str:
        n = next(counter)
        return str(uuid.uuid4()) if ids == "uuid" else f"o-{n}"

    loop = asyncio.new_event_loop()
    store = SQLiteStore(tmp_path / "gw.db")

    async def start() -> None:
        store.start()
        for _ in range(PREFILL // 1000):
            now = time.time_ns()
            for _ in range(1000):
                store.put_order(_order(next_id(), now))
            await store.commit()

    async def one_commit() -> None:
        now = time.time_ns()
        for _ in range(BATCH):
            store.put_order(_order(next_id(), now))
        await store.commit()

    loop.run_until_complete(start())
    wal = tmp_path / "gw.db-wal"
    before = (wal.stat().st_size if wal.exists() else 0, store.commits)
    try:
        benchmark.pedantic(lambda: loop.run_until_complete(one_commit()), rounds=300, iterations=1,
                           warmup_rounds=10)
        grown = (wal.stat().st_size if wal.exists() else 0) - before[0]
        orders = (store.commits - before[1]) * BATCH
        benchmark.extra_info["orders_per_commit"] = BATCH
        benchmark.extra_info["prefilled_orders"] = PREFILL
        if grown > 0 and orders:
            benchmark.extra_info["wal_bytes_per_order"] = round(grown / orders)
    finally:
        loop.run_until_complete(store.close())
        loop.close()
