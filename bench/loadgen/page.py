"""``make bench-report``: run the benchmarks and the load sweep, write ``docs/performance.md``.

Steps (about four minutes on a 2-core machine):

1. codec and FIX <-> JSON micro-benchmarks (pytest-benchmark, fastfix only);
2. session benchmarks (ping-pong latency, one-way throughput);
3. the gateway in front of the FIX hub double (``bench.loadgen.target``): a
   closed-loop run for the ceiling in orders/s, then an open-loop sweep of new
   orders at increasing offered rates, each order followed hop by hop, and the
   same sweep against the trivial handler of the gateway gate (the floor);
4. the end-to-end round trip (``bench/e2e``): the gateway to the QuickFIX C++ executor, a
   naive FastAPI + QuickFIX-binding peer and a bare granian + picows handler, same run;
5. the page, its plots (``docs/img/*.png``) and the raw results
   (``bench/results/*.json``, not in git).

``--skip-micro`` reuses the last codec/session JSON files, ``--skip-e2e`` the last
end-to-end one; ``--rates`` and ``--duration`` change the sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen.report import _HOP_TEXT, markdown_sweep, plot_hop_cdf, plot_sweep
from bench.loadgen.run import HOP_CHAIN, loop_and_other_us, run_load
from bench.loadgen.scenario import load_scenario
from bench.loadgen.target import REPO, BareTarget, LabTarget

RESULTS = REPO / "bench" / "results"
PROFILE_RATE = 2000.0  # requests/s of the mixed scenario while py-spy samples the gateway
IMG = REPO / "docs" / "img"
PAGE = REPO / "docs" / "performance.md"
SCENARIOS = REPO / "bench" / "loadgen" / "scenarios"

CODEC_BENCH = ["bench/test_codec_bench.py", "bench/test_jsonfix_bench.py"]
SESSION_BENCH = ["bench/test_session_bench.py"]

# (area, what, target text, limit, lower_is_better, unit)
Target = tuple[str, str, str, float, bool, str]
TARGETS: list[Target] = [
    ("codec", "parse NewOrderSingle", "≤ 300 ns", 300, True, "ns"),
    ("codec", "parse ExecutionReport", "≤ 350 ns", 350, True, "ns"),
    ("codec", "serialize NewOrderSingle", "≤ 800 ns", 800, True, "ns"),
    ("codec", "JSON → FIX (NewOrderSingle body)", "≤ 2 µs", 2000, True, "ns"),
    ("codec", "FIX → JSON (ExecutionReport)", "≤ 1.5 µs", 1500, True, "ns"),
    ("session", "ping-pong p50", "≤ 40 µs", 40, True, "µs"),
    ("session", "ping-pong p99", "≤ 80 µs", 80, True, "µs"),
    ("session", "one-way throughput", "≥ 100,000 msg/s", 100_000, False, "msg/s"),
    ("gateway", "orders/s (closed loop)", "≥ 25,000 orders/s", 25_000, False, "orders/s"),
    ("gateway", "POST → 202 p99 at 5,000 orders/s", "≤ 1 ms", 1000, True, "µs"),
    ("gateway", "report read → WebSocket written p99 at 5,000/s", "≤ 250 µs", 250, True, "µs"),
]


def _pytest(files: list[str], out: Path, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files, "--benchmark-only",
           f"--benchmark-json={out}", "--benchmark-columns=median", "--benchmark-sort=name", *extra]
    print("+", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def _bench(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {b["name"]: {"median_ns": b["stats"]["median"] * 1e9, **b.get("extra_info", {})}
            for b in data.get("benchmarks", [])}


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({model or platform.machine()}), Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "ns":
        return f"{v:,.0f} ns" if v < 1000 else f"{v / 1000:,.2f} µs"
    if unit == "µs":
        return f"{v:,.0f} µs" if v >= 10 else f"{v:,.1f} µs"
    return f"{v:,.0f} {unit}"


def measured_values(codec: dict[str, Any], session: dict[str, Any], gw: dict[str, Any]) -> list[float | None]:
    """The figure for each of :data:`TARGETS`, in order (None when not measured)."""

    def med(name: str) -> float | None:
        return codec.get(name, {}).get("median_ns")

    def sess(name: str, key: str) -> float | None:
        v = session.get(name, {}).get(key)
        return float(v) if v is not None else None

    at5k = gw.get("at_5000") or {}
    return [
        med("test_parse_fastfix[nos]"),
        med("test_parse_fastfix[er]"),
        med("test_serialize_fastfix[nos]"),
        med("test_json_to_fix_new_order_single"),
        med("test_fix_to_json_execution_report_message"),
        sess("test_fastfix_to_fastfix_ping_pong[N]", "p50_us"),
        sess("test_fastfix_to_fastfix_ping_pong[N]", "p99_us"),
        sess("test_fastfix_one_way_throughput[N]", "msgs_per_s_median"),
        gw.get("max_orders_per_s"),
        at5k.get("latency_us", {}).get("rest.limit", {}).get("p99"),
        at5k.get("hops_us", {}).get("er_to_ws", {}).get("p99"),
    ]


def reference_values(codec: dict[str, Any], session: dict[str, Any], gw: dict[str, Any]) -> list[str]:
    """For each of :data:`TARGETS`, the same figure of a simpler thing measured in the same run
    (simplefix, a raw asyncio echo, the trivial granian handler), or "—": on a slow or busy day
    every figure moves, and these show how much of a miss is the machine."""

    def med(name: str, who: str) -> str:
        v = codec.get(name, {}).get("median_ns")
        return "—" if v is None else f"{who} {_fmt(v, 'ns')}"

    def echo(key: str) -> str:
        v = session.get("test_raw_asyncio_echo_ping_pong", {}).get(key)
        return "—" if v is None else f"raw asyncio echo {_fmt(float(v), 'µs')}"

    bare_loop = gw.get("bare_closed_loop") or {}
    bare_5k = next((r for r in gw.get("floor") or [] if r["offered_rate"] == 5000), {})
    bare_p99 = bare_5k.get("latency_us", {}).get("rest.limit", {}).get("p99")
    return [
        med("test_parse_simplefix[nos]", "simplefix"),
        med("test_parse_simplefix[er]", "simplefix"),
        med("test_serialize_simplefix[nos]", "simplefix"),
        med("test_msgspec_decode_of_the_order_body_for_reference", "msgspec decode alone"),
        "—",
        echo("p50_us"),
        echo("p99_us"),
        "—",
        (f"bare handler {bare_loop['requests_answered'] / bare_loop['window_s']:,.0f} requests/s"
         if bare_loop.get("window_s") else "—"),
        "—" if bare_p99 is None else f"bare handler {_fmt(bare_p99, 'µs')}",
        "—",
    ]


def _bare_loop_cpu(gw: dict[str, Any]) -> str:
    """The trivial handler's loop-thread CPU per request, for comparison (empty without it)."""
    split = loop_and_other_us((gw.get("bare_closed_loop") or {}).get("gateway_cpu", {}))
    if split is None:
        return ""
    return (f" The trivial handler's loop thread used {split[0]:.0f} µs per request and its "
            f"other threads {split[1]:.0f} µs.")


def targets_table(values: list[float | None], references: list[str] | None = None) -> str:
    rows = ["| area | figure | target | measured | |", "|---|---|---|---:|---|"]
    if references is not None:
        rows = [rows[0] + " same run, for reference |", rows[1] + "---|"]
    for i, ((area, what, text, limit, lower, unit), v) in enumerate(zip(TARGETS, values, strict=True)):
        ok = None if v is None else (v <= limit if lower else v >= limit)
        mark = "—" if ok is None else ("met" if ok else "**not met**")
        rows.append(f"| {area} | {what} | {text} | {_fmt(v, unit)} | {mark} |"
                    + (f" {references[i]} |" if references is not None else ""))
    return "\n".join(rows) + "\n"


def _hop_table(r: dict[str, Any]) -> str:
    rows = ["| hop | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |", "|---|---:|---:|---:|---:|---:|"]
    for name, _, _ in HOP_CHAIN:
        s = r["hops_us"].get(name, {})
        if s.get("count"):
            rows.append(f"| {_HOP_TEXT[name]} | " + " | ".join(f"{s[c]:,.0f}" for c in
                                                               ("p50", "p90", "p99", "p99_9", "max")) + " |")
    return "\n".join(rows) + "\n"


def gateway_lab(rates: list[float], duration: float, cdf_rate: float, processes: int,
                profile: bool = True) -> dict[str, Any]:
    """Closed-loop ceiling, then the open-loop sweep; the run at ``cdf_rate`` keeps its raw hop values."""
    out: dict[str, Any] = {}
    new_orders = load_scenario(SCENARIOS / "new-orders.toml")
    ceiling = load_scenario(SCENARIOS / "max-throughput.toml")
    with LabTarget(RESULTS / "lab", clients=4) as t:
        r = run_load(ceiling, t.info, duration=duration, warmup=1.0, processes=processes)
        out["closed_loop"] = r
        out["max_orders_per_s"] = r["orders_accepted"] / r["window_s"]
        print(f"closed loop: {out['max_orders_per_s']:,.0f} orders/s", flush=True)
        sweep = []
        for rate in rates:
            r = run_load(new_orders, t.info, rate=rate, duration=duration, warmup=1.0, processes=1,
                         keep_raw=rate == cdf_rate)
            print(f"  {rate:>7,.0f}/s offered: {r['throughput_rps']:,.0f}/s answered, POST->202 p99 "
                  f"{r['latency_us'].get('rest.limit', {}).get('p99')} µs, report->WS p99 "
                  f"{r['hops_us'].get('er_to_ws', {}).get('p99')} µs", flush=True)
            sweep.append(r)
            if rate == 5000:
                out["at_5000"] = r
        out["sweep"] = sweep
        if profile:  # last: the sampler must not disturb the figures above
            from bench.loadgen.__main__ import py_spy, wait_all
            from bench.loadgen.flame import markdown_top

            mixed = load_scenario(SCENARIOS / "mixed.toml")
            svg = RESULTS / "gateway-flame.svg"
            procs = py_spy(t.info["gateway_pid"], svg, duration + 2)
            try:
                out["profile_run"] = run_load(mixed, t.info, rate=PROFILE_RATE, duration=duration, warmup=1.0)
            finally:
                wait_all(procs)
            if svg.with_suffix(".txt").exists():
                out["profile_top"] = markdown_top(svg.with_suffix(".txt"), 15)
    # The floor: the same client, closed loop and at the same rates, against a trivial handler.
    floor = []
    with BareTarget() as b:
        r = run_load(ceiling, b.info, duration=duration, warmup=1.0, processes=processes, sample=0)
        out["bare_closed_loop"] = r
        print(f"closed loop, bare handler: {r['requests_answered'] / r['window_s']:,.0f} requests/s", flush=True)
        for rate in rates:
            r = run_load(new_orders, b.info, rate=rate, duration=duration, warmup=1.0, processes=1, sample=0)
            print(f"  {rate:>7,.0f}/s offered, bare handler: POST->202 p99 "
                  f"{r['latency_us'].get('rest.limit', {}).get('p99')} µs", flush=True)
            floor.append(r)
    out["floor"] = floor
    return out


def end_to_end(n: int = 1000, rounds: int = 2, seconds: float = 3.0) -> dict[str, Any]:
    """The end-to-end run of ``make bench-e2e`` (shorter), or ``{"error": why}`` when it cannot run here."""
    import asyncio
    import tempfile

    from bench.e2e import harness

    try:
        with tempfile.TemporaryDirectory(prefix="e2e") as tmp:
            return asyncio.run(harness.run(Path(tmp), n=n, rounds=rounds, seconds=seconds))
    except (RuntimeError, OSError, TimeoutError) as e:
        return {"error": str(e)}


def e2e_section(res: dict[str, Any] | None) -> list[str]:
    """The page's end-to-end section: the table of one run, its ratios and where it stands."""
    from bench.e2e import harness

    head = ["## End to end: an order's round trip", ""]
    if not res:
        return head + ["Not measured in this report (`make bench-e2e` measures it).", ""]
    if "error" in res:
        return head + [f"Not measured in this report: {res['error']}.", ""]
    _, lines = harness.evaluate(res)
    return head + [
        "One client (uvloop, one keep-alive HTTP/1.1 connection and a picows WebSocket subscriber) posts",
        "a limit order, waits for its ExecutionReport on the stream, and repeats: the time from writing",
        f"the POST to reading the report, {res['rounds']} × {res['n']:,} orders per server, alternating between",
        f"the servers. Then {res['connections']} connections post as fast as they are answered",
        f"({res['client']}, best of {res['rounds']} runs of {res['seconds']:g} s), with a subscriber reading every",
        "report. Each server runs in a process of its own on one core"
        + (" (the others run the client, the load and the executor)" if res.get("pinned") else "")
        + "; the QuickFIX C++ example `executor` fills every order at its price (`bench/e2e`).",
        "",
        harness.table(res),
        harness.ratio_line(res) + ". " + harness.answer_line(res) + ".",
        "",
        *([harness.hops_line(res) + ".", ""] if harness.hops_line(res) else []),
        *[f"- {line}" for line in lines],
        "",
        "The naive peer is the usual way to build such a gateway: FastAPI on uvicorn (uvloop, httptools),",
        "a pydantic model for the order, QuickFIX's Python binding for FIX with its own thread handing",
        "reports to the event loop, nothing stored. The bare handler has the gateway's transports",
        "(granian for REST, picows for the stream) and nothing else: a 202 and one pushed frame per POST.",
        "`make bench-e2e` fails when the gateway's p50 is above "
        f"{harness.GATE_P50:.1f}× the bare handler's measured in the same run.",
        "",
    ]


def write_page(codec: dict[str, Any], session: dict[str, Any], gw: dict[str, Any], cdf_rate: float,
               client_cost: float, e2e: dict[str, Any] | None = None) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    sweep = gw["sweep"]
    cdf_run = next(r for r in sweep if r["offered_rate"] == cdf_rate)
    plot_hop_cdf(cdf_run, IMG / "gateway-hops-cdf.png",
                 f"Per-hop latency of new orders at {cdf_rate:,.0f} orders/s offered (open loop)")
    plot_sweep(sweep, IMG / "gateway-rate-sweep.png", floor=gw.get("floor"))
    values = measured_values(codec, session, gw)
    cl = gw["closed_loop"]
    cpu = cl.get("gateway_cpu", {})
    load_cost = cl.get("load_cpu", {}).get("per_request_us", float("nan"))

    def med(name: str) -> str:
        v = codec.get(name, {}).get("median_ns")
        return "—" if v is None else f"{v:,.0f} ns"

    def ses(name: str, key: str) -> str:
        v = session.get(name, {}).get(key)
        return "—" if v is None else f"{v:,}"

    codec_rows = [
        ("parse NewOrderSingle (`parse`)", "test_parse_fastfix[nos]"),
        ("parse ExecutionReport (`parse`)", "test_parse_fastfix[er]"),
        ("frame + parse NewOrderSingle (`Tokenizer.feed`)", "test_parse_fastfix_tokenizer[nos]"),
        ("serialize NewOrderSingle (`encode`)", "test_serialize_fastfix[nos]"),
        ("serialize NewOrderSingle (`Template.render`)", "test_serialize_fastfix_template[nos]"),
        ("serialize ExecutionReport (`encode`)", "test_serialize_fastfix[er]"),
        ("JSON body → FIX NewOrderSingle (`body_to_fix`)", "test_json_to_fix_new_order_single"),
        ("FIX ExecutionReport → JSON (`fix_to_json`, parsed message)", "test_fix_to_json_execution_report_message"),
        ("FIX ExecutionReport → JSON Body (`fix_body_to_json`)", "test_fix_body_to_json_execution_report"),
    ]
    sess_rows = [
        ("raw asyncio echo of the same bytes (floor)", "test_raw_asyncio_echo_ping_pong"),
        ("fastfix ↔ fastfix, file store `N`", "test_fastfix_to_fastfix_ping_pong[N]"),
        ("fastfix ↔ fastfix, file store `batch`", "test_fastfix_to_fastfix_ping_pong[batch]"),
        ("fastfix ↔ QuickFIX C++ executor", "test_fastfix_to_quickfix_executor_ping_pong"),
    ]
    lines = [
        "# Performance",
        "",
        "Figures of the FIX codec, the FIX session and the order gateway against their targets,",
        "as measured by `make bench-report` (which rewrites this page and its plots).",
        "",
        f"Measured on {time.strftime('%Y-%m-%d')}: {_machine()}. The machine is shared with other work,",
        "and in the gateway runs the gateway, the FIX hub double and the load generator share its cores:",
        "read the figures as what this setup gives, not as the product's limits on dedicated hardware.",
        f"Load average (1, 5, 15 min) before the first benchmark, i.e. other work: {gw.get('loadavg_before', '?')}",
        f"on {os.cpu_count()} cores; what competes with the gateway shows in its p99 and max.",
        "",
        "## Targets",
        "",
        targets_table(values, reference_values(codec, session, gw)),
        "The last column is the same figure of something simpler, measured in the same run: simplefix",
        "(pure Python) for the codec, a raw asyncio echo of the same bytes for the session, the trivial",
        "granian + msgspec handler with the same client for the gateway.",
        "",
        "## FIX codec and FIX ↔ JSON",
        "",
        "pytest-benchmark medians, one core (`bench/test_codec_bench.py`, `bench/test_jsonfix_bench.py`).",
        "",
        "| operation | median |",
        "|---|---:|",
        *[f"| {text} | {med(name)} |" for text, name in codec_rows],
        "",
        "The codec release gate (`make bench-gate`, `bench/gate.py`) checks ratios to simplefix measured in the same run, saves the run under `.benchmarks/history` and prints the change from the previous one.",
        "",
        "## FIX session",
        "",
        "NewOrderSingle → ExecutionReport round trips between two engines on one uvloop loop over loopback,",
        "dictionary validation on both sides, file stores (`bench/test_session_bench.py`).",
        "",
        "| ping-pong | p50 µs | p90 µs | p99 µs | max µs |",
        "|---|---:|---:|---:|---:|",
        *[f"| {text} | {ses(n, 'p50_us')} | {ses(n, 'p90_us')} | {ses(n, 'p99_us')} | {ses(n, 'max_us')} |"
          for text, n in sess_rows if n in session],
        "",
        f"One way, pipelined NewOrderSingles: {ses('test_fastfix_one_way_throughput[N]', 'msgs_per_s_median')} "
        f"messages/s (file store `N`), {ses('test_fastfix_one_way_throughput[batch]', 'msgs_per_s_median')} "
        "(`batch`), median of 3 bursts of 20,000.",
        "",
        "The session gate (`make bench-session-gate`, `bench/session_gate.py`, run in CI) checks that the fastfix",
        "ping-pong stays within 4× (p50) and 10× (p99) of the raw echo measured in the same run, and prints",
        "the change from the previous saved run (`.benchmarks/history`; `make bench-compare`).",
        "",
        "## Order gateway",
        "",
        "The gateway process (REST on granian, WebSocket on picows, FIX initiator, the journal with",
        "`sync = \"normal\"` and its SQLite projection) in front of the FIX hub double, a separate process that acknowledges every order",
        "(`bench/loadgen/target.py`). The load generator (`bench/loadgen`) sends new limit orders over 32",
        "keep-alive HTTP/1.1 connections and reads every report on the client's WebSocket; each order is",
        "followed hop by hop by joining the client's send/receive times with the gateway's trace",
        "(`GET /v1/orders/{ClOrdID}/trace`, all on the host's monotonic clock).",
        "",
        f"**Ceiling** (closed loop, {cl['connections']} connections over {cl['processes']} load processes): "
        f"**{gw['max_orders_per_s']:,.0f} orders/s**, the gateway using "
        f"{cpu.get('utilisation', 0) * 100:.0f}% of a core, {cpu.get('per_request_us', 0):.0f} µs of CPU per order; "
        f"of that, its event-loop thread (all of its Python work) {cpu.get('loop_utilisation', 0) * 100:.0f}% of a "
        f"core, {cpu.get('loop_per_request_us', 0):.0f} µs per order. The rest is granian's HTTP threads; a loop "
        "thread near one core is what limits the ceiling." + _bare_loop_cpu(gw),
        "",
        "**Open loop**: orders are due at a fixed rate whatever the gateway does; latencies count from the due",
        "time, so a gateway that falls behind shows its queue (no coordinated omission). Each request goes",
        "out within tens of microseconds of its due time (a Linux timerfd, `bench/loadgen/pacer.py`): uvloop's",
        "millisecond timers either send requests in bursts or, for waits under half a millisecond, spin",
        "a core the gateway needs.",
        "",
        "The *bare* columns are the same client at the same rates against the trivial granian + msgspec",
        "handler of the gateway gate (`BareTarget`: a 202 for every POST, nothing stored or sent): what this",
        "machine costs any Python server, before the gateway does anything. Evenly spaced requests each",
        "wake the server's threads on their own, so CPU per request is highest at low rates.",
        "",
        markdown_sweep(sweep, gw.get("floor")),
        "![latency against offered rate](img/gateway-rate-sweep.png)",
        "",
        f"Where the time goes, per hop, at {cdf_rate:,.0f} orders/s offered:",
        "",
        _hop_table(cdf_run),
        "![per-hop latency CDF](img/gateway-hops-cdf.png)",
        "",
        "Reading the hops: *REST received → validated* includes reading the request body from granian,",
        "JSON decoding, the order checks and the JSON → FIX mapping; *validated → persisted* is the journal",
        "write; *FIX written → report read* is the hub double plus both FIX engines;",
        "*report read → WebSocket frame written* includes the journal write of the read before the push.",
        "",
        "**The load generator's own cost** (`python -m bench.loadgen.clientcost`: POSTs of an order body to a",
        "trivial uvloop server, 16 keep-alive connections, CPU time of the client process per request):",
        f"{client_cost:.1f} µs for the lab's raw HTTP/1.1 client, against 53.5 µs for aiohttp 3.14 and",
        "about 1,200 µs for httpx 0.28 when measured the same way (neither is a dependency; install them to",
        f"compare). With request building and WebSocket decoding, a load process spent {load_cost:.0f} µs of CPU",
        "per order in the closed-loop run above (`processes` in a scenario adds more).",
        "",
        *e2e_section(e2e),
        *(["## Where the gateway's CPU goes", "",
            f"py-spy sampling the gateway during the mixed scenario at {PROFILE_RATE:,.0f} requests/s (after the runs",
            "above, so that the sampler does not disturb them); functions with the most self time:", "",
            gw["profile_top"],
            "Native code (uvloop's loop and sockets, granian's Rust, SQLite's C) has no Python frame of its own:",
            "py-spy counts it as self time of the innermost Python frame that called it, which is why",
            "`Runner.run` (the event loop) and `_run_batch` (the SQLite writes) have large self shares.", ""]
          if gw.get("profile_top") else []),
        "## Reproduce and profile",
        "",
        "```sh",
        "make bench-report          # everything on this page (about 4 minutes)",
        "make profile               # flame graph of the gateway under load: bench/results/gateway-flame.svg",
        ".venv/bin/python -m bench.loadgen target &                      # a gateway + hub double, var/lab/target.json",
        ".venv/bin/python -m bench.loadgen run bench/loadgen/scenarios/mixed.toml --target var/lab/target.json",
        ".venv/bin/python -m bench.loadgen sweep bench/loadgen/scenarios/new-orders.toml \\",
        "    --target var/lab/target.json --rates 1000,2000,4000",
        "```",
        "",
        "Against any running gateway (the sandbox of `make demo`, say): `run SCENARIO --url http://127.0.0.1:8080",
        "--ws ws://127.0.0.1:8081/v1/stream --key demo-alpha-key --gateway-pid PID`, with a scenario whose",
        "`brokers` the key may use. Scenarios (`bench/loadgen/scenarios/*.toml`) set the offered rate (0 =",
        "closed loop), duration, warm-up, connections and processes, the request mix (limit, market, cancel,",
        "replace, list, query), symbols and reference prices (limit prices on the KRX tick grid), brokers and",
        "clients. Each run writes `bench/results/<name>.json` and `.md` (per-hop table, client latencies per",
        "request kind, answers by status, gateway CPU per request from `/proc/<pid>/stat`) and a CDF plot.",
        "",
        "**Flame graph.** `make profile` runs the mixed scenario at 2,000 requests/s (`PROFILE_RATE=`) for 10 s against a lab",
        "target while `py-spy record --nonblocking` samples the gateway 200 times a second, and writes",
        "`bench/results/gateway-flame.svg` (open it in a browser: hover for names and shares, click to zoom),",
        "the collapsed stacks beside it (`gateway-flame.txt`, one line per distinct stack with its sample count,",
        "for `grep` or any flame graph tool) and the table above (`gateway-flame-top.md`).",
        "Each box is a function; its width is the share of samples in which it was on the stack, callers",
        "below callees. Wide boxes at the top of a tower are where the CPU goes (self time); a wide box with",
        "narrow children is overhead of its own. `uvloop`/`granian` frames at the base are the event loop;",
        "`_run_once`-level siblings are the separate callbacks (REST handler, FIX reader, WebSocket writer).",
        "Idle time shows as `select`/`epoll` frames, which `--idle` would include; we leave them out.",
        "Cython functions appear under their Python names with `--native` (`make profile PROFILE_ARGS=--native`).",
        "",
        "**perf.** `perf stat -e instructions true` tells whether the machine exposes hardware counters",
        "(`<not supported>` in most VMs and containers, as on this one). `make profile` also writes",
        "`bench/results/gateway-perf-stat.txt`: task-clock, context switches, CPU migrations and page faults",
        "of the gateway during the run, plus cycles and instructions where supported. Where they are,",
        "`perf record -g -p PID` with `PYTHONPERFSUPPORT=1` (Python ≥ 3.12) names Python frames in",
        "`perf report`; on 3.11 it shows the interpreter and the Cython extension's C functions.",
        "",
    ]
    PAGE.write_text("\n".join(lines))
    print(f"wrote {PAGE}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-micro", action="store_true", help="reuse bench/results/codec.json and session.json")
    ap.add_argument("--rates", default="500,1000,2000,3000,4000,5000,6000")
    ap.add_argument("--cdf-rate", type=float, default=2000)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--processes", type=int, default=2, help="load processes of the closed-loop run")
    ap.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    ap.add_argument("--skip-e2e", action="store_true", help="reuse bench/results/e2e.json")
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    loadavg = _loadavg()  # before any of our own load
    codec_json, session_json = RESULTS / "codec.json", RESULTS / "session.json"
    if not args.skip_micro:
        _pytest(CODEC_BENCH, codec_json, ["-k", "fastfix or simplefix or json", "--benchmark-max-time=0.5"])
        _pytest(SESSION_BENCH, session_json, [])
    rates = [float(x) for x in args.rates.split(",")]
    if args.cdf_rate not in rates:
        rates = sorted({*rates, args.cdf_rate})
    gw = gateway_lab(rates, args.duration, args.cdf_rate, args.processes, profile=not args.no_profile)
    gw["loadavg_before"] = loadavg
    def public(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if not k.startswith("_")}

    (RESULTS / "gateway.json").write_text(json.dumps(
        {"max_orders_per_s": gw["max_orders_per_s"], "closed_loop": public(gw["closed_loop"]),
         "sweep": [public(r) for r in gw["sweep"]], "floor": [public(r) for r in gw["floor"]],
         "bare_closed_loop": public(gw["bare_closed_loop"])},
        indent=2) + "\n")
    e2e_json = RESULTS / "e2e.json"
    if args.skip_e2e:
        e2e = json.loads(e2e_json.read_text()) if e2e_json.exists() else None
    else:
        e2e = end_to_end()
        e2e_json.write_text(json.dumps(e2e, indent=1) + "\n")
    from bench.loadgen.clientcost import main as clientcost

    cost = clientcost(20000).get("fastfix lab client (raw HTTP/1.1 on uvloop)", float("nan"))
    write_page(_bench(codec_json), _bench(session_json), gw, args.cdf_rate, cost, e2e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
