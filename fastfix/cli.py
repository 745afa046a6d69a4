"""The ``fastfix`` console script.

Each subcommand lives in its own module, imported only when it is run, so
``fastfix --help`` stays fast. A module named here provides
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "version": ("fastfix._cli_basic", "print the fastfix version"),
    "demo": ("fastfix._cli_basic", "start the local sandbox (hub, brokers, exchange, gateway)"),
    "acceptance": ("fastfix._cli_acceptance", "run the acceptor of the QuickFIX session acceptance suite"),
    "dictionary": ("fastfix._cli_dictionary", "compile or show FIX data dictionaries"),
    "gateway": ("fastfix._cli_gateway", "run the order gateway (REST/WebSocket to FIX)"),
    "exchange": ("fastfix._cli_exchange", "run the KRX exchange simulator (FIX acceptor)"),
    "hub": ("fastfix._cli_hub", "run the STP-HUB (FIX routing by DeliverToCompID)"),
    "broker": ("fastfix._cli_broker", "run a simulated broker (hub and exchange sessions)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastfix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, (modname, helptext) in COMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        mod = importlib.import_module(modname)
        adder = getattr(mod, f"add_arguments_{name}", None) or getattr(mod, "add_arguments", None)
        if adder is not None:
            adder(p)
        modules[name] = mod
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    mod = modules[args.command]
    runner = getattr(mod, f"run_{args.command}", None) or mod.run
    return int(runner(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
