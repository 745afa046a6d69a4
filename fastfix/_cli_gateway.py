"""``fastfix gateway``: run the order gateway, or make API keys for its configuration."""

from __future__ import annotations

import argparse
import logging
import sys

from fastfix.errors import ConfigError


def add_arguments_gateway(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="gateway TOML file (see examples/gateway.toml)")
    parser.add_argument("--check", action="store_true", help="only read and check the configuration")
    parser.add_argument("--new-key", action="store_true",
                        help="print a new random API key and its api_key_sha256 line, then exit")
    parser.add_argument("--hash-key", metavar="KEY", help="print api_key_sha256 for KEY, then exit")


def run_gateway(args: argparse.Namespace) -> int:
    from server.gateway.auth import hash_key, new_api_key

    if args.new_key:
        key = new_api_key()
        print(f"API key: {key}")
        print(f'api_key_sha256 = "{hash_key(key)}"')
        return 0
    if args.hash_key:
        print(f'api_key_sha256 = "{hash_key(args.hash_key)}"')
        return 0
    if not args.config:
        print("fastfix gateway: --config FILE is required", file=sys.stderr)
        return 2
    from server.gateway.config import load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"fastfix gateway: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: OK ({len(cfg.brokers)} brokers, {len(cfg.clients)} clients)")
        return 0
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from fastfix.engine import run
    from server.gateway.app import serve

    try:
        run(serve(cfg))
    except ConfigError as exc:
        print(f"fastfix gateway: {exc}", file=sys.stderr)
        return 2
    return 0
