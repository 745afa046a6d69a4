"""Security tests: API keys, authorization, secrets in logs, TLS."""

from __future__ import annotations

import sys
from pathlib import Path

# The gateway harness (process control, HTTP and WebSocket clients) lives beside the gateway tests.
_GATEWAY_TESTS = Path(__file__).resolve().parents[1] / "gateway"
if str(_GATEWAY_TESTS) not in sys.path:
    sys.path.insert(0, str(_GATEWAY_TESTS))
