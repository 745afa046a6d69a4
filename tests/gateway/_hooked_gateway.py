"""The gateway process with a test hook: ``python _hooked_gateway.py HOOK --config gw.toml``.

Hooks kill the process (SIGKILL, as a crash) at a chosen point of the order path:

* ``crash-after-journal``: a request is journaled, not yet written to FIX;
* ``crash-before-report-journal``: reports were read (the FIX session counted them),
  not yet journaled.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from fastfix.engine import run
from server.gateway.app import serve
from server.gateway.config import load_config
from server.gateway.service import Gateway


def _die(*_: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after_journal(gw: Gateway) -> None:
    gw.intake.after_journal = _die


def _before_report_journal(gw: Gateway) -> None:
    gw.reports.before_journal = _die


HOOKS: dict[str, Callable[[Gateway], None]] = {
    "crash-after-journal": _after_journal,
    "crash-before-report-journal": _before_report_journal,
}


def main(argv: list[str]) -> None:
    hook, _, config = argv
    cfg = load_config(config)
    logging.basicConfig(level=cfg.log_level.upper())
    run(serve(cfg, prepare=HOOKS[hook]))


if __name__ == "__main__":
    main(sys.argv[1:])
