"""The service subcommands of the ``fastfix`` console script.

``fastfix demo``, ``fastfix gateway``, ``fastfix exchange``, ``fastfix hub`` and
``fastfix broker`` live here, beside the services they run: the ``fastfix``
library finds them through the ``fastfix.commands`` entry point (see
``pyproject.toml`` and :mod:`fastfix.cli`), so the library never imports
``server``.

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

__all__ = ["COMMANDS", "add_config_arguments", "run_service"]

# name -> (module, one-line help), the form :mod:`fastfix.cli` takes.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (__name__, "start the local sandbox (hub, brokers, exchange, gateway)"),
    "gateway": (__name__, "run the order gateway (REST/WebSocket to FIX)"),
    "exchange": (__name__, "run the KRX exchange simulator (FIX acceptor)"),
    "hub": (__name__, "run the STP-HUB (FIX routing by DeliverToCompID)"),
    "broker": (__name__, "run a simulated broker (hub and exchange sessions)"),
}

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


# ------------------------------------------------------------------------------ demo


def add_arguments_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=None,
                        help="sandbox TOML file (default: examples/sandbox.toml)")
    parser.add_argument("--var", default=None, help="data directory (default: the sandbox file's, ./var)")
    parser.add_argument("--ephemeral", action="store_true",
                        help="every role on a free port instead of the documented ones")
    parser.add_argument("--ports-file", default=None,
                        help="write the ports and PIDs here (JSON) once everything is up")


def run_demo(args: argparse.Namespace) -> int:
    from server.sandbox import main

    return main(args.config, args.var, args.ephemeral, args.ports_file)


# --------------------------------------------------------------------------- gateway


def add_arguments_gateway(parser: argparse.ArgumentParser) -> None:
    # --config is optional here: --new-key and --hash-key need no configuration.
    add_config_arguments(parser, "gateway", "gateway.toml", required=False)
    parser.add_argument("--new-key", action="store_true",
                        help="print a new random API key and its api_key_sha256 line, then exit")
    parser.add_argument("--hash-key", metavar="KEY", help="print api_key_sha256 for KEY, then exit")


def _gateway_summary(cfg: Any) -> str:
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

    return run_service("gateway", args, load_config, _gateway_summary, "server.gateway.app")


# -------------------------------------------------------------------------- exchange


def add_arguments_exchange(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "exchange", "exchange.toml")


def _exchange_summary(cfg: Any) -> str:
    from fastfix.settings import SessionSettings

    n = len(SessionSettings.from_file(cfg.fix_settings))
    return f"{n} FIX sessions, {cfg.clock} clock"


def run_exchange(args: argparse.Namespace) -> int:
    from server.exchange.config import load_config

    return run_service("exchange", args, load_config, _exchange_summary, "server.exchange.service")


# ------------------------------------------------------------------------------- hub


def add_arguments_hub(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "hub", "hub.toml")


def _hub_summary(cfg: Any) -> str:
    roles = ", ".join(f"{p.comp_id} ({p.role})" for p in cfg.parties.values())
    return f"{len(cfg.parties)} parties: {roles}; destination down: {cfg.on_destination_down}"


def run_hub(args: argparse.Namespace) -> int:
    from server.hub.config import load_config

    return run_service("hub", args, load_config, _hub_summary, "server.hub.service")


# ---------------------------------------------------------------------------- broker


def add_arguments_broker(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "broker", "broker-kiwoom.toml")


def _broker_summary(cfg: Any) -> str:
    return f"hub {cfg.hub}, exchange {cfg.exchange}, {len(cfg.accounts)} accounts"


def run_broker(args: argparse.Namespace) -> int:
    from server.broker.config import load_config

    return run_service("broker", args, load_config, _broker_summary, "server.broker.service")
