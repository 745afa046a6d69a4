"""Fixtures of the cluster tests: a NATS cluster per module, a PostgreSQL database per test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from _nats_cluster import NatsCluster, PgDatabase


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    c = NatsCluster(tmp_path_factory.mktemp("nats"))
    c.start()
    try:
        asyncio.run(c.wait_ready())
        yield c
    finally:
        c.stop()


@pytest.fixture
def pg_db() -> Iterator[PgDatabase]:
    db = PgDatabase()
    asyncio.run(db.create())
    try:
        yield db
    finally:
        asyncio.run(db.drop())
