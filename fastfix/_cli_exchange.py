"""``fastfix exchange``: run the KRX exchange simulator behind a FIX acceptor."""

from __future__ import annotations

import argparse
from typing import Any

from fastfix._cli_service import add_config_arguments, run_service


def add_arguments_exchange(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "exchange", "exchange.toml")


def _summary(cfg: Any) -> str:
    from fastfix.settings import SessionSettings

    n = len(SessionSettings.from_file(cfg.fix_settings))
    return f"{n} FIX sessions, {cfg.clock} clock"


def run_exchange(args: argparse.Namespace) -> int:
    from server.exchange.service import load_config

    return run_service("exchange", args, load_config, _summary, "server.exchange.service")
