"""Gateway configuration, authentication, throttling and tick sizes."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from _gateway_harness import gateway_toml, sha
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfix.codec import encode, parse, utc_timestamp
from fastfix.errors import ConfigError
from server.gateway._intake import check_id, iso, namespace, order_answer
from server.gateway._reports import envelope, strip_namespace, text_fields
from server.gateway.auth import Authenticator, TokenBucket, hash_key
from server.gateway.checks import check_order_fields, krx_tick
from server.gateway.config import ClientConfig, load_config
from server.gateway.orders import Order, _dec, _fmt


def write(tmp: Path, text: str) -> Path:
    p = tmp / "gw.toml"
    p.write_text(text)
    return p


def test_config_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, gateway_toml()))
    assert cfg.link == "loopback" and cfg.rest_port == 0 and cfg.tick_size == "krx"
    assert list(cfg.brokers) == ["BRKA", "BRKB", "BRKC"]
    alpha = cfg.clients["alpha"]
    assert alpha.brokers == ["BRKA", "BRKB"] and alpha.max_order_qty == Decimal(100000)
    assert cfg.database == tmp_path.resolve() / "gw.db"  # relative to the file


@pytest.mark.parametrize("change,key", [
    (('rest_port = 0', 'rest_port = 70000'), "gateway.rest_port"),
    (('link = "loopback"', 'link = "carrier-pigeon"'), "gateway.link"),
    (('link = "loopback"', 'link = "fix"'), "gateway.fix_settings"),
    (('tick_size = "krx"', 'tick_size = 5'), "gateway.tick_size"),
    (('ws_heartbeat = 1.0', 'ws_heartbit = 1.0'), "gateway.ws_heartbit"),
    (('brokers = ["BRKA", "BRKB"]', 'brokers = ["BRKA", "NOPE"]'), "clients[0].brokers[1]"),
    (('rate = 1\n', 'rate = -1\n'), "clients[2].rate"),
    (('max_order_qty = 100000', 'max_order_qty = "lots"'), "clients[0].max_order_qty"),
    (('id = "beta"', 'id = "al:pha"'), "clients[1].id"),
    (('id = "BRKB"', 'id = "BRKA"'), "brokers[1].id"),
])
def test_config_errors_name_file_and_key(tmp_path: Path, change: tuple[str, str], key: str) -> None:
    text = gateway_toml()
    assert change[0] in text
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text.replace(change[0], change[1], 1)))
    assert str(err.value).startswith(str(tmp_path.resolve() / "gw.toml") + ": " + key + ":"), str(err.value)


def test_config_same_key_twice_and_bad_toml(tmp_path: Path) -> None:
    text = gateway_toml().replace(sha("key-beta-0123456789"), sha("key-alpha-0123456789"))
    with pytest.raises(ConfigError, match=r"clients\[1\].api_key_sha256"):
        load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[gateway\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_authenticator() -> None:
    c = ClientConfig(id="a", api_key_sha256=hash_key("secret-1"))
    auth = Authenticator({"a": c})
    assert auth.authenticate("secret-1") is c
    assert auth.authenticate("secret-2") is None
    assert auth.authenticate("") is None and auth.authenticate(None) is None
    headers = {"authorization": "Bearer secret-1"}
    assert Authenticator.key_from_headers(lambda k, d=None: headers.get(k, d)) == "secret-1"
    headers = {"x-api-key": " k "}
    assert Authenticator.key_from_headers(lambda k, d=None: headers.get(k, d)) == "k"


def test_token_bucket() -> None:
    b = TokenBucket(rate=10, burst=3)
    assert [b.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = b.take()
    assert 0 < wait <= 0.1


@pytest.mark.parametrize("price,tick", [(1999, 1), (2000, 5), (4995, 5), (5000, 10), (19990, 10), (20000, 50),
                                        (49950, 50), (50000, 100), (199900, 100), (200000, 500),
                                        (499500, 500), (500000, 1000), (1234000, 1000)])
def test_krx_tick(price: int, tick: int) -> None:
    assert krx_tick(Decimal(price)) == tick


def test_order_checks_collect_everything() -> None:
    client = ClientConfig(id="a", api_key_sha256="0" * 64, accounts=["A1", "A2"], max_order_qty=Decimal(100),
                          max_notional=Decimal(1_000_000))
    problems: list = []
    check_order_fields({"OrderQty": "1.5", "OrdType": "2"}, client, "krx", "$", problems)
    assert {(p.field, p.reason.split()[0]) for p in problems} == {("OrderQty", "must"), ("Price", "required"),
                                                                   ("Account", "required:")}
    problems = []
    check_order_fields({"OrderQty": 50, "OrdType": "2", "Price": 70050, "Account": "A1"}, client, "krx", "$",
                       problems)
    assert [p.field for p in problems] == ["Price", "OrderQty"]  # off tick; notional 3.5M > 1M
    problems = []
    check_order_fields({"OrderQty": "5", "OrdType": "1", "Account": "A1", "Symbol": "005930"}, client, "krx", "$",
                       problems)
    assert problems == []  # a market order, valued at the upper limit: 5 x 91,000 <= 1M
    check_order_fields({"OrderQty": "5", "OrdType": "1", "Account": "A1"}, client, "krx", "$", problems)
    assert [p.field for p in problems] == ["Symbol"]  # no reference price to value it


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A[0-9]{1,19}\Z"), st.from_regex(r"\A[0-9]{1,19}\Z"))
def test_order_checks_same_verdict_for_plain_digits(qty: str, price: str) -> None:
    """Digit strings take an integer fast path; "N.0" takes the Decimal one: same problems
    (field, path and reason; the notional's text aside, "7.00" against "7")."""
    client = ClientConfig(id="a", api_key_sha256="0" * 64, max_order_qty=Decimal(1000),
                          max_notional=Decimal(50_000_000))

    def verdict(q: str, p: str) -> list[tuple[str, str, str]]:
        problems: list = []
        check_order_fields({"OrderQty": q, "OrdType": "2", "Price": p}, client, "krx", "$", problems)
        return [(x.field, x.path, "notional" if x.reason.startswith("notional") else x.reason) for x in problems]

    assert verdict(qty, price) == verdict(qty + ".0", price + ".0")


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_iso_timestamps_match_datetime(ns: int) -> None:
    sec, frac = divmod(ns, 1_000_000_000)
    try:
        expected = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac // 1000:06d}Z"
    except (OverflowError, OSError, ValueError):
        return  # beyond what datetime can show
    assert iso(ns) == expected
    assert iso(ns) == expected  # and again from the cached second


def test_transact_time_is_now_in_fix_utc_milliseconds() -> None:
    before = time.time()
    tt = utc_timestamp().decode()  # what the gateway fills in for a missing TransactTime
    after = time.time()
    assert re.fullmatch(r"\d{8}-\d{2}:\d{2}:\d{2}\.\d{3}", tt), tt
    stamp = datetime.strptime(tt, "%Y%m%d-%H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
    assert before - 0.002 <= stamp <= after


def test_client_identifiers_checked_and_namespaced() -> None:
    problems: list = []
    assert check_id("o-1.A_b", "ClOrdID", "$.ClOrdID", problems) == "o-1.A_b" and not problems
    for bad in ("", None, 5, "a:b", "a~b", "a\x01b", "x" * 65):
        problems = []
        assert check_id(bad, "ClOrdID", "$.ClOrdID", problems) is None
        assert [(p.field, p.path) for p in problems] == [("ClOrdID", "$.ClOrdID")], bad
    assert check_id("é" * 64, "ListID", "$.ListID", []) is None  # FIX String: printable ASCII
    body = {"ClOrdID": "o1", "ListID": "L", "Symbol": "005930", "OrigClOrdID": 7,
            "NoOrders": [{"ClOrdID": "m1"}, "junk", {"Symbol": "x"}]}
    namespace(body, "alpha:")
    assert body == {"ClOrdID": "alpha:o1", "ListID": "alpha:L", "Symbol": "005930", "OrigClOrdID": 7,
                    "NoOrders": [{"ClOrdID": "alpha:m1"}, "junk", {"Symbol": "x"}]}


_ID_KEYS = ("ClOrdID", "OrigClOrdID", "ListID", "BusinessRejectRefID")
_json_text = st.lists(st.sampled_from(['a', 'é', '"', '\\', ':', 'alpha:', '"ClOrdID":"alpha:', '\x01']),
                      max_size=6).map("".join)
_entries = st.dictionaries(st.sampled_from(_ID_KEYS + ("Text", "XClOrdID", "Symbol")),
                           st.builds(lambda pre, v: pre + v, st.sampled_from(["", "alpha:", "beta:"]), _json_text),
                           max_size=5)


def _compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _strip_reference(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if k == "NoOrders":
            out[k] = [_strip_reference(e) for e in v]
        elif k in _ID_KEYS and isinstance(v, str) and v.startswith("alpha:"):
            out[k] = v[len("alpha:"):]
        else:
            out[k] = v
    return out


@given(_entries, st.lists(_entries, max_size=4))
@settings(max_examples=300, deadline=None)
def test_report_namespace_is_removed_from_identifier_values_only(top: dict, entries: list) -> None:
    body = dict(top, NoOrders=entries)
    assert json.loads(strip_namespace(_compact(body), b"alpha:")) == _strip_reference(body)


def test_report_namespace_of_a_long_list_and_of_nothing() -> None:
    body = {"ListID": "alpha:L", "NoOrders": [{"ClOrdID": f"alpha:c{i}", "Text": "alpha:t"} for i in range(40)]}
    assert json.loads(strip_namespace(_compact(body), b"alpha:")) == {
        "ListID": "L", "NoOrders": [{"ClOrdID": f"c{i}", "Text": "alpha:t"} for i in range(40)]}
    other = b'{"ClOrdID":"beta:o-1","Text":"\\"ClOrdID\\":\\"alpha:x"}'
    assert strip_namespace(other, b"alpha:") is other


def test_report_fields_as_text() -> None:
    msg = parse(encode("FIX.4.4", "8", [(11, "alpha:o1"), (58, "caf\xe9".encode("latin-1")), (453, "2"), (448, "P1"),
                                        (448, "P2"), (150, "0")]))

    class Plain:  # any message with get(tag) -> bytes | None
        def get(self, tag: int) -> bytes | None:
            return msg.get(tag)

    want = {11: "alpha:o1", 58: "café", 448: "P1", 150: "0"}
    assert text_fields(msg, (11, 58, 448, 150, 39)) == want
    assert text_fields(Plain(), (11, 58, 448, 150, 39)) == want


def test_report_event_envelope() -> None:
    msg = parse(encode("FIX.4.4", "8", [(49, "HUB"), (56, "GATEWAY"), (34, 9), (43, "Y"), (52, "20261126-09:00:00.000"),
                                        (115, 'B"R\\K\xc3\xa9'.encode("latin-1")), (116, b"\xff\x02x"), (11, "alpha:o1")]))

    class Plain:  # any message with msg_type and get(tag) -> bytes | None
        msg_type = b"8"

        def get(self, tag: int) -> bytes | None:
            return msg.get(tag)

    for m in (msg, Plain()):
        event = json.loads(envelope(b'{"ClOrdID":"alpha:o1"}', m, b"alpha:", 12, 1_700_000_000_123_456_789))
        assert event == {"type": "message", "seq": 12, "ts": "2023-11-14T22:13:20.123456Z", "message": {
            "Header": {"MsgType": "8", "PossDupFlag": "Y", "SendingTime": "20261126-09:00:00.000",
                       "OnBehalfOfCompID": 'B"R\\Ké', "OnBehalfOfSubID": "\ufffd\x02x"},
            "Body": {"ClOrdID": "o1"}}}


@given(st.decimals(allow_nan=False, allow_infinity=False) | st.sampled_from(["-0", "0.000", "-0E+5", "1.50", "1E+3"]))
@settings(max_examples=300, deadline=None)
def test_quantities_in_plain_notation_cached_or_not(value: Decimal | str) -> None:
    text = str(value)
    d = Decimal(text)
    plain = format(d, "f")
    plain = (plain.rstrip("0").rstrip(".") if "." in plain else plain) or "0"
    for _ in range(2):  # computed, then from the cache
        assert _dec(text) == d and _fmt(_dec(text)) == plain  # type: ignore[arg-type]
    assert _fmt(Decimal(text + "0") if "." in text and "E" not in text else d) == plain  # an equal value


def test_order_answers() -> None:
    o = Order(client_id="c", ClOrdID='o"1', broker="BRKA", created_ns=1_700_000_000_123_456_789)
    assert json.loads(order_answer(o)) == {"ClOrdID": 'o"1', "state": "PendingNew", "OrdStatus": "A",
                                           "broker": "BRKA", "created": "2023-11-14T22:13:20.123456Z"}
    r = Order(client_id="c", ClOrdID="o2", broker="BRKA", MsgType="G", OrigClOrdID="o1", created_ns=0)
    assert json.loads(order_answer(r))["OrigClOrdID"] == "o1"
    assert json.loads(order_answer(r))["created"] == "1970-01-01T00:00:00.000000Z"


