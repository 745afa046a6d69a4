"""Run a scenario against a gateway: worker processes, CPU of the gateway, per-hop join.

:func:`run_load` returns one run's report (a JSON-ready dict): throughput, status
counts, client-side latencies per request kind (HDR histograms: p50, p90, p99,
p99.9, max), the gateway's CPU per order (``/proc/<pid>/stat``), and the per-hop
breakdown of a sample of orders, joining the client's send/receive times with the
gateway's trace (``GET /v1/orders/{ClOrdID}/trace``) on the host's monotonic clock.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import time
import urllib.parse
import urllib.request
from array import array
from typing import Any

import msgspec

from bench.loadgen.scenario import OPS, Scenario
from bench.loadgen.worker import KINDS, WorkerConfig, worker_main

__all__ = ["HOP_CHAIN", "PERCENTILES", "cpu_seconds", "cpu_split", "loop_and_other_us", "run_load", "summarize"]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)

# The hops of one order, in order: (name, from, to); "sent"/"client" are the load generator's times.
HOP_CHAIN = (
    ("client_to_rest", "sent", "received"),
    ("validate", "received", "validated"),
    ("persist", "validated", "persisted"),
    ("fix_write", "persisted", "fix_written"),
    ("hub", "fix_written", "er_read"),
    ("er_to_ws", "er_read", "ws_written"),
    ("ws_to_client", "ws_written", "client"),
    ("end_to_end", "sent", "client"),
)


def summarize(values_ns: Any) -> dict[str, Any]:
    """Percentiles (µs) of nanosecond values through an HDR histogram (3 significant digits)."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, 100_000_000_000, 3)
    n = 0
    for v in values_ns:
        h.record_value(max(1, int(v)))
        n += 1
    if n == 0:
        return {"count": 0}
    out: dict[str, Any] = {"count": n}
    for p in PERCENTILES:
        out[f"p{p:g}".replace(".", "_")] = round(h.get_value_at_percentile(p) / 1000, 1)
    out["max"] = round(h.get_max_value() / 1000, 1)
    out["mean"] = round(h.get_mean_value() / 1000, 1)
    return out


def cpu_seconds(pid: int, tid: int | None = None) -> float | None:
    """User + system CPU time of a process (its finished children are not counted), or of
    its thread ``tid``: the gateway's main thread (``tid == pid``) runs the event loop, where
    all of its Python work happens; granian's HTTP runtime threads and the store's
    checkpointer are the rest of the process."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    # after the command: state(3) ... utime is field 14, stime 15 (1-based, counting pid and comm)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_split(before: tuple[float | None, float | None], after: tuple[float | None, float | None],
              window: float, requests: int) -> dict[str, float]:
    """CPU of a server between two (process, main thread) readings of :func:`cpu_seconds`:
    seconds, share of one core and µs per request, for the whole process and for its
    event-loop thread (``loop_*``). A loop thread near one core is the bottleneck, whatever
    the other threads use."""
    out: dict[str, float] = {}
    n = max(requests, 1)
    for prefix, a, b in (("", before[0], after[0]), ("loop_", before[1], after[1])):
        if a is not None and b is not None:
            out[prefix + "seconds"] = round(b - a, 3)
            out[prefix + "utilisation"] = round((b - a) / window, 3) if window > 0 else 0.0
            out[prefix + "per_request_us"] = round((b - a) / n * 1e6, 1)
    return out


def loop_and_other_us(cpu: dict[str, float]) -> tuple[float, float] | None:
    """µs per request in the event-loop thread and in the other threads, from a
    :func:`cpu_split`, or None when the loop thread was not measured."""
    if "loop_per_request_us" not in cpu or "per_request_us" not in cpu:
        return None
    return cpu["loop_per_request_us"], cpu["per_request_us"] - cpu["loop_per_request_us"]


async def _get_json(host: str, port: int, items: list[tuple[str, str]]) -> list[Any]:
    """GET each (path, key) on one keep-alive connection; None where the answer is not 200."""
    r, w = await asyncio.open_connection(host, port)
    out: list[Any] = []
    try:
        for path, key in items:
            w.write(f"GET {path} HTTP/1.1\r\nhost: {host}\r\nx-api-key: {key}\r\n\r\n".encode())
            status = int((await asyncio.wait_for(r.readline(), 10)).split()[1])
            length = 0
            while True:
                line = await r.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            data = await r.readexactly(length) if length else b""
            out.append(msgspec.json.decode(data) if status == 200 and data else None)
    finally:
        w.close()
    return out


_BUCKET = re.compile(rb'^gateway_hop_seconds_bucket\{hop="([^"]+)",le="([^"]+)"\} ([0-9.e+]+)$', re.M)


def scrape_hops(rest_url: str) -> dict[str, list[tuple[float, float]]]:
    """Cumulative ``gateway_hop_seconds`` buckets per hop from ``/metrics`` (empty when unavailable)."""
    try:
        with urllib.request.urlopen(rest_url + "/metrics", timeout=5) as r:
            text = r.read()
    except OSError:
        return {}
    out: dict[str, list[tuple[float, float]]] = {}
    for hop, le, n in _BUCKET.findall(text):
        out.setdefault(hop.decode(), []).append((float(le), float(n)))
    return out


def metrics_percentiles(before: dict[str, list[tuple[float, float]]],
                        after: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, Any]]:
    """Per hop, over every order of the window: count and the bucket bound (µs) at p50/p99/p99.9."""
    out: dict[str, dict[str, Any]] = {}
    for hop, rows in after.items():
        prev = dict(before.get(hop, []))
        delta = [(le, n - prev.get(le, 0.0)) for le, n in rows]
        total = delta[-1][1] if delta else 0
        if total <= 0:
            continue
        res: dict[str, Any] = {"count": int(total)}
        for p in (50.0, 99.0, 99.9):
            need = total * p / 100
            le = next((le for le, n in delta if n >= need), float("inf"))
            res[f"p{p:g}".replace(".", "_") + "_le"] = None if le == float("inf") else round(le * 1e6, 1)
        out[hop] = res
    return out


def _hops(samples: list[list[Any]], traces: list[Any]) -> dict[str, list[int]]:
    hops: dict[str, list[int]] = {name: [] for name, _, _ in HOP_CHAIN}
    for (_, _, sent, client), tr in zip(samples, traces, strict=True):
        if tr is None:
            continue
        t = dict(tr["timestamps"])
        t["sent"], t["client"] = sent, client
        for name, a, b in HOP_CHAIN:
            if t.get(a) and t.get(b):
                hops[name].append(t[b] - t[a])
    return hops


def run_load(sc: Scenario, target: dict[str, Any], *, rate: float | None = None, duration: float | None = None,
             warmup: float | None = None, processes: int | None = None, sample: int = 2000,
             tag: str | None = None, keep_raw: bool = False) -> dict[str, Any]:
    """Run ``sc`` against ``target`` (``rest_url``, ``ws_url``, ``keys``, optional ``gateway_pid``)."""
    rate = sc.rate if rate is None else rate
    duration = sc.duration if duration is None else duration
    warmup = sc.warmup if warmup is None else warmup
    procs = sc.processes if processes is None else processes
    keys = [c.key for c in sc.clients] or list(target["keys"])
    if not keys:
        raise ValueError("no API key: give clients in the scenario, --key, or a target file")
    tag = tag or f"r{int(time.time() * 1000) % 10**9:x}x"
    if not sc.brokers and target.get("brokers"):
        sc.brokers = list(target["brokers"])
    ctx = multiprocessing.get_context("spawn")
    pipes, workers = [], []
    for i in range(procs):
        mine = keys[i::procs] if len(keys) >= procs else keys
        cfg = WorkerConfig(scenario=sc, index=i, rest_url=target["rest_url"], ws_url=target["ws_url"], keys=mine,
                           rate=rate / procs, tag=tag, sample=max(1, sample // procs))
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker_main, args=(cfg, child), daemon=True)
        p.start()
        child.close()
        pipes.append(parent)
        workers.append(p)
    try:
        for pipe in pipes:
            if not pipe.poll(60):
                raise TimeoutError("a load process did not connect within 60 s")
            msg = pipe.recv()
            if "error" in msg:
                raise RuntimeError(msg["error"])
        start = time.perf_counter_ns() + 100_000_000
        timing = {"start_ns": start, "measure_ns": start + int(warmup * 1e9),
                  "end_ns": start + int((warmup + duration) * 1e9)}
        for pipe in pipes:
            pipe.send(timing)
        pid = target.get("gateway_pid")
        hub_pid = target.get("hub_pid")
        time.sleep(max(0.0, (timing["measure_ns"] - time.perf_counter_ns()) / 1e9))
        cpu0 = (cpu_seconds(pid), cpu_seconds(pid, pid)) if pid else (None, None)
        metrics0 = scrape_hops(target["rest_url"])
        hub0 = cpu_seconds(hub_pid) if hub_pid else None
        load0 = [cpu_seconds(w.pid) for w in workers if w.pid]
        w0 = time.perf_counter_ns()
        time.sleep(max(0.0, (timing["end_ns"] - time.perf_counter_ns()) / 1e9))
        cpu1 = (cpu_seconds(pid), cpu_seconds(pid, pid)) if pid else (None, None)
        metrics1 = scrape_hops(target["rest_url"])
        hub1 = cpu_seconds(hub_pid) if hub_pid else None
        load1 = [cpu_seconds(w.pid) for w in workers if w.pid]
        window = (time.perf_counter_ns() - w0) / 1e9
        results = []
        for pipe in pipes:
            if not pipe.poll(120):
                raise TimeoutError("a load process did not report within 120 s of the end")
            results.append(pipe.recv())
    finally:
        for p in workers:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(5)
    report = _report(sc, target, results, rate, duration, warmup, procs, window,
                     cpu0, cpu1, (hub0, hub1), sample, keep_raw)
    report["hops_metrics"] = metrics_percentiles(metrics0, metrics1)
    if load0 and None not in load0 and None not in load1:
        used = sum(b - a for a, b in zip(load0, load1, strict=True))  # type: ignore[operator]
        report["load_cpu"] = {"utilisation": round(used / window, 3),
                              "per_request_us": round(used / max(report["requests_answered"], 1) * 1e6, 1)}
    return report


def _report(sc: Scenario, target: dict[str, Any], results: list[dict[str, Any]], rate: float, duration: float,
            warmup: float, procs: int, window: float, cpu0: tuple[float | None, float | None],
            cpu1: tuple[float | None, float | None], hub_cpu: tuple[float | None, float | None], sample: int,
            keep_raw: bool) -> dict[str, Any]:
    status: dict[str, int] = {}
    for r in results:
        for k, v in r["status"].items():
            status[k] = status.get(k, 0) + v
    answered = sum(r["answered_in_window"] for r in results)
    ok = sum(v for k, v in status.items() if k.split(":")[1].startswith("2"))
    orders = sum(v for k, v in status.items()
                 if k.split(":")[0] in ("limit", "market", "list") and k.split(":")[1].startswith("2"))
    latency: dict[str, dict[str, Any]] = {}
    raw: dict[str, list[int]] = {}
    for kind in KINDS:
        for i, op in enumerate(OPS):
            vals = array("q")
            for r in results:
                vals.frombytes(r["lat"][kind][i])
            if len(vals):
                latency[f"{kind}.{op}"] = summarize(vals)
                if keep_raw and kind in ("rest", "ack") and op in ("limit", "market"):
                    raw.setdefault(kind, []).extend(vals)
    samples = [s for r in results for s in r["samples"]][:sample]
    traces: list[Any] = []
    if samples:
        u = urllib.parse.urlsplit(target["rest_url"])
        traces = asyncio.run(_get_json(u.hostname or "127.0.0.1", u.port or 80,
                                       [(f"/v1/orders/{s[0]}/trace", s[1]) for s in samples]))
    hop_values = _hops(samples, traces)
    hops = {name: summarize(v) for name, v in hop_values.items()}
    report: dict[str, Any] = {
        "scenario": sc.name,
        "description": sc.description,
        "target": {k: target.get(k) for k in ("rest_url", "ws_url", "link", "sync")},
        "offered_rate": rate,
        "mode": "open loop" if rate > 0 else "closed loop",
        "duration_s": duration,
        "warmup_s": warmup,
        "processes": procs,
        "connections": sc.connections * procs,
        "window_s": round(window, 3),
        "requests_answered": answered,
        "throughput_rps": round(answered / window, 1) if window > 0 else 0.0,
        "ok_responses": ok,
        "orders_accepted": orders,
        "status": dict(sorted(status.items())),
        "unanswered": sum(r["unanswered"] for r in results),
        "missing_acks": sum(r["missing_acks"] for r in results),
        "lost_connections": sum(r["lost_connections"] for r in results),
        "backlog_max": max((r["backlog_max"] for r in results), default=0),
        "latency_us": latency,
        "hops_us": hops,
        "traced_orders": sum(1 for t in traces if t is not None),
    }
    gateway_cpu = cpu_split(cpu0, cpu1, window, answered)
    if gateway_cpu:
        report["gateway_cpu"] = gateway_cpu
    if hub_cpu[0] is not None and hub_cpu[1] is not None:
        report["hub_cpu_utilisation"] = round((hub_cpu[1] - hub_cpu[0]) / window, 3)
    if keep_raw:
        report["_raw"] = {"hops": hop_values, **raw}
    return report
