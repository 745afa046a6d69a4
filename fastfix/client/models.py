"""Answers of the REST API, stream events, and the error raised for a refused request.

The answer types are the gateway's own views (an order with its quantities and executions,
an accepted request, a list, a broker), not FIX messages; their property names are the ones
the OpenAPI document gives (a test holds the two together). Unknown properties are ignored,
so a newer gateway that adds one does not break an older client.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Accepted", "ApiError", "Broker", "Event", "Execution", "FieldProblem", "Order", "OrderList",
           "OrderPage", "Session", "StreamError", "TransportError"]


class FieldProblem(msgspec.Struct, omit_defaults=True, frozen=True):
    """One thing wrong with a request: the FIX field, why, and where in the JSON body."""

    field: str
    reason: str
    path: str = ""


class Execution(msgspec.Struct, omit_defaults=True):
    """One ExecutionReport applied to an order (as ``GET /v1/orders/{ClOrdID}`` lists them)."""

    ExecID: str | None = None
    ExecType: str | None = None
    OrdStatus: str | None = None
    LastQty: str | None = None
    LastPx: str | None = None
    CumQty: str | None = None
    LeavesQty: str | None = None
    AvgPx: str | None = None
    TransactTime: str | None = None
    Text: str | None = None
    received: str | None = None
    stale: bool = False


class Order(msgspec.Struct, omit_defaults=True):
    """An order as the gateway knows it (FIX-JSON names, string values)."""

    ClOrdID: str
    state: str
    OrdStatus: str
    broker: str
    Symbol: str | None = None
    Side: str | None = None
    OrdType: str | None = None
    OrderQty: str | None = None
    Price: str | None = None
    Account: str | None = None
    CumQty: str | None = None
    LeavesQty: str | None = None
    AvgPx: str | None = None
    ListID: str | None = None
    OrigClOrdID: str | None = None
    ReplacedBy: str | None = None
    OrderID: str | None = None
    Text: str | None = None
    pending: str | None = None
    created: str | None = None
    updated: str | None = None
    executions: list[Execution] | None = None
    TimeInForce: str | None = None
    ExecInst: str | None = None
    OrdStatusReqID: str | None = None  # the answer of an order status request


class Accepted(msgspec.Struct, omit_defaults=True):
    """The 202 answer of a new order, replace or list: persisted and handed to FIX."""

    state: str
    ClOrdID: str | None = None
    ListID: str | None = None
    OrigClOrdID: str | None = None
    OrdStatus: str | None = None
    broker: str | None = None
    created: str | None = None
    orders: list[dict[str, Any]] | None = None


class OrderPage(msgspec.Struct):
    """A page of ``GET /v1/orders``; ``next`` is the cursor of the following page."""

    orders: list[Order]
    next: str | None = None


class OrderList(msgspec.Struct, omit_defaults=True):
    """An order list (NewOrderList) and its orders."""

    ListID: str
    broker: str | None = None
    created: str | None = None
    updated: str | None = None
    ListStatusType: str | None = None
    ListOrderStatus: str | None = None
    Text: str | None = None
    pending: str | None = None
    orders: list[Order] = []


class Session(msgspec.Struct, omit_defaults=True):
    """State of the FIX session a broker is reached through."""

    name: str
    logged_on: bool = False


class Broker(msgspec.Struct, omit_defaults=True):
    """A routing target allowed to the client (``DeliverToCompID``)."""

    id: str
    name: str | None = None
    DeliverToCompID: str | None = None
    tick_size: str | None = None
    session: Session | None = None


class Event(msgspec.Struct):
    """One message pushed on the stream: its per-client ``seq``, time, MsgType and the
    decoded Header and Body (generated Structs, see :mod:`fastfix.client.messages`)."""

    seq: int
    ts: str
    msg_type: str
    header: Any
    body: Any

    @property
    def name(self) -> str:
        """The message name (``ExecutionReport``...)."""
        return type(self.body).__name__ if not isinstance(self.body, dict) else self.msg_type


class ApiError(Exception):
    """A request the gateway refused: HTTP ``status``, the API's error ``code``, its
    ``message``, every per-field problem in ``errors``, and ``retry_after`` (seconds) when
    the gateway gave one."""

    def __init__(self, status: int, code: str, message: str, errors: list[FieldProblem] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = f"{self.status} {self.code}: {self.message}"
        for e in self.errors:
            text += f"\n  {e.path or e.field}: {e.reason}"
        return text


class TransportError(Exception):
    """The gateway could not be reached, or closed the connection, after every retry."""


class StreamError(Exception):
    """The stream was refused for good (bad key, bad cursor): reconnecting would not help."""
