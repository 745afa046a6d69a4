"""``python -m server.gateway --config gateway.toml``: same as ``fastfix gateway``."""

from __future__ import annotations

import sys

from fastfix.cli import main

if __name__ == "__main__":
    sys.exit(main(["gateway", *sys.argv[1:]]))
