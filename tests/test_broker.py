"""Broker simulators between the real hub and the real exchange simulator, over loopback FIX."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _routing_peers import Parties, hub_files, order
from helpers import ALL_DAY, acceptor, fix_settings, initiator, run, session

from fastfix.codec import utc_timestamp
from server.broker.config import AccountConfig, load_config
from server.broker.ledger import BrokerOrder, Ledger
from server.broker.service import BrokerServer
from server.exchange.config import parse_config
from server.exchange.service import ExchangeServer
from server.hub.config import load_config as load_hub_config
from server.hub.service import HubServer

CASH = 10_000_000


def s(v: bytes | None) -> str | None:
    return None if v is None else v.decode()


def broker_files(tmp: Path, comp: str, exchange_comp: str, exchange_begin: str) -> Path:
    (tmp / f"{comp}.cfg").write_text(fix_settings(
        session("FIX.4.4", comp, "HUB"), session(exchange_begin, exchange_comp, "KRX"),
        **initiator(1), **ALL_DAY, HeartBtInt=30, UseDataDictionary=True, AllowUnknownMsgFields=True))
    (tmp / f"{comp}.toml").write_text(f"""
[broker]
fix_settings = "{comp}.cfg"
database = "{tmp / (comp + '.db')}"
[[accounts]]
id = "ACC-1"
owners = ["GATEWAY"]
cash = {CASH}
holdings = {{ "005930" = 100 }}
[[accounts]]
id = "ACC-AM"
cash = {CASH}
[[accounts]]
id = "ACC-ADV-A"
owners = ["GATEWAY"]
advisors = ["ADV-A"]
cash = {CASH}
holdings = {{ "005930" = 40, "000660" = 7 }}
[[accounts]]
id = "ACC-ADV-B"
owners = ["GATEWAY"]
advisors = ["ADV-B"]
cash = {CASH}
""")
    return tmp / f"{comp}.toml"


class Chain:
    """Exchange, hub, brokers KIWOOM (FIX 4.4 to the exchange) and MIRAE (FIX 4.2), buy sides."""

    def __init__(self) -> None:
        self.brokers: dict[str, BrokerServer] = {}

    async def start(self, tmp: Path) -> None:
        (tmp / "exchange.cfg").write_text(fix_settings(
            session("FIX.4.4", target="BROKER1"), session("FIX.4.2", target="BROKER2"),
            session("FIX.4.4", target="MM"),
            **acceptor(), **ALL_DAY, SenderCompID="KRX", UseDataDictionary=True))
        self.exchange = ExchangeServer(parse_config(
            {"exchange": {"fix_settings": "exchange.cfg", "clock": "always-open", "liquidity_seed": 7,
                          "fix_port": 0}}, tmp / "exchange.toml"))
        await self.exchange.start()
        self.hub = HubServer(load_hub_config(hub_files(
            tmp, {"GATEWAY": "buy-side", "AM1": "buy-side", "KIWOOM": "broker", "MIRAE": "broker"},
            allow_unknown=True)))
        await self.hub.start()
        for comp, ex_comp, begin in (("KIWOOM", "BROKER1", "FIX.4.4"), ("MIRAE", "BROKER2", "FIX.4.2")):
            cfg = load_config(broker_files(tmp, comp, ex_comp, begin))
            cfg.hub_port, cfg.exchange_port = self.hub.port, self.exchange.port
            b = self.brokers[comp] = BrokerServer(cfg)
            await b.start()
            await b.wait_ready(10)

    async def stop(self) -> None:
        for b in self.brokers.values():
            await b.stop()
        await self.hub.stop()
        await self.exchange.stop()


@contextlib.asynccontextmanager
async def chain(tmp: Path) -> AsyncIterator[tuple[Chain, Parties]]:
    c = Chain()
    try:
        await c.start(tmp)
        async with Parties(c.hub.port, ("GATEWAY", "AM1"), allow_unknown=True) as p:
            yield c, p
    finally:
        await c.stop()


async def until_done(p: Parties, comp: str, clordid: str) -> list[Any]:
    """Reports for ``clordid`` until its OrdStatus is final (bounded)."""
    out = []
    for _ in range(50):
        m = await p.recv(comp)
        assert s(m.get(11)) == clordid, f"unexpected {m.fields()}"
        out.append(m)
        if m.get(39) in (b"2", b"4", b"8", b"C"):
            return out
    raise AssertionError("no final report")


# --------------------------------------------------------------------------- fills


@pytest.mark.parametrize("broker", ["KIWOOM", "MIRAE"])
def test_market_buy_then_sell_fill_and_move_cash_and_shares(tmp_path: Path, broker: str) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (c, p):
            ledger = c.brokers[broker].ledger
            await p.send("GATEWAY", "D", [(128, broker), (50, "DESK"), (11, "gw:b1"), (1, "ACC-1"), (38, 30),
                                          (40, "1"), (54, "1"), (55, "005930"), (60, utc_timestamp())])
            reports = await until_done(p, "GATEWAY", "gw:b1")
            assert s(reports[0][150]) == "0" and s(reports[-1][39]) == "2"
            for r in reports:
                assert s(r[115]) == broker and s(r.get(57)) == "DESK" and s(r[1]) == "ACC-1"
                assert r.get(20) is None              # FIX 4.4 to the client, whatever the exchange speaks
            fills = [r for r in reports if r.get(32)]
            assert fills and all(s(r[150]) == "F" for r in fills)
            cost = sum(int(r[31]) * int(r[32]) for r in fills)
            assert sum(int(r[32]) for r in fills) == 30
            acc = ledger.accounts["ACC-1"]
            assert acc.cash == CASH - cost and acc.holdings["005930"] == 130
            # sell 50: shares leave, cash comes in
            await p.send("GATEWAY", "D", [(128, broker), (11, "gw:s1"), (1, "ACC-1"), (38, 50), (40, "1"),
                                          (54, "2"), (55, "005930"), (60, utc_timestamp())])
            reports = await until_done(p, "GATEWAY", "gw:s1")
            proceeds = sum(int(r[31]) * int(r[32]) for r in reports if r.get(32))
            assert acc.holdings["005930"] == 80 and acc.cash == CASH - cost + proceeds
            assert not any(o.open for o in ledger.orders.values())

    run(main())


# --------------------------------------------------------------------------- account checks


def test_account_checks_refuse_with_reasons(tmp_path: Path) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (c, p):
            cases = [
                ("GATEWAY", order("r1", "KIWOOM", account="NOPE"), "15", "unknown account 'NOPE'"),
                ("GATEWAY", order("r2", "KIWOOM"), "15", "Account (1) is required"),
                ("AM1", order("r3", "KIWOOM", account="ACC-1"), "15", "not open to AM1"),
                ("GATEWAY", order("r4", "KIWOOM", account="ACC-1", qty=200, price=70000), "3",
                 "insufficient cash"),
                ("GATEWAY", order("r5", "KIWOOM", account="ACC-1", qty=101, side="2"), "3",
                 "insufficient holdings"),
                ("GATEWAY", order("r6", "KIWOOM", account="ACC-1", qty=5, side="2", symbol="035420"), "3",
                 "insufficient holdings"),
                ("GATEWAY", order("r7", "KIWOOM", account="ACC-1", symbol="999999"), "1", "unknown symbol"),
            ]
            for who, fields, code, text in cases:
                await p.send(who, "D", fields)
                rej = await p.recv(who)
                cl = dict(fields)[11]
                assert rej.msg_type == b"8" and s(rej[11]) == cl
                assert s(rej[150]) == "8" and s(rej[39]) == "8", cl
                assert s(rej[103]) == code, (cl, rej.fields())
                assert text in s(rej[58]), (cl, s(rej[58]))
                assert s(rej[115]) == "KIWOOM"
            # a market buy is valued at the daily upper limit (70,000 -> 91,000): 110 x 91,000 > cash
            await p.send("GATEWAY", "D", [(128, "KIWOOM"), (11, "r8"), (1, "ACC-1"), (38, 110), (40, "1"),
                                          (54, "1"), (55, "005930"), (60, utc_timestamp())])
            rej = await p.recv("GATEWAY")
            assert s(rej[39]) == "8" and "10,010,000 KRW" in s(rej[58])
            assert c.brokers["KIWOOM"].ledger.orders == {}      # nothing went to the exchange

    run(main())


def test_open_orders_hold_cash_and_cancel_releases_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (c, p):
            ledger = c.brokers["KIWOOM"].ledger
            # 100 x 60,000 rests (well below the market) and holds 6,000,000 KRW
            await p.send("GATEWAY", "D", order("c1", "KIWOOM", account="ACC-1", qty=100, price=60000))
            new = await p.recv("GATEWAY")
            assert s(new[150]) == "0" and s(new[11]) == "c1"
            assert ledger.available_cash("ACC-1") == CASH - 6_000_000
            await p.send("GATEWAY", "D", order("c2", "KIWOOM", account="ACC-1", qty=100, price=60000))
            rej = await p.recv("GATEWAY")
            assert s(rej[39]) == "8" and "4,000,000 KRW available" in s(rej[58])
            # replace to 50 shares: 11/41 are the client's ids again
            await p.send("GATEWAY", "G", [(128, "KIWOOM"), (11, "c1-r"), (41, "c1"), (1, "ACC-1"), (38, 50),
                                          (40, "2"), (44, 60000), (54, "1"), (55, "005930"),
                                          (60, utc_timestamp())])
            rep = await p.recv("GATEWAY")
            assert s(rep[150]) == "5" and s(rep[11]) == "c1-r" and s(rep[41]) == "c1"
            assert ledger.available_cash("ACC-1") == CASH - 3_000_000
            await p.send("GATEWAY", "F", [(128, "KIWOOM"), (11, "c1-x"), (41, "c1-r"), (54, "1"),
                                          (55, "005930"), (38, 50), (60, utc_timestamp())])
            cxl = await p.recv("GATEWAY")
            assert s(cxl[150]) == "4" and s(cxl[11]) == "c1-x" and s(cxl[41]) == "c1-r"
            assert ledger.available_cash("ACC-1") == CASH
            # cancelling it again: OrderCancelReject from the broker, in client terms
            await p.send("GATEWAY", "F", [(128, "KIWOOM"), (11, "c1-y"), (41, "c1-x"), (54, "1"),
                                          (55, "005930"), (38, 50), (60, utc_timestamp())])
            rej = await p.recv("GATEWAY")
            assert rej.msg_type == b"9" and s(rej[11]) == "c1-y" and s(rej[41]) == "c1-x"
            await p.send("GATEWAY", "F", [(128, "KIWOOM"), (11, "c9"), (41, "never"), (54, "1"),
                                          (55, "005930"), (38, 50), (60, utc_timestamp())])
            rej = await p.recv("GATEWAY")
            assert rej.msg_type == b"9" and s(rej[102]) == "1" and "unknown order" in s(rej[58])

    run(main())


# --------------------------------------------------------------------------- lists


def test_lists_go_through_with_client_ids_or_are_refused_whole(tmp_path: Path) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (c, p):
            entries = [[(11, f"L1-{i}"), (67, i), (1, "ACC-1"), (55, "005930"), (54, "1"), (38, 10),
                        (40, "2"), (44, 60000)] for i in (1, 2)]
            await p.send("GATEWAY", "E", [(128, "MIRAE"), (66, "L1"), (394, "3"), (68, 2), (73, entries)])
            got: dict[bytes, list[Any]] = {}
            for _ in range(3):
                m = await p.recv("GATEWAY")
                got.setdefault(m.msg_type, []).append(m)
            assert sorted(s(m[11]) for m in got[b"8"]) == ["L1-1", "L1-2"]
            assert all(s(m[66]) == "L1" and s(m[115]) == "MIRAE" for m in got[b"8"])
            (status,) = got[b"N"]
            assert s(status[66]) == "L1" and [s(v) for v in status.get_all(11)] == ["L1-1", "L1-2"]
            await p.send("GATEWAY", "K", [(128, "MIRAE"), (66, "L1"), (60, utc_timestamp())])
            kinds = []
            for _ in range(3):
                m = await p.recv("GATEWAY")
                kinds.append((m.msg_type, s(m.get(150)), s(m.get(11))))
            assert (b"8", "4", "L1-1") in kinds and (b"8", "4", "L1-2") in kinds
            # a basket the cash cannot carry: every order refused and the list rejected
            big = [[(11, f"L2-{i}"), (67, i), (1, "ACC-1"), (55, "005930"), (54, "1"), (38, 80),
                    (40, "2"), (44, 70000)] for i in (1, 2)]
            await p.send("GATEWAY", "E", [(128, "KIWOOM"), (66, "L2"), (394, "3"), (68, 2), (73, big)])
            msgs = [await p.recv("GATEWAY") for _ in range(3)]
            assert [m.msg_type for m in msgs] == [b"8", b"8", b"N"]
            assert all(s(m[39]) == "8" and "insufficient cash" in s(m[58]) for m in msgs[:2])
            assert s(msgs[2][431]) == "7" and s(msgs[2][66]) == "L2"

    run(main())


# --------------------------------------------------------------------------- ledger


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    accounts = {"A": AccountConfig("A", cash=1_000_000, holdings={"005930": 10})}
    db = tmp_path / "broker.db"
    ledger = Ledger(accounts, db)
    assert ledger.next_id("K-") == "K-1"
    o = BrokerOrder(key="K-1", origin="GW", origin_sub="", client_clordid="c1", broker_clordid="K-1",
                    account="A", symbol="005930", side="1", qty=10, reserve_price=70000)
    ledger.add_order(o)
    ledger.add_request("K-1", o, "c1")
    ledger.fill(o, 4, 69900)
    assert ledger.available_cash("A") == 1_000_000 - 4 * 69900 - 6 * 70000
    ledger.close()
    again = Ledger(accounts, db)             # configured opening cash does not overwrite the database
    assert again.accounts["A"].cash == 1_000_000 - 4 * 69900
    assert again.accounts["A"].holdings["005930"] == 14
    assert again.find("GW", "c1") is not None and again.for_request("K-1")[1] == "c1"
    assert again.next_id("K-") == "K-2"      # ids are never reused at the exchange
    again.close()


def test_advisors_config_errors_name_the_key(tmp_path: Path) -> None:
    from fastfix.errors import ConfigError
    from server.broker.config import parse_config as parse_broker

    broker_files(tmp_path, "KIWOOM", "BROKER1", "FIX.4.4")
    base = {"broker": {"fix_settings": "KIWOOM.cfg"}}
    for bad in ("ADV-A", ["ADV-A", ""], [1]):
        with pytest.raises(ConfigError, match=r"accounts\[0\]\.advisors(\[\d\])?: "):
            parse_broker({**base, "accounts": [{"id": "A", "advisors": bad}]}, tmp_path / "KIWOOM.toml")
    cfg = parse_broker({**base, "accounts": [{"id": "A", "advisors": ["ADV-A"]}]}, tmp_path / "KIWOOM.toml")
    assert cfg.accounts["A"].advisors == ["ADV-A"]


def test_example_configurations_are_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    for name in ("broker-kiwoom.toml", "broker-mirae.toml"):
        cfg = load_config(root / "examples" / name)
        assert cfg.hub == "HUB" and "ALPHA-01" in cfg.accounts


# --------------------------------------------------------------------------- advisors


def adv_order(clordid: str, advisor: str | None, account: str, *, qty: int = 10, price: int = 60000,
              side: str = "1", symbol: str = "005930", broker: str = "KIWOOM") -> list[tuple[int, Any]]:
    """A limit order from GATEWAY on behalf of ``advisor`` (SenderSubID 50)."""
    sub = [(50, advisor)] if advisor else []
    return [*sub, *order(clordid, broker, qty=qty, price=price, side=side, symbol=symbol, account=account)]


def test_accounts_belong_to_advisors(tmp_path: Path) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (c, p):
            await p.send("GATEWAY", "D", adv_order("a1", "ADV-A", "ACC-ADV-A"))
            ack = await p.recv("GATEWAY")
            assert s(ack[150]) == "0" and s(ack[11]) == "a1"
            assert s(ack[115]) == "KIWOOM" and s(ack[57]) == "ADV-A"   # the advisor comes back
            refused = [
                ("a2", "ADV-B", "not owned by advisor 'ADV-B'"),
                ("a3", None, "must name the advisor in SenderSubID (50)"),
            ]
            for cl, adv, text in refused:
                await p.send("GATEWAY", "D", adv_order(cl, adv, "ACC-ADV-A"))
                rej = await p.recv("GATEWAY")
                assert rej.msg_type == b"8" and s(rej[11]) == cl
                assert s(rej[150]) == "8" and s(rej[39]) == "8" and s(rej[103]) == "15"
                assert text in s(rej[58]), s(rej[58])
                assert s(rej.get(57)) == adv
            # another advisor can neither cancel nor see the order
            await p.send("GATEWAY", "F", [(128, "KIWOOM"), (50, "ADV-B"), (11, "a1-x"), (41, "a1"), (54, "1"),
                                          (55, "005930"), (38, 10), (60, utc_timestamp())])
            rej = await p.recv("GATEWAY")
            assert rej.msg_type == b"9" and s(rej[102]) == "1" and "another advisor" in s(rej[58])
            await p.send("GATEWAY", "H", [(128, "KIWOOM"), (50, "ADV-B"), (11, "a1"), (54, "1"),
                                          (55, "005930")])
            st = await p.recv("GATEWAY")
            assert s(st[150]) == "I" and s(st[39]) == "8" and s(st[37]) == "NONE" and "unknown order" in s(st[58])
            assert c.brokers["KIWOOM"].ledger.find("GATEWAY", "a1").open
            # nor cancel its list
            entries = [[(11, "la-1"), (67, 1), (1, "ACC-ADV-A"), (55, "005930"), (54, "1"), (38, 1), (40, "2"),
                        (44, 60000)]]
            await p.send("GATEWAY", "E", [(128, "KIWOOM"), (50, "ADV-A"), (66, "LA"), (394, "3"), (68, 1),
                                          (73, entries)])
            assert sorted([(await p.recv("GATEWAY")).msg_type for _ in range(2)]) == [b"8", b"N"]
            await p.send("GATEWAY", "K", [(128, "KIWOOM"), (50, "ADV-B"), (66, "LA"), (60, utc_timestamp())])
            rej = await p.recv("GATEWAY")
            assert rej.msg_type == b"N" and s(rej[431]) == "7" and "another advisor" in s(rej[444])

    run(main())


def test_order_status_answers_the_current_state(tmp_path: Path) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (c, p):
            for broker in ("KIWOOM", "MIRAE"):
                cl = f"st-{broker}"
                await p.send("GATEWAY", "D", adv_order(cl, "ADV-A", "ACC-ADV-A", qty=7, broker=broker))
                ack = await p.recv("GATEWAY")
                order_id = s(ack[37])
                status = [(128, broker), (50, "ADV-A"), (11, cl), (790, "Q1"), (54, "1"), (55, "005930")]
                await p.send("GATEWAY", "H", status)
                st = await p.recv("GATEWAY")
                assert st.msg_type == b"8" and s(st[150]) == "I" and s(st[39]) == "0"
                assert s(st[11]) == cl and s(st[37]) == order_id and s(st[790]) == "Q1"
                assert s(st[151]) == "7" and s(st[14]) == "0" and s(st[44]) == "60000" and s(st[1]) == "ACC-ADV-A"
                assert s(st[57]) == "ADV-A"
                await p.send("GATEWAY", "F", [(128, broker), (50, "ADV-A"), (11, cl + "x"), (41, cl), (54, "1"),
                                              (55, "005930"), (38, 7), (60, utc_timestamp())])
                assert s((await p.recv("GATEWAY"))[150]) == "4"
                await p.send("GATEWAY", "H", status)
                st = await p.recv("GATEWAY")
                assert s(st[150]) == "I" and s(st[39]) == "4" and s(st[151]) == "0" and s(st[11]) == cl

    run(main())


def test_mass_cancel_cancels_only_the_advisors_matching_orders(tmp_path: Path) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (c, p):
            placed = [("m1", "ADV-A", "ACC-ADV-A", "005930", "1", 60000),
                      ("m2", "ADV-A", "ACC-ADV-A", "005930", "2", 80000),
                      ("m3", "ADV-A", "ACC-ADV-A", "000660", "1", 150000),
                      ("m4", "ADV-B", "ACC-ADV-B", "005930", "1", 60000)]
            for cl, adv, acct, sym, side, px in placed:
                await p.send("GATEWAY", "D", adv_order(cl, adv, acct, qty=5, price=px, side=side, symbol=sym))
                assert s((await p.recv("GATEWAY"))[150]) == "0"
            # buys of 005930 for ADV-A only
            await p.send("GATEWAY", "q", [(128, "KIWOOM"), (50, "ADV-A"), (11, "mc1"), (530, "1"),
                                          (55, "005930"), (54, "1"), (60, utc_timestamp())])
            rep = await p.recv("GATEWAY")
            assert rep.msg_type == b"r" and s(rep[11]) == "mc1" and s(rep[531]) == "1" and s(rep[533]) == "1"
            assert [s(v) for v in rep.get_all(41)] == ["m1"] and s(rep[57]) == "ADV-A"
            cxl = await p.recv("GATEWAY")
            assert s(cxl[150]) == "4" and s(cxl[11]) == "m1" and cxl.get(41) is None
            # everything else of ADV-A; ADV-B's order stays
            await p.send("GATEWAY", "q", [(128, "KIWOOM"), (50, "ADV-A"), (11, "mc2"), (530, "7"),
                                          (60, utc_timestamp())])
            rep = await p.recv("GATEWAY")
            assert s(rep[531]) == "7" and s(rep[533]) == "2"
            assert sorted(s(v) for v in rep.get_all(41)) == ["m2", "m3"]
            done = sorted([s((await p.recv("GATEWAY"))[11]) for _ in range(2)])
            assert done == ["m2", "m3"]
            ledger = c.brokers["KIWOOM"].ledger
            assert [o.client_clordid for o in ledger.orders.values() if o.open] == ["m4"]
            # refused: unsupported type, unknown security, an account of another advisor
            for cl, extra, reason, text in [
                ("mc3", [(530, "3")], "0", "not supported"),
                ("mc4", [(530, "1"), (55, "999999")], "1", "unknown security"),
                ("mc5", [(530, "7"), (1, "ACC-ADV-B")], "99", "not owned by advisor 'ADV-A'"),
            ]:
                await p.send("GATEWAY", "q", [(128, "KIWOOM"), (50, "ADV-A"), (11, cl), *extra,
                                              (60, utc_timestamp())])
                rep = await p.recv("GATEWAY")
                assert s(rep[531]) == "0" and s(rep[532]) == reason and text in s(rep[58]), rep.fields()
            assert p.pending("GATEWAY") == 0
            # MIRAE speaks FIX 4.2 to the exchange: the same request works there
            await p.send("GATEWAY", "D", adv_order("m5", "ADV-A", "ACC-ADV-A", qty=5, broker="MIRAE"))
            assert s((await p.recv("GATEWAY"))[150]) == "0"
            await p.send("GATEWAY", "q", [(128, "MIRAE"), (50, "ADV-A"), (11, "mc6"), (530, "7"),
                                          (60, utc_timestamp())])
            rep = await p.recv("GATEWAY")
            assert s(rep[533]) == "1" and s(rep[115]) == "MIRAE"
            cxl = await p.recv("GATEWAY")
            assert s(cxl[150]) == "4" and s(cxl[11]) == "m5" and cxl.get(20) is None

    run(main())


def test_positions_and_buying_power_per_advisor(tmp_path: Path) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (c, p):
            req = [(128, "KIWOOM"), (50, "ADV-A"), (710, "pos1"), (724, 0),
                   (453, [[(448, "ADV-A"), (452, 3)]]), (1, "ACC-ADV-A"), (581, 1), (715, "20240304"),
                   (60, utc_timestamp())]
            await p.send("GATEWAY", "AN", req)
            ack = await p.recv("GATEWAY")
            assert ack.msg_type == b"AO" and s(ack[710]) == "pos1" and s(ack[727]) == "2"
            assert s(ack[728]) == "0" and s(ack[729]) == "0" and s(ack[57]) == "ADV-A"
            reports = [await p.recv("GATEWAY") for _ in range(2)]
            assert [m.msg_type for m in reports] == [b"AP", b"AP"]
            held = {s(m[55]): int(m[704]) for m in reports}
            assert held == {"000660": 7, "005930": 40}
            assert all(s(m[1]) == "ACC-ADV-A" and s(m[710]) == "pos1" and s(m[448]) == "ADV-A" for m in reports)
            # ADV-B asks for ADV-A's account: refused
            await p.send("GATEWAY", "AN", [(50, "ADV-B") if f[0] == 50 else f for f in req])
            ack = await p.recv("GATEWAY")
            assert s(ack[728]) == "3" and s(ack[729]) == "2" and "not owned by advisor 'ADV-B'" in s(ack[58])
            # one instrument, and an unknown one
            await p.send("GATEWAY", "AN", [*req, (55, "000660")])
            ack = await p.recv("GATEWAY")
            assert s(ack[727]) == "1" and s((await p.recv("GATEWAY"))[704]) == "7"
            await p.send("GATEWAY", "AN", [*req, (55, "999999")])
            ack = await p.recv("GATEWAY")
            assert s(ack[728]) == "1" and s(ack[729]) == "2" and "unknown symbol" in s(ack[58])
            # buying power: cash less what open buys hold
            await p.send("GATEWAY", "D", adv_order("bp1", "ADV-A", "ACC-ADV-A", qty=10, price=60000))
            assert s((await p.recv("GATEWAY"))[150]) == "0"
            await p.send("GATEWAY", "BB", [(128, "KIWOOM"), (50, "ADV-A"), (909, "coll1"), (1, "ACC-ADV-A")])
            rep = await p.recv("GATEWAY")
            assert rep.msg_type == b"BA" and s(rep[909]) == "coll1" and s(rep[1]) == "ACC-ADV-A"
            assert int(rep[899]) == CASH - 600_000 and int(rep[901]) == 600_000 and int(rep[922]) == CASH
            assert int(rep[900]) == CASH + 40 * 70_000 + 7 * 180_000
            await p.send("GATEWAY", "BB", [(128, "KIWOOM"), (50, "ADV-B"), (909, "coll2"), (1, "ACC-ADV-A")])
            rej = await p.recv("GATEWAY")
            assert rej.msg_type == b"BG" and s(rej[945]) == "4" and s(rej[946]) == "9"

    run(main())


# --------------------------------------------------------------------------- reference data


def test_reference_data_and_session_status_reach_the_advisor_through_hub_and_broker(tmp_path: Path) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (c, p):
            await p.send("GATEWAY", "x", [(128, "KIWOOM"), (50, "ADV-A"), (320, "sl-1"), (559, 4)])
            y = await p.recv("GATEWAY")
            assert y.msg_type == b"y" and s(y[320]) == "sl-1" and s(y[393]) == "10" and s(y[57]) == "ADV-A"
            assert s(y[115]) == "KIWOOM" and len(y.get_all(55)) == 10 and "PRICE" in [s(v) for v in y.get_all(233)]
            await p.send("GATEWAY", "c", [(128, "KIWOOM"), (50, "ADV-A"), (320, "sd-1"), (321, 0), (55, "005930")])
            d = await p.recv("GATEWAY")
            assert d.msg_type == b"d" and s(d[320]) == "sd-1" and s(d[323]) == "1"
            assert (s(d[969]), s(d[1148]), s(d[1149]), s(d[662])) == ("100", "49000", "91000", "70000")
            # FIX 4.2 to the exchange: no SecurityListRequest there, said so
            await p.send("GATEWAY", "x", [(128, "MIRAE"), (50, "ADV-A"), (320, "sl-2"), (559, 4)])
            j = await p.recv("GATEWAY")
            assert j.msg_type == b"j" and s(j[380]) == "3" and s(j[379]) == "sl-2" and "FIX 4.2" in s(j[58])
            # subscribe: the current state now, every change later
            await p.send("GATEWAY", "g", [(128, "KIWOOM"), (50, "ADV-A"), (335, "ts-1"), (263, "1")])
            states = {}
            for _ in range(4):
                h = await p.recv("GATEWAY")
                assert h.msg_type == b"h" and s(h[335]) == "ts-1" and s(h[57]) == "ADV-A"
                states[s(h[336])] = (s(h[340]), s(h[625]))
            assert states["REGULAR"] == ("2", "CONTINUOUS") and states["AFTER_HOURS"][0] == "3"
            # A market maker on its own session drives a dynamic volatility interruption.
            async with Parties(c.exchange.port, ("MM",), target="KRX", allow_unknown=True) as mm:
                await mm.send("MM", "D", [(11, "mm-s"), (55, "005930"), (54, "2"), (60, utc_timestamp()),
                                          (38, 1), (40, "2"), (44, 75000)])
                await mm.send("MM", "D", [(11, "mm-b"), (55, "005930"), (54, "1"), (60, utc_timestamp()),
                                          (38, 10_000_000), (40, "2"), (44, 75000)])
                h = await p.recv("GATEWAY")
                assert h.msg_type == b"h" and s(h[625]) == "VI_DYNAMIC" and s(h[55]) == "005930"
                assert s(h[340]) == "1" and s(h[335]) == "ts-1" and s(h[325]) == "Y" and "75,000" in s(h[58])
            assert "005930" in c.exchange.market.vi

    run(main())
