"""``fastfix gateway``: run the order gateway, or make API keys for its configuration."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fastfix._cli_service import add_config_arguments, run_service


def add_arguments_gateway(parser: argparse.ArgumentParser) -> None:
    # --config is optional here: --new-key and --hash-key need no configuration.
    add_config_arguments(parser, "gateway", "gateway.toml", required=False)
    parser.add_argument("--new-key", action="store_true",
                        help="print a new random API key and its api_key_sha256 line, then exit")
    parser.add_argument("--hash-key", metavar="KEY", help="print api_key_sha256 for KEY, then exit")


def _summary(cfg: Any) -> str:
    return f"{len(cfg.brokers)} brokers, {len(cfg.clients)} clients"


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

    return run_service("gateway", args, load_config, _summary, "server.gateway.app")
