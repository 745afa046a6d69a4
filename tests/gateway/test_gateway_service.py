"""The order service in one process: the gateway's stages over the loopback broker.

Each test drives the request API (what app.py calls) and feeds reports as the hub would
send them, then checks the order state, the journal-backed reads and the client events.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from _gateway_harness import gateway_toml
from helpers import run

from fastfix.codec import encode, parse
from server.gateway.config import ClientConfig, parse_config
from server.gateway.errors import ApiError
from server.gateway.loopback import LoopbackLink, body_fields
from server.gateway.mapping import JsonMapper
from server.gateway.metrics import Metrics
from server.gateway.service import Gateway


class Harness:
    """A gateway over a :class:`LoopbackLink`, with what it sent and what it published."""

    def __init__(self, gw: Gateway, link: LoopbackLink) -> None:
        self.gw = gw
        self.link = link
        self.alpha: ClientConfig = gw.cfg.clients["alpha"]
        self.events: list[dict[str, Any]] = []
        self.sent: list[tuple[str, dict[int, str]]] = []
        outer = self

        class _Sub:
            def deliver(self, events: list[tuple[int, bytes]]) -> None:
                outer.events.extend(json.loads(d) for _, d in events)

        gw.subscribe("alpha", _Sub())
        send = link.send_bodies

        def spy(session: str, messages: Any) -> None:
            for mt, body, header in messages:
                fields = {t: (v.decode() if isinstance(v, bytes) else str(v))
                          for t, v in list(header) + body_fields(link.begin_string, mt, body)}
                self.sent.append((mt, fields))
            send(session, messages)

        link.send_bodies = spy  # type: ignore[method-assign]

    def order(self, cl: str) -> dict[str, Any]:
        o = self.gw.get_order("alpha", cl)
        assert o is not None, cl
        return {"state": o.state, "pending": o.pending, "Text": o.Text, "OrderID": o.OrderID}

    def inject(self, msg_type: str, fields: list[tuple[int, Any]]) -> None:
        """A message from the hub to the gateway."""
        header = [(49, "HUB"), (56, "GATEWAY"), (34, 1), (52, "20260102-09:00:00")]
        self.gw.on_message(parse(encode("FIX.4.4", msg_type, header + fields)), "LOOPBACK")

    async def until(self, cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.005)

    def last_sent(self, msg_type: str) -> dict[int, str]:
        return [f for mt, f in self.sent if mt == msg_type][-1]


async def _harness(tmp_path: Path, test: Callable[[Harness], Awaitable[None]], extra: str = "") -> None:
    cfg = parse_config(tomllib.loads(gateway_toml(extra=extra)), tmp_path / "gw.toml")
    link = LoopbackLink()
    gw = Gateway(cfg, link, JsonMapper(link.begin_string, max_bytes=cfg.max_body_bytes), Metrics())
    gw.recover()
    await link.start()
    try:
        await test(Harness(gw, link))
    finally:
        await link.stop()
        await gw.close()


def service_test(test: Callable[[Harness], Awaitable[None]], extra: str = "",
                 files: dict[str, str] | None = None) -> Callable[[Path], None]:
    """A test of the harness, run on its own event loop (bounded in time); ``extra`` adds
    ``[gateway]`` keys, ``files`` are written beside the configuration first."""

    @functools.wraps(test)
    def wrapper(tmp_path: Path) -> None:
        for name, text in (files or {}).items():
            (tmp_path / name).write_text(text)
        run(_harness(tmp_path, test, extra), 60)

    wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("tmp_path", inspect.Parameter.POSITIONAL_OR_KEYWORD)])
    return wrapper


def body(**kw: Any) -> bytes:
    base = {"DeliverToCompID": "BRKA", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "10",
            "Price": "70000"}
    base.update(kw)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


async def resting(h: Harness, cl: str, **kw: Any) -> None:
    await h.gw.new_order(h.alpha, body(ClOrdID=cl, **kw))
    await h.until(lambda: h.order(cl)["state"] == "New", f"{cl} New")


# --------------------------------------------------------------------------- replace

@service_test
async def test_replace_repeats_exec_inst_and_time_in_force(h: Harness) -> None:
    """A primary-best order (OrdType P, ExecInst P) replaced with a new quantity only keeps
    its ExecInst and TimeInForce on the wire (left out, FIX reads them as removed)."""
    await resting(h, "pb1", OrdType="P", ExecInst="P", TimeInForce="0", Price=None)
    await h.gw.replace_order(h.alpha, "pb1", json.dumps({"ClOrdID": "pb2", "OrderQty": "5"}).encode())
    g = h.last_sent("G")
    assert (g[40], g.get(18), g.get(59), g[38], g[41]) == ("P", "P", "0", "5", "alpha:pb1")
    await h.until(lambda: h.order("pb2")["state"] == "New", "pb2 New")
    detail = json.loads(await h.gw.order_detail(h.alpha, "pb2"))
    assert (detail["ExecInst"], detail["TimeInForce"]) == ("P", "0")
    # and again from the replacement: what it carries goes on
    await h.gw.replace_order(h.alpha, "pb2", json.dumps({"ClOrdID": "pb3", "OrderQty": "4"}).encode())
    assert (h.last_sent("G").get(18), h.last_sent("G").get(59)) == ("P", "0")


@service_test
async def test_replace_cannot_change_symbol_or_side(h: Harness) -> None:
    await resting(h, "ss1")
    with pytest.raises(ApiError) as err:
        await h.gw.replace_order(h.alpha, "ss1", json.dumps(
            {"ClOrdID": "ss2", "Symbol": "000660", "Side": "2", "OrderQty": "5"}).encode())
    assert err.value.status == 422
    assert {p.field for p in err.value.errors} == {"Symbol", "Side"}
    assert [mt for mt, _ in h.sent].count("G") == 0
    # the same values as the order's are no change
    await h.gw.replace_order(h.alpha, "ss1", json.dumps(
        {"ClOrdID": "ss3", "Symbol": "005930", "Side": "1", "OrderQty": "5"}).encode())


@service_test
async def test_cancel_while_a_replace_is_pending(h: Harness) -> None:
    await resting(h, "cr1")
    h.link.silent.add("G")  # the replace stays pending
    await h.gw.replace_order(h.alpha, "cr1", json.dumps({"ClOrdID": "cr2", "OrderQty": "5"}).encode())
    assert h.order("cr1")["pending"] == "replace"
    answer = json.loads(await h.gw.cancel_order(h.alpha, "cr1", b""))
    assert answer["pending"] == "cancel"
    f = h.last_sent("F")
    assert f[41] == "alpha:cr1"
    await h.until(lambda: h.order("cr1")["state"] == "Canceled", "cr1 Canceled")


# --------------------------------------------------------------------------- list cancel

async def _live_list(h: Harness, list_id: str) -> None:
    entries = [{"ClOrdID": f"{list_id}-{i}", "Symbol": "005930", "Side": "1", "OrdType": "2",
                "OrderQty": "10", "Price": "70000"} for i in (1, 2)]
    await h.gw.new_list(h.alpha, json.dumps({"ListID": list_id, "DeliverToCompID": "BRKA",
                                             "NoOrders": entries}).encode())
    await h.until(lambda: all(h.order(f"{list_id}-{i}")["state"] == "New" for i in (1, 2)), "list live")


@service_test
async def test_refused_list_cancel_leaves_the_list_and_may_be_tried_again(h: Harness) -> None:
    await _live_list(h, "L1")
    h.link.silent.add("K")
    before = json.loads(h.gw.list_detail(h.alpha, "L1"))
    await h.gw.cancel_list(h.alpha, "L1", json.dumps({"Text": "end of strategy",
                                                      "TransactTime": "20260102-09:00:00.000"}).encode())
    k = h.last_sent("K")
    assert (k[66], k[58], k[60]) == ("alpha:L1", "end of strategy", "20260102-09:00:00.000")
    n_events = len(h.events)
    # the broker refuses it: its exchange session is down
    h.inject("N", [(115, "BRKA"), (66, "alpha:L1"), (429, "2"), (82, "0"), (431, "7"), (83, "1"), (68, "2"),
                   (444, "exchange session down"), (73, [])])
    after = json.loads(h.gw.list_detail(h.alpha, "L1"))
    assert after.get("ListOrderStatus") == before.get("ListOrderStatus") != "7"
    assert "pending" not in after and after["Text"] == "exchange session down"
    assert [o["state"] for o in after["orders"]] == ["New", "New"]
    await h.until(lambda: len(h.events) > n_events, "the refusal pushed")
    assert h.events[-1]["message"]["Body"]["ListOrderStatus"] == "7"
    # another try goes out
    h.link.silent.discard("K")
    await h.gw.cancel_list(h.alpha, "L1", b"")
    assert [mt for mt, _ in h.sent].count("K") == 2
    await h.until(lambda: all(h.order(f"L1-{i}")["state"] == "Canceled" for i in (1, 2)), "cancelled")


@service_test
async def test_list_cancel_body_is_checked(h: Harness) -> None:
    await _live_list(h, "L2")
    with pytest.raises(ApiError) as err:
        await h.gw.cancel_list(h.alpha, "L2", json.dumps({"ListID": "other", "Text": 5}).encode())
    assert err.value.status == 422
    assert {p.field for p in err.value.errors} >= {"ListID"}


# --------------------------------------------------------------------------- rejects

@service_test
async def test_session_reject_from_the_hub_rejects_the_order(h: Harness) -> None:
    h.link.silent.add("D")
    await h.gw.new_order(h.alpha, body(ClOrdID="sr1"))
    seq = h.link.last_seq_num
    assert h.order("sr1")["state"] == "PendingNew"
    h.inject("3", [(45, seq), (372, "D"), (373, "5"), (58, "Value is incorrect (out of range) for this tag")])
    o = h.order("sr1")
    assert o["state"] == "Rejected" and "out of range" in (o["Text"] or "")
    await h.until(lambda: bool(h.events), "event")
    ev = h.events[-1]
    assert ev["message"]["Header"]["MsgType"] == "3" and ev["message"]["Body"]["RefSeqNum"] == str(seq)
    assert ev["about"] == {"ClOrdID": "sr1", "MsgType": "D"}


@service_test
async def test_session_reject_of_a_list_rejects_it_and_its_orders(h: Harness) -> None:
    h.link.silent.add("E")
    entries = [{"ClOrdID": f"sl-{i}", "Symbol": "005930", "Side": "1", "OrdType": "2", "OrderQty": "1",
                "Price": "70000"} for i in (1, 2)]
    await h.gw.new_list(h.alpha, json.dumps({"ListID": "SL", "DeliverToCompID": "BRKA",
                                             "NoOrders": entries}).encode())
    h.inject("3", [(45, h.link.last_seq_num), (372, "E"), (373, "1"), (58, "Required tag missing")])
    view = json.loads(h.gw.list_detail(h.alpha, "SL"))
    assert view["ListOrderStatus"] == "7" and [o["state"] for o in view["orders"]] == ["Rejected", "Rejected"]
    await h.until(lambda: bool(h.events), "event")
    assert h.events[-1]["about"] == {"ListID": "SL", "MsgType": "E"}


@service_test
async def test_business_reject_from_the_hub_rejects_the_order(h: Harness) -> None:
    h.link.silent.add("D")
    await h.gw.new_order(h.alpha, body(ClOrdID="br1"))
    h.inject("j", [(45, h.link.last_seq_num), (372, "D"), (379, "alpha:br1"), (380, "4"),
                   (58, "DeliverToCompID BRKA is not logged on")])
    assert h.order("br1")["state"] == "Rejected"
    await h.until(lambda: bool(h.events), "event")
    assert h.events[-1]["message"]["Body"]["BusinessRejectRefID"] == "br1"


@service_test
async def test_business_reject_naming_only_the_sequence_number(h: Harness) -> None:
    """A BusinessMessageReject of the hub without a BusinessRejectRefID the gateway can read:
    its RefSeqNum finds the order through the session's store."""
    h.link.silent.add("D")
    await h.gw.new_order(h.alpha, body(ClOrdID="br2"))
    h.inject("j", [(45, h.link.last_seq_num), (372, "D"), (380, "5"),
                   (58, "DeliverToCompID (128) is required: the hub routes on it")])
    assert h.order("br2")["state"] == "Rejected"
    await h.until(lambda: bool(h.events), "event")
    assert h.events[-1]["about"] == {"ClOrdID": "br2", "MsgType": "D"}


# --------------------------------------------------------------------------- cancel reject

@service_test
async def test_cancel_reject_of_a_filled_order_names_it(h: Harness) -> None:
    await h.gw.new_order(h.alpha, body(ClOrdID="f1", OrdType="1", Price=None))
    await h.until(lambda: h.gw.get_order("alpha", "f1") is None
                  or h.gw.get_order("alpha", "f1").state == "Filled", "filled")  # type: ignore[union-attr]
    await h.until(lambda: any(e["message"]["Body"].get("OrdStatus") == "2" for e in h.events), "fill pushed")
    # the loopback broker is asked directly (the gateway refuses to cancel a filled order itself)
    h.link._answer("G", {128: "BRKA", 11: "alpha:f1~x", 41: "alpha:f1", 38: "5"}, [])
    h.link._answer("F", {128: "BRKA", 11: "alpha:f1~y", 41: "alpha:f1"}, [])
    rejects = [e["message"]["Body"] for e in h.events if e["message"]["Header"].get("MsgType") == "9"
               or "CxlRejResponseTo" in e["message"]["Body"]]
    assert len(rejects) == 2
    for r in rejects:
        assert r["OrdStatus"] == "2" and r["OrderID"].startswith("LB"), r


# --------------------------------------------------------------------------- advisor, status, mass cancel

@service_test
async def test_every_request_names_its_client_as_sender_sub_id(h: Harness) -> None:
    await resting(h, "adv1")
    await h.gw.replace_order(h.alpha, "adv1", json.dumps({"ClOrdID": "adv2", "OrderQty": "5"}).encode())
    await h.until(lambda: h.order("adv2")["state"] == "New", "replaced")
    await h.gw.cancel_order(h.alpha, "adv2", b"")
    await h.gw.status_order(h.alpha, "adv2")
    assert {mt for mt, _ in h.sent} == {"D", "G", "F", "H"}
    assert all(f.get(50) == "alpha" and f[128] == "BRKA" for _, f in h.sent)
    assert all(f[11].startswith("alpha:") for _, f in h.sent)  # the namespace stays


@service_test
async def test_order_status_request_refreshes_and_pushes(h: Harness) -> None:
    await resting(h, "st1")
    o = h.gw.get_order("alpha", "st1")
    assert o is not None
    o.OrdStatus = "A"  # as if the New report had been lost
    answer = json.loads(await h.gw.status_order(h.alpha, "st1"))
    assert answer["ClOrdID"] == "st1" and answer["OrdStatusReqID"].startswith("st1~s")
    sent = h.last_sent("H")
    assert (sent[11], sent[55], sent[54], sent[37]) == ("alpha:st1", "005930", "1", o.OrderID)
    await h.until(lambda: any(e["message"]["Body"].get("ExecType") == "I" for e in h.events), "status pushed")
    assert h.order("st1")["state"] == "New"
    with pytest.raises(ApiError) as err:
        await h.gw.status_order(h.alpha, "nope")
    assert err.value.status == 404


@service_test
async def test_mass_cancel(h: Harness) -> None:
    for cl, sym in (("mc1", "005930"), ("mc2", "005930"), ("mc3", "000660")):
        await resting(h, cl, Symbol=sym)
    answer = json.loads(await h.gw.mass_cancel(h.alpha, json.dumps(
        {"broker": "BRKA", "Symbol": "005930", "Side": "1", "Account": "ACC1"}).encode()))
    assert answer["MassCancelRequestType"] == "1" and answer["broker"] == "BRKA"
    q = h.last_sent("q")
    assert (q[530], q[55], q[54], q[1], q[50]) == ("1", "005930", "1", "ACC1", "alpha")
    await h.until(lambda: h.order("mc1")["state"] == "Canceled" and h.order("mc2")["state"] == "Canceled",
                  "cancelled")
    assert h.order("mc3")["state"] == "New"
    report = [e for e in h.events if e["message"]["Header"]["MsgType"] == "r"][-1]["message"]["Body"]
    assert report["TotalAffectedOrders"] == "2" and report["ClOrdID"] == answer["ClOrdID"]
    # everything else of the client at that broker
    await h.gw.mass_cancel(h.alpha, json.dumps({"broker": "BRKA"}).encode())
    assert h.last_sent("q")[530] == "7"
    await h.until(lambda: h.order("mc3")["state"] == "Canceled", "all cancelled")
    with pytest.raises(ApiError) as err:
        await h.gw.mass_cancel(h.alpha, json.dumps({"broker": "BRKA", "MassCancelRequestType": "3",
                                                    "Side": "X"}).encode())
    assert err.value.status == 422 and {"MassCancelRequestType", "Side"} <= {p.field for p in err.value.errors}
    with pytest.raises(ApiError) as err:
        await h.gw.mass_cancel(h.alpha, json.dumps({"broker": "BRKA", "Account": "OTHER"}).encode())
    assert err.value.status == 403


# --------------------------------------------------------------------------- inquiries

STATIC = """
[[instruments]]
Symbol = "005930"
name = "Samsung Electronics"
market = "KOSPI"
base_price = 70000

[[instruments]]
Symbol = "035720"
name = "Kakao"
market = "KOSPI"
base_price = 40000
"""


async def _positions_balance_instruments(h: Harness) -> None:
    pos = json.loads(await h.gw.positions(h.alpha, "ACC1", "BRKA", None))
    an = h.last_sent("AN")
    assert (an[1], an[50], an[724], an[448]) == ("ACC1", "alpha", "0", "alpha")
    assert pos["RequestForPositionsAck"]["PosReqResult"] == "0"
    assert pos["PositionReports"][0]["NoPositions"][0]["LongQty"] == "100"
    bal = json.loads(await h.gw.balance(h.alpha, "ACC1", "BRKA"))
    assert bal["CollateralReport"]["MarginExcess"] == "100000000"
    with pytest.raises(ApiError) as err:
        await h.gw.positions(h.alpha, "OTHER", "BRKA", None)  # not this client's account
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        await h.gw.balance(h.alpha, "ACC1", None)  # alpha has two brokers
    assert err.value.status == 400
    listing = json.loads(await h.gw.instruments_view(h.alpha, "BRKA", None))["instruments"]
    samsung = next(i for i in listing if i["Symbol"] == "005930")
    assert (samsung["lower_limit"], samsung["upper_limit"], samsung["tick_size"], samsung["base_price"]) == (
        "49000", "91000", "100", "70000")
    # the limits are checked at intake from now on
    with pytest.raises(ApiError) as err:
        await h.gw.new_order(h.alpha, body(ClOrdID="lim1", Price="95000"))
    assert err.value.status == 422 and "price limits" in err.value.errors[0].reason
    await h.gw.new_order(h.alpha, body(ClOrdID="lim2", Price="90000"))

test_positions_balance_and_instruments_through_the_broker = service_test(_positions_balance_instruments)


async def _timeout_and_fallback(h: Harness) -> None:
    h.link.silent.update({"AN", "x"})
    with pytest.raises(ApiError) as err:
        await h.gw.positions(h.alpha, "ACC1", "BRKA", None)
    assert err.value.status == 504
    assert not h.gw.inquiries.pending
    listing = json.loads(await h.gw.instruments_view(h.alpha, "BRKA", None))
    assert {i["Symbol"] for i in listing["instruments"]} == {"005930", "035720"}
    assert all(i["source"] == "static" for i in listing["instruments"]) and "fallback_reason" in listing
    kakao = json.loads(await h.gw.instruments_view(h.alpha, "BRKA", "035720"))
    assert (kakao["lower_limit"], kakao["upper_limit"], kakao["tick_size"]) == ("28000", "52000", "50")
    # static limits are checked at intake too
    with pytest.raises(ApiError) as err:
        await h.gw.new_order(h.alpha, body(ClOrdID="lim3", Symbol="035720", Price="60000"))
    assert err.value.status == 422


test_inquiry_timeout_and_static_instruments = service_test(
    _timeout_and_fallback, extra='inquiry_timeout = 0.2\ninstruments_file = "instruments.toml"',
    files={"instruments.toml": STATIC})


async def _refused_by_the_hub(h: Harness) -> None:
    h.link.silent.add("BB")
    task = asyncio.ensure_future(h.gw.balance(h.alpha, "ACC1", "BRKA"))
    await h.until(lambda: bool(h.gw.inquiries.pending), "request sent")
    ref = next(iter(h.gw.inquiries.pending))
    h.inject("j", [(45, h.link.last_seq_num), (372, "BB"), (379, ref), (380, "4"),
                   (58, "DeliverToCompID BRKA is not logged on")])
    with pytest.raises(ApiError) as err:
        await task
    assert err.value.status == 502 and "not logged on" in err.value.message


test_inquiry_refused_by_the_hub = service_test(_refused_by_the_hub)


async def _session_status(h: Harness) -> None:
    # subscribed at logon (before the harness spied): ask again to see the requests
    h.gw.inquiries.subscribe_sessions("LOOPBACK")
    subs = [(f[128], f[50]) for mt, f in h.sent if mt == "g"]
    assert sorted(subs) == [("BRKA", "alpha"), ("BRKA", "beta"), ("BRKA", "gamma"), ("BRKB", "alpha"),
                            ("BRKB", "gamma"), ("BRKC", "gamma")]
    assert all(f[263] == "1" for mt, f in h.sent if mt == "g")
    h.inject("h", [(115, "BRKA"), (57, "alpha"), (335, "~t1"), (336, "REGULAR"), (340, "2"),
                   (625, "CONTINUOUS"), (325, "Y")])
    h.inject("h", [(115, "BRKA"), (57, "alpha"), (336, "REGULAR"), (340, "1"), (625, "VI_DYNAMIC"),
                   (55, "005930"), (58, "dynamic volatility interruption on 005930")])
    await h.until(lambda: len(h.events) >= 2, "session events")
    bodies = [e["message"]["Body"] for e in h.events if e["message"]["Header"]["MsgType"] == "h"]
    assert [b["TradSesStatus"] for b in bodies] == ["2", "1"]
    assert h.gw.seq.get("beta", 0) == 0  # addressed to alpha only
    inst = json.loads(await h.gw.instruments_view(h.alpha, "BRKA", "005930"))
    assert inst["session"]["TradingSessionSubID"] == "VI_DYNAMIC"


test_trading_session_status_is_subscribed_and_pushed = service_test(
    _session_status, extra="subscribe_session_status = true")


# --------------------------------------------------------------------------- cancel on disconnect

async def _grace(h: Harness) -> None:
    await resting(h, "cod1")
    first, second = object(), object()
    h.gw.presence.opened("alpha", first, True)
    h.gw.presence.opened("beta", object(), False)  # not armed: nothing happens when it goes
    h.gw.presence.closed("alpha", first)
    assert [e["event"]["event"] for e in h.events if e["type"] == "event"] == ["stream_lost"]
    h.gw.presence.opened("alpha", second, True)  # back within the grace period: orders stay
    assert [e["event"]["event"] for e in h.events if e["type"] == "event"][-1] == "stream_resumed"
    await asyncio.sleep(0.4)
    assert h.order("cod1")["state"] == "New" and not [mt for mt, _ in h.sent if mt == "F"]
    h.gw.presence.closed("alpha", second)
    await h.until(lambda: any(e["type"] == "event" and e["event"]["event"] == "cancel_on_disconnect"
                              for e in h.events), "cancels")
    done = [e for e in h.events if e["type"] == "event"][-1]["event"]
    assert done["ClOrdID"] == ["cod1"] and h.last_sent("F")[41] == "alpha:cod1"
    assert h.last_sent("F")[58] == "cancel on disconnect"
    await h.until(lambda: h.order("cod1")["state"] == "Canceled", "cancelled")
    assert h.gw.seq.get("beta", 0) == 0


test_cancel_on_disconnect_waits_for_the_grace_period = service_test(
    _grace, extra="cancel_on_disconnect_grace = 0.2")


async def _by_config(h: Harness) -> None:
    await resting(h, "cod2")
    conn = object()
    h.gw.stream_opened("alpha", conn)  # the connection did not opt in; the client's configuration does
    h.gw.stream_closed("alpha", conn)
    await h.until(lambda: h.order("cod2")["state"] == "Canceled", "cancelled")


def test_cancel_on_disconnect_by_client_configuration(tmp_path: Path) -> None:
    toml = gateway_toml(extra="cancel_on_disconnect_grace = 0").replace(
        'id = "alpha"\n', 'id = "alpha"\ncancel_on_disconnect = true\n')

    async def go() -> None:
        cfg = parse_config(tomllib.loads(toml), tmp_path / "gw.toml")
        assert cfg.clients["alpha"].cancel_on_disconnect
        link = LoopbackLink()
        gw = Gateway(cfg, link, JsonMapper(link.begin_string, max_bytes=cfg.max_body_bytes), Metrics())
        gw.recover()
        await link.start()
        try:
            await _by_config(Harness(gw, link))
        finally:
            await link.stop()
            await gw.close()

    run(go(), 60)
