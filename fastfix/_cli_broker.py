"""``fastfix broker``: run a simulated broker (hub session + exchange session)."""

from __future__ import annotations

import argparse
import logging
import sys

from fastfix.errors import ConfigError


def add_arguments_broker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, help="broker TOML file (see examples/broker-kiwoom.toml)")
    parser.add_argument("--check", action="store_true", help="only read and check the configuration")


def run_broker(args: argparse.Namespace) -> int:
    from server.broker.config import load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"fastfix broker: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: OK (hub {cfg.hub}, exchange {cfg.exchange}, {len(cfg.accounts)} accounts)")
        return 0
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from fastfix.engine import run
    from server.broker.service import serve

    try:
        run(serve(cfg))
    except ConfigError as exc:
        print(f"fastfix broker: {exc}", file=sys.stderr)
        return 2
    return 0
