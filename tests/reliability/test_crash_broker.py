"""kill -9 of a broker process under load, then restart: each client order reaches the
exchange once, and every client order gets its final report.

Chain: buy side (GATEWAY, fastfix initiator here, file store) -> STP-HUB (in this
process, file stores, policy ``hold``) -> broker KIWOOM (``fastfix broker``, a
subprocess with file stores and its SQLite ledger) -> KRX exchange simulator (in this
process, synthetic liquidity fills market orders). The broker is killed at random
moments while market orders stream through, and restarted. Afterwards:

* the exchange received one order per accepted client order (orders that arrive
  while the broker's exchange session is still down are refused with that reason):
  a repeat of a broker ClOrdID carries PossDupFlag/PossResend, and no client order
  reached it under two broker ClOrdIDs (which would trade it twice);
* every order the buy side stored got a final ExecutionReport, and no report reached
  the buy side twice without PossDupFlag/PossResend.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import pytest
from _rel_helpers import ServiceProcess, wait_for
from helpers import ALL_DAY, acceptor, fix_settings, initiator, session

from fastfix.codec import parse, utc_timestamp
from fastfix.engine import Application, Initiator
from fastfix.settings import SessionID, SessionSettings
from fastfix.store import FileStore
from server.exchange.config import parse_config as exchange_config
from server.exchange.service import ExchangeServer
from server.hub.config import load_config as load_hub_config
from server.hub.service import HubServer

ROUNDS = int(os.environ.get("FASTFIX_BROKER_CRASH_ROUNDS", "3"))
GW = SessionID("FIX.4.4", "GATEWAY", "HUB")
FINAL = (b"2", b"3", b"4", b"8", b"C")


class BuySide(Application):
    def __init__(self) -> None:
        self.final: set[str] = set()
        self.exec_ids: dict[str, list[bool]] = {}
        self.fresh_repeats: list[str] = []
        self.rejected: dict[str, str] = {}

    def from_app(self, msg: Any, session_id: Any) -> None:
        if msg.msg_type != b"8":
            return
        flagged = msg.get(43) == b"Y" or msg.get(97) == b"Y"
        key = (msg.get(17) or b"").decode()
        seen = self.exec_ids.setdefault(key, [])
        seen.append(flagged)
        if len(seen) > 1 and not flagged:
            self.fresh_repeats.append(key)
        if msg.get(39) in FINAL:
            self.final.add((msg.get(11) or b"").decode())
            if msg.get(39) == b"8":
                self.rejected[(msg.get(11) or b"").decode()] = (msg.get(58) or b"").decode()


def _files(tmp: Path) -> None:
    (tmp / "exchange.cfg").write_text(fix_settings(
        session("FIX.4.4", target="BROKER1"), **acceptor(), **ALL_DAY, SenderCompID="KRX",
        UseDataDictionary=True))
    (tmp / "hub.cfg").write_text(fix_settings(
        session("FIX.4.4", target="GATEWAY"), session("FIX.4.4", target="KIWOOM"), **acceptor(),
        **ALL_DAY, HeartBtInt=5, SenderCompID="HUB", FileStorePath=tmp / "hubstore", UseDataDictionary=True))
    (tmp / "hub.toml").write_text(f"""[hub]
fix_settings = "hub.cfg"
on_destination_down = "hold"
database = "{tmp / "held.db"}"

[[parties]]
comp_id = "GATEWAY"
role = "buy-side"

[[parties]]
comp_id = "KIWOOM"
role = "broker"
""")


def _broker_files(tmp: Path, hub_port: int, exchange_port: int) -> Path:
    (tmp / "kiwoom.cfg").write_text(fix_settings(
        session("FIX.4.4", "KIWOOM", "HUB"), session("FIX.4.4", "BROKER1", "KRX"), **initiator(1),
        **ALL_DAY, HeartBtInt=5, FileStorePath=tmp / "brokerstore", UseDataDictionary=True))
    path = tmp / "kiwoom.toml"
    path.write_text(f"""[broker]
fix_settings = "kiwoom.cfg"
database = "{tmp / "kiwoom.db"}"
status_file = "{tmp / "kiwoom.status.json"}"
hub_port = {hub_port}
exchange_port = {exchange_port}
log_level = "warning"

[[accounts]]
id = "ACC-1"
owners = ["GATEWAY"]
cash = 1000000000000
""")
    return path


@pytest.mark.timeout(120 + 30 * ROUNDS)
def test_broker_kill9_under_load(tmp_path: Path) -> None:
    seed = int(os.environ.get("FASTFIX_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"FASTFIX_CRASH_SEED={seed}")
    rng = random.Random(seed)
    _files(tmp_path)
    at_exchange: dict[str, list[bool]] = {}  # broker ClOrdID -> repeat flags
    exchange_fresh: list[str] = []

    async def go() -> tuple[BuySide, int]:
        exchange = ExchangeServer(exchange_config(
            {"exchange": {"fix_settings": "exchange.cfg", "clock": "always-open", "liquidity_seed": 7,
                          "fix_port": 0}}, tmp_path / "exchange.toml"))
        await exchange.start()
        real = exchange.app.from_app

        def record(msg: Any, session_id: Any) -> Any:
            if msg.msg_type == b"D":
                cl = (msg.get(11) or b"").decode()
                flagged = msg.get(43) == b"Y" or msg.get(97) == b"Y"
                seen = at_exchange.setdefault(cl, [])
                seen.append(flagged)
                if len(seen) > 1 and not flagged:
                    exchange_fresh.append(cl)
            return real(msg, session_id)

        exchange.app.from_app = record  # type: ignore[method-assign]
        hub = HubServer(load_hub_config(tmp_path / "hub.toml"))
        await hub.start()
        broker = ServiceProcess("broker", tmp_path, _broker_files(tmp_path, hub.port, exchange.port))
        app = BuySide()
        gw = Initiator(SessionSettings.from_string(fix_settings(
            session("FIX.4.4", "GATEWAY", "HUB"), **initiator(hub.port), HeartBtInt=5,
            FileStorePath=tmp_path / "gwstore", UseDataDictionary=True)), app)
        loop = asyncio.get_running_loop()
        sent = 0
        try:
            broker.start()
            await gw.start()
            await gw.wait_logged_on(GW, 15)
            await wait_for(lambda: "KIWOOM" in hub.app.logged_on, 20, "the broker at the hub")
            stop = asyncio.Event()

            async def produce() -> None:
                nonlocal sent
                for i in range(1_000_000):
                    if stop.is_set():
                        return
                    cl = f"C{i}"
                    await gw.send(GW, "D", [(128, "KIWOOM"), (1, "ACC-1"), (11, cl), (21, "1"), (55, "005930"),
                                            (54, "1"), (38, 1), (40, "1"), (58, cl), (60, utc_timestamp())])
                    sent += 1
                    await asyncio.sleep(0.004)

            producer = asyncio.create_task(produce())
            for _ in range(ROUNDS):
                await asyncio.sleep(rng.uniform(0.4, 1.2))
                await loop.run_in_executor(None, broker.kill)
                await asyncio.sleep(rng.uniform(0, 0.3))
                broker.start()
                await wait_for(lambda: "KIWOOM" in hub.app.logged_on, 20, "the broker back at the hub")
            await asyncio.sleep(0.5)
            stop.set()
            await producer
            await wait_for(lambda: len(app.final) >= sent, 45, "a final report for every order")
        finally:
            await gw.stop()
            broker.stop()
            await hub.stop()
            await exchange.stop()
        return app, sent

    app, sent = asyncio.run(asyncio.wait_for(go(), 100 + 30 * ROUNDS))
    with FileStore.for_session(tmp_path / "gwstore", GW) as st:
        orders = [parse(raw).get(11).decode() for _, raw in st.get_range(1, 0) if parse(raw).msg_type == b"D"]
    assert len(orders) == sent > ROUNDS * 20
    missing = set(orders) - app.final
    assert not missing, f"orders without a final report: {sorted(missing)[:10]}"
    assert not app.fresh_repeats, f"reports repeated without PossDup/PossResend: {app.fresh_repeats[:10]}"
    assert not exchange_fresh, f"orders repeated at the exchange without PossDup/PossResend: {exchange_fresh[:10]}"
    # one broker order per client order: a second broker ClOrdID for one client order would trade twice
    for line in (tmp_path / "broker.log").read_text(errors="replace").splitlines():
        assert "Traceback" not in line, (tmp_path / "broker.log").read_text()[-3000:]
    # Orders that arrive while the broker's exchange session is still down are refused, with that
    # reason; none is refused for anything else.
    reasons = set(app.rejected.values())
    assert reasons <= {"the broker's exchange session is not available"}, reasons
    accepted = len(orders) - len(app.rejected)
    assert len(at_exchange) == accepted, (
        f"{len(at_exchange)} distinct orders at the exchange for {accepted} accepted client orders")
    print(f"{ROUNDS} broker kills: {len(orders)} orders, {len(app.rejected)} refused while the exchange "
          f"session was down, {sum(len(v) - 1 for v in at_exchange.values())} flagged repeats at the exchange")


def test_broker_relays_resends_as_possible_repeats(tmp_path: Path) -> None:
    """After a broker restart the exchange resends reports the broker may already have relayed,
    and the hub resends orders the broker may already have taken: relayed reports carry
    PossResend=Y, and a resent known order is deduplicated, not refused as a duplicate."""
    from fastfix.codec import encode
    from server.broker.config import load_config
    from server.broker.fix_app import BrokerApplication
    from server.broker.ledger import Ledger

    cfg = load_config(_broker_files(tmp_path, 1, 2))
    sent: list[tuple[Any, str, list[tuple[int, Any]]]] = []

    def start() -> BrokerApplication:
        app = BrokerApplication(cfg, Ledger(cfg.accounts, cfg.database))
        hub, ex = SessionID("FIX.4.4", "KIWOOM", "HUB"), SessionID("FIX.4.4", "BROKER1", "KRX")
        for sid in (hub, ex):
            app.on_create(sid)
            app.on_logon(sid)
        app.send = lambda sid, mt, fields: sent.append((sid, str(mt), list(fields))) or 1  # type: ignore[method-assign]
        return app

    def msg(mt: str, fields: list[tuple[int, Any]], resent: bool) -> Any:
        hdr = [(49, "X"), (56, "Y"), (34, 9), (52, "20240102-09:00:00")]
        if resent:
            hdr += [(43, "Y"), (122, "20240102-09:00:00")]
        return parse(encode("FIX.4.4", mt, hdr + fields))

    app = start()
    order = [(115, "GATEWAY"), (1, "ACC-1"), (11, "C1"), (21, "1"), (55, "005930"), (54, "1"), (38, 1),
             (40, "1"), (60, "20240102-09:00:00")]
    app.from_app(msg("D", order, False), app.hub_sid)
    (_, mt, to_ex), = sent
    broker_cl = dict(to_ex)[11]
    assert mt == "D"
    report = [(37, "X1"), (11, broker_cl), (17, "E1"), (150, "0"), (39, "0"), (55, "005930"), (54, "1"),
              (38, 1), (151, 1), (14, 0), (6, 0)]
    sent.clear()
    app.from_app(msg("8", report, False), app.exchange_sid)
    assert (97, "Y") not in sent[-1][2]
    app.from_app(msg("8", report, True), app.exchange_sid)  # the exchange's resend after our restart
    assert (97, "Y") in sent[-1][2] and dict(sent[-1][2])[11] == "C1"
    sent.clear()
    app.from_app(msg("D", [(115, "GATEWAY")] + order[1:], True), app.hub_sid)  # the hub's resend
    assert sent == [], f"a resent order was answered again: {sent}"
    app.from_app(msg("D", order, False), app.hub_sid)  # a genuine reuse of the ClOrdID is still refused
    assert dict(sent[-1][2]).get(39) == "8"
