"""``fastfix hub``: run the STP-HUB (FIX routing by DeliverToCompID)."""

from __future__ import annotations

import argparse
import logging
import sys

from fastfix.errors import ConfigError


def add_arguments_hub(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, help="hub TOML file (see examples/hub.toml)")
    parser.add_argument("--check", action="store_true", help="only read and check the configuration")


def run_hub(args: argparse.Namespace) -> int:
    from server.hub.config import load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"fastfix hub: {exc}", file=sys.stderr)
        return 2
    if args.check:
        roles = ", ".join(f"{p.comp_id} ({p.role})" for p in cfg.parties.values())
        print(f"{args.config}: OK ({len(cfg.parties)} parties: {roles}; "
              f"destination down: {cfg.on_destination_down})")
        return 0
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from fastfix.engine import run
    from server.hub.service import serve

    try:
        run(serve(cfg))
    except ConfigError as exc:
        print(f"fastfix hub: {exc}", file=sys.stderr)
        return 2
    return 0
