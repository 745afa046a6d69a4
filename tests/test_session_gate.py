"""bench/session_gate.py: fastfix/raw-echo percentile ratios from a pytest-benchmark JSON file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GATE = Path(__file__).resolve().parents[1] / "bench" / "session_gate.py"


def _json(tmp_path: Path, ours: dict[str, float] | None, raw: dict[str, float] | None) -> Path:
    benches = []
    if ours is not None:
        benches.append({"name": "test_fastfix_to_fastfix_ping_pong[N]", "extra_info": ours})
    if raw is not None:
        benches.append({"name": "test_raw_asyncio_echo_ping_pong", "extra_info": raw})
    path = tmp_path / "session.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GATE), *args], capture_output=True, text=True, timeout=60)


def test_passes_within_the_ceilings(tmp_path: Path) -> None:
    r = _run(str(_json(tmp_path, {"p50_us": 26.0, "p99_us": 48.0}, {"p50_us": 12.5, "p99_us": 13.5})))
    assert r.returncode == 0, r.stderr
    assert "session gate passed" in r.stdout and "2.08x" in r.stdout


def test_fails_on_a_p50_regression(tmp_path: Path) -> None:
    r = _run(str(_json(tmp_path, {"p50_us": 55.0, "p99_us": 60.0}, {"p50_us": 12.5, "p99_us": 13.5})))
    assert r.returncode == 1
    assert "p50_us: fastfix ping-pong is 4.40x the raw echo" in r.stderr


def test_fails_on_a_tail_regression(tmp_path: Path) -> None:
    r = _run(str(_json(tmp_path, {"p50_us": 26.0, "p99_us": 200.0}, {"p50_us": 12.5, "p99_us": 13.5})))
    assert r.returncode == 1 and "p99_us" in r.stderr


def test_missing_benchmark_or_file_fails(tmp_path: Path) -> None:
    r = _run(str(_json(tmp_path, {"p50_us": 26.0, "p99_us": 48.0}, None)))
    assert r.returncode == 1 and "missing" in r.stderr
    assert _run(str(tmp_path / "absent.json")).returncode == 1
    assert _run().returncode == 2


def test_compare_prints_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(GATE.parent))
    try:
        import session_gate
    finally:
        sys.path.remove(str(GATE.parent))
    hist = tmp_path / "history" / "machine"
    hist.mkdir(parents=True)
    for n, p50 in ((1, 20.0), (2, 30.0)):
        (hist / f"000{n}_session.json").write_text(json.dumps({"benchmarks": [
            {"name": "test_fastfix_to_fastfix_ping_pong[N]", "extra_info": {"p50_us": p50, "p99_us": 40.0}}]}))
    runs = session_gate.saved_runs(tmp_path / "history")
    assert [p.name for p in runs] == ["0001_session.json", "0002_session.json"]
    session_gate.compare(runs[0], runs[1])
    out = capsys.readouterr().out
    assert "+50.0%" in out and "0001_session.json" in out
