"""CPU per request of HTTP clients, to choose the load generator's (``python -m bench.loadgen.clientcost``).

A trivial uvloop server in another process answers every POST with a fixed 202;
each client sends N POSTs of an order body over 16 keep-alive connections
(closed loop) and this process's CPU time per request is printed. The lab's
client (``bench.loadgen.worker._Http``) always runs; aiohttp and httpx run when
installed (they are not dependencies of the project).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from typing import Any

BODY = (b'{"ClOrdID":"c1","DeliverToCompID":"BRKA","Symbol":"005930","Side":"1","OrdType":"2",'
        b'"OrderQty":"10","Price":"70000"}')
ANSWER = (b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 60\r\n\r\n"
          + b'{"ClOrdID":"c1","state":"PendingNew","OrdStatus":"A","x":"y"}'[:60])
CONNS = 16


def _server(port_pipe: Any) -> None:
    import uvloop

    class Srv(asyncio.Protocol):
        def connection_made(self, t: Any) -> None:
            self.t = t
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                head = self.buf[:i].lower()
                j = head.find(b"content-length:")
                n = int(head[j + 15:].split(b"\r\n")[0]) if j >= 0 else 0
                if len(self.buf) < i + 4 + n:
                    return
                self.buf = self.buf[i + 4 + n:]
                self.t.write(ANSWER)

    async def main() -> None:
        srv = await asyncio.get_running_loop().create_server(Srv, "127.0.0.1", 0)
        port_pipe.send(srv.sockets[0].getsockname()[1])
        await asyncio.sleep(3600)

    uvloop.run(main())


async def _ours(port: int, n: int) -> None:
    from bench.loadgen.worker import _Http

    loop = asyncio.get_running_loop()
    req = (b"POST /v1/orders HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: k\r\ncontent-type: application/json\r\n"
           b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY))
    left = [n]
    done = loop.create_future()

    class W:
        def on_response(self, conn: Any, r: Any, status: int, body: bytes) -> None:
            assert status == 202
            left[0] -= 1
            if left[0] >= CONNS - 1:
                conn.req = r
                conn.t.write(req)
            elif left[0] == 0:
                done.set_result(None)

        def on_lost(self, conn: Any) -> None:
            pass

    w = W()
    conns = []
    for _ in range(CONNS):
        _, c = await loop.create_connection(lambda: _Http(w), "127.0.0.1", port)  # type: ignore[arg-type]
        conns.append(c)
    for c in conns:
        c.req = [0]
        c.t.write(req)
    await done
    for c in conns:
        c.t.close()


async def _aiohttp(port: int, n: int) -> None:
    import aiohttp

    counter = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNS)) as s:
        async def worker() -> None:
            for _ in counter:
                async with s.post(f"http://127.0.0.1:{port}/v1/orders", data=BODY,
                                  headers={"x-api-key": "k", "content-type": "application/json"}) as r:
                    await r.read()

        await asyncio.gather(*(worker() for _ in range(CONNS)))


async def _httpx(port: int, n: int) -> None:
    import httpx

    counter = iter(range(n))
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONNS)) as c:
        async def worker() -> None:
            for _ in counter:
                r = await c.post(f"http://127.0.0.1:{port}/v1/orders", content=BODY,
                                 headers={"x-api-key": "k", "content-type": "application/json"})
                r.read()

        await asyncio.gather(*(worker() for _ in range(CONNS)))


def main(n: int = 20000) -> dict[str, float]:
    import uvloop

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    srv = ctx.Process(target=_server, args=(child,), daemon=True)
    srv.start()
    out: dict[str, float] = {}
    try:
        port = parent.recv()
        for name, fn in (("fastfix lab client (raw HTTP/1.1 on uvloop)", _ours), ("aiohttp", _aiohttp),
                         ("httpx", _httpx)):
            try:
                __import__(fn.__name__.lstrip("_")) if fn is not _ours else None
            except ImportError:
                print(f"{name}: not installed")
                continue
            uvloop.run(fn(port, 500))  # warm-up
            c0, w0 = time.process_time(), time.perf_counter()
            uvloop.run(fn(port, n))
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            out[name] = cpu / n * 1e6
            print(f"{name}: {cpu / n * 1e6:.1f} µs CPU per request, {n / wall:,.0f} requests/s")
    finally:
        srv.terminate()
        srv.join(5)
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
