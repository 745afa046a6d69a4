"""The failure throttle, the read buckets and the body reader, without a gateway process."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from server.gateway import auth as auth_module
from server.gateway.auth import FailureThrottle, ReadThrottle
from server.gateway.config import ClientConfig
from server.gateway.errors import ApiError
from server.gateway.guards import (
    BodyReader,
    check_content_type,
    check_list_totals,
    path_segments,
    source_ip,
)
from server.gateway.metrics import Metrics


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_block_an_address_until_its_window_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(auth_module.time, "monotonic", clock)
    t = FailureThrottle(limit=3, window=60)
    for _ in range(3):
        t.check("10.0.0.1")
        t.failed("10.0.0.1")
    with pytest.raises(ApiError) as exc:
        t.check("10.0.0.1")
    assert exc.value.status == 429 and dict(exc.value.headers)["retry-after"] == "60"
    t.check("10.0.0.2")  # another address is not affected
    clock.now += 61
    t.check("10.0.0.1")  # the window ended
    assert "10.0.0.1" not in t._failures


def test_failures_remember_a_bounded_number_of_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(auth_module.time, "monotonic", clock)
    t = FailureThrottle(limit=1, window=60, max_sources=100)
    for i in range(10_000):
        t.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        assert len(t) <= 100
    assert t.blocked("10.0.39.15")  # the newest are kept


def test_reads_have_a_bucket_per_client() -> None:
    a = ClientConfig(id="a", api_key_sha256="0" * 64, read_rate=0.001, read_burst=2)
    b = ClientConfig(id="b", api_key_sha256="0" * 64, read_rate=0.001, read_burst=2)
    metrics = Metrics()
    t = ReadThrottle({"a": a, "b": b}, metrics.rejected)
    t.take(a)
    t.take(a)
    with pytest.raises(ApiError) as exc:
        t.take(a)
    assert exc.value.status == 429 and int(dict(exc.value.headers)["retry-after"]) >= 1
    t.take(b)
    assert b'gateway_requests_rejected_total{reason="throttled_read"} 1.0' in metrics.render()


class _Scope:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class _Chunked:
    """A body arriving in chunks; ``stall`` after them: it never ends."""

    def __init__(self, chunks: list[bytes], stall: bool = False) -> None:
        self.chunks, self.stall = chunks, stall

    async def __call__(self) -> bytes:
        return b"".join(self.chunks)

    def __aiter__(self) -> Any:
        return self._gen()

    async def _gen(self) -> Any:
        for c in self.chunks:
            yield c
        if self.stall:
            await asyncio.Event().wait()


def test_body_reader_limits_and_deadline() -> None:
    async def go() -> None:
        r = BodyReader(100, 0.2)
        assert await r.read(_Scope({"content-length": "3"}), _Chunked([b"abc"])) == b"abc"
        assert await r.read(_Scope({}), _Chunked([b"ab", b"c", b""])) == b"abc"
        for headers, proto, status in (({"content-length": "101"}, _Chunked([]), 413),
                                       ({"content-length": "-1"}, _Chunked([]), 400),
                                       ({}, _Chunked([b"x" * 60, b"x" * 60], stall=True), 413),
                                       ({}, _Chunked([b"x"], stall=True), 408)):
            with pytest.raises(ApiError) as exc:
                await asyncio.wait_for(r.read(_Scope(headers), proto), 10)
            assert exc.value.status == status, (headers, exc.value.status)
        assert not r._reading and not r._expired
        r.close()

    asyncio.run(go())


def test_small_guards() -> None:
    for ctype in (None, "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                  "application/fix+json"):
        check_content_type({"content-type": ctype} if ctype else {})
    for ctype in ("text/plain", "application/jsonp", "multipart/form-data", ""):
        with pytest.raises(ApiError) as exc:
            check_content_type({"content-type": ctype})
        assert exc.value.status == 415
    assert path_segments("/v1/orders/a%41") == ["v1", "orders", "a%41"] and path_segments("/") == []
    assert source_ip("127.0.0.1:5000") == "127.0.0.1" and source_ip("[::1]:80") == "::1"
    assert source_ip(("10.0.0.1", 1)) == "10.0.0.1"
    check_list_totals(b'{"TotNoOrders": "2", "NoOrders": [{}, {}]}')
    check_list_totals(b'{"TotNoOrders": 2, "NoOrders": [{}, {}]}')
    check_list_totals(b"not json")
    for raw in (b'{"TotNoOrders": "3", "NoOrders": [{}, {}]}', b'{"Body": {"TotNoOrders": 1, "NoOrders": []}}',
                b'{"TotNoOrders": true, "NoOrders": [{}]}'):
        with pytest.raises(ApiError) as exc:
            check_list_totals(raw)
        assert exc.value.errors[0].field == "TotNoOrders", raw


def test_limit_settings_are_checked(tmp_path: Any) -> None:
    from fastfix.errors import ConfigError
    from server.gateway.config import parse_config

    def cfg(**gateway: Any) -> Any:
        return parse_config({"gateway": {"link": "loopback", **gateway}, "brokers": [{"id": "B"}],
                             "clients": [{"id": "c", "api_key_sha256": "0" * 64, "read_rate": 5, "read_burst": 7}]},
                            tmp_path / "gw.toml")

    c = cfg(ws_auth_timeout=2, http_max_uri=4096, metrics_require_key=True, reference_prices={"005930": 71000})
    assert (c.ws_auth_timeout, c.http_max_uri, c.metrics_require_key) == (2.0, 4096, True)
    assert c.reference_prices == {"005930": 71000}
    assert (c.clients["c"].read_rate, c.clients["c"].read_burst) == (5.0, 7)
    for bad, where in (({"ws_max_per_ip": 0}, "gateway.ws_max_per_ip: Expected int >= 1"),
                       ({"http_max_uri": 70000}, "gateway.http_max_uri: Expected int <= 65000"),
                       ({"http_max_header_bytes": 100}, "gateway.http_max_header_bytes: Expected int >= 1024"),
                       ({"reference_prices": {"005930": "x"}},
                        "gateway.reference_prices.005930: Expected int, got str (a positive whole price (KRW))"),
                       ({"auth_fail_window": True}, "gateway.auth_fail_window: Expected float, got bool")):
        with pytest.raises(ConfigError, match=re.escape(where)) as exc:
            cfg(**bad)
        assert "gw.toml" in str(exc.value)
