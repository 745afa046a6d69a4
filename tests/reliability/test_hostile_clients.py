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
    # every test client comes from 127.0.0.1: the per-address cap is raised above the 2,000 idle ones
    toml = gateway_toml(extra="ws_buffer_limit = 65536\nws_max_per_ip = 4096").replace("ws_heartbeat = 1.0", f"ws_heartbeat = {heartbeat}")
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


# ------------------------------------------------------------------ limits and deadlines

_STRICT = """ws_buffer_limit = 65536
ws_auth_timeout = 1.0
ws_max_unauthenticated = 4
ws_max_per_ip = 12
ws_max_message = 4096
http_header_timeout = 1.0
http_body_timeout = 1.0"""


def _limited(tmp_path: Path, extra: str) -> Any:
    p = GatewayProcess(tmp_path, gateway_toml(extra=extra).replace("ws_heartbeat = 1.0", "ws_heartbeat = 30.0"))
    p.start()
    try:
        yield p
    finally:
        p.stop()
    assert "Traceback" not in p.log(), p.log()[-3000:]


@pytest.fixture
def gw_strict(tmp_path: Path) -> Any:
    """Short deadlines and small caps, so each limit is reached within a few seconds."""
    yield from _limited(tmp_path, _STRICT)


@pytest.fixture
def gw_caps(tmp_path: Path) -> Any:
    """Small caps, but a long authentication deadline: what is counted does not expire meanwhile."""
    yield from _limited(tmp_path, _STRICT.replace("ws_auth_timeout = 1.0", "ws_auth_timeout = 60.0"))


def _client_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked client frame (RFC 6455 5.2), with the FIN and RSV bits as given."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    size = bytes((0x80 | n,)) if n < 126 else (b"\xfe" + struct.pack(">H", n) if n < 65536
                                                 else b"\xff" + struct.pack(">Q", n))
    mask = os.urandom(4)
    return bytes((first,)) + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _ws_socket(port: int, key: str | None, rcvbuf: int | None = None) -> socket.socket:
    """A raw WebSocket connection (handshake read byte by byte, nothing after it)."""
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    up = _ws_upgrade(key or "", None)
    if key is None:
        up = up.replace(b"x-api-key: \r\n", b"")
    s.sendall(up)
    s.settimeout(10)
    head = b""
    while not head.endswith(b"\r\n\r\n") and len(head) < 4096:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _read_until_closed(s: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """Everything the server sends within ``seconds``; True if it closed the connection."""
    data = b""
    deadline = time.monotonic() + seconds
    s.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(1 << 16)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _close_code(data: bytes) -> int | None:
    close = [p for op, p in _frames(data) if op == 0x8]
    return struct.unpack(">H", close[0][:2])[0] if close and len(close[0]) >= 2 else None


def _metrics(port: int) -> str:
    async def get() -> str:
        async with Http(port) as h:
            status, body = await h.call("GET", "/metrics")
            assert status == 200
            return body.decode()
    return asyncio.run(get())


def _metric(text: str, name: str, labels: str = "") -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + (("{" + labels) if labels else "")) and not line.startswith("#"):
            if labels or line.startswith((name + " ", name + "{")):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_websocket_flood_of_pings_without_reading_is_cut(gw_strict: GatewayProcess) -> None:
    """A client that sends pings (JSON ``op: ping`` and protocol PING frames) and never reads:
    every pong counts against ws_buffer_limit, so the gateway drops it (1013, counted) instead
    of queueing pongs without end; an unauthenticated one may not ping at all (1008)."""
    gw = gw_strict
    pid = gw.proc.pid  # type: ignore[union-attr]
    rss0 = rss_kib(pid)
    ping = _client_frame(0x1, b'{"op":"ping"}')
    for n, (frame, label) in enumerate(((ping, "op ping"), (_client_frame(0x9, b"x" * 100), "PING frames"))):
        s = _ws_socket(gw.ws, A, rcvbuf=4096)
        closed = False
        # Blocking sends (a timed-out sendall would cut a frame in two). Once the gateway drops
        # the connection it stops reading, then cuts it after its close grace: a reset here.
        s.settimeout(30)
        for _ in range(400):  # up to 400 x 500 frames: far more pongs than the limit holds
            try:
                s.sendall(frame * 500)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            except TimeoutError:
                break  # the gateway stopped reading for 30 s without closing: fails below
        # Still not reading (reading would let the pongs flow): the gateway counts the drop once
        # its queue for this client passes the limit, however long the pings take to process.
        for _ in range(600):
            if _metric(_metrics(gw.rest), "gateway_ws_dropped_total", 'reason="slow consumer"') > n:
                break
            time.sleep(0.1)
        data, eof = _read_until_closed(s, 15)
        s.close()
        assert closed or eof, f"{label}: the gateway kept the flooding connection open"
        code = _close_code(data)
        assert code in (1013, None), (label, code)  # the close frame may sit behind unread pongs
    metrics = _metrics(gw.rest)
    assert _metric(metrics, "gateway_ws_dropped_total", 'reason="slow consumer"') >= 2, metrics
    assert rss_kib(pid) - rss0 < 48 * 1024
    # unauthenticated: nothing but "auth" is answered
    s = _ws_socket(gw.ws, None)
    s.sendall(ping)
    data, eof = _read_until_closed(s, 10)
    s.close()
    texts = [json.loads(p) for op, p in _frames(data) if op == 0x1]
    assert eof and _close_code(data) == 1008, data[-200:]
    assert [t["type"] for t in texts] == ["error"], texts  # no pong
    # the reason: the ping itself, unless the 1 s authentication deadline came first on a busy machine
    assert "authenticate first" in texts[0]["reason"] or "not authenticated" in texts[0]["reason"], texts


def test_websocket_authentication_deadline(gw_strict: GatewayProcess) -> None:
    """An unauthenticated connection is closed after ws_auth_timeout (1008), and counted."""
    idle = _ws_socket(gw_strict.ws, None)
    data, eof = _read_until_closed(idle, 15)
    idle.close()
    assert eof and _close_code(data) == 1008 and b"not authenticated within" in data, data[-200:]
    assert _metric(_metrics(gw_strict.rest), "gateway_ws_dropped_total", 'reason="auth_timeout"') == 1


def test_websocket_connection_caps(gw_caps: GatewayProcess) -> None:
    """At most ws_max_unauthenticated unauthenticated connections are open at once and
    ws_max_per_ip per address (1013); the metrics show the open connections by state."""
    gw = gw_caps
    unauth = [_ws_socket(gw.ws, None) for _ in range(4)]
    extra = _ws_socket(gw.ws, None)
    data, eof = _read_until_closed(extra, 5)
    extra.close()
    assert eof and _close_code(data) == 1013, data[-200:]
    metrics = _metrics(gw.rest)
    assert _metric(metrics, "gateway_ws_open_connections", 'state="unauthenticated"') == 4, metrics
    for s in unauth:
        s.close()

    async def per_ip() -> None:
        async def gauge(state: str, want: float) -> bool:
            async with Http(gw.rest) as h:
                text = (await h.call("GET", "/metrics"))[1].decode()
            return _metric(text, "gateway_ws_open_connections", f'state="{state}"') == want

        await wait_for(lambda: gauge("unauthenticated", 0), 10, "unauthenticated connections to be released")
        subs = [await ws_connect(gw.ws, A) for _ in range(12)]
        for ws in subs:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "subscribed"
        await wait_for(lambda: gauge("authenticated", 12), 10, "the gauge to count 12 connections")
        over = await ws_connect(gw.ws, A)
        frame = json.loads(await asyncio.wait_for(over.recv(), 10))
        assert frame["type"] == "error" and "connections from this address" in frame["reason"], frame
        for ws in subs:
            await ws.close()
        await wait_for(lambda: gauge("authenticated", 0), 10, "connections to be released")

    run(per_ip(), 60)


def test_websocket_fragments_and_reserved_bits(gw_caps: GatewayProcess) -> None:
    """RFC 6455: a message in fragments (with a control frame between them) is reassembled;
    past ws_max_message it fails with 1009; RSV bits without an extension and a stray
    continuation frame fail the connection with 1002."""
    gw = gw_caps
    auth = json.dumps({"op": "auth", "api_key": A}).encode()
    s = _ws_socket(gw.ws, None)
    s.sendall(_client_frame(0x1, auth[:10], fin=False) + _client_frame(0x9, b"hi")
              + _client_frame(0x0, auth[10:20], fin=False) + _client_frame(0x0, auth[20:]))
    data = b""
    s.settimeout(10)
    for _ in range(100):
        data += s.recv(65536)
        frames = _frames(data)
        if any(op == 0x1 for op, _ in frames) and any(op == 0xA for op, _ in frames):
            break
    texts = [json.loads(p) for op, p in _frames(data) if op == 0x1]
    assert texts and texts[0]["type"] == "subscribed", texts
    assert (0xA, b"hi") in _frames(data)
    s.close()

    for frames, code in (
        (_client_frame(0x1, b'{"op":"ping"}', rsv=4), 1002),  # RSV1
        (_client_frame(0x1, b'{"op":"ping"}', rsv=1), 1002),  # RSV3
        (_client_frame(0x0, b'{"op":"ping"}'), 1002),  # continuation of nothing
        (_client_frame(0x1, b"[", fin=False) + _client_frame(0x1, b"1]"), 1002),  # interleaved messages
        (_client_frame(0x1, b" " * 3000, fin=False) + _client_frame(0x0, b" " * 3000), 1009),
    ):
        s = _ws_socket(gw.ws, A)
        s.sendall(frames)
        data, eof = _read_until_closed(s, 10)
        s.close()
        assert eof and _close_code(data) == code, (frames[:2], _frames(data)[-2:])


def test_slow_http_clients_meet_deadlines(gw_strict: GatewayProcess) -> None:
    """A body trickled slower than http_body_timeout gets 408 (JSON); heads dribbled by many
    connections are cut after http_header_timeout; an idle keep-alive connection is closed;
    a chunked body is refused with 413 as soon as it passes the limit, not when it ends."""
    gw = gw_strict

    async def trickle() -> None:
        r, w = await asyncio.open_connection("127.0.0.1", gw.rest)
        body = json.dumps(market("slow-1")).encode()
        w.write(_post(body)[:-len(body)])
        for i in range(len(body)):  # a byte every 0.1 s: several seconds in all
            if r.at_eof() or len(r._buffer) > 0:  # type: ignore[attr-defined]
                break
            w.write(body[i:i + 1])
            await w.drain()
            await asyncio.sleep(0.1)
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 408"), head
        n = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
        doc = json.loads(await r.readexactly(n))
        assert doc["error"] == "request_timeout", doc
        w.close()

    async def dribble(closed: list[bool]) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", gw.rest)
        try:
            for i in range(60):  # 6 s of one byte every 0.1 s
                w.write(b"GET /healthz HTTP/1.1\r\nx-pad: "[i:i + 1] if i < 31 else b"a")
                await w.drain()
                await asyncio.sleep(0.1)
                if r.at_eof() or (await _eof_soon(r)):
                    closed.append(True)
                    return
        except (ConnectionResetError, BrokenPipeError):
            closed.append(True)
        finally:
            w.close()

    async def idle_keep_alive() -> None:
        async with Http(gw.rest) as h:
            assert (await h.call("GET", "/healthz"))[0] == 200
            assert await asyncio.wait_for(h._r.read(100), 10) == b""  # type: ignore[union-attr]

    async def chunked_over_limit() -> None:
        r, w = await asyncio.open_connection("127.0.0.1", gw.rest)
        chunk = b"x" * 40_000
        w.write(b"POST /v1/orders HTTP/1.1\r\nhost: x\r\nx-api-key: " + A.encode()
                + b"\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                + b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(2)))
        await w.drain()  # and then nothing more: the body never ends
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 413"), head
        w.close()

    async def vanish() -> None:  # gone in the middle of a body: no answer to give, nothing to log
        r, w = await asyncio.open_connection("127.0.0.1", gw.rest)
        w.write(_post(b"{" * 100)[:-90])
        await w.drain()
        w.close()

    async def go() -> None:
        closed: list[bool] = []
        await asyncio.gather(trickle(), idle_keep_alive(), chunked_over_limit(), vanish(),
                             *(dribble(closed) for _ in range(100)))
        assert len(closed) == 100, f"only {len(closed)} of 100 dribbling connections were cut"

    run(go(), 60)


async def _eof_soon(r: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(r.read(1), 0.01) == b""
    except TimeoutError:
        return False


def test_http_layer_errors_are_json(gw: GatewayProcess) -> None:
    """Request targets and headers past the gateway's limits get JSON 414/431 (granian's own,
    larger limits are never reached first); a body that is not JSON by its Content-Type
    gets 415; a list whose TotNoOrders disagrees with its orders gets 422 naming it."""

    async def go() -> None:
        status, _, body = await _raw(gw.rest, f"GET /v1/orders/{'a' * 10_000} HTTP/1.1\r\nhost: x\r\n"
                                              f"x-api-key: {A}\r\n\r\n".encode())
        _assert_json_error(status, body, 414, "uri_too_long")
        status, _, body = await _raw(gw.rest, _post(json.dumps(market("h-2")).encode(),
                                                    extra="x-big: " + "a" * 40_000 + "\r\n"))
        _assert_json_error(status, body, 431, "headers_too_large")
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
            raw = _post(json.dumps(market("ct-1")).encode()).replace(b"application/json", ctype.encode())
            status, _, body = await _raw(gw.rest, raw)
            _assert_json_error(status, body, 415, "unsupported_media_type")
        raw = _post(json.dumps(market("ct-2")).encode()).replace(b"application/json",
                                                                  b"Application/JSON; charset=utf-8")
        status, _, body = await _raw(gw.rest, raw)
        assert status == 202, body
        lst = {"ListID": "L-tot", "DeliverToCompID": "BRKA", "TotNoOrders": "3", "NoOrders": [
            {"ClOrdID": f"lt-{i}", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "1",
             "Price": "70000"} for i in range(2)]}
        async with Http(gw.rest, A) as h:
            status, doc = await h.call("POST", "/v1/order-lists", lst)
            assert status == 422 and any(e["field"] == "TotNoOrders" for e in doc["errors"]), doc
            status, doc = await h.call("POST", "/v1/order-lists", lst | {"TotNoOrders": "2"})
            assert status == 202, doc

    run(go())
