"""The local sandbox: exchange, STP-HUB, brokers and gateway, each its own process.

``fastfix demo`` reads a sandbox TOML file (``examples/sandbox.toml``) that names
the configuration of every role. For each role it writes an effective copy under
``<var>/sandbox/`` (ports from the sandbox file, stores, logs and databases moved
under ``<var>``), starts ``fastfix <role> --config <copy>`` in its own process
group, and waits until it listens (ports file) or has logged on (status file)
before starting the next one: exchange, hub, brokers, gateway. Ports may be 0
(``--ephemeral``): each role's actual port is read from its ports file and handed
to the roles that connect to it.

SIGINT/SIGTERM stop the children by PID in reverse order (SIGTERM, then SIGKILL
after a grace period). If a child dies, the others are stopped too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec

from fastfix.errors import ConfigError
from server._config import Port, Table, convert, existing_file, read_toml
from server._service import stop_process

__all__ = ["Sandbox", "SandboxConfig", "default_config_path", "load_config", "main", "parse_config"]

STOP_GRACE = 10.0  # seconds a child gets to log out and close its stores


@dataclass(slots=True)
class SandboxConfig:
    path: Path
    var: Path
    startup_timeout: float = 60.0
    exchange: Path = Path()
    exchange_port: int = 9878
    hub: Path = Path()
    hub_port: int = 9880
    brokers: list[Path] = field(default_factory=list)
    gateway: Path = Path()
    rest_port: int = 8080
    ws_port: int = 8081
    demo: dict[str, str] = field(default_factory=dict)


def default_config_path() -> Path:
    """``examples/sandbox.toml`` of the current directory, else of the source checkout."""
    here = Path("examples/sandbox.toml")
    if here.is_file():
        return here
    return Path(__file__).resolve().parents[1] / "examples" / "sandbox.toml"


RoleFile = Annotated[Path, msgspec.Meta(description="that role's TOML file")]


class _Sandbox(Table):
    var: str = "var"  # relative to the current directory, not to the file
    startup_timeout: Annotated[float, msgspec.Meta(gt=0, description="seconds")] = 60.0


class _FixRole(Table):
    config: RoleFile
    fix_port: Port | None = None  # None: the role's documented port


class _Broker(Table):
    config: RoleFile


class _Gateway(Table):
    config: RoleFile
    rest_port: Port = 8080
    ws_port: Port = 8081


class _Demo(Table):
    """What the banner's curl example uses (checked against the role configurations)."""

    client: str = ""
    api_key: str = ""
    broker: str = ""
    account: str = ""


class _File(Table, kw_only=True):
    sandbox: _Sandbox = msgspec.field(default_factory=_Sandbox)
    exchange: _FixRole
    hub: _FixRole
    brokers: Annotated[list[_Broker], msgspec.Meta(min_length=1, description="at least one [[brokers]] entry")]
    gateway: _Gateway
    demo: _Demo | None = None


def load_config(path: str | Path, var: str | Path | None = None, ephemeral: bool = False) -> SandboxConfig:
    """Read a sandbox TOML file; ``ephemeral`` sets every port to 0 (any free port)."""
    return parse_config(read_toml(path), Path(path), var, ephemeral)


def parse_config(data: dict[str, Any], path: Path, var: str | Path | None = None,
                 ephemeral: bool = False) -> SandboxConfig:
    """Check a parsed sandbox TOML document read from ``path``, and the role files it names."""
    p = Path(path).resolve()
    name = p.name
    doc = convert(data, _File, name, p.parent)
    roles = {"exchange": doc.exchange, "hub": doc.hub, "gateway": doc.gateway,
             **{f"brokers[{i}]": b for i, b in enumerate(doc.brokers)}}
    for where, role in roles.items():
        existing_file(name, f"{where}.config", role.config)

    def port(value: int | None, default: int) -> int:
        return 0 if ephemeral else default if value is None else value

    cfg = SandboxConfig(path=p, var=Path(var if var is not None else doc.sandbox.var).resolve(),
                        startup_timeout=doc.sandbox.startup_timeout)
    cfg.exchange, cfg.exchange_port = doc.exchange.config.resolve(), port(doc.exchange.fix_port, 9878)
    cfg.hub, cfg.hub_port = doc.hub.config.resolve(), port(doc.hub.fix_port, 9880)
    cfg.brokers = [b.config.resolve() for b in doc.brokers]
    cfg.gateway = doc.gateway.config.resolve()
    cfg.rest_port, cfg.ws_port = port(doc.gateway.rest_port, 8080), port(doc.gateway.ws_port, 8081)
    cfg.demo = msgspec.structs.asdict(doc.demo) if doc.demo is not None else {}
    _check_demo(cfg)
    return cfg


def _check_demo(cfg: SandboxConfig) -> None:
    """The banner's curl example must work: key, broker and account agree across the configs."""
    from server.broker.config import load_config as broker_config
    from server.gateway.auth import hash_key
    from server.gateway.config import load_config as gateway_config
    from server.hub.config import load_config as hub_config

    d = cfg.demo
    if not d:
        return
    where = f"{cfg.path.name}: demo"
    gw = gateway_config(cfg.gateway)
    client = gw.clients.get(d.get("client", ""))
    if client is None:
        raise ConfigError(f"{where}.client: no client {d.get('client')!r} in {cfg.gateway.name}")
    if hash_key(d.get("api_key", "")) != client.api_key_sha256:
        raise ConfigError(f"{where}.api_key: is not the key of client {client.id!r} in {cfg.gateway.name}")
    broker, account = d.get("broker", ""), d.get("account", "")
    if broker not in gw.brokers or (client.brokers and broker not in client.brokers):
        raise ConfigError(f"{where}.broker: {broker!r} is not a broker of client {client.id!r}")
    if client.accounts and account not in client.accounts:
        raise ConfigError(f"{where}.account: {account!r} is not an account of client {client.id!r}")
    hub = hub_config(cfg.hub)
    if broker not in hub.parties or hub.parties[broker].role != "broker":
        raise ConfigError(f"{where}.broker: {broker!r} is not a broker of the hub ({cfg.hub.name})")
    for b in cfg.brokers:
        bc = broker_config(b)
        from fastfix.settings import SessionSettings

        comps = {sid.sender_comp_id for sid in SessionSettings.from_file(bc.fix_settings).sessions()
                 if sid.target_comp_id == bc.hub}
        if broker in comps:
            if account not in bc.accounts:
                raise ConfigError(f"{where}.account: broker {broker} ({b.name}) has no account {account!r}")
            return
    raise ConfigError(f"{where}.broker: no [[brokers]] entry runs {broker!r}")


# --------------------------------------------------------------------------- config copies


def _write_toml(path: Path, data: dict[str, Any]) -> Path:
    import tomli_w

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by fastfix demo; edit the file it was copied from instead\n"
                    + tomli_w.dumps(data))
    return path


def _absolute_paths(table: dict[str, Any], base: Path) -> None:
    """String values naming a file beside the original stay valid from the copy's directory."""
    for key, value in table.items():
        if isinstance(value, str) and value and not Path(value).is_absolute() and (base / value).exists():
            table[key] = str((base / value).resolve())


def _copy_settings(src: Path, dst: Path, overrides: dict[str, dict[str, str]] | None = None,
                   **common: str) -> Path:
    """A QuickFIX settings file with ``common`` keys set on every session and
    ``overrides`` per TargetCompID; relative paths made absolute."""
    from fastfix.settings import SessionSettings

    ss = SessionSettings.from_file(src).with_overrides(common, overrides)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("# written by fastfix demo; edit the file it was copied from instead\n" + ss.to_string())
    return dst


# --------------------------------------------------------------------------- processes


@dataclass(slots=True)
class _Child:
    role: str
    label: str
    config: Path
    output: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.output.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class Sandbox:
    """Starts the roles in order, waits for each, and stops them all by PID."""

    def __init__(self, cfg: SandboxConfig, echo: bool = True,
                 stopping: threading.Event | None = None) -> None:
        self.cfg = cfg
        self.stopping = stopping or threading.Event()
        self.echo = echo
        self.children: list[_Child] = []
        self.ports: dict[str, Any] = {}
        self.var = cfg.var
        self.run_dir = self.var / "run"
        self.gen_dir = self.var / "sandbox"
        self.log_dir = self.var / "log"

    def _say(self, text: str) -> None:
        if self.echo:
            print(text, flush=True)

    # ---- starting

    def _spawn(self, role: str, label: str, config: Path) -> _Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = _Child(role, label, config, self.log_dir / f"{label}.out")
        out = open(child.output, "ab")  # noqa: SIM115 - handed to the child
        try:
            # Own process group: a terminal's Ctrl-C reaches only us, and we stop children in order.
            child.proc = subprocess.Popen(
                [sys.executable, "-m", "fastfix.cli", role, "--config", str(config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        finally:
            out.close()
        self.children.append(child)
        self._say(f"  started {label:<14} pid {child.pid}")
        return child

    def _wait_file(self, child: _Child, path: Path, ready: Any) -> dict[str, Any]:
        """Poll ``path`` (JSON) until ``ready(data)``; fail if the child exits or time runs out."""
        deadline = time.monotonic() + self.cfg.startup_timeout
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                raise RuntimeError("interrupted during start-up")
            if not child.alive():
                raise RuntimeError(f"{child.label} exited during start-up (see {child.output}):\n{child.tail()}")
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                data = None
            if data is not None and ready(data):
                return data
            time.sleep(0.05)
        raise RuntimeError(f"{child.label} not ready after {self.cfg.startup_timeout:g} s "
                           f"(see {child.output}):\n{child.tail()}")

    def start(self) -> None:
        cfg = self.cfg
        for d in (self.run_dir, self.gen_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        for stale in self.run_dir.glob("*.json"):
            stale.unlink()

        # exchange
        data = read_toml(cfg.exchange)
        ex = data.setdefault("exchange", {})
        _absolute_paths(ex, cfg.exchange.parent)
        ports_file = self.run_dir / "exchange.ports.json"
        ex.update(fix_port=cfg.exchange_port, ports_file=str(ports_file))
        child = self._spawn("exchange", "exchange", _write_toml(self.gen_dir / "exchange.toml", data))
        self.ports["exchange"] = self._wait_file(child, ports_file, lambda d: "fix" in d)["fix"]

        # hub
        data = read_toml(cfg.hub)
        hub = data.setdefault("hub", {})
        _absolute_paths(hub, cfg.hub.parent)
        hub_ports = self.run_dir / "hub.ports.json"
        hub_cfg = _copy_settings(Path(hub["fix_settings"]), self.gen_dir / "hub.cfg",
                                 FileStorePath=str(self.var / "hub" / "store"),
                                 FileLogPath=str(self.var / "hub" / "log"))
        hub.update(fix_settings=str(hub_cfg), fix_port=cfg.hub_port, ports_file=str(hub_ports),
                   database=str(self.var / "hub" / "hub.db"))
        hub_child = self._spawn("hub", "hub", _write_toml(self.gen_dir / "hub.toml", data))
        self.ports["hub"] = self._wait_file(hub_child, hub_ports, lambda d: "fix" in d)["fix"]
        hub_name = None

        # brokers
        self.ports["brokers"] = {}
        for path in cfg.brokers:
            data = read_toml(path)
            b = data.setdefault("broker", {})
            _absolute_paths(b, path.parent)
            label = path.stem
            status = self.run_dir / f"{label}.status.json"
            bcfg = _copy_settings(Path(b["fix_settings"]), self.gen_dir / f"{label}.cfg",
                                  FileStorePath=str(self.var / label / "store"),
                                  FileLogPath=str(self.var / label / "log"))
            b.update(fix_settings=str(bcfg), database=str(self.var / label / "broker.db"),
                     status_file=str(status), hub_port=self.ports["hub"], exchange_port=self.ports["exchange"])
            child = self._spawn("broker", label, _write_toml(self.gen_dir / f"{label}.toml", data))
            st = self._wait_file(child, status, lambda d: d.get("hub") and d.get("exchange"))
            self.ports["brokers"][label] = st.get("comp_id", label)
            hub_name = b.get("hub", "HUB")

        # gateway
        data = read_toml(cfg.gateway)
        g = data.setdefault("gateway", {})
        _absolute_paths(g, cfg.gateway.parent)
        gw_ports = self.run_dir / "gateway.ports.json"
        overrides = {hub_name or "HUB": {"SocketConnectHost": "127.0.0.1",
                                         "SocketConnectPort": str(self.ports["hub"])}}
        gcfg = _copy_settings(Path(g["fix_settings"]), self.gen_dir / "gateway.cfg", overrides,
                              FileStorePath=str(self.var / "gateway" / "store"),
                              FileLogPath=str(self.var / "gateway" / "log"))
        g.update(link="fix", fix_settings=str(gcfg), rest_port=cfg.rest_port, ws_port=cfg.ws_port,
                 database=str(self.var / "gateway" / "gateway.db"), ports_file=str(gw_ports))
        (self.var / "gateway").mkdir(parents=True, exist_ok=True)
        child = self._spawn("gateway", "gateway", _write_toml(self.gen_dir / "gateway.toml", data))
        gp = self._wait_file(child, gw_ports, lambda d: "rest" in d and "ws" in d)
        self.ports["rest"], self.ports["ws"] = gp["rest"], gp["ws"]
        # Ready when every party is logged on to the hub.
        parties = set(self._hub_parties())
        self._wait_file(hub_child, hub_ports, lambda d: parties <= set(d.get("logged_on", [])))
        self.ports["pids"] = {c.label: c.pid for c in self.children}

    def _hub_parties(self) -> list[str]:
        from server.hub.config import load_config as hub_config

        return list(hub_config(self.cfg.hub).parties)

    # ---- running and stopping

    def failed(self) -> _Child | None:
        """A child that is no longer running, if any."""
        return next((c for c in self.children if not c.alive()), None)

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every child, newest first, each waited for (SIGKILL after the grace period)."""
        codes: dict[str, int | None] = {}
        for child in reversed(self.children):
            proc = child.proc
            if proc is None:
                continue
            codes[child.label] = stop_process(proc, STOP_GRACE)
            self._say(f"  stopped {child.label:<14} pid {proc.pid} (exit {proc.returncode})")
        return codes

    def banner(self) -> str:
        p = self.ports
        d = self.cfg.demo
        rest = f"http://127.0.0.1:{p['rest']}"
        lines = [
            "",
            f"fastfix sandbox is up. Data: {self.var}   Process output: {self.log_dir}",
            f"  exchange   KRX simulator, FIX 127.0.0.1:{p['exchange']}",
            f"  hub        STP-HUB, FIX 127.0.0.1:{p['hub']} (audit logs: {self.var / 'hub' / 'log'})",
        ]
        for label, comp in p["brokers"].items():
            lines.append(f"  broker     {comp} ({label}), logged on to the hub and the exchange")
        lines += [
            f"  gateway    REST {rest}   WebSocket ws://127.0.0.1:{p['ws']}/v1/stream",
            "",
            f"Blotter (browser): {rest}/      API reference: {rest}/docs",
        ]
        if d:
            cl = f"demo-{int(time.time())}"
            body = json.dumps({"ClOrdID": cl, "DeliverToCompID": d["broker"], "Account": d["account"],
                               "Symbol": "005930", "Side": "1", "OrdType": "1", "OrderQty": "10"},
                              separators=(",", ":"))
            lines += [
                f"Demo client {d['client']!r}: API key {d['api_key']} "
                f"(broker {d['broker']}, account {d['account']})",
                "",
                "Place a market buy of 10 Samsung Electronics (it fills against the simulated book):",
                f"  curl -s -X POST {rest}/v1/orders -H 'X-API-Key: {d['api_key']}' "
                f"-H 'Content-Type: application/json' \\",
                f"    -d '{body}'",
                "Then look at it:",
                f"  curl -s {rest}/v1/orders/{cl} -H 'X-API-Key: {d['api_key']}'",
                "The same with the command-line client, and the event stream:",
                f"  export FASTFIX_URL={rest} FASTFIX_WS_URL=ws://127.0.0.1:{p['ws']}/v1/stream "
                f"FASTFIX_API_KEY={d['api_key']}",
                f"  .venv/bin/fastfix-client new --broker {d['broker']} --account {d['account']} "
                "--symbol 005930 --side buy --type market --qty 10",
                "  .venv/bin/fastfix-client stream --since 0",
            ]
        lines += ["", "Ctrl-C stops everything.", ""]
        return "\n".join(lines)


def main(config: str | Path | None = None, var: str | Path | None = None, ephemeral: bool = False,
         ports_file: str | Path | None = None) -> int:
    """Run the sandbox until SIGINT/SIGTERM; returns the exit status."""
    try:
        cfg = load_config(config or default_config_path(), var, ephemeral)
    except ConfigError as exc:
        print(f"fastfix demo: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    sandbox = Sandbox(cfg, stopping=stop)
    status = 0
    try:
        print(f"fastfix demo: starting the sandbox from {cfg.path}", flush=True)
        try:
            sandbox.start()
        except (RuntimeError, ConfigError, OSError) as exc:
            print(f"fastfix demo: {exc}", file=sys.stderr)
            return 1
        if ports_file is not None:
            from server._service import write_json_atomic

            write_json_atomic(Path(ports_file), {**sandbox.ports, "pid": os.getpid()})
        print(sandbox.banner(), flush=True)
        while not stop.is_set():
            dead = sandbox.failed()
            if dead is not None:
                print(f"fastfix demo: {dead.label} exited (see {dead.output}):\n{dead.tail()}", file=sys.stderr)
                status = 1
                break
            stop.wait(0.5)
        print("fastfix demo: stopping", flush=True)
        return status
    finally:
        sandbox.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if ports_file is not None:
            Path(ports_file).unlink(missing_ok=True)
