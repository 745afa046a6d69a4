"""The end-to-end benchmark harness (``bench/e2e``, ``make bench-e2e``) on tiny counts.

Checks that it still runs end to end against the gateway (FIX to the QuickFIX C++
executor), the bare granian + picows handler and, where the quickfix binding is
installed, the naive FastAPI peer, and that its verdict reads the ratios right. No
timing is asserted: these runs are far too short to mean anything.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from quickfix_peer import SKIP_REASON, available  # noqa: E402

from bench.e2e import harness  # noqa: E402
from bench.e2e.client import report_clordid  # noqa: E402

needs_executor = pytest.mark.skipif(not available("executor"), reason=SKIP_REASON)


def _run(tmp_path: Path, targets: tuple[str, ...]) -> dict[str, Any]:
    return asyncio.run(asyncio.wait_for(
        harness.run(tmp_path, n=5, rounds=1, seconds=1.0, warmup=2, targets=targets, pin=False), 240))


def _figures(r: dict[str, Any]) -> None:
    assert r["samples"] == 5
    assert r["p50_us"] > 0 and r["p99_us"] >= r["p50_us"]
    assert r["orders_per_s"] > 0
    assert r["reports_seen"] > 0


def test_report_clordid_reads_each_servers_frames():
    gw = (b'{"type":"message","seq":3,"ts":"x","message":{"Header":{"MsgType":"8"},'
          b'"Body":{"ClOrdID":"a-1","ExecType":"F"}}}')
    assert report_clordid(gw) == "a-1"
    assert report_clordid(gw.replace(b'"MsgType":"8"', b'"MsgType":"j"')) is None
    assert report_clordid(b'{"type":"report","ClOrdID":"b-2","ExecType":"0"}') == "b-2"
    assert report_clordid(b'{"type":"heartbeat"}') is None
    assert report_clordid(b"not json") is None
    assert report_clordid(b"[1,2]") is None


def _result(gw_p50: float, gw_p99: float, bare_p50: float, bare_p99: float, gw_rate: int, bare_rate: int,
            naive: tuple[float, float] | None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "gateway": {"label": "g", "p50_us": gw_p50, "p99_us": gw_p99, "orders_per_s": gw_rate},
        "bare": {"label": "b", "p50_us": bare_p50, "p99_us": bare_p99, "orders_per_s": bare_rate},
        "skipped": {}, "connections": 32,
    }
    if naive is None:
        res["skipped"]["naive"] = "quickfix not installed"
    else:
        res["naive"] = {"label": "n", "p50_us": naive[0], "p99_us": naive[1], "orders_per_s": 3000}
    res.update(harness.ratios(res))
    return res


def test_evaluate_passes_at_the_gate_and_reports_targets():
    res = _result(140, 300, 100, 200, 18000, 30000, (600, 900))
    ok, lines = harness.evaluate(res)
    assert ok
    assert lines[0].endswith("PASS")
    text = "\n".join(lines)
    assert "target gateway p50 <= 1.4x bare: 1.40x met" in text
    assert "target gateway p99 <= 1.7x bare: 1.50x met" in text
    assert "target naive p50 >= 2x gateway: 4.29x met" in text
    assert "target naive p99 >= 2x gateway: 3.00x met" in text
    assert "target gateway orders/s >= 0.6x bare: 0.60x met" in text


def test_evaluate_fails_above_the_gate_and_marks_misses():
    res = _result(210, 500, 100, 200, 6000, 30000, (300, 900))
    ok, lines = harness.evaluate(res, gate=2.0)
    assert not ok
    assert lines[0] == "gate: gateway p50 / bare p50 = 2.10x (at most 2.0x): FAIL"
    assert harness.evaluate(res)[0]  # the enforced ceiling guards against regressions only
    text = "\n".join(lines)
    assert "target gateway p50 <= 2.0x bare (the gate asked for): 2.10x not met" in text
    assert "target gateway p50 <= 1.4x bare: 2.10x not met" in text
    assert "target gateway p99 <= 1.7x bare: 2.50x not met" in text
    assert "target naive p50 >= 2x gateway: 1.43x not met" in text
    assert "target gateway orders/s >= 0.6x bare: 0.20x not met" in text


def test_evaluate_without_naive_peer_says_skipped_and_still_judges():
    res = _result(150, 300, 100, 200, 20000, 30000, None)
    ok, lines = harness.evaluate(res)
    assert ok
    assert "naive: skipped: quickfix not installed" in lines
    assert "target naive p50 >= 2x gateway: — not measured" in lines
    assert "quickfix not installed" in harness.table(res)


def test_evaluate_without_bare_handler_fails():
    res = _result(150, 300, 100, 200, 20000, 30000, None)
    del res["bare"]
    res.update(harness.ratios(res))
    ok, lines = harness.evaluate(res)
    assert not ok and lines[0].endswith("FAIL")


@needs_executor
@pytest.mark.timeout(300)
def test_harness_runs_gateway_and_bare_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # As where the binding is absent: the naive column is skipped with its reason, not a failure.
    monkeypatch.setattr(harness, "naive_missing", lambda: "quickfix not installed (test)")
    res = _run(tmp_path, harness.TARGETS)
    _figures(res["gateway"])
    _figures(res["bare"])
    assert "naive" not in res
    assert res["skipped"] == {"naive": "quickfix not installed (test)"}
    assert res["p50_vs_bare"] is not None and res["orders_vs_bare"] is not None
    # where the gateway's round trip went, from its traces (GET /v1/orders/{ClOrdID}/trace)
    assert set(res["gateway"]["trace_p50_us"]) == {name for name, _ in harness.TRACE_HOPS}
    assert "→ report read (the executor and both FIX ends)" in (harness.hops_line(res) or "")
    ok, lines = harness.evaluate(res)
    assert "naive: skipped: quickfix not installed (test)" in lines
    table = harness.table(res)
    assert harness.LABELS["gateway"] in table and harness.LABELS["bare"] in table


@needs_executor
@pytest.mark.skipif(harness.naive_missing() is not None, reason=str(harness.naive_missing()))
@pytest.mark.timeout(300)
def test_harness_runs_naive_peer_end_to_end(tmp_path: Path):
    res = _run(tmp_path, ("naive",))
    _figures(res["naive"])
    assert res["skipped"] == {}


def test_performance_page_section_comes_from_the_results():
    from bench.loadgen.page import e2e_section

    res = _result(150, 300, 100, 200, 20000, 30000, (600, 900))
    res.update({"rounds": 2, "n": 1000, "seconds": 3.0, "client": "wrk", "pinned": True})
    for name in ("gateway", "naive", "bare"):
        res[name]["post_to_202_p50_us"] = 50.0
    text = "\n".join(e2e_section(res))
    assert "| g | 150 µs | 300 µs | 20,000 |" in text
    assert "| n | 600 µs | 900 µs | 3,000 |" in text
    assert "- gate: gateway p50 / bare p50 = 1.50x (at most 8.0x): PASS" in text
    assert "gateway/bare: p50 1.50x, p99 1.50x, orders/s 0.67x" in text
    assert "gateway trace" not in text
    res["gateway"]["trace_p50_us"] = {"validate": 50.0, "hub": 110.0}
    text = "\n".join(e2e_section(res))
    assert ("gateway trace, p50 of each hop: REST received → validated 50 µs, "
            "→ report read (the executor and both FIX ends) 110 µs.") in text
    assert "Not measured" in "\n".join(e2e_section(None))
    assert "executor not installed" in "\n".join(e2e_section({"error": "executor not installed"}))


def test_unknown_target_is_refused_before_anything_starts(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown targets \\['nginx'\\]"):
        _run(tmp_path, ("bare", "nginx"))
    assert not (tmp_path / "executor").exists()
