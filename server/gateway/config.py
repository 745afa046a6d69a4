"""Gateway configuration, read from a TOML file.

Every error names the file and the key (``gateway.toml: clients[1].brokers: ...``)
so an operator can fix it without reading code. Relative paths in the file are
resolved against the directory of the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastfix.errors import ConfigError
from server._config import read_toml

__all__ = ["BrokerConfig", "ClientConfig", "GatewayConfig", "load_config", "parse_config"]

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


@dataclass(slots=True)
class BrokerConfig:
    """A routing target: the broker's CompID on the hub (sent as DeliverToCompID 128)."""

    id: str
    name: str = ""
    session: str = ""  # name of the FIX session that reaches it; "" = the only one
    tick_size: str = ""  # "" = gateway default; "krx" or "none"


@dataclass(slots=True)
class ClientConfig:
    """One API client: its key (hashed), what it may touch and its limits."""

    id: str
    api_key_sha256: str
    name: str = ""
    accounts: list[str] = field(default_factory=list)  # empty = any account
    brokers: list[str] = field(default_factory=list)  # empty = every configured broker
    rate: float = 50.0  # requests per second (token bucket refill)
    burst: int = 100  # token bucket size
    read_rate: float = 200.0  # reads (GET) per second, a bucket of their own
    read_burst: int = 400
    max_order_qty: Decimal | None = None
    max_notional: Decimal | None = None


@dataclass(slots=True)
class GatewayConfig:
    """Everything the gateway process needs."""

    path: Path
    rest_host: str = "127.0.0.1"
    rest_port: int = 8080
    ws_host: str = "127.0.0.1"
    ws_port: int = 8081
    database: Path = Path("gateway.db")
    sync: str = "normal"  # SQLite synchronous mode: "normal" or "full"
    ports_file: Path | None = None
    link: str = "fix"  # "fix" (FIX initiator) or "loopback" (in-process simulator)
    fix_settings: Path | None = None
    max_body_bytes: int = 65536
    queue_when_down: bool = False
    tick_size: str = "none"  # "krx" checks prices on the KRX tick grid
    ws_heartbeat: float = 15.0
    ws_buffer_limit: int = 4 << 20  # bytes queued for one WS client before it is dropped
    ws_replay_batch: int = 500
    ws_auth_timeout: float = 10.0  # seconds a connection may stay unauthenticated
    ws_max_unauthenticated: int = 256  # unauthenticated connections at once (the rest: 1013)
    ws_max_per_ip: int = 1024  # connections at once from one address
    ws_max_message: int = 65536  # bytes of one message, fragments reassembled
    http_header_timeout: float = 10.0  # seconds to receive a request head (also idle keep-alive)
    http_body_timeout: float = 10.0  # seconds to receive a request body
    http_max_uri: int = 8192  # bytes of the request target (414 beyond)
    http_max_header_bytes: int = 32768  # bytes of all header lines (431 beyond)
    auth_fail_limit: int = 100  # failed authentications from one address per window, then 429
    auth_fail_window: float = 60.0  # seconds
    metrics_require_key: bool = False  # /metrics answers only with a valid API key
    reference_prices: dict[str, int] = field(default_factory=dict)  # market orders' notional (KRW)
    log_level: str = "info"
    tls_cert: Path | None = None  # PEM certificate (chain): REST over HTTPS and the stream over WSS
    tls_key: Path | None = None  # its PEM private key
    brokers: dict[str, BrokerConfig] = field(default_factory=dict)
    clients: dict[str, ClientConfig] = field(default_factory=dict)


class _Reader:
    """Typed access to one TOML table, with errors that name file and key."""

    def __init__(self, path: Path, prefix: str, table: Any) -> None:
        self.path = path
        self.prefix = prefix
        if not isinstance(table, dict):
            raise self.error("", "must be a table")
        self.table: dict[str, Any] = table
        self.used: set[str] = set()

    def error(self, key: str, reason: str) -> ConfigError:
        name = f"{self.prefix}.{key}" if self.prefix and key else (self.prefix or key)
        return ConfigError(f"{self.path}: {name}: {reason}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        self.used.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(key, f"expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.error(key, f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def require(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.table:
            self.used.add(key)
            raise self.error(key, "is required")
        return self.get(key, kind)

    def port(self, key: str, default: int) -> int:
        value = self.get(key, int, default)
        if not 0 <= value <= 65535:
            raise self.error(key, "must be a port number 0..65535 (0 = any free port)")
        return value

    def positive(self, key: str, kind: type, default: Any) -> Any:
        value = self.get(key, kind, default)
        if value <= 0:
            raise self.error(key, "must be positive")
        return value

    def decimal(self, key: str) -> Decimal | None:
        value = self.get(key, (int, float, str), None)
        if value is None:
            return None
        try:
            dec = Decimal(str(value))
        except InvalidOperation:
            raise self.error(key, f"not a number: {value!r}") from None
        if not dec.is_finite() or dec <= 0:
            raise self.error(key, "must be a positive number")
        return dec

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def path_value(self, key: str, default: str | None) -> Path | None:
        value = self.get(key, str, default)
        if value is None or value == "":
            return None
        p = Path(value)
        return p if p.is_absolute() else (self.path.parent / p)

    def str_list(self, key: str) -> list[str]:
        value = self.get(key, list, [])
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.error(f"{key}[{i}]", "expected a non-empty string")
        return list(value)

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
             list: "an array", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _check_id(reader: _Reader, key: str, value: str) -> str:
    if not value or not set(value) <= _ID_CHARS:
        raise reader.error(key, "must be non-empty, letters, digits, '_', '-' or '.'")
    return value


def _prices(reader: _Reader, key: str) -> dict[str, int]:
    table = reader.get(key, dict, {})
    for symbol, price in table.items():
        if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
            raise reader.error(f"{key}.{symbol}", "must be a positive whole price (KRW)")
    return dict(table)


def load_config(path: str | Path) -> GatewayConfig:
    """Read and check a gateway TOML file; raises :class:`ConfigError` naming file and key."""
    return parse_config(read_toml(path), Path(path))


def parse_config(data: dict[str, Any], path: Path) -> GatewayConfig:
    """Build a :class:`GatewayConfig` from already-parsed TOML ``data`` read from ``path``."""
    path = Path(path).resolve()
    top = _Reader(path, "", data)
    g = _Reader(path, "gateway", top.get("gateway", dict, {}))
    cfg = GatewayConfig(path=path)
    cfg.rest_host = g.get("rest_host", str, cfg.rest_host)
    cfg.rest_port = g.port("rest_port", cfg.rest_port)
    cfg.ws_host = g.get("ws_host", str, cfg.ws_host)
    cfg.ws_port = g.port("ws_port", cfg.ws_port)
    cfg.database = g.path_value("database", "gateway.db") or cfg.database
    cfg.sync = g.choice("sync", ("normal", "full"), cfg.sync)
    cfg.ports_file = g.path_value("ports_file", None)
    cfg.link = g.choice("link", ("fix", "loopback"), cfg.link)
    cfg.fix_settings = g.path_value("fix_settings", None)
    if cfg.link == "fix" and cfg.fix_settings is None:
        raise g.error("fix_settings", 'is required when link = "fix"')
    if cfg.fix_settings is not None and not cfg.fix_settings.is_file():
        raise g.error("fix_settings", f"file not found: {cfg.fix_settings}")
    cfg.max_body_bytes = g.positive("max_body_bytes", int, cfg.max_body_bytes)
    cfg.queue_when_down = g.get("queue_when_down", bool, cfg.queue_when_down)
    cfg.tick_size = g.choice("tick_size", ("none", "krx"), cfg.tick_size)
    cfg.ws_heartbeat = g.positive("ws_heartbeat", float, cfg.ws_heartbeat)
    cfg.ws_buffer_limit = g.positive("ws_buffer_limit", int, cfg.ws_buffer_limit)
    cfg.ws_replay_batch = g.positive("ws_replay_batch", int, cfg.ws_replay_batch)
    for key, kind in (("ws_auth_timeout", float), ("ws_max_unauthenticated", int), ("ws_max_per_ip", int),
                      ("ws_max_message", int), ("http_header_timeout", float), ("http_body_timeout", float),
                      ("http_max_uri", int), ("http_max_header_bytes", int), ("auth_fail_limit", int),
                      ("auth_fail_window", float)):
        setattr(cfg, key, g.positive(key, kind, getattr(cfg, key)))
    if cfg.http_max_uri > 65000:
        raise g.error("http_max_uri", "at most 65000 (the HTTP server refuses longer targets itself)")
    if not 1024 <= cfg.http_max_header_bytes <= 262144:
        raise g.error("http_max_header_bytes", "must be 1024..262144")
    cfg.metrics_require_key = g.get("metrics_require_key", bool, cfg.metrics_require_key)
    cfg.reference_prices = _prices(g, "reference_prices")
    cfg.log_level = g.choice("log_level", ("debug", "info", "warning", "error"), cfg.log_level)
    cfg.tls_cert = g.path_value("tls_cert", None)
    cfg.tls_key = g.path_value("tls_key", None)
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise g.error("tls_key" if cfg.tls_key is None else "tls_cert", "tls_cert and tls_key go together")
    for key in ("tls_cert", "tls_key"):
        value = getattr(cfg, key)
        if value is not None and not value.is_file():
            raise g.error(key, f"file not found: {value}")
    g.finish()

    brokers = top.get("brokers", list, [])
    if not brokers:
        top.used.add("brokers")
        raise top.error("brokers", "at least one [[brokers]] entry is required")
    for i, item in enumerate(brokers):
        b = _Reader(path, f"brokers[{i}]", item)
        bid = _check_id(b, "id", b.require("id", str))
        if bid in cfg.brokers:
            raise b.error("id", f"duplicate broker {bid!r}")
        cfg.brokers[bid] = BrokerConfig(
            id=bid,
            name=b.get("name", str, ""),
            session=b.get("session", str, ""),
            tick_size=b.choice("tick_size", ("", "none", "krx"), ""),
        )
        b.finish()

    clients = top.get("clients", list, [])
    hashes: set[str] = set()
    for i, item in enumerate(clients):
        c = _Reader(path, f"clients[{i}]", item)
        cid = _check_id(c, "id", c.require("id", str))
        if cid in cfg.clients:
            raise c.error("id", f"duplicate client {cid!r}")
        key_hash = c.require("api_key_sha256", str).lower()
        if len(key_hash) != 64 or not set(key_hash) <= set("0123456789abcdef"):
            raise c.error("api_key_sha256", "must be 64 hex digits (sha256 of the API key)")
        if key_hash in hashes:
            raise c.error("api_key_sha256", "the same API key is given to two clients")
        hashes.add(key_hash)
        allowed = c.str_list("brokers")
        for j, bid in enumerate(allowed):
            if bid not in cfg.brokers:
                raise c.error(f"brokers[{j}]", f"unknown broker {bid!r}")
        cfg.clients[cid] = ClientConfig(
            id=cid,
            api_key_sha256=key_hash,
            name=c.get("name", str, ""),
            accounts=c.str_list("accounts"),
            brokers=allowed,
            rate=c.positive("rate", float, 50.0),
            burst=c.positive("burst", int, 100),
            read_rate=c.positive("read_rate", float, 200.0),
            read_burst=c.positive("read_burst", int, 400),
            max_order_qty=c.decimal("max_order_qty"),
            max_notional=c.decimal("max_notional"),
        )
        c.finish()
    top.finish()
    return cfg
