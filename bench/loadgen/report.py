"""Reports of load runs: JSON, Markdown tables, PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.loadgen.run import HOP_CHAIN

__all__ = ["markdown_run", "markdown_sweep", "plot_hop_cdf", "plot_sweep", "write_run", "write_sweep"]

_COLS = ("p50", "p90", "p99", "p99_9", "max")
_HOP_TEXT = {
    "client_to_rest": "client sent → REST received",
    "validate": "REST received → validated",
    "persist": "validated → persisted (journal write)",
    "fix_write": "persisted → FIX written",
    "hub": "FIX written → report read (hub double)",
    "er_to_ws": "report read → WebSocket frame written",
    "ws_to_client": "frame written → client received",
    "end_to_end": "client sent → client received (acknowledgement)",
}


def _row(name: str, s: dict[str, Any]) -> str:
    if not s.get("count"):
        return f"| {name} | 0 | " + " | ".join("—" for _ in _COLS) + " |"
    return f"| {name} | {s['count']} | " + " | ".join(f"{s.get(c, 0):,.1f}" for c in _COLS) + " |"


def _table_head(first: str) -> list[str]:
    return [f"| {first} | n | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |",
            "|---|---:|---:|---:|---:|---:|---:|"]


def markdown_run(r: dict[str, Any]) -> str:
    """One run as Markdown: summary, per-hop table, client latencies, statuses."""
    out = [f"### {r['scenario']}: {r['mode']}, offered {r['offered_rate']:,.0f}/s" if r["offered_rate"] else
           f"### {r['scenario']}: {r['mode']}", ""]
    if r.get("description"):
        out += [r["description"], ""]
    cpu = r.get("gateway_cpu", {})
    out += [
        f"- throughput: **{r['throughput_rps']:,.0f} requests/s** answered over {r['window_s']:.1f} s "
        f"({r['processes']} load process(es), {r['connections']} connections)",
        f"- orders accepted: {r['orders_accepted']:,}; unanswered at the end: {r['unanswered']}; "
        f"acknowledgements missing: {r['missing_acks']}; largest backlog: {r['backlog_max']}",
    ]
    if "per_request_us" in cpu:
        line = f"- gateway CPU: {cpu['utilisation'] * 100:.0f}% of a core, **{cpu['per_request_us']:.0f} µs per request**"
        if "loop_per_request_us" in cpu:
            line += (f"; its event-loop thread {cpu['loop_utilisation'] * 100:.0f}% of a core, "
                     f"{cpu['loop_per_request_us']:.0f} µs per request (the rest is granian's HTTP threads)")
        out.append(line)
    if "load_cpu" in r:
        out.append(f"- load generator CPU: {r['load_cpu']['utilisation'] * 100:.0f}% of a core, "
                   f"{r['load_cpu']['per_request_us']:.0f} µs per request")
    if "hub_cpu_utilisation" in r:
        out.append(f"- hub double CPU: {r['hub_cpu_utilisation'] * 100:.0f}% of a core")
    out += ["", f"Per hop, {r['traced_orders']} sampled new orders (gateway trace joined with the client's times):", ""]
    out += _table_head("hop")
    for name, _, _ in HOP_CHAIN:
        out.append(_row(_HOP_TEXT[name], r["hops_us"].get(name, {})))
    hm = r.get("hops_metrics") or {}
    if hm:
        out += ["", "Every order of the window, from the gateway's `gateway_hop_seconds` histograms on `/metrics` "
                    "(bucket upper bounds, so coarser):", "",
                "| hop | n | p50 ≤ µs | p99 ≤ µs | p99.9 ≤ µs |", "|---|---:|---:|---:|---:|"]
        for hop, v in hm.items():
            cells = " | ".join("—" if v.get(k) is None else f"{v[k]:,.0f}" for k in ("p50_le", "p99_le", "p99_9_le"))
            out.append(f"| `{hop}` | {v['count']:,} | {cells} |")
    out += ["", "Client side, by request kind (`rest`: due → HTTP answer, `ack`: due → first WebSocket "
                "report; `*_service`: from the write instead of the due time):", ""]
    out += _table_head("latency")
    for key, s in r["latency_us"].items():
        out.append(_row(f"`{key}`", s))
    out += ["", "Answers: " + ", ".join(f"{k} × {v:,}" for k, v in r["status"].items()), ""]
    return "\n".join(out)


def markdown_sweep(runs: list[dict[str, Any]], floor: list[dict[str, Any]] | None = None) -> str:
    """A rate sweep as one table; ``floor``: runs of the same client at the same rates against
    the trivial handler (``BareTarget``), shown beside the gateway's."""
    bare = {r["offered_rate"]: r for r in floor or []}
    head = ("| offered /s | answered /s | gateway CPU µs/req | REST p50 µs | REST p99 µs | ack p50 µs | ack p99 µs | "
            "report→WS p99 µs |")
    rule = "|---:|---:|---:|---:|---:|---:|---:|---:|"
    if bare:
        head += " bare CPU µs/req | bare REST p50 µs | bare REST p99 µs |"
        rule += "---:|---:|---:|"
    out = [head, rule]
    for r in runs:
        rest = r["latency_us"].get("rest.limit", {})
        ack = r["latency_us"].get("ack.limit", {})
        ws = r["hops_us"].get("er_to_ws", {})
        row = (f"| {r['offered_rate']:,.0f} | {r['throughput_rps']:,.0f} | {_cpu(r)} | {rest.get('p50', 0):,.0f} | "
               f"{rest.get('p99', 0):,.0f} | {ack.get('p50', 0):,.0f} | {ack.get('p99', 0):,.0f} | "
               f"{ws.get('p99', 0):,.0f} |")
        if bare:
            b = bare.get(r["offered_rate"])
            brest = b["latency_us"].get("rest.limit", {}) if b else {}
            row += (f" {_cpu(b) if b else '—'} | {brest.get('p50', 0):,.0f} | {brest.get('p99', 0):,.0f} |"
                    if brest else " — | — | — |")
        out.append(row)
    return "\n".join(out) + "\n"


def _cpu(r: dict[str, Any]) -> str:
    cpu = r.get("gateway_cpu", {}).get("per_request_us")
    return "—" if cpu is None else f"{cpu:.0f}"


def _public(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if not k.startswith("_")}


def write_run(r: dict[str, Any], out: Path, plots: bool = True) -> list[Path]:
    """``out``.json, ``out``.md and (with raw samples and ``plots``) ``out``-cdf.png."""
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [out.with_suffix(".json"), out.with_suffix(".md")]
    written[0].write_text(json.dumps(_public(r), indent=2) + "\n")
    written[1].write_text(markdown_run(r))
    if plots and "_raw" in r:
        png = out.parent / f"{out.name}-cdf.png"
        plot_hop_cdf(r, png)
        written.append(png)
    return written


def write_sweep(runs: list[dict[str, Any]], out: Path, plots: bool = True) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [out.with_suffix(".json"), out.with_suffix(".md")]
    written[0].write_text(json.dumps([_public(r) for r in runs], indent=2) + "\n")
    written[1].write_text(markdown_sweep(runs) + "\n" + "\n".join(markdown_run(r) for r in runs))
    if plots:
        png = out.parent / f"{out.name}.png"
        plot_sweep(runs, png)
        written.append(png)
    return written


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_hop_cdf(r: dict[str, Any], png: Path, title: str | None = None) -> None:
    """Latency CDF per hop (log time axis), from the raw per-order hop values of a run."""
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    for name, _, _ in HOP_CHAIN:
        vals = r["_raw"]["hops"].get(name) or []
        if not vals:
            continue
        x = np.sort(np.asarray(vals, dtype=np.float64)) / 1000.0
        y = (np.arange(1, len(x) + 1) - 0.5) / len(x)  # mid-rank: never exactly 0 or 1 on the logit axis
        ax.plot(x, y, label=_HOP_TEXT[name], lw=1.6 if name == "end_to_end" else 1.1,
                ls="--" if name == "end_to_end" else "-")
    ax.set_xscale("log")
    # logit percentile axis: the median and the tail (p99, p99.9) both get room
    ax.set_yscale("logit")
    ticks = [0.01, 0.1, 0.5, 0.9, 0.99, 0.999]
    ax.set_yticks(ticks, [f"p{t * 100:g}" for t in ticks])
    ax.yaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_ylim(0.005, 0.9995)
    ax.set_xlabel("µs (log scale)")
    ax.set_ylabel("percentile")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or f"Per-hop latency, {r['scenario']} at {r['offered_rate']:,.0f} orders/s offered",
                 fontsize=10)
    ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def plot_sweep(runs: list[dict[str, Any]], png: Path, title: str | None = None,
               floor: list[dict[str, Any]] | None = None) -> None:
    """Latency percentiles against offered rate, and answered against offered; ``floor`` (the
    trivial handler at the same rates, see :func:`markdown_sweep`) in grey."""
    plt = _plt()
    rates = [r["offered_rate"] for r in runs]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.8), dpi=100, gridspec_kw={"width_ratios": [3, 2]})
    for key, label, style in (("rest.limit", "POST → 202", "-"), ("ack.limit", "POST → report on WS", "--")):
        for p, marker in (("p50", "o"), ("p99", "s")):
            ys = [r["latency_us"].get(key, {}).get(p) for r in runs]
            ax.plot(rates, ys, style, marker=marker, ms=4, label=f"{label} {p}")
    ws = [r["hops_us"].get("er_to_ws", {}).get("p99") for r in runs]
    ax.plot(rates, ws, ":", marker="^", ms=4, label="report read → WS written p99")
    for p, marker in (("p50", "o"), ("p99", "s")) if floor else ():
        ax.plot([r["offered_rate"] for r in floor], [r["latency_us"].get("rest.limit", {}).get(p) for r in floor],
                "-", color="grey", marker=marker, ms=3, lw=1, label=f"bare handler POST → 202 {p}")
    ax.set_yscale("log")
    ax.set_xlabel("offered orders/s")
    ax.set_ylabel("µs (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "Latency against offered rate (open loop)", fontsize=10)
    ax2.plot(rates, [r["throughput_rps"] for r in runs], marker="o", ms=4, label="answered")
    ax2.plot(rates, rates, ":", color="grey", label="offered")
    ax2.set_xlabel("offered orders/s")
    ax2.set_ylabel("answered requests/s")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=7)
    ax2.set_title("Throughput", fontsize=10)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
