"""Limits that keep one client (or a stranger) from harming the others:

* identifiers (ClOrdID, ListID) are FIX String values: printable ASCII, no SOH or other
  control characters, not blank at either end, no ``/``; anything else is a 422 naming
  the field;
* an identifier in a path is decoded exactly once (``%`` is a valid character);
* reads have a token bucket of their own per client (429 with Retry-After);
* failed authentications are counted and throttled per source address (429), and
  ``/metrics`` can require a key;
* orders without a limit price are valued at the symbol's upper daily price limit for
  the client's notional limit.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _gateway_harness import KEYS, GatewayProcess, Http, gateway_toml, order, sha, ws_connect

A, D = KEYS["alpha"], "key-delta-0123456789"
WRONG = "key-wrong-0123456789"

_DELTA = f"""
[[clients]]
id = "delta"
api_key_sha256 = "{sha(D)}"
rate = 1000
burst = 1000
read_rate = 1
read_burst = 3
"""


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 90))


@pytest.fixture
def gw(tmp_path: Path) -> Any:
    toml = gateway_toml(extra="auth_fail_limit = 5\nauth_fail_window = 600\nmetrics_require_key = true")
    # delta: a read bucket of 3, refilled at 1/s
    p = GatewayProcess(tmp_path, toml + _DELTA).start()
    try:
        yield p
    finally:
        p.stop()
    assert "Traceback" not in p.log(), p.log()[-3000:]


def test_identifiers_are_printable_ascii(gw: GatewayProcess) -> None:
    bad = {"주문-1": "printable ASCII", "ord-🚀": "printable ASCII", "a\x01b": "printable ASCII",
           "a\tb": "printable ASCII", "a\x7fb": "printable ASCII", "   ": "space", " lead": "space",
           "trail ": "space", "a/b": "'/'", "é": "printable ASCII"}

    async def go() -> None:
        async with Http(gw.rest, A) as h:
            for cl, why in bad.items():
                status, doc = await h.call("POST", "/v1/orders", order(cl))
                assert status == 422, (cl, status, doc)
                problem = next(e for e in doc["errors"] if e["field"] == "ClOrdID")
                assert why in problem["reason"] and problem["path"] == "$.ClOrdID", (cl, problem)
                lst = {"ListID": cl, "DeliverToCompID": "BRKA", "NoOrders": [
                    {"ClOrdID": "li-1", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "1",
                     "Price": "70000"}]}
                status, doc = await h.call("POST", "/v1/order-lists", lst)
                assert status == 422 and any(e["field"] == "ListID" and why in e["reason"]
                                             for e in doc["errors"]), (cl, doc)
            for cl in ("inner space", "a%41", "x!\"#$&'()*+,-.;<=>?@[\\]^_`{|}"):
                status, doc = await h.call("POST", "/v1/orders", order(cl))
                assert status == 202, (cl, doc)

    run(go())


def test_path_identifiers_are_decoded_once(gw: GatewayProcess) -> None:
    """Two orders whose ids differ only by a percent-escape: each path reaches its own order."""

    async def go() -> None:
        async with Http(gw.rest, A) as h:
            for cl in ("a%41", "aA", "100%", "x%2Fy"):
                assert (await h.call("POST", "/v1/orders", order(cl)))[0] == 202
            for cl in ("a%41", "100%", "x%2Fy"):
                status, doc = await h.call("GET", "/v1/orders/" + urllib.parse.quote(cl, safe=""))
                assert status == 200 and doc["ClOrdID"] == cl, (cl, doc)
            status, doc = await h.call("DELETE", "/v1/orders/" + urllib.parse.quote("a%41", safe=""))
            assert status == 202, doc
            pending = (await h.call("GET", "/v1/orders/a%2541"))[1]
            other = (await h.call("GET", "/v1/orders/aA"))[1]
            assert pending.get("pending") == "cancel" or pending["state"] == "Canceled", pending
            assert other.get("pending") is None and other["state"] != "Canceled", other

    run(go())


def test_reads_have_their_own_bucket(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, D) as h:
            statuses = []
            for _ in range(6):
                status, doc = await h.call("GET", "/v1/orders?limit=1")
                statuses.append(status)
                if status == 429:
                    assert doc["error"] == "throttled" and "read rate" in doc["message"], doc
            assert statuses[:3] == [200, 200, 200] and statuses.count(429) >= 2, statuses
            status, headers, _ = await h.raw("GET", "/v1/brokers")
            assert status == 429 and int(headers["retry-after"]) >= 1, headers
            # orders are not held back by the read bucket
            assert (await h.call("POST", "/v1/orders", order("d-1")))[0] == 202

    run(go())


def test_failed_authentications_are_counted_and_throttled(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest) as h:
            assert (await h.call("GET", "/metrics"))[0] == 401  # metrics_require_key
            assert (await h.call("GET", "/metrics", headers={"X-API-Key": A}))[0] == 200
            for _ in range(5):
                status, doc = await h.call("GET", "/v1/orders", headers={"X-API-Key": WRONG})
                assert status == 401, doc
            status, headers, body = await h.raw("GET", "/v1/orders", headers={"X-API-Key": WRONG})
            assert status == 429 and int(headers["retry-after"]) >= 1, (status, body)
            assert json.loads(body)["error"] == "too_many_failures"
            # a key already verified keeps working from the same address; others are not even checked
            status, _, body = await h.raw("GET", "/v1/orders", headers={"X-API-Key": KEYS["beta"]})
            assert status == 429, body
            status, text = await h.call("GET", "/metrics", headers={"X-API-Key": A})
            assert status == 200
        n = sum(float(v) for v in re.findall(r'^gateway_auth_failures_total\{entry="rest"\} (\S+)$',
                                             text.decode(), re.M))
        assert n == 5, text.decode()[-2000:]
        # the stream refuses a stranger from the throttled address at once
        from picows.websockets.asyncio.client import connect

        async with connect(f"ws://127.0.0.1:{gw.ws}/v1/stream") as ws:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame["type"] == "error" and "failed authentications" in frame["reason"], frame
        ws = await ws_connect(gw.ws, A)  # an authenticated one is served
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "subscribed"
        await ws.close()

    run(go())


def test_market_orders_are_valued_for_the_notional_limit() -> None:
    """alpha may trade 1e9 KRW per order: 20,000 shares of 005930 at market would be valued at
    its upper limit (70,000 + 30% = 91,000), so they are refused; 10,000 pass."""
    from server.gateway.checks import check_order_fields
    from server.gateway.config import ClientConfig

    client = ClientConfig(id="alpha", api_key_sha256="0" * 64, max_notional=Decimal(1_000_000_000))
    for qty, symbol, want in (("20000", "005930", "OrderQty"), ("10000", "005930", None),
                              ("5000", "A005930", None), ("11000", "KR7005930003", "OrderQty"),
                              ("1", "NOSUCH", "Symbol")):
        problems: list[Any] = []
        check_order_fields({"Symbol": symbol, "Side": "1", "OrdType": "1", "OrderQty": qty}, client, "krx", "$",
                           problems)
        fields = [p.field for p in problems]
        assert fields == ([want] if want else []), (qty, symbol, problems)
        if want == "OrderQty":
            assert "91000" in problems[0].reason, problems
    # a client without a notional limit may send market orders in any symbol
    problems = []
    check_order_fields({"Symbol": "NOSUCH", "Side": "1", "OrdType": "1", "OrderQty": "1"},
                       ClientConfig(id="b", api_key_sha256="0" * 64), "krx", "$", problems)
    assert problems == []


def test_market_order_over_the_notional_limit_is_refused(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest, A) as h:
            status, doc = await h.call("POST", "/v1/orders", order("m-1", OrdType="1", Price=None,
                                                                   OrderQty="20000"))
            assert status == 422 and any(e["field"] == "OrderQty" and "notional" in e["reason"]
                                         for e in doc["errors"]), doc

    run(go())
