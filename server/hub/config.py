"""STP-HUB configuration, read from a TOML file.

::

    [hub]
    fix_settings = "hub.cfg"          # QuickFIX-style acceptor sessions, one per party
    on_destination_down = "reject"    # or "hold": keep (persisted) and forward at the party's logon
    hold_timeout = 0                  # seconds a held message may wait, then it is rejected (0 = no limit)
    database = "var/hub/hub.db"       # SQLite: held messages
    # fix_port = 0                    # overrides SocketAcceptPort (0 = any free port)
    # ports_file = "var/hub.ports.json"  # {"fix": PORT, "pid": PID, "logged_on": [...]}, rewritten on logons
    log_level = "info"

    [[parties]]                       # one per session of fix_settings (its TargetCompID)
    comp_id = "GATEWAY"
    role = "buy-side"                 # buy sides route to brokers, brokers to buy sides
    on_destination_down = "hold"      # overrides the [hub] policy for messages to this party

Errors name the file and the key (``hub.toml: parties[1].role: ...``); relative
paths are relative to the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from fastfix.errors import ConfigError
from server._config import (
    FixSettings,
    LogLevel,
    Port,
    Table,
    config_error,
    convert,
    existing_file,
    read_toml,
)

__all__ = ["HubConfig", "HubSection", "Party", "load_config", "parse_config", "ROLES", "DOWN_POLICIES"]

Role = Literal["buy-side", "broker"]
DownPolicy = Literal["reject", "hold"]
ROLES: tuple[str, ...] = Role.__args__
DOWN_POLICIES: tuple[str, ...] = DownPolicy.__args__


class Party(Table):
    """A firm with a FIX session to the hub, named by its CompID."""

    comp_id: Annotated[str, msgspec.Meta(min_length=1)]
    role: Role  # buy sides route to brokers, brokers to buy sides
    name: str = ""
    on_destination_down: DownPolicy | None = None  # None = the hub's policy


class HubSection(Table):
    """The ``[hub]`` table."""

    fix_settings: FixSettings  # acceptor sessions, one per party
    on_destination_down: DownPolicy = "reject"
    hold_timeout: Annotated[float, msgspec.Meta(ge=0, description="seconds, 0 = no limit")] = 0.0
    database: Path | None = Path("hub.db")  # SQLite: held messages
    fix_port: Port | None = None
    ports_file: Path | None = None
    log_level: LogLevel = "info"


class HubConfig(HubSection, kw_only=True):
    """Everything the hub process needs: the ``[hub]`` keys and the parties by CompID."""

    path: Path
    parties: dict[str, Party] = msgspec.field(default_factory=dict)

    def policy(self, comp_id: str) -> str:
        """What happens to a message for ``comp_id`` while it is not logged on."""
        p = self.parties.get(comp_id)
        return (p.on_destination_down if p and p.on_destination_down else None) or self.on_destination_down


class _File(Table, kw_only=True):
    hub: HubSection
    parties: Annotated[list[Party], msgspec.Meta(min_length=1, description="at least one [[parties]] entry")]


def load_config(path: str | Path) -> HubConfig:
    """Read and check a hub TOML file; raises :class:`ConfigError` naming file and key."""
    p = Path(path)
    return parse_config(read_toml(p), p)


def parse_config(data: dict[str, Any], path: Path) -> HubConfig:
    """Check a parsed TOML document and cross-check it with the FIX settings file."""
    from fastfix.settings import SessionSettings

    path = Path(path).resolve()
    name = path.name
    doc = convert(data, _File, name, path.parent)
    cfg = HubConfig(path=path, **msgspec.structs.asdict(doc.hub))
    existing_file(name, "hub.fix_settings", cfg.fix_settings)
    for i, party in enumerate(doc.parties):
        if party.comp_id in cfg.parties:
            raise config_error(name, f"parties[{i}].comp_id", f"duplicate party {party.comp_id!r}")
        cfg.parties[party.comp_id] = party

    # Every acceptor session must be a party and every party a session: routing is by CompID.
    settings = SessionSettings.from_file(cfg.fix_settings)
    targets: dict[str, str] = {}
    for sid, s in settings.sessions().items():
        if s.is_initiator:
            raise ConfigError(f"{cfg.fix_settings.name}: [{sid}]: the hub's sessions are acceptors")
        if sid.target_comp_id in targets:
            raise ConfigError(f"{cfg.fix_settings.name}: two sessions with TargetCompID "
                              f"{sid.target_comp_id!r}: the hub routes by CompID")
        targets[sid.target_comp_id] = str(sid)
    for comp in cfg.parties:
        if comp not in targets:
            raise config_error(name, "parties", f"{comp!r} has no session in {cfg.fix_settings.name}")
    for comp, sid in targets.items():
        if comp not in cfg.parties:
            raise config_error(name, "parties", f"session {sid} has no [[parties]] entry for {comp!r}")
    return cfg
