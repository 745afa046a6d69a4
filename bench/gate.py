"""Release gate for the FIX codec: fastfix must beat simplefix by fixed ratios.

Usage: ``python bench/gate.py BENCH.json`` where BENCH.json comes from
``pytest bench/test_codec_bench.py --benchmark-only --benchmark-json=BENCH.json``.
Ratios are simplefix median / fastfix median, both measured in that same run.
Exit status 0 when every ratio meets its floor, 1 otherwise (or when a
benchmark is missing from the file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: gate.py BENCH.json", file=sys.stderr)
        return 2
    path = Path(argv[1])
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
    return verdict("codec gate", failures)


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
