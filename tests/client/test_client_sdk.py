"""The Python SDK against the real sandbox (gateway, hub, brokers, exchange processes)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from _client_sandbox import BETA_KEY, KEY, SandboxRun

from fastfix.client import (
    Accepted,
    ApiError,
    AsyncClient,
    Client,
    Event,
    Order,
    RetryPolicy,
    StreamError,
    TransportError,
    messages,
)

TERMINAL = {"2", "4", "8", "C"}  # Filled, Canceled, Rejected, Expired


def market(**kw: Any) -> dict[str, Any]:
    return {"DeliverToCompID": "KIWOOM", "Symbol": "005930", "Side": "1", "OrdType": "1", "OrderQty": "1", **kw}


def limit(**kw: Any) -> dict[str, Any]:
    # far below the market: rests until cancelled
    return {"DeliverToCompID": "KIWOOM", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "1",
            "Price": "50000", **kw}


def wait_order(c: Client, cl: str, states: set[str], timeout: float = 20.0) -> Order:
    deadline = time.monotonic() + timeout
    while True:
        o = c.get_order(cl)
        if o.OrdStatus in states or o.state in states:
            return o
        assert o.OrdStatus not in TERMINAL, f"{cl} is {o.state}: {o.Text}"
        assert time.monotonic() < deadline, f"{cl} stayed {o.state}"
        time.sleep(0.05)


def test_orders_with_the_sync_client(sandbox: SandboxRun) -> None:
    m = messages("FIX.4.4")
    with Client(sandbox.url, KEY) as c:
        assert c.health() == {"status": "ok"}
        assert c.ready()["ready"] is True
        assert {b.id: b.session.logged_on for b in c.brokers()} == {"KIWOOM": True, "MIRAE": True}

        # A generated Struct, keyword fields, a plain dict: the same request shapes.
        typed = m.NewOrderSingle(ClOrdID=f"sdk-typed-{time.time_ns()}", DeliverToCompID="KIWOOM",
                                 Symbol="005930", Side="1", OrdType="2", OrderQty="3", Price="50000")
        a = c.new_order(typed)
        assert isinstance(a, Accepted) and a.ClOrdID == typed.ClOrdID and a.state == "PendingNew"
        b = c.new_order(**limit(OrderQty="4"))
        assert b.ClOrdID and len(b.ClOrdID) == 32  # made by the SDK
        d = c.new_order(limit(OrderQty="5", Price="50100"))
        resting = wait_order(c, a.ClOrdID, {"0"})
        assert (resting.OrderQty, resting.LeavesQty, resting.Price) == ("3", "3", "50000")
        assert resting.executions and resting.executions[0].ExecType == "0"
        trace = c.order_trace(a.ClOrdID)
        assert trace["ClOrdID"] == a.ClOrdID

        # search and pages
        page = c.list_orders(symbol="005930", limit=2)
        assert len(page.orders) == 2 and page.next
        rest = c.list_orders(symbol="005930", limit=1000, cursor=page.next)
        seen = {o.ClOrdID for o in page.orders} | {o.ClOrdID for o in rest.orders}
        assert {a.ClOrdID, b.ClOrdID, d.ClOrdID} <= seen

        # replace, cancel by POST, cancel by DELETE
        r = c.replace_order(a.ClOrdID, Price="50200", OrderQty="6")
        assert r.OrigClOrdID == a.ClOrdID and r.state == "PendingReplace"
        replaced = wait_order(c, r.ClOrdID, {"0"})
        assert (replaced.Price, replaced.OrderQty) == ("50200", "6")
        assert wait_order(c, a.ClOrdID, {"Replaced"}).ReplacedBy == r.ClOrdID
        cancel_id = f"cxl-{time.time_ns()}"
        pending = c.cancel_order(r.ClOrdID, cancel_id)
        assert pending.pending == "cancel"
        assert wait_order(c, r.ClOrdID, {"4"}).LeavesQty == "0"
        assert c.delete_order(b.ClOrdID).pending == "cancel"
        assert wait_order(c, b.ClOrdID, {"4"}).state == "Canceled"
        c.delete_order(d.ClOrdID)
        assert c.list_orders(status="Canceled", symbol="005930", limit=1000).orders


def test_errors_carry_code_status_and_field_problems(sandbox: SandboxRun) -> None:
    with Client(sandbox.url, KEY) as c:
        with pytest.raises(ApiError) as bad:
            c.new_order(limit(OrderQty="0", Price="70001", Side="Z"))
        e = bad.value
        assert (e.status, e.code) == (422, "invalid_order")
        fields = {p.field: p for p in e.errors}
        assert set(fields) >= {"OrderQty", "Price", "Side"}
        assert fields["OrderQty"].path == "$.OrderQty" and "positive" in fields["OrderQty"].reason
        assert "OrderQty" in str(e)

        with pytest.raises(ApiError) as missing:
            c.get_order("no-such-order")
        assert (missing.value.status, missing.value.code) == (404, "not_found")

        cl = f"sdk-dup-{time.time_ns()}"
        first = c.new_order(limit(ClOrdID=cl))
        assert c.new_order(limit(ClOrdID=cl)) == first  # the same request again: the same answer
        with pytest.raises(ApiError) as dup:
            c.new_order(limit(ClOrdID=cl, OrderQty="2"))
        assert (dup.value.status, dup.value.code) == (409, "duplicate_id")
        with pytest.raises(ApiError) as query:
            c.list_orders(limit=0)
        assert query.value.status == 400 and query.value.errors[0].field == "limit"
        c.delete_order(cl)
    with Client(sandbox.url, "not-a-key") as c, pytest.raises(ApiError) as auth:
        c.brokers()
    assert (auth.value.status, auth.value.code) == (401, "unauthorized")


def test_order_lists(sandbox: SandboxRun) -> None:
    m = messages("FIX.4.4")
    with Client(sandbox.url, KEY) as c:
        Entry = m.entry("NewOrderList", "NoOrders")  # noqa: N806 - a class
        lst = m.NewOrderList(DeliverToCompID="KIWOOM", ListID=f"sdk-list-{time.time_ns()}", NoOrders=[
            Entry(ClOrdID=f"sdk-l1-{time.time_ns()}", Symbol="005930", Side="1", OrderQty="1", OrdType="2",
                  Price="50000"),
            Entry(ClOrdID=f"sdk-l2-{time.time_ns()}", Symbol="000660", Side="1", OrderQty="1", OrdType="2",
                  Price="150000")])
        accepted = c.new_order_list(lst)
        assert accepted.ListID == lst.ListID and len(accepted.orders or []) == 2
        shown = c.get_order_list(lst.ListID)
        assert [o.ClOrdID for o in shown.orders] == [e.ClOrdID for e in lst.NoOrders]
        for o in shown.orders:
            wait_order(c, o.ClOrdID, {"0"})
        cancelled = c.cancel_order_list(lst.ListID)
        assert cancelled.ListID == lst.ListID and cancelled.pending == "cancel"
        for o in shown.orders:
            wait_order(c, o.ClOrdID, {"4"})
        with pytest.raises(ApiError) as e:
            c.get_order_list("no-such-list")
        assert e.value.status == 404


def test_async_client_concurrent_orders_and_throttling(sandbox: SandboxRun) -> None:
    """Beta may send 20 requests/s with a burst of 40: a burst of 60 is partly throttled (429
    with Retry-After); with retries each throttled order is resent, the same, after Retry-After."""

    async def go() -> None:
        async with AsyncClient(sandbox.url, BETA_KEY, retry=RetryPolicy(retries=0)) as c:
            results = await asyncio.gather(*(c.new_order(limit(Account="BETA-01")) for _ in range(60)),
                                           return_exceptions=True)
        refused = [r for r in results if isinstance(r, ApiError)]
        assert refused and all((r.status, r.code) == (429, "throttled") and r.retry_after and r.retry_after >= 1
                               for r in refused), refused
        assert all(isinstance(r, Accepted | ApiError) for r in results)

        retries: list[tuple[int, float, Exception]] = []
        await asyncio.sleep(refused[0].retry_after or 1)  # let the bucket refill (the policy also would)
        ids = [f"sdk-burst-{i}-{time.time_ns()}" for i in range(60)]
        async with AsyncClient(sandbox.url, BETA_KEY, retry=RetryPolicy(retries=5),
                               on_retry=lambda n, d, e: retries.append((n, d, e))) as c:
            answers = await asyncio.gather(*(c.new_order(limit(Account="BETA-01", ClOrdID=i)) for i in ids))
            assert [a.ClOrdID for a in answers] == ids
            assert retries and all(isinstance(e, ApiError) and e.status == 429 and d == e.retry_after
                                   for _, d, e in retries)
            page = await c.list_orders(limit=1000, symbol="005930")
            while page.next:
                page = await c.list_orders(limit=1000, symbol="005930", cursor=page.next)
            # each order exists once, whatever the number of tries
            for cl in ids:
                assert (await c.get_order(cl)).ClOrdID == cl
            await asyncio.gather(*(c.delete_order(cl) for cl in ids))

    asyncio.run(asyncio.wait_for(go(), 120))


# --------------------------------------------------------------------------- retries, locally


class _Flaky:
    """A local HTTP server: answers 503 (Retry-After: 0) to the first ``fail`` requests, then
    202 with the request body echoed; closes each connection after ``per_conn`` answers."""

    def __init__(self, fail: int, per_conn: int = 1000, retry_after: str | None = "0") -> None:
        self.fail = fail
        self.per_conn = per_conn
        self.retry_after = retry_after
        self.bodies: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for _ in range(self.per_conn):
                head = await r.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await r.readexactly(length)
                self.bodies.append(body)
                if len(self.bodies) <= self.fail:
                    payload = b'{"error":"session_down","message":"the FIX session is down"}'
                    extra = f"retry-after: {self.retry_after}\r\n" if self.retry_after is not None else ""
                    w.write(f"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n{extra}"
                            f"content-length: {len(payload)}\r\n\r\n".encode() + payload)
                else:
                    doc = json.loads(body)
                    payload = json.dumps({"ClOrdID": doc["ClOrdID"], "state": "PendingNew"}).encode()
                    # chunked, to read both framings
                    w.write(b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
                            b"transfer-encoding: chunked\r\n\r\n" + f"{len(payload):x}\r\n".encode() + payload
                            + b"\r\n0\r\n\r\n")
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def test_retries_resend_the_same_request_after_503() -> None:
    async def go() -> None:
        flaky = _Flaky(fail=2, per_conn=1)  # also: every connection closed after one answer
        async with flaky as url, AsyncClient(url, "k", retry=RetryPolicy(retries=3)) as c:
            a = await c.new_order(limit())
            assert len(flaky.bodies) == 3 and len(set(flaky.bodies)) == 1  # resent identical
            assert json.loads(flaky.bodies[0])["ClOrdID"] == a.ClOrdID
            await c.new_order(limit())  # a stale kept-alive connection is replaced, not reported
            assert flaky.connections == 4
        flaky = _Flaky(fail=10)
        async with flaky as url, AsyncClient(url, "k", retry=RetryPolicy(retries=2, backoff=0.001)) as c:
            with pytest.raises(ApiError) as e:
                await c.new_order(limit())
            assert (e.value.status, e.value.code, e.value.retry_after) == (503, "session_down", 0.0)
            assert len(flaky.bodies) == 3 and flaky.connections == 1  # keep-alive: one connection
        flaky = _Flaky(fail=1, retry_after=None)
        seen: list[float] = []
        async with flaky as url, AsyncClient(url, "k", retry=RetryPolicy(retries=1, backoff=0.01),
                                             on_retry=lambda n, d, e: seen.append(d)) as c:
            await c.new_order(limit())
            assert len(seen) == 1 and 0.01 <= seen[0] <= 0.015  # backoff with jitter
        # nothing listening: a TransportError after the retries
        async with flaky as url:
            pass
        async with AsyncClient(url, "k", retry=RetryPolicy(retries=1, backoff=0.001)) as c:
            with pytest.raises(TransportError):
                await c.new_order(limit())

    asyncio.run(asyncio.wait_for(go(), 30))


# --------------------------------------------------------------------------- the stream


async def _last_seq(sandbox: SandboxRun, key: str = KEY) -> int:
    from picows.websockets.asyncio.client import connect

    async with connect(sandbox.ws_url, additional_headers={"X-API-Key": key}, compression=None) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["type"] == "subscribed"
        return int(frame["last_seq"])


async def _read_until(events: Any, got: list[Event], done: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        if done():
            return
        left = deadline - time.monotonic()
        assert left > 0, f"events missing; got seqs {[e.seq for e in got]}"
        got.append(await asyncio.wait_for(events.__anext__(), left))
    raise AssertionError("too many events")


def _final(got: list[Event], ids: list[str]) -> bool:
    done = {e.body.ClOrdID for e in got if e.msg_type == "8" and e.body.OrdStatus in TERMINAL}
    return set(ids) <= done


class _Proxy:
    """TCP relay to the stream port that can lose what the gateway sends (``blackhole``) and
    cut every connection, as a network failure would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.blackhole = False
        self.lost = 0  # bytes from the gateway thrown away
        self.conns: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.server: asyncio.Server | None = None

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, lossy: bool) -> None:
        try:
            while data := await r.read(65536):
                if lossy and self.blackhole:
                    self.lost += len(data)
                    continue
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            w.close()
            return
        self.conns.append((w, uw))
        await asyncio.gather(self._pump(r, uw, False), self._pump(ur, w, True))

    def cut(self) -> None:
        for w, uw in self.conns:
            w.close()
            uw.close()
        self.conns.clear()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/stream"

    def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


def test_stream_resumes_across_a_gateway_restart(sandbox: SandboxRun, tmp_path: Path) -> None:
    """Events lost on the way (the connection then cut), a gateway restart, more events: the
    stream hands out every event once, in seq order, and its cursor file follows."""
    cursor_file = tmp_path / "cursor"

    async def go() -> None:
        start = await _last_seq(sandbox)
        cursors: list[int] = []
        proxy = _Proxy(sandbox.ws)
        ws_url = await proxy.start()
        async with AsyncClient(sandbox.url, KEY, ws_url=ws_url) as c:
            events = c.stream(start, cursor_file=cursor_file, on_cursor=cursors.append)
            got: list[Event] = []
            batch1 = [(await c.new_order(market())).ClOrdID for _ in range(3)]
            await _read_until(events, got, lambda: _final(got, batch1))
            # the reports of batch 0 never reach the client; then its connection is cut
            proxy.blackhole = True
            batch0 = [(await c.new_order(market())).ClOrdID for _ in range(2)]
            for cl in batch0:
                deadline = time.monotonic() + 30
                while (await c.get_order(cl)).OrdStatus not in TERMINAL or not proxy.lost:
                    assert time.monotonic() < deadline, cl
                    await asyncio.sleep(0.05)
            lost_at = len(got)
            proxy.cut()
            proxy.blackhole = False
            await _read_until(events, got, lambda: _final(got, batch1 + batch0))
            assert events.connects == 2 and len(got) > lost_at
            # reports of batch 2 are pushed while nobody reads, then the gateway goes away
            batch1 += batch0
            batch2 = [(await c.new_order(market())).ClOrdID for _ in range(3)]
            for cl in batch2:
                deadline = time.monotonic() + 30
                while (await c.get_order(cl)).OrdStatus not in TERMINAL:
                    assert time.monotonic() < deadline, cl
                    await asyncio.sleep(0.05)
            await asyncio.get_running_loop().run_in_executor(None, sandbox.restart_gateway)
            batch3 = [(await c.new_order(market())).ClOrdID for _ in range(3)]
            await _read_until(events, got, lambda: _final(got, batch1 + batch2 + batch3))
            await events.aclose()
            assert events.connects >= 3
            proxy.close()
        seqs = [e.seq for e in got]
        assert seqs == list(range(start + 1, start + 1 + len(got))), seqs  # no gap, no duplicate
        assert cursors == seqs and int(cursor_file.read_text()) == seqs[-1]
        assert all(isinstance(e.body, msgspec.Struct) and e.name in ("ExecutionReport", "OrderCancelReject",
                                                                      "ListStatus", "BusinessMessageReject",
                                                                      "TradingSessionStatus")
                   for e in got)
        # A new stream from the cursor file continues after it; a replay from the start is the same
        async with AsyncClient(sandbox.url, KEY) as c:  # the stream URL asked of the gateway
            replay = c.stream(start)
            again: list[Event] = []
            await _read_until(replay, again, lambda: len(again) == len(got))
            await replay.aclose()
            # (a gateway restart subscribes to the session status again: those events have no ExecID)
            assert ([(e.seq, getattr(e.body, "ExecID", e.name)) for e in again]
                    == [(e.seq, getattr(e.body, "ExecID", e.name)) for e in got])
            resumed = c.stream(cursor_file=cursor_file)
            later = (await c.new_order(market())).ClOrdID
            nxt: list[Event] = []
            await _read_until(resumed, nxt, lambda: _final(nxt, [later]))
            await resumed.aclose()
            assert nxt[0].seq == seqs[-1] + 1

    asyncio.run(asyncio.wait_for(go(), 180))


def test_sync_stream_and_refusals(sandbox: SandboxRun) -> None:
    with Client(sandbox.url, KEY, ws_url=sandbox.ws_url) as c:
        events = c.stream(0)
        first = [next(events) for _ in range(3)]
        events.close()
        assert [e.seq for e in first] == [1, 2, 3]
        with pytest.raises(StreamError, match="beyond"):
            next(c.stream(10**9))  # a cursor ahead of the gateway's log: refused, not retried
    with Client(sandbox.url, "not-a-key", ws_url=sandbox.ws_url) as c, pytest.raises(StreamError, match="401"):
        next(c.stream(0))
