"""The ``fastfix`` console script.

The library's own subcommands are listed in :data:`COMMANDS`. The services
(package ``server``: ``demo``, ``gateway``, ``exchange``, ``hub``, ``broker``) keep
theirs in ``server.cli``, a table of the same form, which is imported only when
it is installed: the library itself never needs the services. A module named in
a table provides ``add_arguments[_<name>](parser)`` and ``run[_<name>](args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "SERVICE_COMMANDS", "main"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "version": ("fastfix._cli_basic", "print the fastfix version"),
    "acceptance": ("fastfix._cli_acceptance", "run the acceptor of the QuickFIX session acceptance suite"),
    "dictionary": ("fastfix._cli_dictionary", "compile or show FIX data dictionaries"),
}

SERVICE_COMMANDS = "server.cli"  # the services' table, when they are installed


def _service_commands() -> tuple[dict[str, tuple[str, str]], str]:
    """The services' commands, or none and why."""
    try:
        module = importlib.import_module(SERVICE_COMMANDS)
    except ModuleNotFoundError as exc:
        if exc.name is None or not f"{SERVICE_COMMANDS}.".startswith(f"{exc.name}."):
            raise  # something the services need is missing: that is theirs to report
        return {}, (f"The service commands (demo, gateway, ...) are not available: the services "
                    f"are not installed ({exc}).")
    return module.COMMANDS, ""


def main(argv: list[str] | None = None) -> int:
    services, missing = _service_commands()
    commands = dict(COMMANDS)
    for name, spec in services.items():
        commands.setdefault(name, spec)  # the library's own win a clash
    parser = argparse.ArgumentParser(prog="fastfix", description=__doc__.splitlines()[0],
                                     epilog=missing or None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, (modname, helptext) in commands.items():
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
