"""``fastfix exchange``: run the KRX exchange simulator behind a FIX acceptor."""

from __future__ import annotations

import argparse
import logging
import sys

from fastfix.errors import ConfigError


def add_arguments_exchange(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, help="exchange TOML file (see examples/exchange.toml)")
    parser.add_argument("--check", action="store_true", help="only read and check the configuration")


def run_exchange(args: argparse.Namespace) -> int:
    from server.exchange.service import load_config

    try:
        cfg = load_config(args.config)
        if args.check:
            from fastfix.settings import SessionSettings

            n = len(SessionSettings.from_file(cfg.fix_settings))
            print(f"{args.config}: OK ({n} FIX sessions, {cfg.clock} clock)")
            return 0
    except ConfigError as exc:
        print(f"fastfix exchange: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from fastfix.engine import run
    from server.exchange.service import serve

    try:
        run(serve(cfg))
    except ConfigError as exc:
        print(f"fastfix exchange: {exc}", file=sys.stderr)
        return 2
    return 0
