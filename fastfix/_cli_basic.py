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
