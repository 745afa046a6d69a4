"""Broker simulator configuration, read from a TOML file.

::

    [broker]
    fix_settings = "broker-kiwoom.cfg"   # two initiator sessions: to the hub and to the exchange
    hub = "HUB"                          # TargetCompID of the session to the STP-HUB
    exchange = "KRX"                     # TargetCompID of the session to the exchange
    database = "var/broker-kiwoom.db"    # SQLite: positions and the order map (survive restarts)
    status_file = "var/broker-kiwoom.status.json"  # {"pid", "hub": bool, "exchange": bool}
    # hub_port = 9880                    # override SocketConnectPort of the hub session
    # exchange_port = 9878               # ... and of the exchange session
    log_level = "info"

    [broker.reference_prices]            # prices that value market buys (default: the listing's base)
    "005930" = 70000

    [[accounts]]
    id = "ALPHA-01"
    owners = ["GATEWAY"]                 # buy sides that may use it (empty = any)
    advisors = ["ADV-ALPHA"]             # advisors (SenderSubID at the buy side) that own it (empty = any)
    cash = 100000000                     # KRW
    holdings = { "005930" = 1000 }       # shares per short code

The configured cash and holdings are the opening position of an account that
is not yet in the database; after that the database is the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastfix.errors import ConfigError
from server._config import read_toml, service_table, settings_file

__all__ = ["AccountConfig", "BrokerConfig", "load_config", "parse_config"]

_BROKER_KEYS = {"fix_settings", "hub", "exchange", "database", "status_file", "hub_port",
                "exchange_port", "log_level", "reference_prices"}
_ACCOUNT_KEYS = {"id", "owners", "cash", "holdings", "name", "advisors"}


@dataclass(slots=True)
class AccountConfig:
    id: str
    cash: int = 0
    holdings: dict[str, int] = field(default_factory=dict)
    owners: list[str] = field(default_factory=list)
    name: str = ""
    advisors: list[str] = field(default_factory=list)  # sub-ids (SenderSubID 50 -> OnBehalfOfSubID 116)


@dataclass(slots=True)
class BrokerConfig:
    path: Path
    fix_settings: Path
    hub: str = "HUB"
    exchange: str = "KRX"
    database: Path | None = None
    status_file: Path | None = None
    hub_port: int | None = None
    exchange_port: int | None = None
    log_level: str = "info"
    reference_prices: dict[str, int] = field(default_factory=dict)
    accounts: dict[str, AccountConfig] = field(default_factory=dict)


def load_config(path: str | Path) -> BrokerConfig:
    """Read and check a broker TOML file; raises :class:`ConfigError` naming file and key."""
    p = Path(path)
    return parse_config(read_toml(p), p)


def _int(where: str, v: Any, minimum: int = 0) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {v!r}")
    return v


def parse_config(data: dict[str, Any], path: Path) -> BrokerConfig:
    """Check a parsed TOML document and cross-check it with the FIX settings file."""
    from fastfix.settings import SessionSettings
    from server.exchange.instruments import INSTRUMENTS

    path = Path(path).resolve()
    name = path.name
    b = service_table(data, name, "broker", _BROKER_KEYS, {"broker", "accounts"})

    def rel(value: Any, key: str) -> Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{name}: broker.{key}: expected a path, got {value!r}")
        p = Path(value)
        return p if p.is_absolute() else path.parent / p

    fix = rel(b["fix_settings"], "fix_settings") if "fix_settings" in b else None
    cfg = BrokerConfig(path=path, fix_settings=settings_file(f"{name}: broker.fix_settings", fix, path.parent))
    for key in ("hub", "exchange", "log_level"):
        if key in b:
            if not isinstance(b[key], str) or not b[key]:
                raise ConfigError(f"{name}: broker.{key}: expected a non-empty string")
            setattr(cfg, key, b[key])
    if cfg.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{name}: broker.log_level: must be debug, info, warning or error")
    cfg.database = rel(b["database"], "database") if "database" in b else None
    cfg.status_file = rel(b["status_file"], "status_file") if "status_file" in b else None
    for key in ("hub_port", "exchange_port"):
        if key in b:
            port = _int(f"{name}: broker.{key}", b[key])
            if port > 65535:
                raise ConfigError(f"{name}: broker.{key}: must be a TCP port")
            setattr(cfg, key, port)
    prices = b.get("reference_prices", {})
    if not isinstance(prices, dict):
        raise ConfigError(f"{name}: broker.reference_prices: must be a table")
    for code, price in prices.items():
        if code not in INSTRUMENTS:
            raise ConfigError(f"{name}: broker.reference_prices.{code}: unknown instrument")
        cfg.reference_prices[code] = _int(f"{name}: broker.reference_prices.{code}", price, 1)

    accounts = data.get("accounts", [])
    if not isinstance(accounts, list) or not accounts:
        raise ConfigError(f"{name}: accounts: at least one [[accounts]] entry is required")
    for i, a in enumerate(accounts):
        where = f"{name}: accounts[{i}]"
        if not isinstance(a, dict):
            raise ConfigError(f"{where}: must be a table")
        for key in sorted(set(a) - _ACCOUNT_KEYS):
            raise ConfigError(f"{where}.{key}: unknown key")
        acc_id = a.get("id")
        if not isinstance(acc_id, str) or not acc_id:
            raise ConfigError(f"{where}.id: is required")
        if acc_id in cfg.accounts:
            raise ConfigError(f"{where}.id: duplicate account {acc_id!r}")
        holdings = a.get("holdings", {})
        if not isinstance(holdings, dict):
            raise ConfigError(f"{where}.holdings: must be a table of short code = shares")
        for code, qty in holdings.items():
            if code not in INSTRUMENTS:
                raise ConfigError(f"{where}.holdings.{code}: unknown instrument")
            _int(f"{where}.holdings.{code}", qty)
        owners = a.get("owners", [])
        if not isinstance(owners, list) or not all(isinstance(o, str) and o for o in owners):
            raise ConfigError(f"{where}.owners: expected a list of CompIDs")
        cfg.accounts[acc_id] = AccountConfig(
            acc_id, _int(f"{where}.cash", a.get("cash", 0)), dict(holdings), list(owners),
            str(a.get("name", "")),
        )
        advisors = a.get("advisors", [])
        if not isinstance(advisors, list) or not all(isinstance(v, str) and v for v in advisors):
            raise ConfigError(f"{where}.advisors: expected a list of advisor ids (SenderSubID values)")
        cfg.accounts[acc_id].advisors = list(advisors)

    settings = SessionSettings.from_file(cfg.fix_settings)
    targets = {sid.target_comp_id for sid in settings.sessions()}
    for key in ("hub", "exchange"):
        if getattr(cfg, key) not in targets:
            raise ConfigError(f"{name}: broker.{key}: no session with TargetCompID "
                              f"{getattr(cfg, key)!r} in {cfg.fix_settings.name}")
    return cfg
