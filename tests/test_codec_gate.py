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


def _bench_module(name: str):
    """A module of bench/ (its imports may add to sys.path: restored)."""
    saved = list(sys.path)
    sys.path.insert(0, str(GATE.parent))
    try:
        return __import__(name)
    finally:
        sys.path[:] = saved


def test_compare_prints_the_change_of_medians_and_ratios(tmp_path, capsys):
    gate = _bench_module("gate")
    hist = tmp_path / "history" / "machine"
    hist.mkdir(parents=True)
    for n, ratio in ((1, 60), (2, 45)):
        medians = _medians(ratio, 12)
        benches = [{"name": name, "stats": {"median": m}} for name, m in medians.items()]
        (hist / f"000{n}_x_codec.json").write_text(json.dumps({"benchmarks": benches}))
    (hist / "0003_x_session.json").write_text("{}")  # another gate's run: not compared
    gate.compare_saved(tmp_path / "history")
    out = capsys.readouterr().out
    assert "previous saved run 0001_x_codec.json" in out
    assert "test_parse_simplefix[nos]" in out and "-25.0%" in out  # simplefix median and the ratio
    assert "parse nos: simplefix / fastfix" in out and "60.00" in out and "45.00" in out


def test_compare_needs_two_saved_runs(tmp_path, capsys):
    gate = _bench_module("gate")
    gate.compare_saved(tmp_path / "history")
    assert "nothing to compare" in capsys.readouterr().out


def test_gateway_gate_saves_runs_and_prints_the_change(tmp_path, capsys):
    gateway_gate = _bench_module("gateway_gate")
    figures = {"connections": [32, 128], "pinned": True, "gateway_orders_per_s": 15000,
               "baseline_req_per_s": 40000, "ratio": 0.375}
    first = gateway_gate.save_run(figures, tmp_path / "history")
    older = first.with_name("20000101T000000Z_gateway.json")  # the earlier of two runs
    first.rename(older)
    second = gateway_gate.save_run(dict(figures, gateway_orders_per_s=12000, ratio=0.3), tmp_path / "history")
    assert json.loads(second.read_text())["gateway_orders_per_s"] == 12000
    gateway_gate.compare_saved(tmp_path / "history")
    out = capsys.readouterr().out
    assert "previous saved run 20000101T000000Z_gateway.json" in out
    assert "gateway orders/s" in out and "-20.0%" in out
    assert "measured otherwise" not in out
    gateway_gate.save_run(dict(figures, connections=[32]), tmp_path / "history").rename(
        tmp_path / "history" / "gateway" / "29990101T000000Z_gateway.json")
    gateway_gate.compare_saved(tmp_path / "history")
    assert "measured otherwise" in capsys.readouterr().out
