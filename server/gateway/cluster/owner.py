"""The owner of a FIX session in cluster mode, and its standby.

Every instance runs a :class:`SessionOwner` per FIX session. While another instance
holds the session's lease it waits (a standby). When the lease has been silent for
its term it takes it (:mod:`lease`), then, in this order:

1. opens the session's log and replays it into a :class:`~store.JetStreamStore`
   (sequence numbers, sent messages, reports already journaled);
2. appends its epoch marker: from now on the previous owner's appends fail (10071);
3. starts the FIX initiator with that store: the Logon continues the sequence numbers
   (no ResetSeqNum), and the hub's ResendRequest is answered from the log with
   PossDupFlag;
4. consumes the order commands of the session from the journal (any instance appends
   them) and sends each one that the log does not show as sent; one that is there was
   sent (or will be resent on the hub's request) and is not sent again.

Reports from the hub are journaled (``("I", MsgSeqNum, raw, rows)``) before the
session counts them as received; ``rows`` hold the client's event (the report as FIX JSON),
numbered per client from where the log's previous events left off, so the numbering goes on
across owners without gap or repeat. With ``postgres`` the instance also runs the
PostgreSQL projection of the journal. The owner renews its lease every
``renew_interval``; when a renewal fails, or any append fails, it closes the socket
at once and becomes a standby again.

``python -m server.gateway.cluster.owner`` runs one owner for the first initiator
session of a QuickFIX-style settings file (used by the failover tests and the demo).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from typing import Any

import msgspec

from fastfix.codec import parse
from fastfix.engine import Application, Initiator
from fastfix.settings import SessionSettings
from fastfix.tags import CL_ORD_ID, LIST_ID
from server.gateway.cluster.journal import (
    CommandLog,
    SessionLog,
    connect,
    ensure_stream,
    session_token,
)
from server.gateway.cluster.lease import Lease, open_bucket
from server.gateway.cluster.store import Bridge, JetStreamStore
from server.gateway.journal import EVENTS

__all__ = ["Command", "SessionOwner", "main"]

log = logging.getLogger("fastfix.gateway.cluster.owner")
# Seconds between the idle heartbeats of the command consumer: after two missed ones (its
# server died) the client makes the consumer again from the next position.
HEARTBEAT = 0.5


class Command(msgspec.Struct, array_like=True):
    """An order command in the journal: which session, FIX MsgType, body fields, its id
    (ClOrdID, or ListID for lists) and the client that sent it."""

    session: str
    msg_type: str
    fields: list[tuple[int, str]]
    key: str
    client_id: str = ""


_cmd_enc = msgspec.msgpack.Encoder()
_cmd_dec = msgspec.msgpack.Decoder(Command)


async def submit(commands: CommandLog, cmd: Command) -> tuple[int, bool]:
    """Append an order command (any instance); (stream sequence, was a duplicate)."""
    return await commands.append(cmd.client_id or "-", cmd.msg_type, f"{session_token(cmd.session)}:{cmd.key}",
                                 msgspec.to_builtins(cmd))


def _sent_key(raw: bytes) -> tuple[str, str] | None:
    try:
        msg = parse(raw)
    except Exception:  # noqa: BLE001 - a stored message the codec refuses names no command
        return None
    mt = msg.msg_type
    tag = LIST_ID if mt in (b"E", b"K") else CL_ORD_ID
    val = msg.get(tag)
    return None if val is None else (mt.decode(), val.decode())


class OwnerMetrics:
    """``lease_owner`` (1 while this instance owns the session), ``journal_append_seconds``
    (each acknowledged append of the session's log), ``failover_total`` (sessions taken over
    from another instance)."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        self.lease_owner = Gauge("lease_owner", "1 while this instance owns the FIX session",
                                 ("session", "instance"), registry=self.registry)
        self.journal_append_seconds = Histogram(
            "journal_append_seconds", "Appends to the session's journal, until acknowledged",
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0, 2.5),
            registry=self.registry)
        self.failover_total = Counter("failover_total", "FIX sessions taken over from another instance",
                                      ("session",), registry=self.registry)


class _App(Application):
    def __init__(self, owner: SessionOwner) -> None:
        self.owner = owner

    def on_logon(self, session_id: Any) -> None:
        self.owner.on_logon()

    def on_logout(self, session_id: Any) -> None:
        self.owner.logged_on = False

    def from_app(self, msg: Any, session_id: Any) -> None:
        self.owner.on_report(msg)


class SessionOwner:
    """One FIX session's owner or standby on this instance."""

    def __init__(self, instance: str, servers: list[str], stream: str, settings: SessionSettings,
                 term: float = 3.0, renew_interval: float = 1.0, replicas: int = 3,
                 append_timeout: float = 2.0, metrics: OwnerMetrics | None = None,
                 postgres: str | None = None) -> None:
        self.instance = instance
        self.servers = servers
        self.stream = stream
        self.settings = settings
        self.term = term
        self.renew_interval = renew_interval
        self.replicas = replicas
        self.append_timeout = append_timeout
        self.postgres = postgres  # DSN of the query projection, run by this instance when given
        self.projection: Any = None
        sids = list(settings.sessions())
        self.session = str(sids[0])
        self.logged_on = False
        self.failovers = 0
        self.nc: Any = None
        self.bridge: Bridge | None = None
        self.engine: Initiator | None = None
        self.store: JetStreamStore | None = None
        self.lease: Lease | None = None
        self._sent: set[tuple[str, str]] = set()
        self._pending: list[Command] = []
        self._last_in = 0  # MsgSeqNum of the last report journaled
        self._client_of: dict[str, str] = {}  # ClOrdID/ListID -> client, from the commands
        self._event_seq: dict[str, int] = {}  # client -> number of its last event
        self._caught_up = asyncio.Event()
        self._json: Any = None  # FIX -> JSON of the events (built at the first report)
        self._commands: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.owner_since: float | None = None
        self.metrics = metrics or OwnerMetrics()
        self.metrics.lease_owner.labels(self.session, instance).set(0)

    @property
    def is_owner(self) -> bool:
        return self.engine is not None and self.lease is not None and self.lease.held

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Stand by, own, lose, stand by again... until cancelled."""
        self.nc = await connect(self.servers, self.instance)
        js = self.nc.jetstream()
        self.prefix = await ensure_stream(js, self.stream, self.replicas)
        kv = await open_bucket(js, self.stream, self.replicas)
        if self.postgres:
            from server.gateway.cluster.projection import PgProjection

            self.projection = PgProjection(self.postgres, js, self.stream, self.prefix)
            await self.projection.start()
        self.lease = Lease(kv, session_token(self.session), self.instance, self.term, self.renew_interval)
        try:
            while True:
                try:
                    acquired = await self.lease.try_acquire()
                except Exception as exc:  # noqa: BLE001 - NATS unreachable: stay a standby, try again
                    log.warning("%s: lease check failed: %r", self.session, exc)
                    acquired = False
                if acquired:
                    await self._own()
                await asyncio.sleep(self.renew_interval)
        finally:
            await self._give_up("stopping", release=True)
            if self.projection is not None:
                await self.projection.close()
            await self.nc.close()

    async def _own(self) -> None:
        assert self.lease is not None
        log.info("%s: %s takes the session (epoch %d)", self.session, self.instance, self.lease.epoch)
        self._lost.clear()
        try:
            await self._start_session()
        except Exception as exc:  # noqa: BLE001 - fenced or no quorum: back to standby
            log.warning("%s: could not take the session: %r", self.session, exc)
            await self._give_up(f"take-over failed: {exc!r}")
            return
        self.failovers += 1
        try:
            while not self._lost.is_set():
                try:
                    await asyncio.wait_for(self._lost.wait(), self.renew_interval)
                    break
                except TimeoutError:
                    pass
                try:
                    ok = await asyncio.wait_for(self.lease.renew(), self.renew_interval)
                except Exception as exc:  # noqa: BLE001 - treated as a failed renewal
                    log.warning("%s: lease renewal failed: %r", self.session, exc)
                    ok = self.lease.held  # keep trying while the term allows
                if not ok or not self.lease.held:
                    log.warning("%s: lease lost", self.session)
                    break
        finally:
            await self._give_up("lease lost or journal failed")

    async def _start_session(self) -> None:
        assert self.lease is not None
        self.bridge = Bridge(f"nats-{self.instance}")
        bridge_nc = self.bridge.call(connect(self.servers, f"{self.instance}-log"), 10)
        slog = SessionLog(bridge_nc.jetstream(), self.stream, self.prefix, self.session, self.append_timeout)
        self._bridge_nc = bridge_nc
        records = self.bridge.call(slog.open(), 30)
        store = JetStreamStore(slog, self.bridge, self.append_timeout, on_failure=self._on_store_failure)
        store.replay(records)
        previous = store.owner
        store.on_append_seconds = self.metrics.journal_append_seconds.observe
        store.take_over(self.instance, self.lease.epoch)
        self.store = store
        self._sent = {k for _, raw in store.get_range(1, 0) if (k := _sent_key(raw)) is not None}
        self._last_in = max((s for s, _, _ in store.inbound), default=0)
        self._event_seq = {}
        for _, _, rows in store.inbound:
            for client, seq, _, _ in rows[EVENTS]:
                self._event_seq[client] = max(self._event_seq.get(client, 0), seq)
        # Every command journaled so far is read before the logon: a report the hub resends
        # at once finds its client, and what was not sent is queued for the logon.
        self._caught_up.clear()
        self._commands = asyncio.get_running_loop().create_task(self._consume_commands())
        self._commands.add_done_callback(self._commands_ended)
        await asyncio.wait_for(self._caught_up.wait(), 30)
        self.engine = Initiator(self.settings, _App(self), store_factory=lambda sid, s: store)
        await self.engine.start()
        self.owner_since = asyncio.get_running_loop().time()
        self.metrics.lease_owner.labels(self.session, self.instance).set(1)
        if previous and previous != self.instance:
            self.metrics.failover_total.labels(self.session).inc()

    def _commands_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: reading order commands failed", self.session, exc_info=task.exception())
            self._lost.set()

    def _on_store_failure(self, exc: BaseException) -> None:
        """An append failed: the engine must write nothing more (called inside the engine)."""
        log.error("%s: journal append failed, closing the session: %s", self.session, exc)
        self._lost.set()
        if self.engine is not None:
            for s in self.engine.sessions().values():
                s.disconnect("journal append failed")

    async def _give_up(self, reason: str, release: bool = False) -> None:
        self.logged_on = False
        self.metrics.lease_owner.labels(self.session, self.instance).set(0)
        if self._commands is not None:
            self._commands.cancel()
            try:
                await self._commands
            except BaseException:  # noqa: BLE001 - cancelled, or it had failed already
                pass
            self._commands = None
        engine, self.engine = self.engine, None
        if engine is not None:
            if self.store is not None and self.store.failed is None and self.lease is not None and self.lease.held:
                await engine.stop(1.0)  # still the owner: log out cleanly
            else:
                for s in engine.sessions().values():
                    s.disconnect(reason)  # not the owner any more: close, write nothing
                await engine.stop(0)
        if self.lease is not None:
            if release and self.lease.held:
                try:
                    await self.lease.release()
                except Exception:  # noqa: BLE001 - the term frees it anyway
                    pass
            self.lease.lose()
        if self.bridge is not None:
            try:
                self.bridge.call(self._bridge_nc.close(), 5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self.bridge.close()
            self.bridge = None
        self.store = None

    # ------------------------------------------------------------------ orders out
    async def _consume_commands(self) -> None:
        """Read the order commands in stream order; a consumer lost with a NATS node (or not
        created while the cluster elects a leader) is made again from the next position."""
        import nats.errors
        from nats.js import api

        js = self.nc.jetstream()
        position = 0  # stream sequence of the last command read
        while True:
            try:
                sub = await js.subscribe(
                    f"{self.prefix}.cmd.>", stream=self.stream, ordered_consumer=True,
                    idle_heartbeat=HEARTBEAT, deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                    config=api.ConsumerConfig(opt_start_seq=position + 1))
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                log.warning("%s: cannot read order commands yet: %r", self.session, exc)
                await asyncio.sleep(self.renew_interval)
                continue
            try:
                if not self._caught_up.is_set() and (await sub.consumer_info()).num_pending == 0:
                    self._caught_up.set()
                while True:
                    msg = await sub.next_msg(timeout=None)
                    position = msg.metadata.sequence.stream
                    if msg.metadata.num_pending == 0:
                        self._caught_up.set()
                    cmd = _cmd_dec.decode(msg.data)
                    if cmd.session != self.session:
                        continue
                    self._client_of[cmd.key] = cmd.client_id
                    if (cmd.msg_type, cmd.key) in self._sent:
                        continue
                    self._pending.append(cmd)
                    self._send_pending()
            except nats.errors.ConnectionClosedError:
                await asyncio.sleep(self.renew_interval)
            finally:
                try:
                    await sub.unsubscribe()
                except Exception:  # noqa: BLE001 - the connection may be gone
                    pass

    def on_logon(self) -> None:
        self.logged_on = True
        self._send_pending()

    def _send_pending(self) -> None:
        if not self.logged_on or self.engine is None or not self.lease or not self.lease.held:
            return
        s = self.engine.session(self.session)
        while self._pending:
            cmd = self._pending[0]
            if (cmd.msg_type, cmd.key) not in self._sent:
                s.send(cmd.msg_type, cmd.fields)  # journaled by the store before the write
                self._sent.add((cmd.msg_type, cmd.key))
            self._pending.pop(0)

    # ------------------------------------------------------------------ reports in
    def on_report(self, msg: Any) -> None:
        """Journal a report before the session counts it (a failure disconnects: the hub
        sends it again to the next owner)."""
        seq = msg.seq_num
        if seq and seq <= self._last_in:
            return  # journaled before (a resend after a failover)
        assert self.store is not None
        rows: list[list[Any]] = [[], [], [], [], [], []]
        key = msg.get(LIST_ID) if msg.msg_type == b"N" else msg.get(CL_ORD_ID)
        client = self._client_of.get(key.decode()) if key else None
        if client is not None:  # the client's event: its number continues across owners
            if self._json is None:
                from fastfix.jsonfix import JsonCodec

                self._json = JsonCodec(msg.begin_string.decode())
            seq_no = self._event_seq.get(client, 0) + 1
            rows[EVENTS].append((client, seq_no, time.time_ns(), self._json.fix_to_json(msg)))
        self.store.append(("I", seq, msg.raw, rows))
        self._last_in = seq
        if client is not None:
            self._event_seq[client] = seq_no


def main(argv: list[str] | None = None) -> None:
    """Run one session owner until SIGTERM/SIGINT."""
    p = argparse.ArgumentParser(prog="python -m server.gateway.cluster.owner")
    p.add_argument("--config", help="a gateway TOML with a [cluster] table (gives every other option)")
    p.add_argument("--instance")
    p.add_argument("--nats", help="comma-separated nats:// URLs")
    p.add_argument("--stream", default="FASTFIX")
    p.add_argument("--settings", help="QuickFIX-style settings (one initiator session)")
    p.add_argument("--term", type=float, default=3.0)
    p.add_argument("--renew", type=float, default=1.0)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--append-timeout", type=float, default=2.0)
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on 127.0.0.1")
    p.add_argument("--postgres", default=None, help="run the PostgreSQL projection into this DSN")
    a = p.parse_args(argv)
    if a.config:
        from server.gateway.config import load_config

        cfg = load_config(a.config)
        if cfg.cluster is None or cfg.fix_settings is None:
            p.error(f"{a.config}: needs a [cluster] table and gateway.fix_settings")
        c = cfg.cluster
        a.instance, a.nats, a.stream, a.settings = c.instance, ",".join(c.nats), c.stream, str(cfg.fix_settings)
        a.term, a.renew, a.replicas, a.append_timeout = c.lease_term, c.renew_interval, c.replicas, c.append_timeout
        a.postgres = c.postgres
    elif not (a.instance and a.nats and a.settings):
        p.error("give --config, or --instance, --nats and --settings")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    metrics = OwnerMetrics()
    if a.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(a.metrics_port, addr="127.0.0.1", registry=metrics.registry)

    async def run() -> None:
        owner = SessionOwner(a.instance, a.nats.split(","), a.stream, SessionSettings.from_file(a.settings),
                             a.term, a.renew, a.replicas, a.append_timeout, metrics=metrics,
                             postgres=a.postgres)
        task = asyncio.get_running_loop().create_task(owner.run())
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await asyncio.wait([task, asyncio.get_running_loop().create_task(stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(run())


if __name__ == "__main__":
    main()
