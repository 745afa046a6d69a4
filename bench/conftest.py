"""Shared benchmark settings: record the codec sample sizes in ``--benchmark-json`` output."""

from __future__ import annotations

import sys
from typing import Any


def pytest_benchmark_update_json(config: Any, benchmarks: list, output_json: dict) -> None:
    """Keep the sizes of the codec sample messages beside the figures they explain."""
    mod = sys.modules.get("test_codec_bench")
    if mod is None:  # the codec benchmarks were not collected in this run
        return
    output_json.setdefault("codec", {})["message_sizes"] = {"nos": len(mod.NOS), "er": len(mod.ER)}
