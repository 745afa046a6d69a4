"""``python -m bench.loadgen``: the gateway load lab.

Commands:

* ``target``  start a gateway + FIX hub double and wait (Ctrl-C stops both);
* ``run``     one scenario against a running gateway (``--target FILE`` or ``--url/--ws/--key``);
* ``sweep``   the same at several offered rates (``--rates 500,1000,2000``);
* ``lab``     start a target, run or sweep, optionally profile the gateway with py-spy, stop.

Results: ``<out>.json`` and ``<out>.md`` (and PNG plots) under ``bench/results/`` by default.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen.report import write_run, write_sweep
from bench.loadgen.run import run_load
from bench.loadgen.scenario import load_scenario
from bench.loadgen.target import REPO, LabTarget

RESULTS = REPO / "bench" / "results"


def _target_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--target", type=Path, help="target.json written by `target` (URLs, keys, gateway PID)")
    ap.add_argument("--url", help="REST base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--ws", help="WebSocket stream URL, e.g. ws://127.0.0.1:8081/v1/stream")
    ap.add_argument("--key", action="append", default=[], help="API key (repeat for several clients)")
    ap.add_argument("--broker", action="append", default=[], help="DeliverToCompID to use (repeatable)")
    ap.add_argument("--gateway-pid", type=int, help="PID of the gateway, for CPU per order")


def _load_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("scenario", type=Path, help="scenario TOML (bench/loadgen/scenarios/)")
    ap.add_argument("--rate", type=float, help="offered requests/s over all processes (0 = closed loop)")
    ap.add_argument("--duration", type=float, help="measured seconds")
    ap.add_argument("--warmup", type=float, help="seconds of load before measuring")
    ap.add_argument("--processes", type=int, help="load processes")
    ap.add_argument("--sample", type=int, default=2000, help="orders whose gateway trace is read (per run)")
    ap.add_argument("--out", type=Path, help="output path without suffix (default bench/results/<scenario>)")
    ap.add_argument("--no-plots", action="store_true", help="JSON and Markdown only")


def _target(args: argparse.Namespace) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if args.target:
        info = json.loads(args.target.read_text())
    if args.url:
        info["rest_url"] = args.url.rstrip("/")
    if args.ws:
        info["ws_url"] = args.ws
    if args.key:
        info["keys"] = args.key
    if args.broker:
        info["brokers"] = args.broker
    if args.gateway_pid:
        info["gateway_pid"] = args.gateway_pid
    missing = [k for k in ("rest_url", "ws_url", "keys") if not info.get(k)]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: give --target FILE or --url/--ws/--key")
    return info


def _rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _run_or_sweep(args: argparse.Namespace, target: dict[str, Any]) -> list[dict[str, Any]]:
    sc = load_scenario(args.scenario)
    out = args.out or RESULTS / sc.name
    plots = not args.no_plots
    kw = {"duration": args.duration, "warmup": args.warmup, "processes": args.processes, "sample": args.sample}
    rates = _rates(args.rates) if getattr(args, "rates", None) else None
    if rates:
        runs = []
        for rate in rates:
            r = run_load(sc, target, rate=rate, keep_raw=plots, **kw)
            print(f"{sc.name} @ {rate:,.0f}/s: {r['throughput_rps']:,.0f}/s answered, "
                  f"REST p99 {r['latency_us'].get('rest.limit', {}).get('p99')} µs, "
                  f"ack p99 {r['latency_us'].get('ack.limit', {}).get('p99')} µs", flush=True)
            runs.append(r)
        for p in write_sweep(runs, out, plots):
            print(f"wrote {p}")
        return runs
    r = run_load(sc, target, rate=args.rate, keep_raw=plots, **kw)
    for p in write_run(r, out, plots):
        print(f"wrote {p}")
    print(f"{sc.name}: {r['throughput_rps']:,.0f} requests/s, end to end p50 "
          f"{r['hops_us'].get('end_to_end', {}).get('p50')} µs, p99 {r['hops_us'].get('end_to_end', {}).get('p99')} µs")
    return [r]


def py_spy(pid: int, svg: Path, seconds: float, extra: str = "") -> list[subprocess.Popen[bytes]]:
    """Two py-spy samplers on ``pid``: the flame graph ``svg`` and its collapsed stacks (``.txt`` beside it)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        print("py-spy not installed: pip install -e '.[perf]'", file=sys.stderr)
        return []
    svg.parent.mkdir(parents=True, exist_ok=True)
    procs = []
    for out, fmt in ((svg, "flamegraph"), (svg.with_suffix(".txt"), "raw")):
        cmd = [exe, "record", "--pid", str(pid), "--output", str(out), "--format", fmt, "--rate", "200",
               "--duration", str(int(seconds + 0.999)), "--nonblocking", *shlex.split(extra)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
    return procs


def wait_all(procs: list[Any]) -> None:
    for h in procs:
        if h is None:
            continue
        try:
            h.wait(60)
        except subprocess.TimeoutExpired:
            h.send_signal(signal.SIGINT)
            h.wait(10)


def _perf_stat(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("perf")
    if exe is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([exe, "stat", "-o", str(out), "-e",
                             "task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions",
                             "-p", str(pid), "--", "sleep", str(seconds)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("target", help="start a gateway + FIX hub double and wait")
    t.add_argument("--workdir", type=Path, default=REPO / "var" / "lab")
    t.add_argument("--clients", type=int, default=4)
    t.add_argument("--link", choices=("fix", "loopback"), default="fix")
    t.add_argument("--sync", choices=("normal", "full"), default="normal")
    r = sub.add_parser("run", help="run a scenario against a running gateway")
    _load_args(r)
    _target_args(r)
    s = sub.add_parser("sweep", help="run a scenario at several offered rates")
    _load_args(s)
    _target_args(s)
    s.add_argument("--rates", required=True, help="comma-separated offered rates")
    lab = sub.add_parser("lab", help="start a target, run (or sweep), stop")
    _load_args(lab)
    lab.add_argument("--rates", help="sweep these rates instead of one run")
    lab.add_argument("--workdir", type=Path, default=REPO / "var" / "lab")
    lab.add_argument("--clients", type=int, default=4)
    lab.add_argument("--link", choices=("fix", "loopback"), default="fix")
    lab.add_argument("--profile", type=Path, help="record a py-spy flame graph (SVG) of the gateway during the run")
    lab.add_argument("--py-spy-args", default="", help="more py-spy record options, e.g. --native")
    lab.add_argument("--perf-stat", type=Path, help="write `perf stat` counters of the gateway during the run")
    args = ap.parse_args(argv)

    if args.cmd == "target":
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        with LabTarget(args.workdir, clients=args.clients, link=args.link, sync=args.sync) as tgt:
            print(json.dumps(tgt.info, indent=2))
            print(f"target file: {args.workdir / 'target.json'}; Ctrl-C stops", flush=True)
            try:
                while not stop["now"] and tgt.gateway is not None and tgt.gateway.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return 0
    if args.cmd in ("run", "sweep"):
        _run_or_sweep(args, _target(args))
        return 0
    # lab
    with LabTarget(args.workdir, clients=args.clients, link=args.link) as tgt:
        sc = load_scenario(args.scenario)
        seconds = (args.duration or sc.duration) + (args.warmup if args.warmup is not None else sc.warmup) + 1
        helpers: list[Any] = []
        if args.profile:
            helpers += py_spy(tgt.info["gateway_pid"], args.profile, seconds, args.py_spy_args)
        if args.perf_stat:
            helpers.append(_perf_stat(tgt.info["gateway_pid"], args.perf_stat, seconds))
        try:
            _run_or_sweep(args, tgt.info)
        finally:
            wait_all(helpers)
        if args.profile:
            raw = args.profile.with_suffix(".txt")
            if raw.exists():
                from bench.loadgen.flame import markdown_top

                top = markdown_top(raw, 20)
                args.profile.with_name(args.profile.stem + "-top.md").write_text(top)
                print(top)
            print(f"flame graph: {args.profile} (collapsed stacks: {raw})")
        if args.perf_stat and args.perf_stat.exists():
            print(args.perf_stat.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
