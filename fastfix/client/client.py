"""The gateway API from Python: :class:`AsyncClient` (asyncio, uvloop) and :class:`Client`.

Every REST operation is declared once, in :class:`_Operations`, as a few lines naming its
method, path, request Body and answer type; the two clients differ only in how a call is
run (awaited, or run to completion on the client's own event loop).

Retries: a call that could not reach the gateway, timed out, or was answered 429 or 503 is
sent again, identical (same ClOrdID, same body: the gateway answers a repeated request with
its first answer), after an exponential backoff with jitter, or after the ``Retry-After`` the
gateway gave. Other refusals raise :class:`~fastfix.client.models.ApiError` at once.
"""

from __future__ import annotations

import asyncio
import os
import random
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NamedTuple, TypeVar, Union

import msgspec

from fastfix.client._http import HttpPool, NotSent, Response
from fastfix.client.messages import Messages, messages
from fastfix.client.models import (
    Accepted,
    ApiError,
    Broker,
    Event,
    FieldProblem,
    Order,
    OrderList,
    OrderPage,
    TransportError,
)

__all__ = ["AsyncClient", "Client", "RetryPolicy", "new_id"]

T = TypeVar("T")
Answer = Union[T, Awaitable[T]]  # noqa: UP007 - a value from Client, an awaitable from AsyncClient


def new_id() -> str:
    """A fresh client identifier (ClOrdID, ListID): 32 hex digits, unique without coordination."""
    return uuid.uuid4().hex


class RetryPolicy(msgspec.Struct, frozen=True):
    """How often and how long to retry a call the gateway could not take yet.

    ``retries`` resends after the first try; the n-th waits ``backoff * 2**(n-1)`` seconds
    (at most ``max_backoff``, with up to 50 % random jitter), or the ``Retry-After`` of a 429
    or 503 answer when it gave one (capped at ``max_retry_after``).
    """

    retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 5.0
    max_retry_after: float = 30.0
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        base = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        return base * (1 + random.random() / 2)


class _Op(NamedTuple):
    """One REST operation: what the answer decodes to and which statuses are answers."""

    method: str
    path: str  # with {} for each path argument
    answer: Any
    ok: frozenset[int] = frozenset({200, 202})


class _Error(msgspec.Struct):
    error: str
    message: str
    errors: list[FieldProblem] = []


class _Brokers(msgspec.Struct):
    brokers: list[Broker]


# The operations of the REST API today. A new endpoint is one line here and one method below.
NEW_ORDER = _Op("POST", "/v1/orders", Accepted)
LIST_ORDERS = _Op("GET", "/v1/orders", OrderPage)
GET_ORDER = _Op("GET", "/v1/orders/{}", Order)
DELETE_ORDER = _Op("DELETE", "/v1/orders/{}", Order)
CANCEL_ORDER = _Op("POST", "/v1/orders/{}/cancel", Order)
REPLACE_ORDER = _Op("POST", "/v1/orders/{}/replace", Accepted)
ORDER_TRACE = _Op("GET", "/v1/orders/{}/trace", dict[str, Any])
NEW_LIST = _Op("POST", "/v1/order-lists", Accepted)
GET_LIST = _Op("GET", "/v1/order-lists/{}", OrderList)
CANCEL_LIST = _Op("POST", "/v1/order-lists/{}/cancel", OrderList)
BROKERS = _Op("GET", "/v1/brokers", _Brokers)
HEALTH = _Op("GET", "/healthz", dict[str, Any])
READY = _Op("GET", "/readyz", dict[str, Any], frozenset({200, 503}))
STREAM_INFO = _Op("GET", "/stream-info", dict[str, Any])
ORDER_STATUS = _Op("POST", "/v1/orders/{}/status", Order)
MASS_CANCEL = _Op("POST", "/v1/orders/mass-cancel", dict[str, Any])
INSTRUMENTS = _Op("GET", "/v1/instruments", dict[str, Any])
INSTRUMENT = _Op("GET", "/v1/instruments/{}", dict[str, Any])
POSITIONS = _Op("GET", "/v1/accounts/{}/positions", dict[str, Any])
BALANCE = _Op("GET", "/v1/accounts/{}/balance", dict[str, Any])

_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}
_ERROR = msgspec.json.Decoder(_Error)


def _decoder(tp: Any) -> msgspec.json.Decoder[Any]:
    dec = _DECODERS.get(tp)
    if dec is None:
        dec = _DECODERS[tp] = msgspec.json.Decoder(tp)
    return dec


def _api_error(resp: Response) -> ApiError:
    retry_after = None
    ra = resp.headers.get("retry-after")
    if ra is not None:
        try:
            retry_after = max(0.0, float(ra))
        except ValueError:
            retry_after = None  # an HTTP date: use the backoff instead
    try:
        err = _ERROR.decode(resp.body)
        return ApiError(resp.status, err.error, err.message, list(err.errors), retry_after)
    except msgspec.ValidationError:
        text = resp.body.decode("utf-8", "replace").strip()[:200]
        return ApiError(resp.status, f"http_{resp.status}", text or "no details", None, retry_after)


class _Operations:
    """The REST operations, shared by both clients (``_call`` runs one)."""

    msgs: Messages

    def _call(self, op: _Op, args: tuple[str, ...] = (), body: bytes | None = None,
              query: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def _body(self, msg_type: str, body: Any, fields: dict[str, Any], id_field: str | None) -> bytes:
        """The JSON Body from a Struct, a dict, or keyword fields; an identifier field left
        out is given a fresh value here, once, so every retry carries the same one."""
        if body is None:
            if id_field is not None and id_field not in fields:
                fields[id_field] = new_id()
            body = self.msgs.request(msg_type)(**fields)
        elif fields:
            raise TypeError("give the Body as one object or as keyword fields, not both")
        elif isinstance(body, dict) and id_field is not None and id_field not in body:
            body = {id_field: new_id(), **body}
        return self.msgs.encode(body)

    # ---------------------------------------------------------------- orders
    def new_order(self, order: Any = None, /, **fields: Any) -> Answer[Accepted]:
        """NewOrderSingle (35=D): a generated ``NewOrderSingle`` Struct, a dict, or its
        fields as keywords (``DeliverToCompID`` names the broker). 202: persisted and sent."""
        return self._call(NEW_ORDER, body=self._body("D", order, fields, "ClOrdID"))

    def get_order(self, cl_ord_id: str) -> Answer[Order]:
        """The order's state, quantities and executions."""
        return self._call(GET_ORDER, (cl_ord_id,))

    def list_orders(self, *, status: str | None = None, symbol: str | None = None,
                    broker: str | None = None, since: str | int | None = None, limit: int | None = None,
                    cursor: str | None = None) -> Answer[OrderPage]:
        """A page of the client's orders, oldest first; ``OrderPage.next`` is the next page's
        ``cursor``. ``status``: a state name (``Filled``) or OrdStatus code; ``since``: ISO
        8601 time or epoch milliseconds."""
        query = {"status": status, "symbol": symbol, "broker": broker, "since": since, "limit": limit,
                 "cursor": cursor}
        return self._call(LIST_ORDERS, query=query)

    def replace_order(self, cl_ord_id: str, replace: Any = None, /, **fields: Any) -> Answer[Accepted]:
        """OrderCancelReplaceRequest (35=G): the new ``ClOrdID`` (made when left out) and the
        fields that change; the gateway takes the others from the order."""
        return self._call(REPLACE_ORDER, (cl_ord_id,), self._body("G", replace, fields, "ClOrdID"))

    def cancel_order(self, cl_ord_id: str, cancel_id: str | None = None) -> Answer[Order]:
        """OrderCancelRequest (35=F); ``cancel_id`` names the cancel request (ClOrdID of the F)."""
        body = self.msgs.encode({"ClOrdID": cancel_id}) if cancel_id is not None else b""
        return self._call(CANCEL_ORDER, (cl_ord_id,), body)

    def delete_order(self, cl_ord_id: str) -> Answer[Order]:
        """``DELETE /v1/orders/{ClOrdID}``: the same cancel as :meth:`cancel_order`."""
        return self._call(DELETE_ORDER, (cl_ord_id,))

    def order_trace(self, cl_ord_id: str) -> Answer[dict[str, Any]]:
        """The order's hop timestamps through the gateway (when it was traced)."""
        return self._call(ORDER_TRACE, (cl_ord_id,))

    # ---------------------------------------------------------------- order lists
    def new_order_list(self, order_list: Any = None, /, **fields: Any) -> Answer[Accepted]:
        """NewOrderList (35=E): ``ListID`` (made when left out) and ``NoOrders`` entries."""
        return self._call(NEW_LIST, body=self._body("E", order_list, fields, "ListID"))

    def get_order_list(self, list_id: str) -> Answer[OrderList]:
        return self._call(GET_LIST, (list_id,))

    def cancel_order_list(self, list_id: str, text: str | None = None) -> Answer[OrderList]:
        """ListCancelRequest (35=K) for every order of the list; ``text`` goes in its Text (58)."""
        body = self.msgs.encode({"Text": text}) if text is not None else b""
        return self._call(CANCEL_LIST, (list_id,), body)

    # ---------------------------------------------------------------- requests about orders
    def order_status(self, cl_ord_id: str) -> Answer[Order]:
        """OrderStatusRequest (35=H): the broker's ExecutionReport (ExecType I) comes on the
        stream and refreshes the order."""
        return self._call(ORDER_STATUS, (cl_ord_id,), b"")

    def mass_cancel(self, broker: str | None = None, *, Symbol: str | None = None,  # noqa: N803 - FIX names
                    Side: str | None = None, Account: str | None = None) -> Answer[dict[str, Any]]:  # noqa: N803
        """OrderMassCancelRequest (35=q) to ``broker``: the client's open orders there (of one
        Symbol, Side, Account when given); the OrderMassCancelReport (35=r) comes on the stream."""
        fields = {"broker": broker, "Symbol": Symbol, "Side": Side, "Account": Account}
        return self._call(MASS_CANCEL, body=self.msgs.encode({k: v for k, v in fields.items() if v is not None}))

    # ---------------------------------------------------------------- reference data, accounts
    def instruments(self, broker: str | None = None) -> Answer[dict[str, Any]]:
        """``{"instruments": [...]}``: code, name, market, tick size, base price, daily limits
        and session state, from the exchange through the broker (or the gateway's static file)."""
        return self._call(INSTRUMENTS, query={"broker": broker})

    def instrument(self, symbol: str, broker: str | None = None) -> Answer[dict[str, Any]]:
        return self._call(INSTRUMENT, (symbol,), query={"broker": broker})

    def positions(self, account: str, broker: str | None = None, symbol: str | None = None
                  ) -> Answer[dict[str, Any]]:
        """RequestForPositions (35=AN) through the broker: its RequestForPositionsAck and
        PositionReports as FIX-JSON. ``broker`` may be left out when the client has one."""
        return self._call(POSITIONS, (account,), query={"broker": broker, "symbol": symbol})

    def balance(self, account: str, broker: str | None = None) -> Answer[dict[str, Any]]:
        """CollateralInquiry (35=BB) through the broker: its CollateralReport as FIX-JSON
        (MarginExcess is the buying power)."""
        return self._call(BALANCE, (account,), query={"broker": broker})

    # ---------------------------------------------------------------- the gateway
    def brokers(self) -> Answer[list[Broker]]:
        """Routing targets allowed to this client, with their FIX session state."""
        return self._call(BROKERS)

    def health(self) -> Answer[dict[str, Any]]:
        return self._call(HEALTH)

    def ready(self) -> Answer[dict[str, Any]]:
        """``{"ready": bool, "sessions": [...]}`` (not an error while the gateway is not ready)."""
        return self._call(READY)

    def stream_info(self) -> Answer[dict[str, Any]]:
        return self._call(STREAM_INFO)


def _path(op: _Op, args: tuple[str, ...], query: dict[str, Any] | None) -> str:
    path = op.path.format(*(urllib.parse.quote(a, safe="") for a in args)) if args else op.path
    if query:
        items = [(k, str(v)) for k, v in query.items() if v is not None]
        if items:
            path += "?" + urllib.parse.urlencode(items)
    return path


def _env(value: str | None, name: str) -> str | None:
    return value if value is not None else (os.environ.get(name) or None)


class AsyncClient(_Operations):
    """The gateway API on asyncio: every operation is a coroutine.

    ``url`` (or ``FASTFIX_URL``) is the REST base, ``api_key`` (or ``FASTFIX_API_KEY``) the
    client's key, ``ws_url`` (or ``FASTFIX_WS_URL``) the stream's URL, asked of the gateway
    (``/stream-info``) when not given. ``on_retry(attempt, delay, error)`` sees each retry.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, ws_url: str | None = None,
                 begin_string: str = "FIX.4.4", timeout: float = 10.0, retry: RetryPolicy | None = None,
                 max_connections: int = 16, on_retry: Callable[[int, float, Exception], None] | None = None,
                 ssl: Any = None) -> None:
        self.url = _env(url, "FASTFIX_URL") or "http://127.0.0.1:8080"
        self.api_key = _env(api_key, "FASTFIX_API_KEY")
        self.ws_url = _env(ws_url, "FASTFIX_WS_URL")
        self.msgs = messages(begin_string)
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.ssl = ssl
        self._pool = HttpPool(self.url, max_connections, timeout, ssl)
        headers = [("accept", "application/json"), ("content-type", "application/json")]
        if self.api_key:
            headers.append(("x-api-key", self.api_key))
        self._headers = self._pool.headers(headers)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._pool.close()

    def _call(self, op: _Op, args: tuple[str, ...] = (), body: bytes | None = None,
              query: dict[str, Any] | None = None) -> Awaitable[Any]:
        return self._request(op, _path(op, args, query), body)

    async def _request(self, op: _Op, path: str, body: bytes | None) -> Any:
        policy = self.retry
        attempt = 0
        while True:
            try:
                resp = await self._pool.request(op.method, path, self._headers, body)
            except (NotSent, OSError, TimeoutError) as exc:
                error: Exception = exc
            else:
                if resp.status in op.ok:
                    answer = _decoder(op.answer).decode(resp.body) if resp.body else None
                    return answer.brokers if isinstance(answer, _Brokers) else answer
                error = _api_error(resp)
                if resp.status not in policy.statuses:
                    raise error
            attempt += 1
            if attempt > policy.retries:
                if isinstance(error, ApiError):
                    raise error
                raise TransportError(f"{op.method} {path}: {error or type(error).__name__} "
                                     f"(after {attempt} tries)") from error
            delay = policy.delay(attempt, error.retry_after if isinstance(error, ApiError) else None)
            if self.on_retry is not None:
                self.on_retry(attempt, delay, error)
            await asyncio.sleep(delay)

    async def stream_url(self) -> str:
        """The WebSocket stream's URL: ``ws_url``, else the port the gateway gives."""
        if self.ws_url:
            return self.ws_url
        info = await self.stream_info()
        scheme = "wss" if self.url.startswith("https") else "ws"
        host = self._pool.host if ":" not in self._pool.host else f"[{self._pool.host}]"
        self.ws_url = f"{scheme}://{host}:{info['port']}{info.get('path', '/v1/stream')}"
        return self.ws_url

    def stream(self, since: int | None = None, *, cursor_file: str | os.PathLike[str] | None = None,
               on_cursor: Callable[[int], None] | None = None, reconnect: bool = True,
               max_reconnect_delay: float = 5.0) -> Any:
        """The client's events (:class:`~fastfix.client.models.Event`), as an async iterator.

        ``since=N`` starts after event N (0: from the first of the day); the default is live
        only, or after the sequence number kept in ``cursor_file``. Each event handed out
        moves the cursor (written to ``cursor_file`` and given to ``on_cursor``); after a
        drop the stream reconnects by itself and resumes after the cursor, so no event is
        lost or handed out twice.
        """
        from fastfix.client.stream import EventStream

        return EventStream(self, since, cursor_file=cursor_file, on_cursor=on_cursor, reconnect=reconnect,
                           max_reconnect_delay=max_reconnect_delay)


class Client(_Operations):
    """The same API, blocking: each call runs on the client's own event loop.

    Not for use inside a running event loop (use :class:`AsyncClient` there).
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._async = AsyncClient(url, api_key, **kw)
        self.msgs = self._async.msgs

    @property
    def url(self) -> str:
        return self._async.url

    @property
    def api_key(self) -> str | None:
        return self._async.api_key

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._async.close())
            self._loop.close()

    def _call(self, op: _Op, args: tuple[str, ...] = (), body: bytes | None = None,
              query: dict[str, Any] | None = None) -> Any:
        return self._loop.run_until_complete(self._async._call(op, args, body, query))  # type: ignore[arg-type]

    def stream(self, since: int | None = None, **kw: Any) -> Iterator[Event]:
        """The events as a blocking iterator (see :meth:`AsyncClient.stream`)."""
        events = self._async.stream(since, **kw)
        try:
            while True:
                try:
                    yield self._loop.run_until_complete(events.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run_until_complete(events.aclose())
