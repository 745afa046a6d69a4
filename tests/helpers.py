"""Helpers shared across the test suite (``tests/`` is on pytest's ``pythonpath``): running a
coroutine with a bound on its time, and QuickFIX-style settings text built from keywords.

>>> print(fix_settings(session("FIX.4.4", "GW", "HUB"), **initiator(9876), HeartBtInt=5,
...                    UseDataDictionary=True), end="")
[DEFAULT]
ConnectionType=initiator
SocketConnectHost=127.0.0.1
SocketConnectPort=9876
ReconnectInterval=1
HeartBtInt=5
UseDataDictionary=Y
[SESSION]
BeginString=FIX.4.4
SenderCompID=GW
TargetCompID=HUB
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

#: Sessions that never end: a period starting and ending at midnight is 24 hours.
ALL_DAY: dict[str, str] = {"StartTime": "00:00:00", "EndTime": "00:00:00"}


def run(coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
    """Run ``coro`` on a fresh event loop; a test that hangs fails after ``timeout`` seconds
    (``asyncio.TimeoutError``) instead of waiting for the suite's own timeout."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def session(begin: str, sender: str | None = None, target: str | None = None,
            **keys: Any) -> dict[str, Any]:
    """The keys of one ``[SESSION]``; CompIDs left out come from ``[DEFAULT]``."""
    ids = {"BeginString": begin, "SenderCompID": sender, "TargetCompID": target}
    return {**{k: v for k, v in ids.items() if v is not None}, **keys}


def initiator(port: int, **keys: Any) -> dict[str, Any]:
    """``[DEFAULT]`` keys of an initiator connecting to ``port`` on 127.0.0.1, retrying every second."""
    return {"ConnectionType": "initiator", "SocketConnectHost": "127.0.0.1", "SocketConnectPort": port,
            "ReconnectInterval": 1, **keys}


def acceptor(port: int = 0, **keys: Any) -> dict[str, Any]:
    """``[DEFAULT]`` keys of an acceptor on 127.0.0.1 (port 0: any free port)."""
    return {"ConnectionType": "acceptor", "SocketAcceptAddress": "127.0.0.1", "SocketAcceptPort": port,
            **keys}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "Y" if v else "N"
    return str(v)


def fix_settings(*sessions: Mapping[str, Any], **default: Any) -> str:
    """QuickFIX settings text: ``default`` as the ``[DEFAULT]`` section, then one ``[SESSION]``
    per mapping. Values are written with ``str`` (paths, numbers), booleans as ``Y``/``N``."""
    lines = ["[DEFAULT]", *(f"{k}={_value(v)}" for k, v in default.items())]
    for keys in sessions:
        lines += ["[SESSION]", *(f"{k}={_value(v)}" for k, v in keys.items())]
    return "\n".join(lines) + "\n"
