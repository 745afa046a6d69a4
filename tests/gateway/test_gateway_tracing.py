"""Per-order hop timing: the tracer on its own, and through a running gateway."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _gateway_harness import KEYS, GatewayProcess, Http, order, ws_connect, ws_next
from helpers import run
from prometheus_client import CollectorRegistry, generate_latest

from server.gateway.tracing import BUCKETS_NS, HOP_NAMES, HOPS, Tracer


def _total(t: Tracer, hop: str) -> int:
    return sum(t.histograms()[hop][0])


def test_hops_of_one_order_in_order() -> None:
    t = Tracer(ring_size=8)
    t0 = time.perf_counter_ns()
    rec = t.start("alpha", "o1", t0)
    t.persisted(rec)
    t.fix_written(rec)
    t.inbound_ns = time.perf_counter_ns()
    t.report("alpha", b"alpha:o1", 1)
    t.pushed("alpha", 1)
    t.inbound_ns = time.perf_counter_ns()
    t.report("alpha", b"alpha:o1", 2)  # a fill after the ack
    t.pushed("alpha", 2)
    tr = t.trace("alpha", "o1")
    assert tr is not None
    stamps = [tr["timestamps"][h] for h in HOP_NAMES]
    assert stamps[0] == t0
    assert all(isinstance(s, int) for s in stamps), stamps
    assert stamps == sorted(stamps)
    assert [r["seq"] for r in tr["reports"]] == [1, 2]
    assert all(r["er_to_ws_us"] >= 0 for r in tr["reports"])
    assert set(tr["hops_us"]) == set(HOPS)
    assert all(v is not None and v >= 0 for v in tr["hops_us"].values())
    for hop in ("validate", "persist", "fix_write", "hub", "rest_to_fix", "rest_to_ws"):
        assert _total(t, hop) == 1, hop
    assert _total(t, "er_to_ws") == 2  # every report, not only the first
    # another client cannot read it: the key is the client's namespace
    assert t.trace("beta", "o1") is None


def test_ring_forgets_the_oldest_and_pending_is_bounded_by_pushes() -> None:
    t = Tracer(ring_size=4)
    for i in range(10):
        t.start("c", f"o{i}")
    assert t.trace("c", "o5") is None
    assert all(t.trace("c", f"o{i}") is not None for i in range(6, 10))
    assert len(t._by_key) == 4
    # an event without subscribers is forgotten, not observed
    t.report("c", b"c:o9", 1)
    t.pushed("c", 1, delivered=False)
    assert not t._pending["c"]
    assert _total(t, "er_to_ws") == 0
    # reports for unknown orders (lists, other sessions) still count for er_to_ws
    t.report("c", b"c:nothing", 2)
    t.report("c", None, 3)
    t.pushed("c", 2)
    t.pushed("c", 3)
    assert _total(t, "er_to_ws") == 2
    # the same key twice (a retried order), then both records reused: no error, newest wins
    t.start("c", "dup")
    t.start("c", "dup")
    assert t.trace("c", "dup") is not None
    for i in range(8):
        t.start("c", f"p{i}")
    assert t.trace("c", "dup") is None and len(t._by_key) == 4
    # a pushed event whose record was reused by a newer order does not touch the newer one
    t.report("c", b"c:p7", 100)
    for i in range(4):
        t.start("c", f"q{i}")
    t.pushed("c", 100)
    assert all(t.trace("c", f"q{i}")["timestamps"]["ws_written"] is None for i in range(4))


def test_disabled_records_nothing() -> None:
    t = Tracer(enabled=False)
    rec = t.start("c", "o1")
    assert rec is None
    t.persisted(rec)
    t.fix_written(rec)
    t.report("c", b"c:o1", 1)
    t.pushed("c", 1)
    assert t.trace("c", "o1") is None
    assert all(sum(c) == 0 for c, _ in t.histograms().values())


def test_bucket_placement_and_prometheus_exposition() -> None:
    t = Tracer()
    assert list(BUCKETS_NS) == sorted(BUCKETS_NS) and BUCKETS_NS[0] == 1000
    rec = t.start("c", "o1", received_ns=1)  # received long ago: lands in +Inf
    assert rec is not None
    t._observe(0, 1500)  # 1.5 µs -> the 2 µs bucket
    counts, total = t.histograms()["validate"]
    assert counts[BUCKETS_NS.index(2000)] == 1 and counts[-1] == 1
    assert total >= 1500
    reg = CollectorRegistry()
    reg.register(t)
    text = generate_latest(reg).decode()
    assert 'gateway_hop_seconds_bucket{hop="validate",le="2e-06"} 1.0' in text
    assert 'gateway_hop_seconds_count{hop="validate"} 2.0' in text
    assert 'gateway_hop_seconds_bucket{hop="persist",le="+Inf"} 0.0' in text


# ---------------------------------------------------------------- through the gateway process


def test_trace_endpoint_and_metrics(gw: GatewayProcess) -> None:
    async def go() -> None:
        ws = await ws_connect(gw.ws, KEYS["alpha"])
        try:
            await ws_next(ws, "subscribed")
            async with Http(gw.rest, KEYS["alpha"]) as h:
                sent = time.perf_counter_ns()
                status, body = await h.call("POST", "/v1/orders", order("tr-1"))
                assert status == 202, body
                await ws_next(ws)  # the acknowledgement, pushed
                received = time.perf_counter_ns()
                tr: dict[str, Any] = {}
                for _ in range(200):  # the push is recorded right after the frame is written
                    status, tr = await h.call("GET", "/v1/orders/tr-1/trace")
                    assert status == 200, tr
                    if tr["timestamps"]["ws_written"]:
                        break
                    await asyncio.sleep(0.01)
                stamps = [tr["timestamps"][k] for k in HOP_NAMES]
                assert all(stamps), tr
                # one clock for the whole host: the client's send and receive frame the gateway's hops
                assert sent <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= received
                assert tr["reports"][0]["seq"] >= 1
                # authorised like the order: another client gets 404, unknown orders too
                assert (await h.call("GET", "/v1/orders/tr-1/trace", headers={"X-API-Key": KEYS["beta"]}))[0] == 404
                assert (await h.call("GET", "/v1/orders/nope/trace"))[0] == 404
                async with Http(gw.rest) as anon:
                    assert (await anon.call("GET", "/v1/orders/tr-1/trace"))[0] == 401
                status, text = await h.call("GET", "/metrics")
                assert status == 200
                text = text.decode() if isinstance(text, bytes) else text
                assert 'gateway_hop_seconds_count{hop="rest_to_ws"} 1.0' in text
                assert 'gateway_hop_seconds_count{hop="er_to_ws"}' in text
        finally:
            await ws.close()

    run(go())
