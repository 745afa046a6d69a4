"""What the service subcommands share: ``--config``/``--check``, then run until a signal.

A service subcommand reads a TOML file (errors name file and key, exit status 2),
prints a one-line summary with ``--check``, or configures logging at the file's
``log_level`` and runs the service module's ``serve(cfg)`` on the engine's loop.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

from fastfix.errors import ConfigError, StoreError

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_config_arguments(parser: argparse.ArgumentParser, what: str, example: str,
                         required: bool = True) -> None:
    """``--config FILE`` (``what`` TOML file, see ``examples/<example>``) and ``--check``."""
    parser.add_argument("--config", "-c", required=required, help=f"{what} TOML file (see examples/{example})")
    parser.add_argument("--check", action="store_true", help="only read and check the configuration")


def run_service(command: str, args: argparse.Namespace, load: Callable[[str], Any],
                summary: Callable[[Any], str], service: str) -> int:
    """Load ``args.config`` with ``load``; ``--check`` prints ``summary(cfg)``, otherwise
    ``serve(cfg)`` of module ``service`` (imported only then) runs until SIGINT/SIGTERM."""
    try:
        cfg = load(args.config)
        if args.check:
            print(f"{args.config}: OK ({summary(cfg)})")
            return 0
    except ConfigError as exc:
        print(f"fastfix {command}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.log_level.upper(), format=_LOG_FORMAT)
    from fastfix.engine import run

    serve = importlib.import_module(service).serve
    try:
        run(serve(cfg))
    except ConfigError as exc:
        print(f"fastfix {command}: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # a store that cannot be opened (locked, another format): no traceback
        print(f"fastfix {command}: {exc}", file=sys.stderr)
        return 1
    return 0
