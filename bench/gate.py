"""Release gate for the FIX codec: fastfix must beat simplefix by fixed ratios.

Usage: ``python bench/gate.py [BENCH.json] [--compare]`` where BENCH.json comes from
``pytest bench/test_codec_bench.py --benchmark-only --benchmark-json=BENCH.json``.
Ratios are simplefix median / fastfix median, both measured in that same run.
Exit status 0 when every ratio meets its floor, 1 otherwise (or when a
benchmark is missing from the file). With ``--compare``, the last two runs saved under
``.benchmarks/history`` (``make bench-gate`` saves each) are also printed side by side.

This module also holds what the three release gates share: the verdict, and the saved
runs of earlier releases with the printed change from the previous one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

HISTORY = Path(__file__).resolve().parents[1] / ".benchmarks" / "history"  # not in git

# (operation, message) -> minimum simplefix/fastfix ratio of medians
FLOORS: dict[tuple[str, str], float] = {
    ("parse", "nos"): 50.0,
    ("parse", "er"): 50.0,
    ("serialize", "nos"): 10.0,
    ("serialize", "er"): 10.0,
}


def _medians(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    return {b["name"]: float(b["stats"]["median"]) for b in data.get("benchmarks", [])}


def evaluate(
    medians: dict[str, float],
) -> tuple[list[tuple[str, str, float, float, float, float]], list[str]]:
    """Rows of (operation, message, fastfix s, simplefix s, ratio, floor) and failure messages."""
    rows, failures = [], []
    for (op, case), floor in FLOORS.items():
        ours = medians.get(f"test_{op}_fastfix[{case}]")
        theirs = medians.get(f"test_{op}_simplefix[{case}]")
        if ours is None or theirs is None:
            failures.append(f"{op} {case}: benchmark missing from the JSON file")
            continue
        ratio = theirs / ours
        rows.append((op, case, ours, theirs, ratio, floor))
        if ratio < floor:
            failures.append(
                f"{op} {case}: fastfix is {ratio:.1f}x simplefix, needs >= {floor:.0f}x"
            )
    return rows, failures


def saved_runs(pattern: str, history: Path = HISTORY) -> list[Path]:
    """Saved runs whose path under ``history`` matches ``pattern``, oldest first (their names
    start with a run number or a UTC time)."""
    return sorted(history.glob(pattern), key=lambda p: p.name)


def print_change(previous: str, rows: Iterable[tuple[str, float, float]], unit: str) -> None:
    """Rows of (figure, previous value, value now), with the change in per cent."""
    print(f"compared with the previous saved run {previous}:")
    print(f"{'figure':<44} {'previous ' + unit:>14} {'now ' + unit:>12} {'change':>8}")
    for name, old, new in rows:
        change = f"{(new / old - 1) * 100:>+7.1f}%" if old else ""
        print(f"{name:<44} {old:>14,.2f} {new:>12,.2f} {change:>8}")


def compare_saved(history: Path = HISTORY) -> None:
    """The codec medians and ratios of the last two saved runs."""
    runs = saved_runs("*/*_codec.json", history)
    if len(runs) < 2:
        print(f"codec gate: fewer than two saved runs under {HISTORY}: nothing to compare")
        return
    old, new = _medians(runs[-2]), _medians(runs[-1])
    rows = [(name, old[name] * 1e9, new[name] * 1e9) for name in sorted(new) if name in old]
    print_change(runs[-2].name, rows, "ns")
    before = {(op, case): ratio for op, case, _, _, ratio, _ in evaluate(old)[0]}
    ratios = [(f"{op} {case}: simplefix / fastfix", before[(op, case)], ratio)
              for op, case, _, _, ratio, _ in evaluate(new)[0] if (op, case) in before]
    print_change(runs[-2].name, ratios, "x")


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if a != "--compare"]
    if not args and "--compare" in argv[1:]:  # only the saved runs
        compare_saved()
        return 0
    if len(args) != 1:
        print("usage: gate.py [BENCH.json] [--compare]", file=sys.stderr)
        return 2
    path = Path(args[0])
    if not path.is_file():
        print(f"gate: {path} not found", file=sys.stderr)
        return 1
    rows, failures = evaluate(_medians(path))
    print(
        f"{'operation':<10} {'message':<8} {'fastfix ns':>11} {'simplefix ns':>13} {'ratio':>8} {'floor':>6}"
    )
    for op, case, ours, theirs, ratio, floor in rows:
        mark = "ok" if ratio >= floor else "FAIL"
        print(
            f"{op:<10} {case:<8} {ours * 1e9:>11.0f} {theirs * 1e9:>13.0f} {ratio:>7.1f}x {floor:>5.0f}x {mark}"
        )
    rc = verdict("codec gate", failures)
    if "--compare" in argv[1:]:
        compare_saved()
    return rc


def verdict(name: str, failures: list[str]) -> int:
    """Print a gate's verdict: its failures on stderr (exit status 1), or that it passed (0)."""
    if failures:
        print(f"{name} FAILED:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    print(f"{name} passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
