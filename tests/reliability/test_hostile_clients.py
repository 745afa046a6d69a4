"""Slow and hostile clients against the gateway process: memory stays bounded, every
refusal is a clear JSON error (never a 5xx), and the other clients keep being served.

RSS and open descriptors of the gateway are read from /proc.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from _rel_helpers import (
    KEYS,
    GatewayProcess,
    Http,
    gateway_toml,
    open_fds,
    rss_kib,
    wait_for,
    ws_connect,
)
from helpers import run

A, B, G = KEYS["alpha"], KEYS["beta"], KEYS["gamma"]


def _raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < want:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} below {want}")


def _gateway(tmp_path: Path, heartbeat: float = 1.0) -> Any:
    _raise_nofile(8192)  # inherited by the gateway process
    toml = gateway_toml(extra="ws_buffer_limit = 65536").replace("ws_heartbeat = 1.0", f"ws_heartbeat = {heartbeat}")
    p = GatewayProcess(tmp_path, toml).start()
    try:
        yield p
    finally:
        p.stop()
    assert "Traceback" not in p.log(), p.log()[-3000:]


@pytest.fixture
def gw(tmp_path: Path) -> Any:
    yield from _gateway(tmp_path)


@pytest.fixture
def gw_quiet(tmp_path: Path) -> Any:
    """Heartbeats (and so the server's pings) rare: a reader that never reads is not dropped as dead
    before its backlog passes the limit."""
    yield from _gateway(tmp_path, 30.0)


def market(cl: str) -> dict[str, Any]:
    return {"ClOrdID": cl, "DeliverToCompID": "BRKA", "Symbol": "005930", "Side": "1", "OrdType": "1",
            "OrderQty": "10"}


async def _raw(port: int, data: bytes, timeout: float = 10) -> tuple[int | None, dict[str, str], bytes]:
    """Send ``data`` on a fresh connection; the first response (status, headers, body), or None on close."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(data)
        with_eof = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in with_eof and time.monotonic() < deadline:
            chunk = await asyncio.wait_for(r.read(65536), max(0.01, deadline - time.monotonic()))
            if not chunk:
                break
            with_eof += chunk
        head, _, body = with_eof.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/"):
            return None, {}, with_eof
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        n = int(headers.get("content-length", "0"))
        while len(body) < n and time.monotonic() < deadline:
            chunk = await asyncio.wait_for(r.read(65536), max(0.01, deadline - time.monotonic()))
            if not chunk:
                break
            body += chunk
        return int(lines[0].split()[1]), headers, body[:n]
    except (ConnectionResetError, BrokenPipeError):
        return None, {}, b""
    finally:
        w.close()


def _post(body: bytes, key: str = A, extra: str = "", length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return (f"POST /v1/orders HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\ncontent-type: application/json\r\n"
            f"content-length: {n}\r\n{extra}\r\n").encode() + body


def _assert_json_error(status: int | None, body: bytes, want_status: int, code: str) -> dict[str, Any]:
    assert status == want_status, (status, body[:300])
    doc = json.loads(body)
    assert doc["error"] == code and doc["message"], doc
    return doc


def test_malformed_and_oversized_requests(gw: GatewayProcess) -> None:
    async def go() -> None:
        rss0 = rss_kib(gw.proc.pid)  # type: ignore[union-attr]
        big = json.dumps(market("big") | {"Text": "x" * 70_000}).encode()
        status, _, body = await _raw(gw.rest, _post(big))
        _assert_json_error(status, body, 413, "too_large")
        # Content-Length announcing far more than the limit: refused before reading
        status, _, body = await _raw(gw.rest, _post(b"{}", length=50_000_000))
        _assert_json_error(status, body, 413, "too_large")
        # chunked body (no Content-Length) over the limit
        chunk = b"x" * 30_000
        chunked = (b"POST /v1/orders HTTP/1.1\r\nhost: x\r\nx-api-key: " + A.encode()
                   + b"\r\ntransfer-encoding: chunked\r\n\r\n"
                   + b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(4)) + b"0\r\n\r\n")
        status, _, body = await _raw(gw.rest, chunked)
        _assert_json_error(status, body, 413, "too_large")
        # deeply nested JSON: a clear 400, not a crash
        for nested in (b"[" * 60_000, b'{"ClOrdID":' * 5_000, b'{"NoPartyIDs":' + b"[" * 5000):
            status, _, body = await _raw(gw.rest, _post(nested))
            doc = _assert_json_error(status, body, 400, "bad_json")
            assert "nest" in doc["message"] or "JSON" in doc["message"], doc
        # nesting inside the limits of the parser but not of the message: field and reason
        status, _, body = await _raw(gw.rest, _post(json.dumps(market("n-1") | {
            "NoPartyIDs": [[[[[{"PartyID": "x"}]]]]]}).encode()))
        doc = _assert_json_error(status, body, 422, "invalid_order")
        assert any(e["field"] == "NoPartyIDs" and e["reason"] for e in doc["errors"]), doc
        # invalid UTF-8, in a value and as the whole body
        for bad, at in ((b'{"ClOrdID": "\xff\xfe", "Symbol": "005930"}', 13), (b'{"ClOrdID": "ok-\xed\xa0\x80"}', 16)):
            status, _, body = await _raw(gw.rest, _post(bad))
            doc = _assert_json_error(status, body, 400, "bad_json")
            assert doc["message"].endswith(f"not valid UTF-8 at byte {at}"), doc  # whatever msgspec's version
        status, _, body = await _raw(gw.rest, _post(b"\xc3\x28\xa0\xa1"))
        _assert_json_error(status, body, 400, "bad_json")
        # numbers of absurd magnitude (valid JSON): refused at once, never expanded or overflowed
        for qty, price, code in (("1e999999999", '"70000"', 422), ('"10"', "1e999999999", 422),
                                 ("1e-999999999", '"70000"', 422), ("55555e5555555555555555", '"70000"', 422),
                                 ("1e99999999999999999999999", '"70000"', 400)):
            raw = (b'{"ClOrdID":"e-1","DeliverToCompID":"BRKA","Symbol":"005930","Side":"1","OrdType":"2",'
                   b'"OrderQty":' + qty.encode() + b',"Price":' + price.encode() + b"}")
            t0 = time.monotonic()
            status, _, body = await _raw(gw.rest, _post(raw))
            doc = _assert_json_error(status, body, code, "invalid_order" if code == 422 else "bad_json")
            assert "range" in json.dumps(doc), doc
            assert time.monotonic() - t0 < 5
        # JSON that is not an object, wrong types, unknown fields: every problem named
        status, _, body = await _raw(gw.rest, _post(b"[1,2,3]"))
        _assert_json_error(status, body, 400, "bad_json")
        status, _, body = await _raw(gw.rest, _post(json.dumps(market("t-1") | {
            "OrderQty": {"a": 1}, "Side": None, "NoSuchField": "1"}).encode()))
        doc = _assert_json_error(status, body, 422, "invalid_order")
        fields = {e["field"] for e in doc["errors"]}
        assert {"OrderQty", "Side", "NoSuchField"} <= fields, doc
        assert all(e["reason"] and e["path"].startswith("$") for e in doc["errors"]), doc
        # control characters and SOH inside values never reach FIX
        status, _, body = await _raw(gw.rest, _post(json.dumps(market("c-1") | {"Text": "a\x01b=c"}).encode()))
        doc = _assert_json_error(status, body, 422, "invalid_order")
        assert any(e["field"] == "Text" for e in doc["errors"]), doc
        # huge header value and a great many headers: refused or answered, never a 5xx, never a hang
        for extra in ("x-big: " + "a" * 200_000 + "\r\n", "".join(f"x-h{i}: v\r\n" for i in range(5000))):
            status, _, body = await _raw(gw.rest, _post(json.dumps(market("h-1")).encode(), extra=extra))
            assert status is None or status < 500, (status, body[:200])
        # path and query junk
        for path in ("/v1/orders/%ff%fe", "/v1/orders/" + "a" * 10_000, "/v1/orders?limit=%ff&cursor=%%%",
                     "/v1/orders?cursor=" + "A" * 5000, "/v1/order-lists/%00"):
            status, _, body = await _raw(gw.rest, f"GET {path} HTTP/1.1\r\nhost: x\r\nx-api-key: {A}\r\n\r\n".encode())
            assert status is not None and 400 <= status < 500, (path, status, body[:200])
        async with Http(gw.rest, A) as h:
            status, resp = await h.call("POST", "/v1/orders", market("after-1"))
            assert status == 202, resp
        assert rss_kib(gw.proc.pid) - rss0 < 64 * 1024  # type: ignore[union-attr]

    run(go())


def test_request_flood_is_throttled_and_others_are_served(gw: GatewayProcess) -> None:
    """gamma (1/s, burst 2) floods from 50 connections; alpha's orders all go through meanwhile."""

    async def flood(stop: asyncio.Event, statuses: list[int]) -> None:
        async with Http(gw.rest, G) as h:
            for i in range(100_000):
                if stop.is_set():
                    return
                status, body = await h.call("POST", "/v1/orders", market(f"g{id(h)}-{i}"))
                statuses.append(status)
                if status == 429:
                    assert body["error"] == "throttled" and body["message"], body

    async def go() -> None:
        rss0 = rss_kib(gw.proc.pid)  # type: ignore[union-attr]
        stop = asyncio.Event()
        statuses: list[int] = []
        flooders = [asyncio.create_task(flood(stop, statuses)) for _ in range(50)]
        try:
            async with Http(gw.rest, A) as h:
                for i in range(200):
                    status, body = await h.call("POST", "/v1/orders", market(f"a-{i}"))
                    assert status == 202, (status, body)
        finally:
            stop.set()
            await asyncio.gather(*flooders)
        assert len(statuses) > 500 and statuses.count(202) <= 10 and set(statuses) == {202, 429}
        assert rss_kib(gw.proc.pid) - rss0 < 64 * 1024  # type: ignore[union-attr]

    run(go())


# ------------------------------------------------------------------ WebSocket clients

def _ws_upgrade(key: str, since: int | None = 0) -> bytes:
    q = "" if since is None else f"?since={since}"
    nonce = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /v1/stream{q} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            f"sec-websocket-key: {nonce}\r\nsec-websocket-version: 13\r\nx-api-key: {key}\r\n\r\n").encode()


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the complete server frames in ``data``."""
    out, i = [], 0
    while i + 2 <= len(data):
        op, n = data[i] & 0x0F, data[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            if j + 2 > len(data):
                break
            n, j = struct.unpack_from(">H", data, j)[0], j + 2
        elif n == 127:
            if j + 8 > len(data):
                break
            n, j = struct.unpack_from(">Q", data, j)[0], j + 8
        if j + n > len(data):
            break
        out.append((op, data[j:j + n]))
        i = j + n
    return out


def test_slow_websocket_reader_is_dropped_others_keep_up(gw_quiet: GatewayProcess) -> None:
    """A reader that stops reading is closed (1013, resume point given) once its backlog passes
    ws_buffer_limit; a normal reader gets every event in order; memory stays bounded."""

    gw = gw_quiet

    async def go() -> None:
        pid = gw.proc.pid  # type: ignore[union-attr]
        rss0 = rss_kib(pid)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small window: backlog stays on the server
        slow.connect(("127.0.0.1", gw.ws))
        slow.sendall(_ws_upgrade(A, None))
        slow.settimeout(10)
        head = b""
        while not head.endswith(b"\r\n\r\n") and len(head) < 4096:
            head += slow.recv(1)  # byte by byte: the frames after the head stay in the socket
        assert head.startswith(b"HTTP/1.1 101")
        fast = await ws_connect(gw.ws, A)
        sub = json.loads(await fast.recv())
        base = sub["last_seq"]
        n_orders = 3000  # about 6 MB of events: more than the kernel's socket buffers take

        async def post(worker: int) -> None:
            async with Http(gw.rest, A) as h:
                for i in range(worker, n_orders, 4):
                    status, body = await h.call("POST", "/v1/orders", market(f"s-{i}"))
                    assert status == 202, body

        async def read_fast() -> int:
            last = base
            deadline = time.monotonic() + 90
            while last < want and time.monotonic() < deadline:
                frame = json.loads(await asyncio.wait_for(fast.recv(), 10))
                if frame["type"] == "message":
                    assert frame["seq"] == last + 1
                    last = frame["seq"]
            return last

        want = base + 4 * n_orders  # PendingNew, New and two fills per market order
        reader = asyncio.create_task(read_fast())
        await asyncio.gather(*(post(w) for w in range(4)))
        last = await reader
        assert last == want
        await fast.close()
        # the slow reader: whatever it gets now ends with the error frame and a 1013 close
        data = b""
        slow.settimeout(5)
        for _ in range(100_000):
            try:
                chunk = slow.recv(1 << 16)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        slow.close()
        frames = _frames(data)
        close = [p for op, p in frames if op == 0x8]
        assert close and struct.unpack(">H", close[0][:2])[0] == 1013, frames[-3:]
        errors = [json.loads(p) for op, p in frames if op == 0x1 and b'"error"' in p]
        assert errors and "since=" in errors[-1]["reason"], errors
        assert rss_kib(pid) - rss0 < 96 * 1024

    run(go(), 120)


def test_two_thousand_idle_websockets(gw_quiet: GatewayProcess) -> None:
    """2,000 idle subscribed connections: a live one still gets its events, REST answers,
    memory per connection stays small and every descriptor is released after they go."""
    from picows import WSListener
    from picows import ws_connect as raw_connect

    n = 2000
    gw = gw_quiet
    dropped: list[Any] = []

    class Idle(WSListener):  # type: ignore[misc]
        closing = False

        def on_ws_disconnected(self, transport: Any) -> None:
            if not Idle.closing:
                dropped.append(transport)

    async def go() -> None:
        pid = gw.proc.pid  # type: ignore[union-attr]
        rss0, fds0 = rss_kib(pid), open_fds(pid)
        transports = []
        sem = asyncio.Semaphore(100)

        async def one() -> None:
            async with sem:
                t, _ = await raw_connect(Idle, f"ws://127.0.0.1:{gw.ws}/v1/stream",
                                         extra_headers={"X-API-Key": B})
                transports.append(t)

        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 60)
        try:
            # a few descriptors of the gateway's own come and go (database, checkpoints): a small margin
            await wait_for(lambda: open_fds(pid) >= fds0 + n - 8 or dropped, 30,
                           "the gateway to hold every connection")
        finally:
            print("descriptors", fds0, open_fds(pid), "connections", len(transports), "dropped", len(dropped))
        assert not dropped, f"{len(dropped)} idle connections were closed by the gateway"
        grown = rss_kib(pid) - rss0
        live = await ws_connect(gw.ws, A)
        await live.recv()
        async with Http(gw.rest, A) as h:
            status, body = await h.call("POST", "/v1/orders", market("live-1"))
            assert status == 202, body
        frame = json.loads(await asyncio.wait_for(live.recv(), 10))
        while frame["type"] != "message":
            frame = json.loads(await asyncio.wait_for(live.recv(), 10))
        assert frame["message"]["Body"]["ClOrdID"] == "live-1"
        await live.close()
        print(f"{n} idle WebSockets: +{grown} KiB RSS ({grown * 1024 // n} bytes each)")
        assert grown < n * 64  # under 64 KiB per idle connection
        Idle.closing = True
        for t in transports:
            t.disconnect()
        await wait_for(lambda: open_fds(pid) <= fds0 + 10, 30, "descriptors released")

    run(go(), 150)
