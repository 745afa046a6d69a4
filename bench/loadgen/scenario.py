"""Scenario files (TOML): offered load, request mix, symbols, brokers, clients."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.krx import tick_size as krx_tick  # the KRX tick table

__all__ = ["OPS", "ClientSpec", "Scenario", "SymbolSpec", "krx_tick", "load_scenario"]

# Request kinds a scenario can mix, in the order of the [mix] table.
OPS = ("limit", "market", "cancel", "replace", "list", "query")

@dataclass
class SymbolSpec:
    code: str
    price: int  # reference price (KRW); limit prices are a few ticks around it
    weight: float = 1.0


@dataclass
class ClientSpec:
    key: str
    id: str = ""
    weight: float = 1.0


@dataclass
class Scenario:
    """What a run sends. Rates are requests per second over all processes."""

    name: str
    description: str = ""
    rate: float = 1000.0  # 0: closed loop, each connection sends as soon as it has its answer
    duration: float = 10.0  # measured seconds
    warmup: float = 2.0  # seconds sent before measuring (not recorded)
    connections: int = 32  # keep-alive HTTP connections per process
    processes: int = 1
    mix: dict[str, float] = field(default_factory=lambda: {"limit": 1.0})
    symbols: list[SymbolSpec] = field(default_factory=lambda: [SymbolSpec("005930", 70000)])
    brokers: list[str] = field(default_factory=list)  # DeliverToCompID values; empty: the client's only one
    clients: list[ClientSpec] = field(default_factory=list)  # empty: the target's clients
    list_size: int = 3
    fill_ratio: float = 0.0  # share of limit orders sent with Text "fill" (the hub double fills them)
    qty: tuple[int, int] = (1, 100)
    max_ticks: int = 10  # limit prices within this many ticks of the reference price
    account: str | None = None
    seed: int = 7

    def weights(self) -> list[float]:
        return [float(self.mix.get(op, 0.0)) for op in OPS]


def _problem(path: Path, msg: str) -> ValueError:
    return ValueError(f"{path}: {msg}")


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file; unknown keys and bad values raise ``ValueError`` naming the file."""
    p = Path(path)
    try:
        data: dict[str, Any] = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _problem(p, str(exc)) from None
    known = {"name", "description", "load", "mix", "orders", "symbols", "clients"}
    unknown = set(data) - known
    if unknown:
        raise _problem(p, f"unknown keys {sorted(unknown)}")
    sc = Scenario(name=str(data.get("name", p.stem)), description=str(data.get("description", "")))
    load = data.get("load", {})
    for key in ("rate", "duration", "warmup"):
        if key in load:
            setattr(sc, key, float(load[key]))
    for key in ("connections", "processes"):
        if key in load:
            setattr(sc, key, int(load[key]))
    if set(load) - {"rate", "duration", "warmup", "connections", "processes"}:
        raise _problem(p, f"[load]: unknown keys {sorted(set(load) - {'rate', 'duration', 'warmup', 'connections', 'processes'})}")
    mix = data.get("mix", {"limit": 1})
    if set(mix) - set(OPS):
        raise _problem(p, f"[mix]: unknown request kinds {sorted(set(mix) - set(OPS))}; known: {', '.join(OPS)}")
    if any(float(v) < 0 for v in mix.values()) or sum(float(v) for v in mix.values()) <= 0:
        raise _problem(p, "[mix]: weights must be >= 0 with a positive sum")
    sc.mix = {k: float(v) for k, v in mix.items()}
    orders = data.get("orders", {})
    allowed = {"list_size", "fill_ratio", "qty", "max_ticks", "brokers", "account", "seed"}
    if set(orders) - allowed:
        raise _problem(p, f"[orders]: unknown keys {sorted(set(orders) - allowed)}")
    sc.list_size = int(orders.get("list_size", sc.list_size))
    sc.fill_ratio = float(orders.get("fill_ratio", sc.fill_ratio))
    q = orders.get("qty", list(sc.qty))
    if not (isinstance(q, list) and len(q) == 2 and 1 <= int(q[0]) <= int(q[1])):
        raise _problem(p, "[orders] qty: [min, max] with 1 <= min <= max")
    sc.qty = (int(q[0]), int(q[1]))
    sc.max_ticks = int(orders.get("max_ticks", sc.max_ticks))
    sc.brokers = [str(b) for b in orders.get("brokers", [])]
    sc.account = orders.get("account")
    sc.seed = int(orders.get("seed", sc.seed))
    if not 0 <= sc.fill_ratio <= 1:
        raise _problem(p, "[orders] fill_ratio: between 0 and 1")
    if "symbols" in data:
        sc.symbols = [SymbolSpec(str(s["code"]), int(s["price"]), float(s.get("weight", 1)))
                      for s in data["symbols"]]
        if not sc.symbols:
            raise _problem(p, "[[symbols]]: at least one")
    sc.clients = [ClientSpec(str(c["key"]), str(c.get("id", "")), float(c.get("weight", 1)))
                  for c in data.get("clients", [])]
    if sc.rate < 0 or sc.duration <= 0 or sc.warmup < 0 or sc.connections < 1 or sc.processes < 1:
        raise _problem(p, "[load]: rate >= 0, duration > 0, warmup >= 0, connections >= 1, processes >= 1")
    return sc
