"""Inquiries: REST reads answered by the broker over FIX (request, then await the answer).

=================================== ============================ ==========================
REST                                sent (through the hub)       answered by
=================================== ============================ ==========================
GET /v1/accounts/{Account}/positions RequestForPositions (AN)    RequestForPositionsAck (AO)
                                                                 + PositionReport (AP) each
GET /v1/accounts/{Account}/balance  CollateralInquiry (BB)       CollateralReport (BA), or
                                                                 CollateralInquiryAck (BG)
GET /v1/instruments[/{Symbol}]      SecurityListRequest (x)      SecurityList (y)
=================================== ============================ ==========================

Each request carries an id the gateway makes (``~p...``, ``~b...``, ``~i...``) in its
request-id field (PosReqID 710, CollInquiryID 909, SecurityReqID 320); the answers name it
and complete the waiting REST call. A call not answered within ``inquiry_timeout`` seconds
is answered 504; a BusinessMessageReject naming the id (the hub could not route it) 502.
Nothing here is journaled: an inquiry changes no order.

Instruments: the answer is kept (daily price limits are checked at intake from it); when the
broker cannot be asked (session down, no answer, refused) the static instruments file
(``instruments_file``, TOML) answers instead, marked ``"source": "static"``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import tomllib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec

from fastfix.tags import COLL_INQUIRY_ID, POS_REQ_ID, SECURITY_REQ_ID, TOTAL_NUM_POS_REPORTS
from server.gateway.config import BrokerConfig, ClientConfig, GatewayConfig
from server.gateway.errors import ApiError, FieldProblem
from server.gateway.fix_out import FixOut, LinkDown
from server.gateway.link import InboundMessage
from server.krx import price_limits, tick_size

__all__ = ["Inquiries", "Instrument", "load_instruments"]

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()
_SEOUL = timezone(timedelta(hours=9))


class Instrument(msgspec.Struct, omit_defaults=True):
    """One instrument as ``GET /v1/instruments`` shows it (prices in KRW, as text)."""

    Symbol: str
    name: str = ""
    market: str = ""
    SecurityID: str | None = None
    tick_size: str | None = None
    base_price: str | None = None
    lower_limit: str | None = None
    upper_limit: str | None = None
    TradingSessionID: str | None = None
    TradingSessionSubID: str | None = None
    source: str = "exchange"


class _StaticEntry(msgspec.Struct, forbid_unknown_fields=True):
    Symbol: str
    base_price: int
    name: str = ""
    market: str = ""
    SecurityID: str | None = None


class _StaticFile(msgspec.Struct, forbid_unknown_fields=True):
    instruments: list[_StaticEntry]


def load_instruments(path: Path) -> dict[str, Instrument]:
    """The static instruments file: ``[[instruments]]`` tables (Symbol, base_price, name,
    market, SecurityID); tick size and daily limits follow from the base price (KRX rules)."""
    from fastfix.errors import ConfigError

    try:
        doc = msgspec.convert(tomllib.loads(path.read_text()), _StaticFile)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    out: dict[str, Instrument] = {}
    for i, e in enumerate(doc.instruments):
        if e.base_price <= 0:
            raise ConfigError(f"{path}: instruments[{i}].base_price: must be positive")
        lo, hi = price_limits(e.base_price)
        out[e.Symbol] = Instrument(Symbol=e.Symbol, name=e.name, market=e.market, SecurityID=e.SecurityID,
                                   tick_size=str(tick_size(e.base_price)), base_price=str(e.base_price),
                                   lower_limit=str(lo), upper_limit=str(hi), source="static")
    return out


class _Pending:
    """A request in flight: the answers gathered, and the future its REST call awaits."""

    __slots__ = ("kind", "client_id", "future", "ack", "reports", "expected")

    def __init__(self, kind: str, client_id: str) -> None:
        self.kind = kind
        self.client_id = client_id
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.ack: Any = None
        self.reports: list[Any] = []
        self.expected = -1


class Inquiries:
    """Request/response exchanges with the brokers, and the instruments they report."""

    def __init__(self, cfg: GatewayConfig, fix_out: FixOut, mapper: Any) -> None:
        self.cfg = cfg
        self.fix_out = fix_out
        self.mapper = mapper
        self.pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self.static: dict[str, Instrument] = (load_instruments(cfg.instruments_file)
                                              if cfg.instruments_file is not None else {})
        self.instruments: dict[str, Instrument] = {}  # from the exchange, as last reported
        # Symbol -> today's (lower, upper) price limits, checked at intake (exchange, else static)
        self.price_limits: dict[str, tuple[Decimal, Decimal]] = {}
        for inst in self.static.values():
            self._set_limits(inst)
        self.sessions: dict[tuple[str, str], dict[str, Any]] = {}  # set by the reports stage

    # ------------------------------------------------------------------ answers in
    def handlers(self) -> dict[bytes, Any]:
        """Inbound MsgType -> handler (the reports stage calls them)."""
        return {b"AO": self._positions_ack, b"AP": self._position_report, b"BA": self._collateral,
                b"BG": self._collateral_ack, b"y": self._security_list}

    def _take(self, msg: InboundMessage, tag: int) -> _Pending | None:
        raw = msg.get(tag)
        return self.pending.get(raw.decode("latin-1")) if raw else None

    def _body(self, msg: InboundMessage) -> Any:
        return _decode.decode(self.mapper.body_json(msg))

    def _done(self, p: _Pending, value: Any) -> None:
        if not p.future.done():
            p.future.set_result(value)

    def _positions_ack(self, msg: InboundMessage) -> None:
        p = self._take(msg, POS_REQ_ID)
        if p is None:
            return
        p.ack = self._body(msg)
        try:
            p.expected = int(msg.get(TOTAL_NUM_POS_REPORTS) or b"0")
        except ValueError:
            p.expected = 0
        if p.ack.get("PosReqResult") not in ("0", None) or len(p.reports) >= p.expected:
            self._done(p, None)

    def _position_report(self, msg: InboundMessage) -> None:
        p = self._take(msg, POS_REQ_ID)
        if p is None:
            return
        p.reports.append(self._body(msg))
        if p.ack is not None and len(p.reports) >= p.expected:
            self._done(p, None)

    def _collateral(self, msg: InboundMessage) -> None:
        p = self._take(msg, COLL_INQUIRY_ID)
        if p is not None:
            p.reports.append(self._body(msg))
            self._done(p, None)

    def _collateral_ack(self, msg: InboundMessage) -> None:
        p = self._take(msg, COLL_INQUIRY_ID)
        if p is not None:
            p.ack = self._body(msg)
            self._done(p, None)

    def _security_list(self, msg: InboundMessage) -> None:
        p = self._take(msg, SECURITY_REQ_ID)
        if p is None:
            return
        body = self._body(msg)
        p.reports.append(body)
        if body.get("LastFragment", "Y") == "Y":
            self._done(p, None)

    def refused(self, ref: str, text: str) -> bool:
        """A BusinessMessageReject naming ``ref``: True when it was one of ours."""
        p = self.pending.get(ref)
        if p is None:
            return False
        if not p.future.done():
            p.future.set_exception(ApiError(502, "broker_refused", f"the request was refused: {text}"))
        return True

    # ------------------------------------------------------------------ requests out
    def broker_for(self, client: ClientConfig, broker_id: str | None) -> BrokerConfig:
        allowed = client.brokers or list(self.cfg.brokers)
        if broker_id is None:
            if len(allowed) != 1:
                raise ApiError(400, "bad_query", "broker required: this client has several brokers",
                               [FieldProblem("broker", "required (one of " + ", ".join(allowed) + ")",
                                             "query.broker")])
            broker_id = allowed[0]
        if broker_id not in self.cfg.brokers:
            raise ApiError(400, "bad_query", f"unknown broker {broker_id!r}",
                           [FieldProblem("broker", f"unknown broker {broker_id!r}", "query.broker")])
        if broker_id not in allowed:
            raise ApiError(403, "forbidden", f"broker {broker_id} is not allowed for this client")
        return self.cfg.brokers[broker_id]

    @staticmethod
    def check_account(client: ClientConfig, account: str) -> None:
        if client.accounts and account not in client.accounts:
            raise ApiError(403, "forbidden", f"account {account} is not allowed for this client")

    async def _ask(self, client: ClientConfig, broker: BrokerConfig, msg_type: str, id_field: str,
                   prefix: str, body: dict[str, Any]) -> _Pending:
        if msg_type not in self.mapper.codec.dictionary.messages:
            raise ApiError(501, "not_supported", f"the FIX version of the session has no MsgType {msg_type}")
        req_id = f"~{prefix}{next(self._ids)}.{time.time_ns() % 1_000_000_000}"
        body[id_field] = req_id
        try:
            wire = self.mapper.to_body(msg_type, body)
        except Exception as exc:  # MappingFailed: a request the dictionary refuses
            problems = getattr(exc, "problems", [])
            raise ApiError(422, "invalid_request", "the request is not valid", problems) from None
        session = self.fix_out.session_for(broker)  # 503 when down
        p = _Pending(msg_type, client.id)
        self.pending[req_id] = p
        try:
            try:
                self.fix_out.send(session, msg_type, wire, broker.id, client.id)
            except LinkDown:
                from server.gateway.fix_out import session_down

                raise session_down(session) from None
            try:
                await asyncio.wait_for(asyncio.shield(p.future), self.cfg.inquiry_timeout)
            except TimeoutError:
                raise ApiError(504, "timeout", f"no answer from broker {broker.id} within "
                                               f"{self.cfg.inquiry_timeout:g} s") from None
        finally:
            self.pending.pop(req_id, None)
        return p

    def subscribe_sessions(self, session: str) -> int:
        """TradingSessionStatusRequest (g, snapshot and updates) for every client of every broker
        reached through ``session`` (just logged on): the broker forwards the KRX session
        changes to each advisor that asked. Returns the number of requests sent."""
        if not self.cfg.subscribe_session_status:
            return 0
        n = 0
        for broker in self.cfg.brokers.values():
            if self.fix_out.session_of(broker) != session:
                continue
            for client in self.cfg.clients.values():
                if client.brokers and broker.id not in client.brokers:
                    continue
                body = {"TradSesReqID": f"~t{next(self._ids)}.{time.time_ns() % 1_000_000_000}",
                        "SubscriptionRequestType": "1"}
                try:
                    self.fix_out.send(session, "g", self.mapper.to_body("g", body), broker.id, client.id)
                    n += 1
                except LinkDown:
                    return n
        return n

    async def positions(self, client: ClientConfig, account: str, broker_id: str | None,
                        symbol: str | None) -> bytes:
        self.check_account(client, account)
        broker = self.broker_for(client, broker_id)
        now = datetime.now(_SEOUL)
        body: dict[str, Any] = {
            "PosReqType": "0", "Account": account, "AccountType": "1",
            "ClearingBusinessDate": now.strftime("%Y%m%d"),
            "TransactTime": datetime.now(UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3],
            "NoPartyIDs": [{"PartyID": client.id, "PartyIDSource": "D", "PartyRole": "3"}]}
        if symbol:
            body["Symbol"] = symbol
        p = await self._ask(client, broker, "AN", "PosReqID", "p", body)
        ack = p.ack or {}
        result = ack.get("PosReqResult", "0")
        if result == "1":
            raise ApiError(404, "not_found", f"broker {broker.id} has no account {account}: {ack.get('Text', '')}")
        if result == "3":
            raise ApiError(403, "forbidden", f"account {account} is not this client's at broker {broker.id}")
        if result not in ("0", "2"):
            raise ApiError(502, "broker_refused", f"positions refused (PosReqResult {result}): "
                                                  f"{ack.get('Text', '')}")
        return _json.encode({"Account": account, "broker": broker.id, "RequestForPositionsAck": ack,
                             "PositionReports": p.reports})

    async def balance(self, client: ClientConfig, account: str, broker_id: str | None) -> bytes:
        self.check_account(client, account)
        broker = self.broker_for(client, broker_id)
        p = await self._ask(client, broker, "BB", "CollInquiryID", "b", {"Account": account})
        if not p.reports:
            ack = p.ack or {}
            status = 403 if ack.get("CollInquiryResult") == "9" else 404 if ack.get("CollInquiryResult") in (
                "2", "3") else 502
            code = {403: "forbidden", 404: "not_found"}.get(status, "broker_refused")
            raise ApiError(status, code, f"balance refused: {ack.get('Text', '')}")
        return _json.encode({"Account": account, "broker": broker.id, "CollateralReport": p.reports[0]})

    # ------------------------------------------------------------------ instruments
    async def instruments_view(self, client: ClientConfig, broker_id: str | None, symbol: str | None) -> bytes:
        """The instruments (or one), from the exchange through the broker; the static file when
        the broker cannot answer."""
        found: dict[str, Instrument] | None = None
        reason = ""
        try:
            broker = self.broker_for(client, broker_id)
            body: dict[str, Any] = {"SecurityListRequestType": "0" if symbol else "4"}
            if symbol:
                body["Symbol"] = symbol
            p = await self._ask(client, broker, "x", "SecurityReqID", "i", body)
            found = {}
            for part in p.reports:
                if part.get("SecurityRequestResult", "0") not in ("0",):
                    continue
                for entry in part.get("NoRelatedSym", []):
                    inst = _instrument(entry)
                    if inst is not None:
                        found[inst.Symbol] = inst
            self.instruments.update(found)
            for inst in found.values():
                self._set_limits(inst)
        except ApiError as exc:
            if exc.status in (400, 403, 422):
                raise
            reason = exc.message
        items = found if found is not None and (found or not self.static) else None
        if items is None:
            items = {k: v for k, v in self.static.items() if symbol is None or k == symbol}
        out = []
        for inst in items.values():
            view = msgspec.structs.asdict(inst)
            view = {k: v for k, v in view.items() if v is not None}
            session = self._session_of(inst.Symbol)
            if session is not None:
                view["session"] = {k: v for k, v in session.items() if k != "updated_ns" and v != ""}
            out.append(view)
        if symbol is not None:
            if not out:
                raise ApiError(404, "not_found", f"no instrument {symbol}" + (f" ({reason})" if reason else ""))
            return _json.encode(out[0])
        answer: dict[str, Any] = {"instruments": out}
        if reason:
            answer["fallback_reason"] = reason
        return _json.encode(answer)

    def _session_of(self, symbol: str) -> dict[str, Any] | None:
        """The latest trading-session status naming ``symbol`` (a volatility interruption),
        else the latest of the market's regular session."""
        own = [v for (sym, _), v in self.sessions.items() if sym == symbol]
        if own:
            latest = max(own, key=lambda v: v["updated_ns"])
            if latest.get("TradSesStatus") == "1":  # still interrupted
                return latest
        return self.sessions.get(("", "REGULAR"))

    def _set_limits(self, inst: Instrument) -> None:
        if inst.lower_limit is not None and inst.upper_limit is not None:
            self.price_limits[inst.Symbol] = (Decimal(inst.lower_limit), Decimal(inst.upper_limit))


def _instrument(entry: dict[str, Any]) -> Instrument | None:
    """A SecurityList NoRelatedSym entry as an :class:`Instrument` (stipulations MININCR
    = tick size, PRICE = ``lower-upper`` daily limits)."""
    symbol = entry.get("Symbol")
    if not isinstance(symbol, str):
        return None
    inst = Instrument(Symbol=symbol, name=entry.get("SecurityDesc", ""), market=entry.get("SecuritySubType", ""),
                      SecurityID=entry.get("SecurityID"), base_price=entry.get("BenchmarkPrice"),
                      TradingSessionID=entry.get("TradingSessionID"),
                      TradingSessionSubID=entry.get("TradingSessionSubID"))
    for stip in entry.get("NoStipulations", []):
        kind, value = stip.get("StipulationType"), stip.get("StipulationValue", "")
        if kind == "MININCR":
            inst.tick_size = value
        elif kind == "PRICE" and "-" in value:
            lo, _, hi = value.partition("-")
            try:
                inst.lower_limit, inst.upper_limit = str(Decimal(lo)), str(Decimal(hi))
            except InvalidOperation:
                pass
    return inst
