"""Small subcommands: ``version`` and ``demo``."""

from __future__ import annotations

import argparse

from fastfix import __version__


def add_arguments_version(parser: argparse.ArgumentParser) -> None:
    pass


def run_version(args: argparse.Namespace) -> int:
    print(__version__)
    return 0


def add_arguments_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--var", default="var", help="data directory (default: ./var)")


def run_demo(args: argparse.Namespace) -> int:
    print("The sandbox (hub, brokers, exchange, gateway) is not available yet in this release.")
    print("The FIX codec is: see README.md, 'Codec API'.")
    return 0
