"""The journal (the durable point) and its SQLite projection, without a network.

Records written by :class:`Journal` are applied by the projection's writer thread;
after a crash (no close, projection behind), :meth:`Projection.catch_up` applies
what it missed. A record torn at the end is cut off; damage elsewhere stops the
gateway with the file and offset named, and nothing is changed on disk.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from pathlib import Path

import pytest

from fastfix.errors import StoreError
from server.gateway.journal import Journal, JournalFile
from server.gateway.orders import Execution, Order, OrderList
from server.gateway.projection import OrderFilter, Projection


class Durable:
    """A journal and its projection, opened as the gateway opens them."""

    def __init__(self, tmp: Path, sync: str = "normal", segment_bytes: int = 64 << 20) -> None:
        self.file = JournalFile(tmp / "gw.journal", sync, segment_bytes)
        self.proj = Projection(tmp / "gw.db", sync)
        self.journal = Journal(self.file, self.proj.number)

    def open(self) -> int:
        self.file.open()
        self.proj.open()
        return self.proj.catch_up(self.file)

    async def start(self) -> Durable:
        self.open()
        self.proj.start(self.file)
        return self

    async def close(self) -> None:
        self.journal.commit()
        self.file.close()
        await self.proj.close()

    def crash(self) -> None:
        """What kill -9 leaves: the files as written, nothing flushed or closed."""
        os.close(self.file._fd)
        self.file._fd = -1


def order(i: int, client: str = "c", **kw: object) -> Order:
    fields: dict[str, object] = {"Symbol": "005930", "created_ns": i, "updated_ns": i, **kw}
    return Order(client_id=client, ClOrdID=f"o{i}", broker="B", **fields)  # type: ignore[arg-type]


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_records_reach_the_projection_and_survive_a_restart(tmp_path: Path) -> None:
    async def first() -> None:
        d = await Durable(tmp_path).start()
        for i in range(200):
            d.journal.put_order(order(i))
            d.journal.put_event("c", i + 1, b'{"seq":%d}' % (i + 1), i)
            assert d.journal.commit() == i + 1  # one record per commit, numbered
        o = order(0, OrdStatus="2", updated_ns=5)
        d.journal.put_order(o)
        d.journal.put_execution(o, Execution(ExecID="E1", ExecType="F", OrdStatus="2", received_ns=5))
        d.journal.put_execution(o, Execution(ExecID="E1", ExecType="F", OrdStatus="2", received_ns=6))
        d.journal.put_alias("c", "o0-cxl", "o0", "cancel")
        d.journal.put_list(OrderList(client_id="c", ListID="L1", broker="B", members=["o1"]))
        d.journal.put_resume_point("S", "1:7")
        d.journal.commit()
        await d.proj.wait_applied()
        assert d.proj.applied == 201 and d.proj.lag == 0
        await d.close()

    async def second() -> None:
        d = await Durable(tmp_path).start()
        try:
            p = d.proj
            assert p.last_seqs() == {"c": 200}
            assert [r.seq for r in p.events_since("c", 195, 10)] == [196, 197, 198, 199, 200]
            assert p.get_order("c", "o0").OrdStatus == "2"  # type: ignore[union-attr]
            assert len(p.executions("c", "o0")) == 1  # the same ExecID once
            assert p.get_alias("c", "o0-cxl") == ("o0", "cancel")
            assert [ol.ListID for ol in p.open_lists()] == ["L1"]
            assert p.resume_points() == {"S": "1:7"}
            assert len(list(p.open_orders())) == 199
            o10 = p.get_order("c", "o10")
            assert o10 is not None and o10.num > 0
            page = p.list_orders("c", OrderFilter(limit=3, after=(10, o10.num)))
            assert [o.ClOrdID for o in page] == ["o11", "o12", "o13"]
            assert p.list_orders("c", OrderFilter(status="2"))[0].ClOrdID == "o0"
            assert p.list_orders("other", OrderFilter()) == []
            assert d.journal.commit() == 201  # nothing staged: no record
        finally:
            await d.close()

    run(first())
    run(second())


def test_a_crash_before_the_projection_loses_nothing(tmp_path: Path) -> None:
    """Records journaled but never applied (the writer had not run) are applied at the
    next start, and numbering goes on after them."""
    d = Durable(tmp_path)
    d.open()  # the writer thread never starts: everything stays behind the journal
    for i in range(50):
        d.journal.put_order(order(i))
        d.journal.put_event("c", i + 1, b"{}", i)
        d.journal.commit()
    d.crash()
    assert not sqlite3.connect(tmp_path / "gw.db").execute("SELECT COUNT(*) FROM orders").fetchone()[0]

    async def again() -> None:
        d2 = Durable(tmp_path)
        assert d2.open() == 50
        d2.proj.start(d2.file)
        try:
            assert d2.proj.last_seqs() == {"c": 50}
            assert d2.proj.get_order("c", "o49") is not None
            o = order(99)
            d2.journal.put_order(o)
            assert o.num == 51
            assert d2.journal.commit() == 51
        finally:
            await d2.close()

    run(again())


def _segment(tmp: Path) -> Path:
    return sorted((tmp / "gw.journal").glob("*.journal"))[-1]


def test_a_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    d = Durable(tmp_path)
    d.open()
    for i in range(3):
        d.journal.put_order(order(i))
        d.journal.commit()
    d.crash()
    seg = _segment(tmp_path)
    data = seg.read_bytes()
    seg.write_bytes(data[:-5])  # the last record half-written
    d2 = Durable(tmp_path)
    assert d2.open() == 2
    assert d2.file.recovered_bytes > 0 and d2.file.last == 2
    assert d2.proj.get_order("c", "o1") is not None and d2.proj.get_order("c", "o2") is None
    d2.journal.put_order(order(7))
    assert d2.journal.commit() == 3  # appended after the good records
    d2.crash()
    assert Durable(tmp_path).open() == 1


def test_damage_before_the_end_stops_with_file_and_offset(tmp_path: Path) -> None:
    d = Durable(tmp_path)
    d.open()
    for i in range(3):
        d.journal.put_order(order(i))
        d.journal.commit()
    d.crash()
    seg = _segment(tmp_path)
    data = bytearray(seg.read_bytes())
    data[30] ^= 0xFF  # inside the first record's payload
    seg.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"\.journal: damaged record at offset 8"):
        Durable(tmp_path).open()
    assert seg.read_bytes() == bytes(data)  # left as it was for an operator


def test_segments_rotate_and_go_once_projected(tmp_path: Path) -> None:
    async def main() -> None:
        d = await Durable(tmp_path, segment_bytes=4096).start()
        try:
            for i in range(300):
                d.journal.put_order(order(i))
                d.journal.commit()
            await d.proj.wait_applied()
            segments = d.file.segments()
            assert 1 <= len(segments) < 5  # dozens were written; the projected ones went
            assert len(list((tmp_path / "gw.journal").glob("*.journal"))) == len(segments)
        finally:
            await d.close()
        d2 = Durable(tmp_path, segment_bytes=4096)
        assert d2.open() == 0
        assert d2.file.last == 300 and d2.proj.get_order("c", "o299") is not None

    run(main())


def test_sync_full_waits_for_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
    for sync, expect in (("normal", 0), ("full", 3)):
        synced.clear()
        d = Durable(tmp_path / sync, sync=sync)
        d.open()
        for i in range(3):
            d.journal.put_order(order(i))
            d.journal.commit()
        d.crash()
        assert len(synced) == expect


def test_orders_are_numbered_whatever_their_ids(tmp_path: Path) -> None:
    """Orders are stored by number in intake order: random ClOrdIDs (UUIDs) are found again
    after a restart, pages of a listing hold each order once, executions follow their order."""
    ids = [str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15) % 2**128)) for i in range(300)]

    async def first() -> None:
        d = await Durable(tmp_path).start()
        for i, cl in enumerate(ids):
            o = Order(client_id="c" if i % 3 else "d", ClOrdID=cl, broker="B", created_ns=1000 + i // 7,
                      updated_ns=1000)
            d.journal.put_order(o)
            if i % 10 == 0:
                d.journal.put_execution(o, Execution(ExecID=f"X{i}", ExecType="0", OrdStatus="0", received_ns=i))
            if i % 25 == 0:
                d.journal.commit()
        d.journal.commit()
        again = Order(client_id="c", ClOrdID=ids[1], broker="B", OrdStatus="2", created_ns=1000, updated_ns=9)
        d.journal.put_order(again)  # a new object for an order journaled but maybe not projected
        d.journal.commit()
        assert again.num == 2
        await d.close()

    async def second() -> None:
        d = await Durable(tmp_path).start()
        p = d.proj
        try:
            for i, cl in enumerate(ids):
                o = p.get_order("c" if i % 3 else "d", cl)
                assert o is not None and o.ClOrdID == cl and o.num == i + 1
                assert p.get_order("d" if i % 3 else "c", cl) is None  # another client's order
            assert p.get_order("c", ids[1]).OrdStatus == "2"  # type: ignore[union-attr]
            assert [e.ExecID for e in p.executions("d", ids[30])] == ["X30"]
            assert p.executions("c", ids[30]) == []
            seen: list[str] = []
            flt = OrderFilter(limit=17)
            for _ in range(100):
                page = p.list_orders("c", flt)
                seen += [o.ClOrdID for o in page]
                if len(page) < flt.limit:
                    break
                flt.after = (page[-1].created_ns, page[-1].num)
            assert seen == [cl for i, cl in enumerate(ids) if i % 3]
            o = Order(client_id="c", ClOrdID="new", broker="B")
            d.journal.put_order(o)
            assert o.num == len(ids) + 1  # numbering goes on after a restart
        finally:
            await d.close()

    run(first())
    run(second())


def test_order_numbers_survive_a_hash_shared_by_two_ids(tmp_path: Path) -> None:
    async def main() -> None:
        d = await Durable(tmp_path).start()
        p = d.proj
        try:
            a = order(1)
            d.journal.put_order(a)
            d.journal.commit()
            await p.wait_applied()
            p._nums[hash(("c", "b"))] = a.num  # as if "b" hashed like "a"
            assert p.get_order("c", "b") is None  # the row found is a's: not b
            b = Order(client_id="c", ClOrdID="b", broker="B", created_ns=2, updated_ns=2)
            d.journal.put_order(b)
            d.journal.commit()
            await p.wait_applied()
            assert b.num != a.num
            assert p.get_order("c", "b").num == b.num  # type: ignore[union-attr]
            assert p.get_order("c", "o1").num == a.num  # type: ignore[union-attr]
            b2 = Order(client_id="c", ClOrdID="b", broker="B", OrdStatus="4", created_ns=2, updated_ns=3)
            d.journal.put_order(b2)  # an update of b through a new object: b's row
            d.journal.commit()
            await p.wait_applied()
            assert b2.num == b.num and p.get_order("c", "b").OrdStatus == "4"  # type: ignore[union-attr]
        finally:
            await d.close()

    run(main())


def test_records_of_another_format_are_refused(tmp_path: Path) -> None:
    """A database holding orders but no record format (or another one) is refused at start,
    with the file named, instead of being misread."""
    d = Durable(tmp_path)
    d.open()
    d.journal.put_order(order(1))
    d.journal.commit()
    d.proj.catch_up(d.file)
    d.crash()
    with sqlite3.connect(tmp_path / "gw.db") as conn:
        conn.execute("DELETE FROM meta WHERE key = 'format'")
    with pytest.raises(StoreError, match=r"gw\.db: order records in format unknown"):
        Durable(tmp_path).open()
    with sqlite3.connect(tmp_path / "gw.db") as conn:
        conn.execute("INSERT INTO meta VALUES ('format', '1')")
    with pytest.raises(StoreError, match="in format 1, this gateway reads format 3"):
        Durable(tmp_path).open()
