"""TOML configuration helpers shared by the service configurations.

Every error is a :class:`ConfigError` that names the file (and the key), so an
operator can fix the file without reading code. Relative paths in a file are
taken relative to the file's directory.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from fastfix.errors import ConfigError

__all__ = ["read_toml", "service_table", "settings_file"]


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML document at ``path``."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None


def service_table(data: dict[str, Any], name: str, table: str, keys: set[str],
                  tables: set[str] | None = None) -> dict[str, Any]:
    """The service's own ``[table]`` of document ``data`` (from file ``name``).

    It must be there and hold only ``keys``; given ``tables``, the document may
    hold no other top-level tables either.
    """
    t = data.get(table)
    if not isinstance(t, dict):
        raise ConfigError(f"{name}: missing [{table}] table")
    unknown = sorted(set(data) - tables) if tables is not None else []
    if unknown:
        raise ConfigError(f"{name}: {unknown[0]}: unknown table")
    unknown = sorted(set(t) - keys)
    if unknown:
        raise ConfigError(f"{name}: {table}.{unknown[0]}: unknown key")
    return t


def settings_file(where: str, value: str | Path | None, base: Path) -> Path:
    """The QuickFIX-style settings file named by ``value`` (relative to ``base``).

    It is required and must exist; ``where`` names file and key in the errors
    (``"hub.toml: hub.fix_settings"``).
    """
    if value is None:
        raise ConfigError(f"{where}: is required (a QuickFIX-style settings file)")
    p = base / value
    if not p.is_file():
        raise ConfigError(f"{where}: file not found: {p}")
    return p
