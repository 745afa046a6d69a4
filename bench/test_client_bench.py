"""The SDK's own cost per order, to set beside the gateway's (``test_gateway_intake_bench.py``,
group ``gateway-order-path``: the same 32 orders a round, divided by 32 for one order).

* ``client-order-path``: ``AsyncClient.new_order`` end to end without sockets: the Body
  built from keyword fields into the generated ``NewOrderSingle`` Struct, encoded, the
  HTTP/1.1 request written, a real 202 answer (as the gateway sends it) read from the
  stream and decoded into ``Accepted``; 32 orders per round on one event loop.
* ``client-codec``: the Struct encoded and the answer decoded, nothing else.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from fastfix.client import AsyncClient, messages
from fastfix.client._http import _Conn
from fastfix.client.client import NEW_ORDER, _decoder

GROUP = 32
ANSWER = (b'{"ClOrdID":"o-1","state":"PendingNew","OrdStatus":"A","broker":"KIWOOM",'
          b'"created":"2026-01-02T09:00:00.123456Z"}')
RESPONSE = (b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(ANSWER)).encode() + b"\r\ndate: Fri, 02 Jan 2026 00:00:00 GMT\r\n"
            + b"server: granian\r\n\r\n" + ANSWER)


class _Loopback:
    """A stream writer whose every request is answered at once with RESPONSE."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)
        self.reader.feed_data(RESPONSE)

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_client_order_path(benchmark: Any) -> None:
    loop = asyncio.new_event_loop()
    client = AsyncClient("http://127.0.0.1:8080", "key")
    reader = asyncio.StreamReader(loop=loop)
    writer = _Loopback(reader)
    client._pool._idle.append(_Conn(reader, writer))  # type: ignore[arg-type]
    ids = itertools.count()

    async def round_() -> list[str]:
        out = []
        for _ in range(GROUP):
            a = await client.new_order(ClOrdID=f"o-{next(ids)}", DeliverToCompID="KIWOOM", Symbol="005930",
                                       Side="1", OrdType="2", OrderQty="10", Price="70000")
            out.append(a.state)
        return out

    benchmark.group = "client-order-path"
    benchmark.extra_info["orders_per_round"] = GROUP
    try:
        states = benchmark.pedantic(lambda: loop.run_until_complete(round_()), rounds=300, warmup_rounds=20,
                                    iterations=1)
        assert states == ["PendingNew"] * GROUP
        assert writer.bytes > 0 and len(client._pool._idle) == 1  # one kept-alive connection throughout
    finally:
        loop.close()


def test_client_codec(benchmark: Any) -> None:
    m = messages("FIX.4.4")
    cls = m.NewOrderSingle
    dec = _decoder(NEW_ORDER.answer)

    def one() -> str:
        body = m.encode(cls(ClOrdID="o-1", DeliverToCompID="KIWOOM", Symbol="005930", Side="1", OrdType="2",
                            OrderQty="10", Price="70000"))
        assert body
        return dec.decode(ANSWER).state

    benchmark.group = "client-codec"
    assert benchmark(one) == "PendingNew"
