"""``fastfix version``."""

from __future__ import annotations

import argparse

from fastfix import __version__


def add_arguments_version(parser: argparse.ArgumentParser) -> None:
    pass


def run_version(args: argparse.Namespace) -> int:
    print(__version__)
    return 0
