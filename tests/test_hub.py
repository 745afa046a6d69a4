"""STP-HUB routing over real FIX sessions on loopback: buy sides and brokers as initiators."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from _routing_peers import Parties, exec_report, hub_files, order
from helpers import run

from fastfix.codec import utc_timestamp
from fastfix.engine import RejectMessage
from fastfix.errors import ConfigError
from server.hub.config import load_config
from server.hub.fix_app import forward_fields
from server.hub.service import HubServer

BUY = ("GATEWAY", "AM1")
BROKERS = ("KIWOOM", "MIRAE", "SAMSUNG")
PARTIES = {**{b: "buy-side" for b in BUY}, **{b: "broker" for b in BROKERS},
           "SHINHAN": "broker", "HANA": "broker"}  # never connected by default


async def start_hub(tmp: Path, **kw: Any) -> HubServer:
    hub = HubServer(load_config(hub_files(tmp, kw.pop("parties", PARTIES), **kw)))
    await hub.start()
    return hub


def s(v: bytes | None) -> str | None:
    return None if v is None else v.decode()


# --------------------------------------------------------------------------- routing


def test_routing_matrix_two_buy_sides_three_brokers(tmp_path: Path) -> None:
    async def main() -> None:
        hub = await start_hub(tmp_path)
        try:
            async with Parties(hub.port, BUY + BROKERS) as p:
                for buy in BUY:
                    for broker in BROKERS:
                        cl = f"{buy}-{broker}"
                        await p.send(buy, "D", order(cl, broker, extra=[(50, "DESK7"), (129, "TRADER3")]))
                        got = await p.recv(broker)
                        assert got.msg_type == b"D"
                        assert s(got.get(49)) == "HUB" and s(got.get(56)) == broker
                        assert s(got.get(115)) == buy            # origin stamped
                        assert s(got.get(116)) == "DESK7"        # SenderSubID -> OnBehalfOfSubID
                        assert s(got.get(57)) == "TRADER3"       # DeliverToSubID -> TargetSubID
                        assert got.get(128) is None and got.get(129) is None and got.get(50) is None
                        assert s(got[11]) == cl and s(got[44]) == "70000" and s(got[55]) == "005930"
                        # the broker answers the way the exchange simulator does: DeliverTo the origin
                        await p.send(broker, "8", exec_report(buy, cl, extra=[(129, "DESK7"), (50, "ROBOT")]))
                        back = await p.recv(buy)
                        assert back.msg_type == b"8" and s(back[11]) == cl
                        assert s(back.get(49)) == "HUB" and s(back.get(56)) == buy
                        assert s(back.get(115)) == broker         # reverse routing
                        assert s(back.get(116)) == "ROBOT"
                        assert s(back.get(57)) == "DESK7"
                        assert back.get(128) is None
                for comp in BUY + BROKERS:
                    assert p.pending(comp) == 0, f"{comp} got a message meant for someone else"
            assert hub.app.forwarded == 2 * len(BUY) * len(BROKERS)
        finally:
            await hub.stop()

    run(main())


def test_location_ids_and_poss_dup_are_readdressed() -> None:
    from fastfix.codec import encode, parse

    raw = encode("FIX.4.4", "D", [(34, 9), (43, "Y"), (49, "GATEWAY"), (52, utc_timestamp()),
                                  (56, "HUB"), (122, utc_timestamp()), (128, "KIWOOM"), (142, "SEOUL"),
                                  (145, "BUSAN"), (11, "C1"), (38, 1), (40, "1"), (54, "1"), (55, "005930"),
                                  (60, utc_timestamp())])
    fields = dict(forward_fields(parse(raw), "GATEWAY"))
    assert fields[115] == "GATEWAY" and fields[144] == b"SEOUL" and fields[143] == b"BUSAN"
    assert fields[97] == "Y"                      # PossDupFlag from the sender -> PossResend
    for tag in (34, 43, 49, 52, 56, 122, 128, 142, 145, 10):
        assert tag not in fields


def test_lists_and_list_cancels_pass_through(tmp_path: Path) -> None:
    async def main() -> None:
        hub = await start_hub(tmp_path)
        try:
            async with Parties(hub.port, ("GATEWAY", "KIWOOM")) as p:
                entries = [[(11, f"L1-{i}"), (67, i), (55, "005930"), (54, "1"), (38, 5 * i), (40, "2"),
                            (44, 70000 + 100 * i)] for i in (1, 2, 3)]
                await p.send("GATEWAY", "E", [(128, "KIWOOM"), (66, "L1"), (394, "3"), (68, 3), (73, entries)])
                got = await p.recv("KIWOOM")
                assert got.msg_type == b"E" and s(got.get(115)) == "GATEWAY"
                assert [s(v) for v in got.get_all(11)] == ["L1-1", "L1-2", "L1-3"]
                assert [s(v) for v in got.get_all(44)] == ["70100", "70200", "70300"]
                assert s(got[73]) == "3"
                await p.send("GATEWAY", "K", [(128, "KIWOOM"), (66, "L1"), (60, utc_timestamp())])
                got = await p.recv("KIWOOM")
                assert got.msg_type == b"K" and s(got[66]) == "L1" and s(got.get(115)) == "GATEWAY"
                status = [[(11, f"L1-{i}"), (14, 0), (39, "0"), (151, 5 * i), (84, 0), (6, 0)] for i in (1, 2, 3)]
                await p.send("KIWOOM", "N", [(128, "GATEWAY"), (66, "L1"), (429, "2"), (82, 1), (431, "3"),
                                             (83, 1), (68, 3), (73, status)])
                back = await p.recv("GATEWAY")
                assert back.msg_type == b"N" and s(back.get(115)) == "KIWOOM"
                assert [s(v) for v in back.get_all(11)] == ["L1-1", "L1-2", "L1-3"]
        finally:
            await hub.stop()

    run(main())


def test_advisor_sub_id_travels_both_ways_on_every_venue_message(tmp_path: Path) -> None:
    """SenderSubID (or OnBehalfOfSubID) names the advisor; replies carry it back in TargetSubID."""
    now = utc_timestamp()
    requests = [
        ("q", [(11, "MC1"), (530, "7"), (60, now)]),
        ("x", [(320, "SL1"), (559, 4)]),
        ("c", [(320, "SD1"), (321, 0), (55, "005930")]),
        ("g", [(335, "TS1"), (263, "1")]),
        ("AN", [(710, "P1"), (724, 0), (453, [[(448, "ADV-A"), (452, 24)]]), (1, "ACC-1"), (581, 1),
                (715, "20240304"), (60, now)]),
        ("BB", [(909, "C1"), (1, "ACC-1")]),
    ]

    async def main() -> None:
        hub = await start_hub(tmp_path)
        try:
            async with Parties(hub.port, ("GATEWAY", "KIWOOM")) as p:
                for i, (mt, body) in enumerate(requests):
                    # Every other request names the advisor in OnBehalfOfSubID instead of SenderSubID.
                    sub = [(50, "ADV-A")] if i % 2 == 0 else [(116, "ADV-A")]
                    await p.send("GATEWAY", mt, [(128, "KIWOOM"), *sub, *body])
                    got = await p.recv("KIWOOM")
                    assert got.msg_type == mt.encode() and s(got.get(115)) == "GATEWAY"
                    assert s(got.get(116)) == "ADV-A" and got.get(50) is None
                await p.send("KIWOOM", "r", [(128, "GATEWAY"), (129, "ADV-A"), (11, "MC1"), (37, "NONE"),
                                             (530, "7"), (531, "7"), (533, 0)])
                back = await p.recv("GATEWAY")
                assert back.msg_type == b"r" and s(back.get(115)) == "KIWOOM" and s(back.get(57)) == "ADV-A"
                # Rejects name what they are about by the message's own request id.
                for mt, body in requests[1:]:
                    await p.send("GATEWAY", mt, [(128, "NOSUCH"), *body])
                    rej = await p.recv("GATEWAY")
                    assert rej.msg_type == b"j" and s(rej[372]) == mt
                    assert s(rej[379]) == body[0][1], (mt, rej.fields())
        finally:
            await hub.stop()

    run(main())


# --------------------------------------------------------------------------- rejects


def test_unknown_missing_and_unauthorized_destinations_are_rejected(tmp_path: Path) -> None:
    async def main() -> None:
        hub = await start_hub(tmp_path)
        try:
            async with Parties(hub.port, BUY + ("KIWOOM",)) as p:
                await p.send("GATEWAY", "D", order("U1", "NOSUCH"))
                rej = await p.recv("GATEWAY")
                assert rej.msg_type == b"j" and s(rej[380]) == "0" and s(rej[379]) == "U1"
                assert s(rej[372]) == "D" and "unknown DeliverToCompID 'NOSUCH'" in s(rej[58])
                await p.send("GATEWAY", "D", order("U2", None))
                rej = await p.recv("GATEWAY")
                assert s(rej[380]) == "5" and s(rej[379]) == "U2" and "128" in s(rej[58])
                await p.send("GATEWAY", "D", order("U3", "AM1"))     # buy side to buy side
                rej = await p.recv("GATEWAY")
                assert s(rej[380]) == "6" and "not authorized" in s(rej[58])
                # a list is rejected by its ListID
                await p.send("GATEWAY", "E", [(128, "NOSUCH"), (66, "LX"), (394, "3"), (68, 1),
                                              (73, [[(11, "LX-1"), (67, 1), (55, "005930"), (54, "1"),
                                                     (38, 1), (40, "1")]])])
                rej = await p.recv("GATEWAY")
                assert s(rej[372]) == "E" and s(rej[379]) == "LX"
                # a broker's report for an unknown buy side bounces back to the broker
                await p.send("KIWOOM", "8", exec_report("NOBODY", "X1"))
                rej = await p.recv("KIWOOM")
                assert s(rej[372]) == "8" and s(rej[379]) == "X1"
                assert p.pending("AM1") == 0
        finally:
            await hub.stop()

    run(main())


def test_destination_down_reject_and_hold(tmp_path: Path) -> None:
    async def main() -> None:
        hub = await start_hub(tmp_path, policies={"HANA": "hold"})
        try:
            async with Parties(hub.port, ("GATEWAY",)) as p:
                await p.send("GATEWAY", "D", order("R1", "SHINHAN"))       # reject policy
                rej = await p.recv("GATEWAY")
                assert rej.msg_type == b"j" and s(rej[380]) == "4" and s(rej[379]) == "R1"
                assert "not available" in s(rej[58])
                await p.send("GATEWAY", "D", order("H1", "HANA", extra=[(50, "DESK1")]))   # hold policy
                await p.send("GATEWAY", "D", order("H2", "HANA"))
                for _ in range(100):
                    if hub.held.count() == 2:
                        break
                    await asyncio.sleep(0.02)
                assert hub.held.count() == 2 and p.pending("GATEWAY") == 0
                async with Parties(hub.port, ("HANA",)) as hana:
                    first, second = await hana.recv("HANA"), await hana.recv("HANA")
                    assert [s(first[11]), s(second[11])] == ["H1", "H2"]      # in arrival order
                    assert s(first[115]) == "GATEWAY" and s(first[116]) == "DESK1"
                    assert hub.held.count() == 0
                    # and now live traffic flows both ways
                    await hana.send("HANA", "8", exec_report("GATEWAY", "H1"))
                    back = await p.recv("GATEWAY")
                    assert s(back[115]) == "HANA" and s(back[11]) == "H1"
        finally:
            await hub.stop()

    run(main())


def test_held_message_expires_with_a_reject(tmp_path: Path) -> None:
    async def main() -> None:
        hub = await start_hub(tmp_path, default_policy="hold", hold_timeout=30)
        try:
            async with Parties(hub.port, ("GATEWAY",)) as p:
                await p.send("GATEWAY", "D", order("T1", "HANA"))
                for _ in range(100):
                    if hub.held.count():
                        break
                    await asyncio.sleep(0.02)
                assert hub.app.expire_held() == 0                    # not yet 30 s old
                hub.app.clock = lambda: time.time() + 31
                assert hub.app.expire_held() == 1
                rej = await p.recv("GATEWAY")
                assert s(rej[380]) == "4" and s(rej[379]) == "T1" and "within 30 s" in s(rej[58])
                assert hub.held.count() == 0
        finally:
            await hub.stop()

    run(main())


def test_session_reject_from_the_broker_reaches_the_origin(tmp_path: Path) -> None:
    async def main() -> None:
        hub = await start_hub(tmp_path)
        try:
            async with Parties(hub.port, ("GATEWAY", "KIWOOM")) as p:
                def refuse(msg: Any, sid: Any) -> None:
                    if msg.get(11) == b"BAD":
                        raise RejectMessage(5, 44, "price not accepted")

                p.app.on_message = refuse
                await p.send("GATEWAY", "D", order("BAD", "KIWOOM"))
                rej = await p.recv("GATEWAY")
                assert rej.msg_type == b"j" and s(rej[379]) == "BAD" and s(rej[115]) == "KIWOOM"
                assert "rejected by KIWOOM" in s(rej[58])
        finally:
            await hub.stop()

    run(main())


# --------------------------------------------------------------------------- persistence


def test_restart_keeps_sequence_numbers_held_messages_and_audit_log(tmp_path: Path) -> None:
    async def main() -> None:
        hub = await start_hub(tmp_path, policies={"HANA": "hold"})
        port = hub.port
        async with Parties(port, ("GATEWAY", "KIWOOM")) as p:
            for i in range(3):
                await p.send("GATEWAY", "D", order(f"P{i}", "KIWOOM"))
                await p.recv("KIWOOM")
            await p.send("GATEWAY", "D", order("HELD1", "HANA"))
            for _ in range(100):
                if hub.held.count():
                    break
                await asyncio.sleep(0.02)
            gw_sid = next(sid for sid in hub.acceptor.sessions() if sid.target_comp_id == "GATEWAY")
            before = hub.acceptor.session(gw_sid)
            ports = json.loads((tmp_path / "hub.ports.json").read_text())
            assert ports["fix"] == port and set(ports["logged_on"]) == {"GATEWAY", "KIWOOM"}
            await hub.stop()  # logs out: both numbers move on by one
            seqs = (before.next_sender_seq, before.next_target_seq)
            assert seqs == (3, 7)  # Logon+Logout out; Logon, 4 orders, Logout in
            # the parties' sessions stay up and reconnect to the restarted hub on the same port
            hub = await start_hub(tmp_path, policies={"HANA": "hold"}, port=port)
            try:
                assert hub.held.count() == 1
                after = hub.acceptor.session(gw_sid)
                assert (after.next_sender_seq, after.next_target_seq) == seqs
                for sid in p.sids.values():
                    await p.engine.wait_logged_on(sid, timeout=10)
                await asyncio.sleep(0)  # let both sides finish the logon exchange
                await p.send("GATEWAY", "D", order("P9", "KIWOOM"))
                got = await p.recv("KIWOOM")
                assert s(got[11]) == "P9" and s(got[115]) == "GATEWAY"
                async with Parties(port, ("HANA",)) as hana:
                    assert s((await hana.recv("HANA"))[11]) == "HELD1"
            finally:
                await hub.stop()
        logs = list((tmp_path / "hub" / "log").glob("*GATEWAY*messages*"))
        assert logs, "no audit log for the GATEWAY session"
        text = logs[0].read_bytes()
        assert b"11=P0\x01" in text and b"11=P9\x01" in text
        assert any((tmp_path / "hub" / "store").iterdir())

    run(main())


# --------------------------------------------------------------------------- configuration


def test_config_errors_name_file_and_key(tmp_path: Path) -> None:
    path = hub_files(tmp_path, {"GATEWAY": "buy-side", "KIWOOM": "broker"})
    cfg = load_config(path)
    assert cfg.policy("KIWOOM") == "reject" and cfg.parties["GATEWAY"].role == "buy-side"
    text = path.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('role = "broker"', 'role = "dealer"'))
    with pytest.raises(ConfigError, match=r"bad.toml: parties\[1\]\.role"):
        load_config(bad)
    bad.write_text(text.replace('comp_id = "KIWOOM"', 'comp_id = "MIRAE"'))
    with pytest.raises(ConfigError, match="'MIRAE' has no session"):
        load_config(bad)
    bad.write_text(text.replace('on_destination_down = "reject"', 'on_destination_down = "drop"'))
    with pytest.raises(ConfigError, match="hub.on_destination_down"):
        load_config(bad)


def test_example_configuration_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "examples" / "hub.toml")
    assert {"GATEWAY", "KIWOOM", "MIRAE"} <= set(cfg.parties)
    assert cfg.policy("GATEWAY") == "hold" and cfg.policy("KIWOOM") == "reject"
