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

from pathlib import Path
from typing import Annotated, Any

import msgspec

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

__all__ = ["AccountConfig", "BrokerConfig", "BrokerSection", "load_config", "parse_config"]

CompId = Annotated[str, msgspec.Meta(min_length=1)]
Shares = Annotated[int, msgspec.Meta(ge=0)]


class AccountConfig(Table):
    """An ``[[accounts]]`` entry: its opening position (the database holds the current one)."""

    id: CompId
    cash: Annotated[int, msgspec.Meta(ge=0, description="KRW")] = 0
    holdings: dict[str, Shares] = msgspec.field(default_factory=dict)  # shares per short code
    owners: list[CompId] = msgspec.field(default_factory=list)  # buy sides that may use it; empty = any
    name: str = ""
    # advisors owning it: SenderSubID (50) of their orders, OnBehalfOfSubID (116) at the broker; empty = any
    advisors: list[CompId] = msgspec.field(default_factory=list)


class BrokerSection(Table):
    """The ``[broker]`` table."""

    fix_settings: FixSettings  # two initiator sessions: to the hub and to the exchange
    hub: CompId = "HUB"
    exchange: CompId = "KRX"
    database: Path | None = None
    status_file: Path | None = None
    hub_port: Port | None = None
    exchange_port: Port | None = None
    log_level: LogLevel = "info"
    reference_prices: dict[str, Annotated[int, msgspec.Meta(gt=0)]] = msgspec.field(default_factory=dict)


class BrokerConfig(BrokerSection, kw_only=True):
    """Everything the broker process needs: the ``[broker]`` keys and the accounts by id."""

    path: Path
    accounts: dict[str, AccountConfig] = msgspec.field(default_factory=dict)


class _File(Table, kw_only=True):
    broker: BrokerSection
    accounts: Annotated[list[AccountConfig], msgspec.Meta(min_length=1, description="at least one [[accounts]] entry")]


def load_config(path: str | Path) -> BrokerConfig:
    """Read and check a broker TOML file; raises :class:`ConfigError` naming file and key."""
    p = Path(path)
    return parse_config(read_toml(p), p)


def parse_config(data: dict[str, Any], path: Path) -> BrokerConfig:
    """Check a parsed TOML document and cross-check it with the FIX settings file."""
    from fastfix.settings import SessionSettings
    from server.exchange.instruments import INSTRUMENTS

    path = Path(path).resolve()
    name = path.name
    doc = convert(data, _File, name, path.parent)
    cfg = BrokerConfig(path=path, **msgspec.structs.asdict(doc.broker))
    existing_file(name, "broker.fix_settings", cfg.fix_settings)
    for code in cfg.reference_prices:
        if code not in INSTRUMENTS:
            raise config_error(name, f"broker.reference_prices.{code}", "unknown instrument")
    for i, account in enumerate(doc.accounts):
        if account.id in cfg.accounts:
            raise config_error(name, f"accounts[{i}].id", f"duplicate account {account.id!r}")
        for code in account.holdings:
            if code not in INSTRUMENTS:
                raise config_error(name, f"accounts[{i}].holdings.{code}", "unknown instrument")
        cfg.accounts[account.id] = account

    settings = SessionSettings.from_file(cfg.fix_settings)
    targets = {sid.target_comp_id for sid in settings.sessions()}
    for key in ("hub", "exchange"):
        if getattr(cfg, key) not in targets:
            raise config_error(name, f"broker.{key}", f"no session with TargetCompID "
                               f"{getattr(cfg, key)!r} in {cfg.fix_settings.name}")
    return cfg
