"""``fastfix hub``: run the STP-HUB (FIX routing by DeliverToCompID)."""

from __future__ import annotations

import argparse
from typing import Any

from fastfix._cli_service import add_config_arguments, run_service


def add_arguments_hub(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "hub", "hub.toml")


def _summary(cfg: Any) -> str:
    roles = ", ".join(f"{p.comp_id} ({p.role})" for p in cfg.parties.values())
    return f"{len(cfg.parties)} parties: {roles}; destination down: {cfg.on_destination_down}"


def run_hub(args: argparse.Namespace) -> int:
    from server.hub.config import load_config

    return run_service("hub", args, load_config, _summary, "server.hub.service")
