"""Gateway configuration, read from a TOML file.

The file's tables are msgspec structs (see :mod:`server._config`): types,
ranges, choices and unknown keys are checked by msgspec; what involves two keys
(a client naming an unknown broker, files that must exist) is checked here.
Every error names the file and the key (``gateway.toml: clients[1].brokers[0]: ...``)
so an operator can fix it without reading code. Relative paths in the file are
resolved against the directory of the file.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from server._config import LogLevel, Port, Table, config_error, convert, existing_file, read_toml
from server.exchange.instruments import lookup

__all__ = ["BrokerConfig", "ClientConfig", "ClusterSection", "GatewayConfig", "GatewaySection",
           "load_config", "parse_config"]

Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]+$", description="letters, digits, '_', '-' or '.'")]
Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Name = Annotated[str, msgspec.Meta(min_length=1)]


class BrokerConfig(Table):
    """A routing target: the broker's CompID on the hub (sent as DeliverToCompID 128)."""

    id: Id
    name: str = ""
    session: str = ""  # name of the FIX session that reaches it; "" = the only one
    tick_size: Literal["", "none", "krx"] = ""  # "" = gateway default


class ClientConfig(Table):
    """One API client: its key (hashed), what it may touch and its limits."""

    id: Id
    api_key_sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F]{64}$",
                                                description="sha256 of the API key, 64 hex digits")]
    name: str = ""
    accounts: list[Name] = msgspec.field(default_factory=list)  # empty = any account
    brokers: list[Name] = msgspec.field(default_factory=list)  # empty = every configured broker
    rate: Annotated[float, msgspec.Meta(gt=0)] = 50.0  # requests per second (token bucket refill)
    burst: Positive = 100  # token bucket size
    read_rate: Annotated[float, msgspec.Meta(gt=0)] = 200.0  # reads (GET) per second, a bucket of their own
    read_burst: Positive = 400
    max_order_qty: Decimal | None = None
    max_notional: Decimal | None = None
    # cancel the client's open orders when its last stream connection is gone (see presence.py)
    cancel_on_disconnect: bool = False


class GatewaySection(Table):
    """The ``[gateway]`` table."""

    rest_host: str = "127.0.0.1"
    rest_port: Port = 8080
    ws_host: str = "127.0.0.1"
    ws_port: Port = 8081
    database: Path = Path("gateway.db")
    # "normal": each journal record is with the OS before the answer (survives kill -9);
    # "full": the journal and every FIX message store also wait for the disk (power loss)
    sync: Literal["normal", "full"] = "normal"
    journal: Path | None = None  # the journal's directory (default: the database path, suffix .journal)
    trace_loop_passes: bool = False  # count event-loop passes per order (keeps the loop busy: benchmarks)
    ports_file: Path | None = None
    link: Literal["fix", "loopback"] = "fix"  # FIX initiator, or the in-process simulator
    fix_settings: Path | None = None
    max_body_bytes: Positive = 65536
    queue_when_down: bool = False
    tick_size: Literal["none", "krx"] = "none"  # "krx" checks prices on the KRX tick grid
    ws_heartbeat: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    ws_buffer_limit: Positive = 4 << 20  # bytes queued for one WS client before it is dropped
    ws_replay_batch: Positive = 500
    ws_auth_timeout: PositiveFloat = 10.0  # seconds a connection may stay unauthenticated
    ws_max_unauthenticated: Positive = 256  # unauthenticated connections at once (the rest: 1013)
    ws_max_per_ip: Positive = 1024  # connections at once from one address
    ws_max_message: Positive = 65536  # bytes of one message, fragments reassembled
    http_header_timeout: PositiveFloat = 10.0  # seconds to receive a request head (also idle keep-alive)
    http_body_timeout: PositiveFloat = 10.0  # seconds to receive a request body
    # bytes of the request target (414 beyond); the HTTP server refuses longer targets itself
    http_max_uri: Annotated[int, msgspec.Meta(gt=0, le=65000)] = 8192
    http_max_header_bytes: Annotated[int, msgspec.Meta(ge=1024, le=262144)] = 32768  # 431 beyond
    auth_fail_limit: Positive = 100  # failed authentications from one address per window, then 429
    auth_fail_window: PositiveFloat = 60.0  # seconds
    metrics_require_key: bool = False  # /metrics answers only with a valid API key
    # market orders' notional (KRW) by stock code, beside the static instrument table
    reference_prices: dict[str, Annotated[int, msgspec.Meta(gt=0, description="a positive whole price (KRW)")]] = \
        msgspec.field(default_factory=dict)
    # seconds a client may be without a stream before cancel on disconnect acts
    cancel_on_disconnect_grace: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    # seconds a REST call waits for the broker's answer (order status, positions, balance)
    inquiry_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # TOML [[instruments]] answering GET /v1/instruments when the broker cannot (see inquiries.py)
    instruments_file: Path | None = None
    # ask each broker, for each client, for trading-session status changes (pushed as events)
    subscribe_session_status: bool = False
    log_level: LogLevel = "info"
    tls_cert: Path | None = None  # PEM certificate (chain): REST over HTTPS and the stream over WSS
    tls_key: Path | None = None  # its PEM private key


Seconds = Annotated[float, msgspec.Meta(gt=0)]


class ClusterSection(Table):
    """The ``[cluster]`` table: several instances on NATS JetStream and PostgreSQL (docs/cluster.md).

    Without it the gateway runs embedded: one process, the local journal and SQLite.
    """

    instance: Id  # this instance's name, unique in the cluster (lease holder, readiness)
    nats: Annotated[list[Name], msgspec.Meta(min_length=1)]  # server URLs, nats://host:port
    postgres: Name  # asyncpg DSN of the query projection, postgresql://user@host:port/db
    stream: Id = "FASTFIX"  # the journal's JetStream stream (its subjects are the stream name, lower case)
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 3
    lease_term: Seconds = 3.0  # a FIX session's lease is taken over after this long without renewal
    renew_interval: Seconds = 1.0
    append_timeout: Seconds = 2.0  # a journal append not acknowledged by then fails the owner


class GatewayConfig(GatewaySection, kw_only=True):
    """Everything the gateway process needs: the ``[gateway]`` keys, brokers and clients by id."""

    path: Path
    brokers: dict[str, BrokerConfig] = msgspec.field(default_factory=dict)
    clients: dict[str, ClientConfig] = msgspec.field(default_factory=dict)
    cluster: ClusterSection | None = None


class _File(Table, kw_only=True):
    gateway: GatewaySection = msgspec.field(default_factory=GatewaySection)
    cluster: ClusterSection | None = None
    brokers: Annotated[list[BrokerConfig], msgspec.Meta(min_length=1, description="at least one [[brokers]] entry")]
    clients: list[ClientConfig] = msgspec.field(default_factory=list)




def load_config(path: str | Path) -> GatewayConfig:
    """Read and check a gateway TOML file; raises :class:`ConfigError` naming file and key."""
    return parse_config(read_toml(path), Path(path))


def parse_config(data: dict[str, Any], path: Path) -> GatewayConfig:
    """Build a :class:`GatewayConfig` from already-parsed TOML ``data`` read from ``path``."""
    path = Path(path).resolve()
    where = str(path)
    doc = convert(data, _File, where, path.parent)
    g = doc.gateway
    if g.link == "fix" and g.fix_settings is None:
        raise config_error(where, "gateway.fix_settings", 'is required when link = "fix"')
    if (g.tls_cert is None) != (g.tls_key is None):
        raise config_error(where, "gateway.tls_key" if g.tls_key is None else "gateway.tls_cert",
                           "tls_cert and tls_key go together")
    for key in ("fix_settings", "tls_cert", "tls_key", "instruments_file"):
        existing_file(where, f"gateway.{key}", getattr(g, key))
    for code in g.reference_prices:
        if lookup(code) is None:
            raise config_error(where, f"gateway.reference_prices.{code}", "unknown instrument")
    cfg = GatewayConfig(path=path, cluster=doc.cluster, **msgspec.structs.asdict(g))
    if doc.cluster is not None:
        c = doc.cluster
        if c.renew_interval * 2 > c.lease_term:
            raise config_error(where, "cluster.renew_interval",
                               f"must be at most half of lease_term ({c.lease_term}): a lease must "
                               "survive one missed renewal")
        for i, url in enumerate(c.nats):
            if not url.startswith(("nats://", "tls://")):
                raise config_error(where, f"cluster.nats[{i}]", f"expected nats://host:port, got {url!r}")
        if not c.postgres.startswith(("postgresql://", "postgres://")):
            raise config_error(where, "cluster.postgres", "expected a DSN postgresql://user@host:port/database")

    for i, b in enumerate(doc.brokers):
        if b.id in cfg.brokers:
            raise config_error(where, f"brokers[{i}].id", f"duplicate broker {b.id!r}")
        cfg.brokers[b.id] = b

    hashes: set[str] = set()
    for i, c in enumerate(doc.clients):
        if c.id in cfg.clients:
            raise config_error(where, f"clients[{i}].id", f"duplicate client {c.id!r}")
        c.api_key_sha256 = c.api_key_sha256.lower()
        if c.api_key_sha256 in hashes:
            raise config_error(where, f"clients[{i}].api_key_sha256", "the same API key is given to two clients")
        hashes.add(c.api_key_sha256)
        for j, bid in enumerate(c.brokers):
            if bid not in cfg.brokers:
                raise config_error(where, f"clients[{i}].brokers[{j}]", f"unknown broker {bid!r}")
        for key in ("max_order_qty", "max_notional"):
            limit = getattr(c, key)
            if limit is not None and not (limit.is_finite() and limit > 0):
                raise config_error(where, f"clients[{i}].{key}", f"must be a positive number, got {limit}")
        cfg.clients[c.id] = c
    return cfg

