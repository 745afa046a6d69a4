"""``fastfix broker``: run a simulated broker (hub session + exchange session)."""

from __future__ import annotations

import argparse
from typing import Any

from fastfix._cli_service import add_config_arguments, run_service


def add_arguments_broker(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "broker", "broker-kiwoom.toml")


def _summary(cfg: Any) -> str:
    return f"hub {cfg.hub}, exchange {cfg.exchange}, {len(cfg.accounts)} accounts"


def run_broker(args: argparse.Namespace) -> int:
    from server.broker.config import load_config

    return run_service("broker", args, load_config, _summary, "server.broker.service")
