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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastfix.errors import ConfigError
from server._config import read_toml, service_table, settings_file

__all__ = ["HubConfig", "Party", "load_config", "parse_config", "ROLES", "DOWN_POLICIES"]

ROLES = ("buy-side", "broker")
DOWN_POLICIES = ("reject", "hold")
_HUB_KEYS = {"fix_settings", "on_destination_down", "hold_timeout", "database", "fix_port",
             "ports_file", "log_level"}
_PARTY_KEYS = {"comp_id", "role", "name", "on_destination_down"}


@dataclass(slots=True)
class Party:
    """A firm with a FIX session to the hub, named by its CompID."""

    comp_id: str
    role: str
    name: str = ""
    on_destination_down: str | None = None  # None = the hub's policy


@dataclass(slots=True)
class HubConfig:
    """Everything the hub process needs."""

    path: Path
    fix_settings: Path
    on_destination_down: str = "reject"
    hold_timeout: float = 0.0
    database: Path | None = None
    fix_port: int | None = None
    ports_file: Path | None = None
    log_level: str = "info"
    parties: dict[str, Party] = field(default_factory=dict)

    def policy(self, comp_id: str) -> str:
        """What happens to a message for ``comp_id`` while it is not logged on."""
        p = self.parties.get(comp_id)
        return (p.on_destination_down if p and p.on_destination_down else None) or self.on_destination_down


def load_config(path: str | Path) -> HubConfig:
    """Read and check a hub TOML file; raises :class:`ConfigError` naming file and key."""
    p = Path(path)
    return parse_config(read_toml(p), p)


def _typed(name: str, key: str, table: dict[str, Any], kind: type | tuple[type, ...], default: Any) -> Any:
    if key not in table:
        return default
    v = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(v, bool) and bool not in kinds:
        raise ConfigError(f"{name}: {key}: expected {kinds[0].__name__}, got a boolean")
    if not isinstance(v, kind):
        raise ConfigError(f"{name}: {key}: expected {kinds[0].__name__}, got {v!r}")
    return v


def parse_config(data: dict[str, Any], path: Path) -> HubConfig:
    """Check a parsed TOML document and cross-check it with the FIX settings file."""
    from fastfix.settings import SessionSettings

    path = Path(path).resolve()
    name = path.name
    hub = service_table(data, name, "hub", _HUB_KEYS, {"hub", "parties"})

    def rel(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else (path.parent / p)

    fix = _typed(f"{name}: hub", "fix_settings", hub, str, None)
    cfg = HubConfig(path=path, fix_settings=settings_file(f"{name}: hub.fix_settings", fix, path.parent))
    cfg.on_destination_down = _typed(f"{name}: hub", "on_destination_down", hub, str, "reject")
    if cfg.on_destination_down not in DOWN_POLICIES:
        raise ConfigError(f'{name}: hub.on_destination_down: must be "reject" or "hold", '
                          f"got {cfg.on_destination_down!r}")
    cfg.hold_timeout = float(_typed(f"{name}: hub", "hold_timeout", hub, (int, float), 0))
    if cfg.hold_timeout < 0:
        raise ConfigError(f"{name}: hub.hold_timeout: must be >= 0 seconds (0 = no limit)")
    db = _typed(f"{name}: hub", "database", hub, str, "hub.db")
    cfg.database = rel(db)
    cfg.fix_port = _typed(f"{name}: hub", "fix_port", hub, int, None)
    if cfg.fix_port is not None and not 0 <= cfg.fix_port <= 65535:
        raise ConfigError(f"{name}: hub.fix_port: must be a TCP port (0 = any free port)")
    ports = _typed(f"{name}: hub", "ports_file", hub, str, None)
    cfg.ports_file = rel(ports) if ports else None
    cfg.log_level = _typed(f"{name}: hub", "log_level", hub, str, "info")
    if cfg.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{name}: hub.log_level: must be debug, info, warning or error")

    parties = data.get("parties", [])
    if not isinstance(parties, list) or not parties:
        raise ConfigError(f"{name}: parties: at least one [[parties]] entry is required")
    for i, item in enumerate(parties):
        where = f"{name}: parties[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: must be a table")
        unknown = sorted(set(item) - _PARTY_KEYS)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key")
        comp = _typed(where, "comp_id", item, str, None)
        if not comp:
            raise ConfigError(f"{where}.comp_id: is required")
        if comp in cfg.parties:
            raise ConfigError(f"{where}.comp_id: duplicate party {comp!r}")
        role = _typed(where, "role", item, str, None)
        if role not in ROLES:
            raise ConfigError(f'{where}.role: must be "buy-side" or "broker", got {role!r}')
        policy = _typed(where, "on_destination_down", item, str, None)
        if policy is not None and policy not in DOWN_POLICIES:
            raise ConfigError(f'{where}.on_destination_down: must be "reject" or "hold", got {policy!r}')
        cfg.parties[comp] = Party(comp, role, _typed(where, "name", item, str, ""), policy)

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
            raise ConfigError(f"{name}: parties: {comp!r} has no session in {cfg.fix_settings.name}")
    for comp, sid in targets.items():
        if comp not in cfg.parties:
            raise ConfigError(f"{name}: parties: session {sid} has no [[parties]] entry for {comp!r}")
    return cfg
