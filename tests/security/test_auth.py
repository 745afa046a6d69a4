"""API keys and per-client authorization of the gateway.

* keys are configured as SHA-256 digests, checked with :func:`hmac.compare_digest`
  on every REST request and WebSocket authentication, and never written anywhere:
  after a flow that uses them (good and bad keys, header and Bearer, WebSocket
  header and first-message auth) no file the gateway wrote contains a key;
* every /v1 route answers 401 without a key or with a wrong one;
* client B can neither read, cancel, replace, trace nor stream client A's orders
  and lists, on every route that takes an identifier (404, as if absent), and A's
  orders stay untouched; the routes are checked against the OpenAPI document so a
  new route cannot be left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest
from _gateway_harness import KEYS, GatewayProcess, Http, gateway_toml, order, ws_connect, ws_next
from helpers import run

A, B = KEYS["alpha"], KEYS["beta"]
WRONG = "key-wrong-0123456789"


@pytest.fixture
def gw(tmp_path: Path) -> Any:
    toml = gateway_toml().replace('log_level = "warning"', 'log_level = "debug"')
    p = GatewayProcess(tmp_path, toml).start()
    try:
        yield p
    finally:
        p.stop()


async def _ws_frames(port: int, key: str, since: int, until: int) -> list[dict[str, Any]]:
    ws = await ws_connect(port, key, since=since)
    try:
        sub = await ws_next(ws, "subscribed")
        out = []
        for _ in range(sub["last_seq"] - since):
            out.append(await ws_next(ws))
        return out
    finally:
        await ws.close()


def test_keys_are_hashed_and_never_written(gw: GatewayProcess, tmp_path: Path) -> None:
    from picows.websockets.asyncio.client import connect

    async def go() -> None:
        async with Http(gw.rest, A) as h:
            assert (await h.call("POST", "/v1/orders", order("s-1", OrdType="1", Price=None)))[0] == 202
        async with Http(gw.rest) as h:
            bearer = {"Authorization": f"Bearer {B}"}
            assert (await h.call("POST", "/v1/orders", order("s-2"), headers=bearer))[0] == 202
            assert (await h.call("GET", "/v1/orders", headers={"X-API-Key": WRONG}))[0] == 401
            assert (await h.call("GET", "/v1/orders?api_key=" + WRONG, headers={"X-API-Key": WRONG}))[0] == 401
        await _ws_frames(gw.ws, A, 0, 0)
        async with connect(f"ws://127.0.0.1:{gw.ws}/v1/stream") as ws:  # browser-style auth
            await ws.send(json.dumps({"op": "auth", "api_key": B, "since": 0}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "subscribed"
        async with connect(f"ws://127.0.0.1:{gw.ws}/v1/stream") as ws:
            await ws.send(json.dumps({"op": "auth", "api_key": WRONG}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame["type"] == "error" and "invalid API key" in frame["reason"]

    run(go())
    gw.stop()
    config = (tmp_path / "gw.toml").read_text()
    assert hashlib.sha256(A.encode()).hexdigest() in config and A not in config
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "gw.toml"]
    assert any(p.name.startswith("gw.db") for p in written) and any(p.suffix == ".log" for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in (A, B, WRONG):
            assert secret.encode() not in data, f"{path.name} contains an API key"
            assert secret.encode("utf-16-le") not in data


def test_authentication_uses_constant_time_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest of the presented key is compared with hmac.compare_digest."""
    from server.gateway import auth as auth_mod
    from server.gateway.config import ClientConfig

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_mod.hmac, "compare_digest", spy)
    client = ClientConfig(id="alpha", api_key_sha256=hashlib.sha256(A.encode()).hexdigest())
    authn = auth_mod.Authenticator({"alpha": client})
    assert authn.authenticate(A) is client
    assert calls == [(hashlib.sha256(A.encode()).digest(), hashlib.sha256(A.encode()).digest())]
    assert authn.authenticate(WRONG) is None
    assert authn.authenticate(A[:-1]) is None
    assert authn.authenticate("x" * 10_000) is None  # oversized keys are refused before hashing
    assert authn.authenticate("") is None and authn.authenticate(None) is None
    # Verified keys may be remembered in memory (never on disk); wrong keys never are, so a
    # flood of guesses cannot grow that table, and a remembered key still maps to its client.
    for i in range(5000):
        assert authn.authenticate(f"guess-{i}") is None
    remembered = authn.known
    assert remembered == {A: client}
    assert all(authn.authenticate(k) is c for k, c in remembered.items())
    assert len(remembered) <= 1


def test_every_entry_point_authenticates_through_the_authenticator() -> None:
    """REST (app.py) and the stream (ws.py) call Authenticator.authenticate and compare no key themselves."""
    root = Path(__file__).resolve().parents[2] / "server" / "gateway"
    for name in ("app.py", "ws.py"):
        src = (root / name).read_text()
        assert "auth.authenticate(" in src, name
        assert not re.search(r"api_key\w*\s*[!=]=", src), f"{name} compares a key with =="
    assert "hmac.compare_digest" in (root / "auth.py").read_text()


def test_every_route_requires_a_key(gw: GatewayProcess) -> None:
    async def go() -> None:
        async with Http(gw.rest) as h:
            status, spec = await h.call("GET", "/openapi.json")
            assert status == 200
            paths = [p for p in spec["paths"] if p.startswith("/v1/")]
            assert len(paths) >= 7
            for path in paths + ["/v1/orders/{ClOrdID}/trace"]:
                concrete = re.sub(r"\{[^}]+\}", "x-1", path)
                for method in ("GET", "POST", "DELETE"):
                    for headers in ({}, {"X-API-Key": WRONG}, {"Authorization": f"Bearer {WRONG}"},
                                    {"Authorization": f"Basic {A}"}):
                        status, body = await h.call(method, concrete, b"{}" if method == "POST" else None,
                                                    headers=headers)
                        assert status == 401, (method, concrete, headers, status, body)
                        assert body["error"] == "unauthorized"
        with pytest.raises(Exception, match="401"):
            await ws_connect(gw.ws, WRONG, since=0)

    run(go())


def test_clients_cannot_touch_each_others_orders(gw: GatewayProcess) -> None:
    lst = {"ListID": "LA", "DeliverToCompID": "BRKA", "NoOrders": [
        {"ClOrdID": "la-1", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "1", "Price": "70000"}]}

    async def go() -> None:
        async with Http(gw.rest, A) as a, Http(gw.rest, B) as b:
            assert (await a.call("POST", "/v1/orders", order("a-1")))[0] == 202
            assert (await a.call("POST", "/v1/order-lists", lst))[0] == 202
            for _ in range(200):
                if (await a.call("GET", "/v1/orders/a-1"))[1]["state"] == "New":
                    break
                await asyncio.sleep(0.02)
            before = (await a.call("GET", "/v1/orders/a-1"))[1]
            assert before["state"] == "New"
            a_seq = (await ws_next(await ws_connect(gw.ws, A), "subscribed"))["last_seq"]
            assert a_seq >= 2

            attempts = [
                ("GET", "/v1/orders/a-1", None),
                ("DELETE", "/v1/orders/a-1", None),
                ("POST", "/v1/orders/a-1/cancel", {"ClOrdID": "b-c1"}),
                ("POST", "/v1/orders/a-1/replace", {"ClOrdID": "b-r1", "OrderQty": "5"}),
                ("GET", "/v1/orders/a-1/trace", None),
                ("GET", "/v1/orders/la-1", None),
                ("GET", "/v1/order-lists/LA", None),
                ("POST", "/v1/order-lists/LA/cancel", None),
                ("POST", "/v1/orders/a-1/status", None),
            ]
            covered = {re.sub(r"/(a-1|la-1|LA)(?=/|$)", "/{id}", p) for _, p, _ in attempts}
            # Not the client's objects: reference data (the same for all), and accounts, which are
            # checked against the client's accounts (below) and the broker's advisor ownership.
            covered |= {"/v1/instruments/{id}", "/v1/accounts/{id}/positions", "/v1/accounts/{id}/balance"}
            spec = (await b.call("GET", "/openapi.json"))[1]
            with_ids = {re.sub(r"\{[^}]+\}", "{id}", p) for p in spec["paths"] if "{" in p}
            assert with_ids <= covered, f"routes not checked for cross-client access: {with_ids - covered}"
            for method, path, body in attempts:
                status, resp = await b.call(method, path, body if body is not None else
                                            (b"" if method == "POST" else None))
                assert status == 404, (method, path, status, resp)
                assert "a-1" not in json.dumps(resp) or resp.get("error") == "not_found"
            # B's listing and stream show nothing of A's
            listing = (await b.call("GET", "/v1/orders?limit=1000"))[1]
            assert all(o["ClOrdID"] not in ("a-1", "la-1") for o in listing["orders"])
            ws = await ws_connect(gw.ws, B, since=0)
            sub = await ws_next(ws, "subscribed")
            assert sub["client"] == "beta" and sub["last_seq"] == 0
            await ws.close()
            # the same ClOrdID is B's own order, separate from A's
            assert (await b.call("POST", "/v1/orders", order("a-1", Price="70100")))[0] == 202
            after = (await a.call("GET", "/v1/orders/a-1"))[1]
            assert (after["state"], after.get("pending"), after["Price"]) == ("New", None, "70000")
            assert before["OrderQty"] == after["OrderQty"]
            # routing and account limits
            status, resp = await b.call("POST", "/v1/orders", order("b-2", DeliverToCompID="BRKB"))
            assert status == 403 and "BRKB" in resp["message"]
            status, resp = await a.call("POST", "/v1/orders", order("a-2", Account="ACC9"))
            assert status == 403 and "ACC9" in resp["message"]
            for route in ("positions", "balance"):  # a client reads only its own accounts
                status, resp = await a.call("GET", f"/v1/accounts/ACC9/{route}?broker=BRKA")
                assert status == 403 and "ACC9" in resp["message"]

    run(go())


def test_stream_refuses_unauthenticated_subscriptions(gw: GatewayProcess) -> None:
    from picows.websockets.asyncio.client import connect

    async def go() -> None:
        async with connect(f"ws://127.0.0.1:{gw.ws}/v1/stream") as ws:
            await ws.send(json.dumps({"op": "subscribe", "since": 0}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame == {"type": "error", "reason": "authenticate first", "seq": 0}
        async with connect(f"ws://127.0.0.1:{gw.ws}/v1/stream") as ws:
            await ws.send(json.dumps({"op": "auth", "api_key": {"$ne": None}}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame["type"] == "error" and "invalid API key" in frame["reason"]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.recv(), 5)

    run(go())
