"""The gateway load lab (bench/loadgen): scenarios, the HTTP client's framing, percentiles, a short run."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.loadgen.report import markdown_run, markdown_sweep, plot_sweep, write_run
from bench.loadgen.run import HOP_CHAIN, summarize
from bench.loadgen.scenario import OPS, krx_tick, load_scenario
from bench.loadgen.worker import _Http

REPO = Path(__file__).resolve().parents[1]

SCENARIOS = sorted((REPO / "bench" / "loadgen" / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_load(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.name and sc.duration > 0 and sum(sc.weights()) > 0
    for s in sc.symbols:
        assert s.price % krx_tick(s.price) == 0, s


def test_scenario_errors_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('name = "x"\n[mix]\nlimit = 1\nswap = 2\n')
    with pytest.raises(ValueError, match=r"bad.toml: \[mix\]: unknown request kinds \['swap'\]"):
        load_scenario(p)
    p.write_text('[load]\nrate = -1\n')
    with pytest.raises(ValueError, match="bad.toml"):
        load_scenario(p)
    p.write_text('colour = "red"\n')
    with pytest.raises(ValueError, match="unknown keys"):
        load_scenario(p)
    p.write_text('[orders]\nqty = [5, 1]\n')
    with pytest.raises(ValueError, match="qty"):
        load_scenario(p)


def test_krx_ticks() -> None:
    assert [krx_tick(p) for p in (1_999, 2_000, 19_990, 20_000, 70_000, 199_900, 200_000, 500_000)] == \
        [1, 5, 10, 50, 100, 100, 500, 1000]


class _Sink:
    def __init__(self) -> None:
        self.got: list[tuple[Any, int, bytes]] = []

    def on_response(self, conn: Any, req: Any, status: int, body: bytes) -> None:
        self.got.append((req, status, body))

    def on_lost(self, conn: Any) -> None:
        pass


def test_http_framing_across_chunks_and_header_spellings() -> None:
    sink = _Sink()
    c = _Http(sink)  # type: ignore[arg-type]
    c.req = ["first"]
    one = b'HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{"a":"b"}'
    for i in range(0, len(one), 7):  # arrives in pieces
        c.data_received(one[i:i + 7])
    assert sink.got == [(["first"], 202, b'{"a":"b"}')]
    c.req = ["second"]
    c.data_received(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n")
    assert sink.got[-1] == (["second"], 404, b"{}")
    c.req = ["third"]
    c.data_received(b"content-length: 0\r\n\r\n")
    assert sink.got[-1] == (["third"], 200, b"")
    assert not c.buf


def test_summarize_percentiles() -> None:
    s = summarize(range(1000, 1_001_000, 1000))  # 1 µs .. 1000 µs, uniform
    assert s["count"] == 1000
    assert abs(s["p50"] - 500) <= 1 and abs(s["p99"] - 990) <= 2 and abs(s["max"] - 1000) <= 1
    assert s["p50"] <= s["p90"] <= s["p99"] <= s["p99_9"] <= s["max"]
    assert summarize([]) == {"count": 0}


def test_short_run_against_a_lab_target(tmp_path: Path) -> None:
    """A gateway + hub double, 1 s of the mixed scenario: every request answered, hops joined in order."""
    from bench.loadgen.run import run_load
    from bench.loadgen.target import LabTarget

    sc = load_scenario(REPO / "bench" / "loadgen" / "scenarios" / "mixed.toml")
    with LabTarget(tmp_path / "lab", clients=2) as t:
        r = run_load(sc, t.info, rate=300, duration=1.0, warmup=0.3, processes=1, sample=200, keep_raw=True)
    assert r["unanswered"] == 0 and r["lost_connections"] == 0, r
    assert r["missing_acks"] == 0, r
    assert r["orders_accepted"] > 150, r
    # cancels and replaces find resting orders; some meet an order that filled meanwhile (409): both fine
    kinds = {k.split(":")[0] for k in r["status"]}
    assert {"limit", "market", "cancel", "replace"} <= kinds, r["status"]
    assert all(k.split(":")[1] in ("200", "202", "409") for k in r["status"]), r["status"]
    assert r["traced_orders"] > 100
    for name, _, _ in HOP_CHAIN:
        assert r["hops_us"][name]["count"] == r["traced_orders"], name
    # hops add up: the parts of an order's path never exceed its end-to-end time
    raw = r["_raw"]["hops"]
    for i in range(len(raw["end_to_end"])):
        parts = sum(raw[name][i] for name, _, _ in HOP_CHAIN[:-1])
        assert parts == raw["end_to_end"][i]
    assert all(v >= 0 for name, _, _ in HOP_CHAIN for v in raw[name])
    assert r["gateway_cpu"]["per_request_us"] > 0 and r["load_cpu"]["per_request_us"] > 0
    assert 0 < r["gateway_cpu"]["loop_per_request_us"] <= r["gateway_cpu"]["per_request_us"], r["gateway_cpu"]
    # the gateway's own histograms saw every new order of the window (at least the measured ones)
    assert r["hops_metrics"]["validate"]["count"] >= r["orders_accepted"] * 0.9, r["hops_metrics"]
    assert r["hops_metrics"]["er_to_ws"]["p50_le"] > 0
    assert set(r["latency_us"]) >= {f"rest.{op}" for op in ("limit", "market")}
    md = markdown_run(r)
    assert "report read → WebSocket frame written" in md and "gateway CPU" in md and "event-loop thread" in md
    assert "| 300 |" in markdown_sweep([r])
    written = write_run(r, tmp_path / "out" / "mixed", plots=False)
    assert json.loads(written[0].read_text())["scenario"] == "mixed"
    assert "_raw" not in json.loads(written[0].read_text())
    assert OPS[0] == "limit"


def test_floor_run_against_the_bare_handler(tmp_path: Path) -> None:
    """The sweep's floor: the new-orders scenario against the trivial handler (no stream): every
    request answered 202, nothing waited for on a WebSocket, its CPU counted; the sweep table and
    plot show it beside the gateway's run at the same rate."""
    from bench.loadgen.run import run_load
    from bench.loadgen.target import BareTarget

    sc = load_scenario(REPO / "bench" / "loadgen" / "scenarios" / "new-orders.toml")
    with BareTarget() as b:
        pid = b.info["gateway_pid"]
        r = run_load(sc, b.info, rate=300, duration=1.0, warmup=0.3, processes=1, sample=0)
    with pytest.raises(ProcessLookupError):  # stopped by its PID
        os.kill(pid, 0)
    assert r["unanswered"] == 0 and r["lost_connections"] == 0 and r["missing_acks"] == 0, r
    assert set(r["status"]) == {"limit:202"} and r["status"]["limit:202"] > 250, r["status"]
    assert r["latency_us"]["rest.limit"]["count"] > 250 and "ack.limit" not in r["latency_us"]
    assert r["traced_orders"] == 0 and r["gateway_cpu"]["per_request_us"] > 0
    gateway_run = {**r, "latency_us": {"rest.limit": {"p50": 900.0, "p99": 4000.0}}, "hops_us": {}}
    table = markdown_sweep([gateway_run], [r]).splitlines()
    assert table[0].endswith("| bare CPU µs/req | bare REST p50 µs | bare REST p99 µs |")
    rest = r["latency_us"]["rest.limit"]
    assert table[2].endswith(f"| {rest['p50']:,.0f} | {rest['p99']:,.0f} |")
    assert "bare" not in markdown_sweep([gateway_run])  # no floor, no columns


def test_sweep_plot_with_its_floor(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")  # the perf extra (make perf-setup)
    run = {"offered_rate": 1000.0, "throughput_rps": 1000.0, "hops_us": {},
           "latency_us": {"rest.limit": {"p50": 900.0, "p99": 4000.0}, "ack.limit": {"p50": 1200.0, "p99": 5000.0}}}
    floor = {**run, "latency_us": {"rest.limit": {"p50": 300.0, "p99": 700.0}}}
    plot_sweep([run, {**run, "offered_rate": 2000.0}], tmp_path / "sweep.png", floor=[floor])
    assert (tmp_path / "sweep.png").stat().st_size > 10_000


def test_hop_cdf_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")  # the perf extra (make perf-setup)
    from bench.loadgen.report import plot_hop_cdf
    from bench.loadgen.run import HOP_CHAIN

    # Every hop but one with samples (a run without WebSocket pushes has no er_to_ws): in ns.
    hops = {name: [(i % 97 + 1) * 1000 * (k + 1) for i in range(500)] for k, (name, _, _) in enumerate(HOP_CHAIN)}
    hops["er_to_ws"] = []
    run = {"_raw": {"hops": hops}, "scenario": "mixed", "offered_rate": 2000.0}
    plot_hop_cdf(run, tmp_path / "cdf.png")
    png = (tmp_path / "cdf.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_performance_page_targets_table() -> None:
    from bench.loadgen.page import TARGETS, measured_values, reference_values, targets_table

    codec = {"test_parse_fastfix[nos]": {"median_ns": 250.0}, "test_parse_fastfix[er]": {"median_ns": 400.0}}
    session = {"test_fastfix_to_fastfix_ping_pong[N]": {"p50_us": 27.0, "p99_us": 53.0},
               "test_fastfix_one_way_throughput[N]": {"msgs_per_s_median": 120000}}
    gw = {"max_orders_per_s": 5500.0,
          "at_5000": {"latency_us": {"rest.limit": {"p99": 800.0}}, "hops_us": {"er_to_ws": {"p99": 300.0}}}}
    values = measured_values(codec, session, gw)
    assert len(values) == len(TARGETS)
    table = targets_table(values)
    assert "| codec | parse NewOrderSingle | ≤ 300 ns | 250 ns | met |" in table
    assert "| codec | parse ExecutionReport | ≤ 350 ns | 400 ns | **not met** |" in table
    assert "| codec | serialize NewOrderSingle | ≤ 800 ns | — | — |" in table  # not measured
    assert "| session | one-way throughput | ≥ 100,000 msg/s | 120,000 msg/s | met |" in table
    assert "| gateway | orders/s (closed loop) | ≥ 25,000 orders/s | 5,500 orders/s | **not met** |" in table
    assert "800 µs | met |" in table and "300 µs | **not met** |" in table
    # the same-run reference column: simpler things measured alongside, "—" where there is none
    codec["test_parse_simplefix[nos]"] = {"median_ns": 2400.0}
    session["test_raw_asyncio_echo_ping_pong"] = {"p50_us": 13.0, "p99_us": 20.0}
    gw["bare_closed_loop"] = {"requests_answered": 60_000, "window_s": 3.0}
    gw["floor"] = [{"offered_rate": 5000, "latency_us": {"rest.limit": {"p99": 640.0}}}]
    refs = reference_values(codec, session, gw)
    assert len(refs) == len(TARGETS)
    table = targets_table(values, refs)
    assert table.splitlines()[0].endswith("| same run, for reference |")
    assert "| 250 ns | met | simplefix 2.40 µs |" in table
    assert "| 27 µs | met | raw asyncio echo 13 µs |" in table
    assert "| 5,500 orders/s | **not met** | bare handler 20,000 requests/s |" in table
    assert "| 800 µs | met | bare handler 640 µs |" in table
    assert "| 300 µs | **not met** | — |" in table
    # the ceiling's sentence compares the loop threads' CPU when the bare run measured it
    from bench.loadgen.page import _bare_loop_cpu

    assert _bare_loop_cpu(gw) == ""
    gw["bare_closed_loop"]["gateway_cpu"] = {"per_request_us": 66.4, "loop_per_request_us": 23.1}
    assert _bare_loop_cpu(gw) == (" The trivial handler's loop thread used 23 µs per request and its "
                                  "other threads 43 µs.")


def test_flame_summary_self_and_total(tmp_path: Path) -> None:
    from bench.loadgen.flame import markdown_top, top_functions

    raw = tmp_path / "stacks.txt"
    raw.write_text(
        "main (app.py:1);handle (app.py:10);parse (/x/lib/python3.11/site-packages/msgspec/json.py:5) 6\n"
        "main (app.py:1);handle (app.py:12) 2\n"
        "main (app.py:1);walk (t.py:3);walk (t.py:4) 2\n"  # recursion: total counted once per sample
        "garbage line\n"
    )
    samples, rows = top_functions(raw)
    assert samples == 10
    got = {name: (round(s), round(t)) for name, s, t in rows}
    assert got["parse (msgspec/json.py)"] == (60, 60)
    assert got["handle (app.py)"] == (20, 80)
    assert got["walk (t.py)"] == (20, 20)
    assert "main (app.py)" not in got  # never innermost
    assert "| `parse (msgspec/json.py)` | 60.0 | 60.0 |" in markdown_top(raw)


def test_metrics_percentiles_from_bucket_deltas() -> None:
    from bench.loadgen.run import metrics_percentiles

    before = {"hub": [(1e-4, 10.0), (1e-3, 10.0), (float("inf"), 10.0)]}
    after = {"hub": [(1e-4, 60.0), (1e-3, 108.0), (float("inf"), 110.0)],
             "persist": [(1e-4, 0.0), (float("inf"), 0.0)]}
    got = metrics_percentiles(before, after)
    assert got == {"hub": {"count": 100, "p50_le": 100.0, "p99_le": None, "p99_9_le": None}}
    after["hub"][2] = (float("inf"), 108.0)
    assert metrics_percentiles(before, after)["hub"]["p99_le"] == 1000.0


@pytest.mark.parametrize("timerfd", [True, False])
def test_pacer_waits_without_spinning(timerfd: bool) -> None:
    """Sub-millisecond waits on uvloop: never early, and the process sleeps meanwhile (uvloop
    rounds a 500 µs timer to zero, so sleeping with it kept a core busy). Without a timerfd
    (``timerfd=False``, as off Linux) the pacer sleeps a millisecond at a time instead."""
    import time

    import uvloop

    from bench.loadgen.pacer import Pacer

    async def waits() -> tuple[list[int], float, float, bool]:
        pacer = Pacer()
        if not timerfd:
            pacer.close()  # what remains is the fallback
        early: list[int] = []
        try:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            t = time.perf_counter_ns()
            for _ in range(100):
                t += 500_000
                await asyncio.wait_for(pacer.until(t), 5)
                if time.perf_counter_ns() < t:
                    early.append(t)
            return early, time.process_time() - cpu0, time.perf_counter() - wall0, pacer.precise
        finally:
            pacer.close()

    early, cpu, wall, precise = uvloop.run(waits())
    assert early == []
    assert wall >= 0.05
    assert cpu < wall / 2, (cpu, wall)  # a spinning wait uses about as much CPU as wall time
    assert precise == (timerfd and sys.platform == "linux")


def test_cpu_split_of_a_process_and_its_main_thread() -> None:
    """``cpu_seconds`` reads one thread apart from the process: a busy second thread's CPU shows in
    the process and in that thread, not in the main thread; ``cpu_split`` turns two readings into
    shares and µs per request."""
    import threading
    import time

    from bench.loadgen.run import cpu_seconds, cpu_split

    pid = os.getpid()
    tid: list[int] = []
    spent: list[float] = []  # the thread's CPU by its own clock
    done, release = threading.Event(), threading.Event()

    def spin() -> None:
        tid.append(threading.get_native_id())
        deadline = time.monotonic() + 5
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.3 and time.monotonic() < deadline:
            pass
        spent.append(time.thread_time() - t0)
        done.set()
        release.wait(10)  # alive (its /proc entry readable) until read

    proc0, main0 = cpu_seconds(pid), cpu_seconds(pid, pid)
    th = threading.Thread(target=spin)
    th.start()
    while not tid and th.is_alive():
        time.sleep(0.001)
    spun0 = cpu_seconds(pid, tid[0])
    assert done.wait(10)  # the main thread sleeps meanwhile
    spun1 = cpu_seconds(pid, tid[0])
    proc1, main1 = cpu_seconds(pid), cpu_seconds(pid, pid)
    release.set()
    th.join(5)
    assert None not in (proc0, main0, spun0, spun1, proc1, main1)
    assert spent[0] > 0.1 and spun1 - spun0 >= spent[0] - 0.05  # type: ignore[operator]
    assert main1 - main0 < spent[0] / 2  # type: ignore[operator]
    assert proc1 - proc0 >= (spun1 - spun0) + (main1 - main0) - 0.05  # type: ignore[operator]
    assert cpu_seconds(pid, 1 << 30) is None  # no such thread

    split = cpu_split((10.0, 4.0), (12.0, 5.5), 4.0, 1000)
    assert split == {"seconds": 2.0, "utilisation": 0.5, "per_request_us": 2000.0,
                     "loop_seconds": 1.5, "loop_utilisation": 0.375, "loop_per_request_us": 1500.0}
    assert cpu_split((10.0, None), (12.0, None), 4.0, 0) == {"seconds": 2.0, "utilisation": 0.5,
                                                              "per_request_us": 2000000.0}
