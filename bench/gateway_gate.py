"""Release gate for the order gateway: REST->FIX throughput relative to a bare REST stack.

Runs the gateway (FIX to a hub double) and a trivial granian RSGI + msgspec handler
in the same run, each on the same single CPU, driven by the same closed-loop client
(wrk, or a Python client without it) from the other CPU(s), at each concurrency of
``_gateway_load.THROUGHPUT_CONNECTIONS``; alternates short runs and keeps each
server's best, so a burst of load from other work on the machine lowers one sample,
not the verdict, and each server is compared at its ceiling (the bare handler needs
more requests in flight than the gateway to reach its own). Passes when

    gateway orders/s (every one answered 202 and seen by the hub) >= FLOOR x bare requests/s

The release target is 0.5, not met. With group commits (an order waited for a later loop
pass, many orders shared one SQLite transaction) the gateway measured 0.36-0.40 of the
bare handler at their ceilings on a middling day. The journal-first order path answers
each order in its own callback, with a journal write of its own, and reports in records
of their read: it halved the gateway's share of an order's round trip, and measured 0.28
at the ceiling on a quiet host (15,153 orders/s against 53,878). The ratio also follows
the host: the gateway's work is mostly interpreter time, which a busy or slow host
stretches more than the bare handler's mostly kernel time. So the enforced floor is 0.22:
it still fails a change that makes the gateway's order path about a third slower, and
each run prints where it stands against the 0.5 target.

Usage: ``python bench/gateway_gate.py [--rounds N] [--seconds S] [--floor F] [--json PATH] [--save]``,
or ``--compare`` for the change between the last two saved runs only.
Exit status 0 on pass, 1 on fail; a failing verdict is measured once more before it
counts (a noisy machine gets a second chance, a slow gateway does not pass twice).
With ``--save`` (``make bench-gateway-gate``) the figures are also kept under
``.benchmarks/history/gateway`` and the change from the previous saved run is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gateway_load  # noqa: E402  (it puts the repository on sys.path for bench.loadgen)
from gate import HISTORY, print_change, saved_runs  # noqa: E402

from bench.loadgen.run import loop_and_other_us  # noqa: E402

FLOOR = 0.22  # enforced: a gross regression of the order path fails the release
TARGET = 0.5  # the goal, reported on every run
_CPU_KEYS = (("gateway", "gateway_cpu"), ("bare", "baseline_cpu"))  # each server's CPU split in a run


def _measure(rounds: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gwgate") as tmp:
        return asyncio.run(asyncio.wait_for(_gateway_load.run(Path(tmp), rounds, seconds), 300))


def _cpu_line(res: dict[str, Any]) -> str:
    """Where each server's CPU went per request in its best run: the event-loop thread (the
    Python work: the gateway's order path, the bare handler's decode and answer) and the
    other threads (granian's HTTP runtime, the same code for both)."""
    parts = []
    for name, key in _CPU_KEYS:
        split = loop_and_other_us(res.get(key, {}))
        if split is not None:
            parts.append(f"{name} event loop {split[0]:.0f} µs + other threads {split[1]:.0f} µs")
    return "CPU per request: " + ("; ".join(parts) if parts else "not measured")


def save_run(res: dict[str, Any], history: Path = HISTORY) -> Path:
    """Keep a run's figures as ``gateway/<UTC time>_gateway.json`` under ``history``."""
    path = history / "gateway" / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}_gateway.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1) + "\n")
    return path


def compare_saved(history: Path = HISTORY) -> None:
    """The gate's figures in the last two saved runs."""
    runs = saved_runs("gateway/*_gateway.json", history)
    if len(runs) < 2:
        print(f"gateway gate: fewer than two saved runs under {history}: nothing to compare")
        return
    old, new = (json.loads(p.read_text()) for p in runs[-2:])
    if old.get("connections") != new.get("connections") or old.get("pinned") != new.get("pinned"):
        print(f"gateway gate: {runs[-2].name} was measured otherwise (connections {old.get('connections')}, "
              f"pinned {old.get('pinned')}); compare with care")
    rows = [("gateway orders/s", old["gateway_orders_per_s"], new["gateway_orders_per_s"]),
            ("bare handler requests/s", old["baseline_req_per_s"], new["baseline_req_per_s"]),
            ("ratio", old["ratio"], new["ratio"])]
    for name, key in _CPU_KEYS:
        a, b = loop_and_other_us(old.get(key, {})), loop_and_other_us(new.get(key, {}))
        if a is not None and b is not None:
            rows.append((f"{name} event loop µs per request", a[0], b[0]))
            rows.append((f"{name} other threads µs per request", a[1], b[1]))
    print_change(runs[-2].name, rows, "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each server (best kept)")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of one run")
    ap.add_argument("--floor", type=float, default=FLOOR, help="minimum gateway/bare throughput ratio")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--save", action="store_true",
                    help="keep the figures under .benchmarks/history and print the change from the previous run")
    ap.add_argument("--compare", action="store_true", help="only print the change between the last two saved runs")
    args = ap.parse_args(argv)
    if args.compare:
        compare_saved()
        return 0
    t0 = time.monotonic()
    res: dict[str, Any] = {}
    for attempt in (1, 2):
        res = _measure(args.rounds, args.seconds)
        res["attempt"] = attempt
        print(f"gateway gate (attempt {attempt}, client {res['client']}, pinned {res['pinned']}): "
              f"gateway {res['gateway_orders_per_s']} orders/s {res['gateway_orders_per_s_runs']}, "
              f"bare granian+msgspec {res['baseline_req_per_s']} req/s {res['baseline_req_per_s_runs']}, "
              f"ratio {res['ratio']:.3f} (floor {args.floor})", flush=True)
        print(f"  best by connections: gateway {res['gateway_orders_per_s_by_connections']}, "
              f"bare {res['baseline_req_per_s_by_connections']}", flush=True)
        print(f"  {_cpu_line(res)}", flush=True)
        if res["ratio"] >= args.floor:
            break
    res["floor"] = args.floor
    res["seconds_total"] = round(time.monotonic() - t0, 1)
    res["target"] = TARGET
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    ok = res["ratio"] >= args.floor
    target = "met" if res["ratio"] >= TARGET else "not yet met"
    print(f"gateway gate: {'PASS' if ok else 'FAIL'} in {res['seconds_total']} s "
          f"(target ratio {TARGET}: {target})")
    if args.save:
        save_run(res)
        compare_saved()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
