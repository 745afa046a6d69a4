"""The session owner with a fault injected by the test: it kills itself (SIGKILL) at a chosen
point of the order path. ``FASTFIX_FAULT`` is ``after-append:N`` (the Nth application message
acknowledged by the journal, before its socket write) or ``before-report:N`` (the Nth
report read from the hub, before it is journaled)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from server.gateway.cluster import owner as owner_module
from server.gateway.cluster.store import JetStreamStore

kind, _, count = os.environ["FASTFIX_FAULT"].partition(":")
left = int(count)


def _die() -> None:
    sys.stderr.write(f"fault injected: {kind}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


if kind == "after-append":
    _save_sent = JetStreamStore.save_sent

    def save_sent(self: JetStreamStore, seq: int, raw: bytes) -> None:
        global left
        _save_sent(self, seq, raw)  # acknowledged by the journal ...
        left -= 1
        if left == 0:
            _die()  # ... and never written to the socket

    JetStreamStore.save_sent = save_sent  # type: ignore[method-assign]
elif kind == "before-report":
    _on_report = owner_module.SessionOwner.on_report

    def on_report(self: owner_module.SessionOwner, msg: Any) -> None:
        global left
        left -= 1
        if left == 0:
            _die()  # read from the hub, not journaled
        _on_report(self, msg)

    owner_module.SessionOwner.on_report = on_report  # type: ignore[method-assign]
else:
    raise SystemExit(f"unknown FASTFIX_FAULT {kind!r}")

if __name__ == "__main__":
    owner_module.main()
