"""The exchange's FIX answers for reference data, session status, mass cancel and closing-price orders."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytest.importorskip("fastfix.session")

from fastfix.codec import encode, parse  # noqa: E402
from fastfix.settings import SessionID  # noqa: E402
from server.exchange.clock import AlwaysOpenClock, KrxClock, ManualTime, seoul  # noqa: E402
from server.exchange.fix_app import ExchangeApplication  # noqa: E402
from server.exchange.matching import MatchingEngine, VolatilityRules  # noqa: E402

S44 = SessionID("FIX.4.4", "KRX", "BROKER")
S42 = SessionID("FIX.4.2", "KRX", "BROKER2")
SAM = "005930"
NOW = "20240304-01:00:00"


class Recorder:
    def __init__(self):
        self.sent = []

    def __call__(self, sid, msg_type, fields):
        self.sent.append((sid, msg_type, list(fields)))

    def take(self):
        out, self.sent = self.sent, []
        return out


def msg(msg_type, *fields, begin="FIX.4.4"):
    header = [(49, "BROKER"), (56, "KRX"), (34, 2), (52, "20240304-01:00:00.000")]
    return parse(encode(begin, msg_type, header + list(fields)))


def order(clordid, side="1", qty=5, price=60_000, symbol=SAM, extra=()):
    return msg("D", (11, clordid), (1, "ACC1"), (55, symbol), (54, side), (60, NOW), (38, qty), (40, "2"),
               (44, price), *extra)


def rig(clock=None, vi=False):
    rec = Recorder()
    engine = MatchingEngine(clock=clock or AlwaysOpenClock(), volatility=VolatilityRules() if vi else None, seed=3)
    app = ExchangeApplication(engine, sender=rec)
    app.on_logon(S44)
    app.on_logon(S42)
    return app, rec


def by_type(sent, mt):
    return [dict(f) for _, t, f in sent if t == mt]


def test_security_list_of_all_instruments_and_of_one():
    app, rec = rig()
    app.from_app(msg("x", (320, "SL1"), (559, 4)), S44)
    [(sid, mt, fields)] = rec.take()
    f = dict(fields)
    assert sid == S44 and mt == "y" and f[320] == b"SL1" and f[560] == 0 and f[393] == 10 and f[893] == "Y"
    entries = dict(fields)[146]
    assert len(entries) == 10
    sam = dict(next(e for e in entries if dict(e)[55] == SAM))
    assert sam[48] == "KR7005930003" and sam[22] == "4" and sam[107] == "Samsung Electronics"
    assert sam[762] == "KOSPI" and sam[207] == "XKRX" and sam[15] == "KRW" and sam[561] == 1
    assert [dict(s) for s in sam[232]] == [{233: "MININCR", 234: 100}, {233: "PRICE", 234: "49000-91000"}]
    assert sam[662] == 70_000 and sam[336] == "REGULAR" and sam[625] == "CONTINUOUS"
    # The whole message validates against FIX 4.4 as the broker's session will check it.
    from fastfix.dictionary import DataDictionary

    raw = encode("FIX.4.4", "y", [(49, "KRX"), (56, "BROKER"), (34, 3), (52, "20240304-01:00:00.000"), *fields])
    assert DataDictionary.load("FIX.4.4").validate(parse(raw)) is None
    app.from_app(msg("x", (320, "SL2"), (559, 0), (55, "A207940")), S44)
    f = dict(rec.take()[0][2])
    assert f[393] == 1 and dict(f[146][0])[55] == "207940" and dict(dict(f[146][0])[232][0])[234] == 1000
    app.from_app(msg("x", (320, "SL3"), (559, 0), (55, "999999")), S44)
    f = dict(rec.take()[0][2])
    assert f[560] == 2 and f[393] == 0 and 146 not in f and "999999" in f[58]
    app.from_app(msg("x", (320, "SL4"), (559, 2)), S44)
    f = dict(rec.take()[0][2])
    assert f[560] == 1 and "not supported" in f[58]


def test_security_definition_with_tick_limits_and_base():
    app, rec = rig()
    app.from_app(order("S1", side="2", qty=1, price=70_000), S44)
    app.from_app(order("B1", qty=1, price=70_000), S44)
    rec.take()
    app.from_app(msg("c", (320, "SD1"), (321, 0), (48, "KR7005930003"), (22, "4")), S44)
    [(_, mt, fields)] = rec.take()
    f = dict(fields)
    assert mt == "d" and f[320] == b"SD1" and f[323] == 1 and f[55] == SAM and f[107] == "Samsung Electronics"
    assert f[969] == 100 and f[1148] == 49_000 and f[1149] == 91_000 and f[662] == 70_000
    assert f[336] == "REGULAR" and f[625] == "CONTINUOUS"
    app.from_app(msg("c", (320, "SD2"), (321, 0), (55, "NOPE")), S44)
    f = dict(rec.take()[0][2])
    assert f[323] == 6 and "NOPE" in f[58] and 55 not in f


def test_session_status_on_request_and_on_every_change():
    t = ManualTime(seoul(2024, 3, 4, 8, 35))
    app, rec = rig(KrxClock(t))
    app.from_app(msg("g", (335, "TS1"), (263, "1")), S44)
    got = {f[336]: f for f in by_type(rec.take(), "h")}
    assert set(got) == {"REGULAR", "PRE_CLOSE_PRICE", "POST_CLOSE_PRICE", "AFTER_HOURS"}
    assert (got["REGULAR"][340], got["REGULAR"][625]) == (4, "OPENING_CALL")
    assert (got["PRE_CLOSE_PRICE"][340], got["PRE_CLOSE_PRICE"][625]) == (2, "CLOSE_PRICE")
    assert got["AFTER_HOURS"][340] == 3 and all(f[335] == b"TS1" and f[325] == "N" for f in got.values())
    app.from_app(msg("g", (335, "TS2"), (263, "0"), (336, "NIGHT")), S44)
    [f] = by_type(rec.take(), "h")
    assert f[340] == 6 and f[567] == 1 and "NIGHT" in f[58]
    # 08:40 and 09:00: each change once to every logged-on session, unsolicited.
    t.set(seoul(2024, 3, 4, 8, 40))
    app.poll()
    sent = rec.take()
    assert sorted((sid.target_comp_id, dict(f)[336], dict(f)[340]) for sid, mt, f in sent if mt == "h") == [
        ("BROKER", "PRE_CLOSE_PRICE", 3), ("BROKER2", "PRE_CLOSE_PRICE", 3)]
    t.set(seoul(2024, 3, 4, 9, 0))
    app.poll()
    [f, _] = by_type(rec.take(), "h")
    assert (f[336], f[340], f[625], f[325]) == ("REGULAR", 2, "CONTINUOUS", "Y") and 335 not in f


def test_volatility_interruption_is_announced_with_its_symbol():
    t = ManualTime(seoul(2024, 3, 4, 10, 0))
    app, rec = rig(KrxClock(t), vi=True)
    app.from_app(order("S1", side="2", qty=5, price=77_500), S44)
    app.from_app(order("B1", qty=5, price=77_500), S42)
    sent = rec.take()
    status = [(sid, dict(f)) for sid, mt, f in sent if mt == "h"]
    assert {sid for sid, _ in status} == {S44, S42}
    f = status[0][1]
    assert (f[336], f[625], f[340], f[55], f[325]) == ("REGULAR", "VI_STATIC", 1, SAM, "Y")
    assert "77,500" in f[58] and "10%" in f[58]
    app.from_app(msg("c", (320, "SD1"), (321, 0), (55, SAM)), S44)
    assert dict(rec.take()[0][2])[625] == "VI_STATIC"
    t.advance(seconds=151)
    app.poll()
    sent = rec.take()
    fills = [dict(f) for _, mt, f in sent if mt == "8"]
    assert {f[11] for f in fills} == {"S1", "B1"} and all(f[31] == 77_500 for f in fills)
    f = by_type(sent, "h")[0]
    assert (f[625], f[340], f[55]) == ("CONTINUOUS", 2, SAM) and "77,500" in f[58]


def test_mass_cancel_by_security_side_and_all_for_the_sender_only():
    app, rec = rig()
    for cl, side, sym in (("A1", "1", SAM), ("A2", "2", SAM), ("A3", "1", "000660")):
        price = 60_000 if sym == SAM and side == "1" else (80_000 if sym == SAM else 150_000)
        app.from_app(order(cl, side=side, price=price, symbol=sym), S44)
    app.from_app(order("O1"), S42)
    rec.take()
    app.from_app(msg("q", (11, "MC1"), (530, "1"), (55, SAM), (54, "1"), (60, NOW)), S44)
    sent = rec.take()
    assert [mt for _, mt, _ in sent] == ["r", "8"]
    r = dict(sent[0][2])
    assert (r[11], r[531], r[533]) == ("MC1", "1", 1) and [dict(e)[41] for e in r[534]] == ["A1"]
    er = dict(sent[1][2])
    assert er[150] == "4" and er[11] == "A1" and sent[1][0] == S44
    app.from_app(msg("q", (11, "MC2"), (530, "7"), (60, NOW)), S44)
    sent = rec.take()
    r = dict(sent[0][2])
    assert r[531] == "7" and r[533] == 2 and sorted(dict(f)[11] for _, mt, f in sent if mt == "8") == ["A2", "A3"]
    app.from_app(msg("q", (11, "MC3"), (530, "7"), (60, NOW)), S44)
    r = dict(rec.take()[0][2])
    assert r[533] == 0 and 534 not in r                         # nothing left; S42's order untouched
    app.from_app(msg("q", (11, "MC4"), (530, "1"), (55, "999999"), (60, NOW)), S44)
    r = dict(rec.take()[0][2])
    assert (r[531], r[532]) == ("0", "1")
    app.from_app(msg("q", (11, "MC5"), (530, "5"), (60, NOW)), S44)
    r = dict(rec.take()[0][2])
    assert (r[531], r[532]) == ("0", "0")


def test_mass_cancel_through_a_hub_reaches_only_that_advisors_orders():
    app, rec = rig()
    app.from_app(order("H1", extra=[(115, "GATEWAY"), (116, "ADV-A")]), S44)
    app.from_app(order("H2", extra=[(115, "GATEWAY"), (116, "ADV-B")]), S44)
    rec.take()
    app.from_app(msg("q", (115, "GATEWAY"), (116, "ADV-A"), (11, "MC1"), (530, "7"), (60, NOW)), S44)
    sent = rec.take()
    r = dict(sent[0][2])
    assert r[533] == 1 and r[128] == b"GATEWAY" and r[129] == b"ADV-A"
    assert [dict(f)[11] for _, mt, f in sent if mt == "8"] == ["H1"]


def test_closing_price_orders_use_time_in_force_at_the_close():
    t = ManualTime(seoul(2024, 3, 4, 8, 31))
    app, rec = rig(KrxClock(t))
    app.from_app(msg("D", (11, "C1"), (55, SAM), (54, "1"), (60, NOW), (38, 5), (40, "1"), (59, "7")), S44)
    [f] = by_type(rec.take(), "8")
    assert f[150] == "0" and f[59] == "7" and f[40] == "2" and f[44] == 70_000
    app.from_app(msg("D", (11, "C2"), (55, SAM), (54, "2"), (60, NOW), (38, 2), (40, "2"), (44, 70_000),
                     (59, "7")), S44)
    fills = [f for f in by_type(rec.take(), "8") if f[150] == "F"]
    assert len(fills) == 2 and all(f[31] == 70_000 and f[32] == 2 for f in fills)
    app.from_app(msg("D", (11, "C3"), (55, SAM), (54, "2"), (60, NOW), (38, 2), (40, "K"), (59, "7")), S44)
    [f] = by_type(rec.take(), "8")
    assert f[150] == "8" and "At the Close" in f[58]
    t.set(seoul(2024, 3, 4, 8, 41))
    app.poll()
    expired = [f for f in by_type(rec.take(), "8") if f[11] == "C1"]
    assert expired[0][150] == "4" and expired[0][14] == 2 and "closing-price session ended" in expired[0][58]
    t.set(seoul(2024, 3, 4, 8, 41) + timedelta(minutes=1))
    app.from_app(msg("D", (11, "C4"), (55, SAM), (54, "1"), (60, NOW), (38, 5), (40, "1"), (59, "7")), S44)
    [f] = by_type(rec.take(), "8")
    assert f[150] == "8" and "08:30-08:40" in f[58]
