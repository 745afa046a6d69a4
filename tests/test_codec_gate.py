"""bench/gate.py: ratio gate over a pytest-benchmark JSON file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GATE = Path(__file__).resolve().parents[1] / "bench" / "gate.py"


def _json(tmp_path: Path, medians: dict[str, float]) -> Path:
    path = tmp_path / "bench.json"
    benches = [{"name": name, "stats": {"median": m}} for name, m in medians.items()]
    path.write_text(json.dumps({"benchmarks": benches}))
    return path


def _run(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(GATE), str(path)], capture_output=True, text=True, timeout=60
    )


def _medians(parse_ratio: float, ser_ratio: float) -> dict[str, float]:
    out = {}
    for case in ("nos", "er"):
        out[f"test_parse_fastfix[{case}]"] = 200e-9
        out[f"test_parse_simplefix[{case}]"] = 200e-9 * parse_ratio
        out[f"test_serialize_fastfix[{case}]"] = 500e-9
        out[f"test_serialize_simplefix[{case}]"] = 500e-9 * ser_ratio
    return out


def test_gate_passes(tmp_path):
    res = _run(_json(tmp_path, _medians(60, 12)))
    assert res.returncode == 0, res.stderr
    assert "codec gate passed" in res.stdout
    assert "60.0x" in res.stdout


def test_gate_fails_on_slow_parse(tmp_path):
    res = _run(_json(tmp_path, _medians(49, 12)))
    assert res.returncode == 1
    assert "parse nos: fastfix is 49.0x simplefix, needs >= 50x" in res.stderr


def test_gate_fails_on_slow_serialize(tmp_path):
    res = _run(_json(tmp_path, _medians(60, 9.5)))
    assert res.returncode == 1
    assert "serialize er" in res.stderr


def test_gate_fails_on_missing_benchmark(tmp_path):
    medians = _medians(60, 12)
    del medians["test_parse_simplefix[er]"]
    res = _run(_json(tmp_path, medians))
    assert res.returncode == 1
    assert "missing" in res.stderr


def test_gate_fails_on_missing_file(tmp_path):
    assert _run(tmp_path / "nope.json").returncode == 1
