"""The FIX application of the exchange, driven directly with parsed messages."""

from __future__ import annotations

from decimal import Decimal

import pytest

pytest.importorskip("fastfix.session")

from fastfix.codec import encode, parse  # noqa: E402
from fastfix.session import RejectMessage, UnsupportedMessageType  # noqa: E402
from fastfix.settings import SessionID  # noqa: E402
from server.exchange.clock import AlwaysOpenClock, KrxClock, ManualTime, seoul  # noqa: E402
from server.exchange.fix_app import ExchangeApplication, _group_entries  # noqa: E402
from server.exchange.liquidity import LiquidityProvider  # noqa: E402
from server.exchange.matching import MatchingEngine  # noqa: E402

S44 = SessionID("FIX.4.4", "KRX", "BROKER")
S42 = SessionID("FIX.4.2", "KRX", "BROKER2")
SAM = "005930"


class Recorder:
    def __init__(self):
        self.sent: list[tuple[SessionID, str, dict[int, object], list]] = []

    def __call__(self, sid, msg_type, fields):
        fields = list(fields)
        self.sent.append((sid, msg_type, dict(fields), fields))

    def take(self):
        out, self.sent = self.sent, []
        return out


def msg(msg_type, *fields, begin="FIX.4.4"):
    header = [(49, "BROKER"), (56, "KRX"), (34, 2), (52, "20240304-01:00:00.000")]
    return parse(encode(begin, msg_type, header + list(fields)))


def nos(clordid, side, qty, price=None, ord_type="2", tif=None, symbol=SAM, extra=(), begin="FIX.4.4"):
    f = [(11, clordid), (1, "ACC1"), (55, symbol), (54, side), (60, "20240304-01:00:00"), (38, qty), (40, ord_type)]
    if price is not None:
        f.append((44, price))
    if tif is not None:
        f.append((59, tif))
    f.extend(extra)
    return msg("D", *f, begin=begin)


@pytest.fixture
def rig():
    rec = Recorder()
    app = ExchangeApplication(MatchingEngine(clock=AlwaysOpenClock()), sender=rec)
    app.on_logon(S44)
    app.on_logon(S42)
    return app, rec


def reports(sent):
    return [f for _, mt, f, _ in sent if mt == "8"]


def test_new_limit_order_is_acknowledged(rig):
    app, rec = rig
    app.from_app(nos("C1", "1", 10, 69_900), S44)
    [(sid, mt, f, _)] = rec.take()
    assert sid == S44 and mt == "8"
    assert f[150] == "0" and f[39] == "0" and f[11] == "C1" and f[55] == SAM and f[54] == "1"
    assert f[151] == 10 and f[14] == 0 and f[6] == Decimal(0) and f[44] == 69_900
    assert f[1] == b"ACC1" and f[37] != "NONE" and f[17] and 20 not in f


def test_fill_reports_for_both_sides(rig):
    app, rec = rig
    app.from_app(nos("S1", "2", 10, 70_000), S44)
    app.from_app(nos("B1", "1", 4, 70_100, begin="FIX.4.2"), S42)
    sent = rec.take()
    fills = [(sid, f) for sid, mt, f, _ in sent if mt == "8" and f[150] in ("F", "1", "2")]
    by = {sid: f for sid, f in fills}
    sell, buy = by[S44], by[S42]
    assert sell[150] == "F" and sell[39] == "1" and sell[31] == 70_000 and sell[32] == 4
    assert sell[14] == 4 and sell[151] == 6 and sell[6] == Decimal(70_000)
    # FIX 4.2: ExecTransType present, ExecType carries the fill status.
    assert buy[20] == "0" and buy[150] == "2" and buy[39] == "2" and buy[151] == 0
    exec_ids = [f[17] for _, _, f, _ in sent]
    assert len(set(exec_ids)) == len(exec_ids)


@pytest.mark.parametrize(
    "kwargs,code,text",
    [
        (dict(symbol="999999"), 1, "unknown symbol"),
        (dict(price=70_050), 99, "tick"),
        (dict(price=99_000), 99, "daily price limits"),
        (dict(price=70_000.5), 99, "tick"),
        (dict(ord_type="3"), 11, "OrdType"),
        (dict(tif="1"), 11, "TimeInForce"),
        (dict(ord_type="I", tif="3"), 11, "IOC/FOK"),
    ],
)
def test_rejects_carry_reason_and_text(rig, kwargs, code, text):
    app, rec = rig
    kw = dict(clordid="R1", side="1", qty=5, price=70_000)
    kw.update(kwargs)
    app.from_app(nos(**kw), S44)
    [(_, mt, f, _)] = rec.take()
    assert mt == "8" and f[150] == "8" and f[39] == "8" and f[103] == code
    assert text in f[58]


def test_fix42_reject_codes_stay_in_42_range(rig):
    app, rec = rig
    app.from_app(nos("R1", "1", 5, 70_050, begin="FIX.4.2"), S42)
    f = reports(rec.take())[0]
    assert f[103] == 0 and f[20] == "0"


def test_duplicate_clordid_rejected(rig):
    app, rec = rig
    app.from_app(nos("D1", "1", 5, 69_000), S44)
    app.from_app(nos("D1", "1", 5, 69_000), S44)
    r = reports(rec.take())
    assert r[0][150] == "0" and r[1][150] == "8" and r[1][103] == 6


def test_missing_required_tag_is_a_session_reject(rig):
    app, _ = rig
    with pytest.raises(RejectMessage) as e:
        app.from_app(msg("D", (1, "ACC"), (55, SAM), (54, "1"), (38, 1), (40, "2"), (44, 70_000)), S44)
    assert e.value.ref_tag == 11
    with pytest.raises(UnsupportedMessageType):
        app.from_app(msg("Q", (37, "x")), S44)


def test_market_order_ioc_and_never_rests(rig):
    app, rec = rig
    app.from_app(nos("S1", "2", 3, 70_000), S44)
    app.from_app(nos("B1", "1", 5, ord_type="1", extra=[(44, 1)]), S44)  # a stray price is ignored
    r = [f for f in reports(rec.take()) if f[11] == "B1"]
    assert [x[150] for x in r] == ["0", "F", "4"]
    assert r[-1][39] == "4" and r[-1][14] == 3 and r[-1][151] == 0 and "never rests" in r[-1][58]
    assert 44 not in r[0]


def test_best_limit_and_primary_best_mapping(rig):
    app, rec = rig
    app.from_app(nos("S1", "2", 3, 70_100), S44)
    app.from_app(nos("B0", "1", 3, 69_800), S44)
    app.from_app(nos("BL", "1", 5, ord_type="K"), S44)  # best limit: priced at 70,100
    app.from_app(nos("PB", "1", 2, ord_type="P", extra=[(18, "R")]), S44)  # at best bid
    app.from_app(nos("MP", "2", 1, ord_type="P", extra=[(18, "P")]), S44)  # market peg: best limit
    r = reports(rec.take())
    bl = [f for f in r if f[11] == "BL"]
    assert bl[0][44] == 70_100 and bl[0][40] == "K" and bl[1][31] == 70_100 and bl[1][151] == 2
    pb = [f for f in r if f[11] == "PB"]
    assert pb[0][150] == "0" and pb[0][44] == 70_100  # best bid is now BL's 70,100
    mp = [f for f in r if f[11] == "MP"]
    assert mp[0][44] == 70_100 and mp[1][150] == "F"


def test_cancel_and_cancel_reject(rig):
    app, rec = rig
    app.from_app(nos("C1", "1", 5, 69_900), S44)
    order_id = reports(rec.take())[0][37]
    app.from_app(msg("F", (41, "C1"), (11, "X1"), (55, SAM), (54, "1"), (60, "20240304-01:00:00"), (38, 5)), S44)
    [f] = reports(rec.take())
    assert f[150] == "4" and f[39] == "4" and f[11] == "X1" and f[41] == "C1" and f[37] == order_id
    # Again: the order is done now.
    app.from_app(msg("F", (41, "C1"), (11, "X2"), (55, SAM), (54, "1"), (60, "20240304-01:00:00"), (38, 5)), S44)
    [(_, mt, f, _)] = rec.take()
    assert mt == "9" and f[102] == 0 and f[434] == "1" and f[39] == "4" and f[41] == "C1"
    app.from_app(msg("F", (41, "NOPE"), (11, "X3"), (55, SAM), (54, "1"), (60, "20240304-01:00:00"), (38, 5)), S44)
    [(_, mt, f, _)] = rec.take()
    assert mt == "9" and f[102] == 1 and f[37] == "NONE" and f[39] == "8"


def test_replace_then_cancel_by_new_clordid(rig):
    app, rec = rig
    app.from_app(nos("C1", "2", 5, 70_200), S44)
    rec.take()
    app.from_app(msg("G", (41, "C1"), (11, "C2"), (55, SAM), (54, "2"), (60, "20240304-01:00:00"),
                     (38, 8), (40, "2"), (44, 70_300)), S44)
    [f] = reports(rec.take())
    assert f[150] == "5" and f[39] == "0" and f[11] == "C2" and f[41] == "C1"
    assert f[38] == 8 and f[44] == 70_300 and f[151] == 8
    # Bad new price: OrderCancelReject for a replace, order unchanged.
    app.from_app(msg("G", (41, "C2"), (11, "C3"), (55, SAM), (54, "2"), (60, "20240304-01:00:00"),
                     (38, 8), (40, "2"), (44, 70_350)), S44)
    [(_, mt, f, _)] = rec.take()
    assert mt == "9" and f[434] == "2" and "tick" in f[58] and f[39] == "0"
    app.from_app(msg("F", (41, "C2"), (11, "C4"), (55, SAM), (54, "2"), (60, "20240304-01:00:00"), (38, 8)), S44)
    assert reports(rec.take())[0][150] == "4"


def test_replace_rejects_unknown_duplicate_and_done_orders(rig):
    app, rec = rig

    def replace(orig, new, price=70_300):
        app.from_app(msg("G", (41, orig), (11, new), (55, SAM), (54, "2"), (60, "20240304-01:00:00"),
                         (38, 5), (40, "2"), (44, price)), S44)
        [(_, mt, f, _)] = rec.take()
        assert mt == "9" and f[434] == "2" and f[11] == new and f[41] == orig
        return f

    f = replace("NOPE", "R1")
    assert f[102] == 1 and f[37] == "NONE" and f[39] == "8"
    app.from_app(nos("D1", "2", 5, 70_200), S44)
    app.from_app(nos("D2", "2", 5, 70_200), S44)
    rec.take()
    f = replace("D1", "D2")  # the new ClOrdID belongs to another order
    assert f[102] == 99 and f[39] == "0"
    app.from_app(msg("F", (41, "D1"), (11, "D3"), (55, SAM), (54, "2"), (60, "20240304-01:00:00"), (38, 5)), S44)
    assert reports(rec.take())[0][150] == "4"
    f = replace("D3", "D4")
    assert f[102] == 0 and f[58] == "too late to replace: order is done" and f[39] == "4"


def test_replace_that_crosses_reports_replace_then_fill(rig):
    app, rec = rig
    app.from_app(nos("S1", "2", 2, 70_000), S44)
    app.from_app(nos("B1", "1", 5, 69_900), S44)
    rec.take()
    app.from_app(msg("G", (41, "B1"), (11, "B2"), (55, SAM), (54, "1"), (60, "20240304-01:00:00"),
                     (38, 5), (40, "2"), (44, 70_000)), S44)
    r = [f for f in reports(rec.take()) if f[11] == "B2"]
    assert [f[150] for f in r] == ["5", "F"] and r[1][14] == 2 and r[1][151] == 3


def test_new_order_list_and_list_cancel(rig):
    app, rec = rig
    app.from_app(nos("S1", "2", 2, 70_000), S44)
    rec.take()
    group = [
        [(11, "L1-1"), (67, 1), (55, SAM), (54, "1"), (38, 2), (40, "2"), (44, 70_000)],
        [(11, "L1-2"), (67, 2), (55, "000660"), (54, "1"), (38, 3), (40, "2"), (44, 179_000)],
        [(11, "L1-3"), (67, 3), (55, "999999"), (54, "1"), (38, 1), (40, "2"), (44, 1_000)],
    ]
    app.from_app(msg("E", (66, "L1"), (394, "3"), (68, 3), (73, group)), S44)
    sent = rec.take()
    ers = [f for _, mt, f, _ in sent if mt == "8"]
    assert all(f[66] == "L1" for f in ers if f[11].startswith("L1"))
    (_, mt, ls, raw) = sent[-1]
    assert mt == "N" and ls[66] == "L1" and ls[431] == "3" and ls[68] == 3 and ls[83] == 1
    entries = {e[0][1]: dict(e) for e in ls[73]}
    assert entries["L1-1"][39] == "2" and entries["L1-1"][14] == 2
    assert entries["L1-2"][39] == "0" and entries["L1-2"][151] == 3
    assert entries["L1-3"][39] == "8" and entries["L1-3"][103] == 1 and entries["L1-3"][84] == 1
    # The encoded ListStatus round-trips through the codec.
    parse(encode("FIX.4.4", "N", raw))

    app.from_app(msg("K", (66, "L1"), (60, "20240304-01:00:00")), S44)
    sent = rec.take()
    cancels = [f for _, mt, f, _ in sent if mt == "8"]
    assert [(f[11], f[150]) for f in cancels] == [("L1-2", "4")]
    (_, mt, ls, _) = sent[-1]
    assert mt == "N" and ls[431] == "6" and ls[83] == 2
    app.from_app(msg("K", (66, "NOPE"), (60, "20240304-01:00:00")), S44)
    (_, mt, ls, _) = rec.take()[-1]
    assert mt == "N" and ls[431] == "7" and ls[444] == "unknown ListID"


def test_group_entries_split():
    fields = [(66, b"L"), (73, b"2"), (11, b"a"), (67, b"1"), (11, b"b"), (67, b"2"), (10, b"000")]
    assert _group_entries(fields, 73, 11) == [[(11, b"a"), (67, b"1")], [(11, b"b"), (67, b"2")]]


def test_liquidity_fills_market_orders_and_is_never_reported(rig):
    rec = Recorder()
    market = MatchingEngine(clock=AlwaysOpenClock())
    app = ExchangeApplication(market, LiquidityProvider(market, seed=3, levels=5), sender=rec)
    app.on_logon(S44)
    app.poll()
    assert rec.take() == []  # liquidity is posted silently
    app.from_app(nos("M1", "1", 50, ord_type="1"), S44)
    r = reports(rec.take())
    assert {f[11] for f in r} == {"M1"} and r[-1][39] == "2" and r[-1][14] == 50
    # A sweep of every offer: the ladder is posted again around the last trade.
    book = market.books[SAM]
    depth = sum(q for _, q in book.asks.depth(None))
    app.from_app(nos("M2", "1", depth, ord_type="1"), S44)
    assert reports(rec.take())[-1][14] == depth
    last = book.last_price
    assert [p for p, _ in book.asks.depth(None)] == [last + 100 * k for k in range(1, 6)]
    assert [p for p, _ in book.bids.depth(5)] == [last - 100 * k for k in range(1, 6)]


def test_auction_and_conversion_reports_through_poll():
    rec = Recorder()
    t = ManualTime(seoul(2024, 3, 4, 8, 40))
    app = ExchangeApplication(MatchingEngine(clock=KrxClock(t)), sender=rec)
    app.on_logon(S44)
    app.from_app(nos("B1", "1", 5, 70_000), S44)
    app.from_app(nos("S1", "2", 5, 70_000), S44)
    assert [f[150] for f in reports(rec.take())] == ["0", "0"]
    t.set(seoul(2024, 3, 4, 9, 0, 1))
    app.poll()
    assert sorted((f[11], f[150], f[31]) for f in reports(rec.take())) == [
        ("B1", "F", 70_000), ("S1", "F", 70_000),
    ]
    app.from_app(nos("CL", "1", 5, 69_000, ord_type="I"), S44)
    rec.take()
    t.set(seoul(2024, 3, 4, 15, 20))
    app.poll()
    [f] = reports(rec.take())
    assert f[150] == "D" and f[11] == "CL" and f[378] == 8
    t.set(seoul(2024, 3, 4, 15, 30))
    app.poll()
    [f] = reports(rec.take())
    assert f[150] == "4" and f[39] == "4"  # no sellers: the converted order does not survive
    app.from_app(nos("LATE", "1", 5, 69_000), S44)
    [f] = reports(rec.take())
    assert f[150] == "8" and f[103] == 2


def test_reports_are_routed_back_to_the_origin(rig):
    app, rec = rig
    app.from_app(nos("H1", "1", 5, 69_000, extra=[(115, "FINTECH1"), (116, "desk")]), S44)
    [f] = reports(rec.take())
    assert f[128] == b"FINTECH1" and f[129] == b"desk" and 145 not in f
    app.from_app(msg("F", (115, "FINTECH1"), (41, "NOPE"), (11, "X1"), (55, SAM), (54, "1"),
                     (60, "20240304-01:00:00"), (38, 5)), S44)
    [(_, mt, f, _)] = rec.take()
    assert mt == "9" and f[128] == b"FINTECH1"
    group = [[(11, "G1"), (67, 1), (55, SAM), (54, "1"), (38, 1), (40, "2"), (44, 69_000)]]
    app.from_app(msg("E", (115, "FINTECH2"), (66, "LG"), (394, "3"), (68, 1), (73, group)), S44)
    sent = rec.take()
    assert [f[128] for _, _, f, _ in sent] == [b"FINTECH2", b"FINTECH2"]


def test_order_status_request(rig):
    app, rec = rig
    app.from_app(nos("Q1", "2", 5, 70_000), S44)
    app.from_app(nos("Q2", "1", 2, 70_000), S44)
    rec.take()
    app.from_app(msg("H", (11, "Q1"), (55, SAM), (54, "2")), S44)
    [f] = reports(rec.take())
    assert f[150] == "I" and f[39] == "1" and f[14] == 2 and f[151] == 3 and f[11] == "Q1"
    app.from_app(msg("H", (11, "Q2"), (55, SAM), (54, "1"), begin="FIX.4.2"), S42)
    [f] = reports(rec.take())
    assert f[39] == "8" and f[37] == "NONE"  # Q2 belongs to the other session
    app.from_app(nos("Q3", "1", 1, 69_000, begin="FIX.4.2"), S42)
    rec.take()
    app.from_app(msg("H", (11, "Q3"), (55, SAM), (54, "1"), begin="FIX.4.2"), S42)
    [f] = reports(rec.take())
    assert f[20] == "3" and f[150] == "0" and f[39] == "0" and f[151] == 1
