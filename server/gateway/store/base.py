"""The persistence interface of the gateway."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from server.gateway.orders import Execution, Order

__all__ = ["EventRow", "GatewayStore", "OrderFilter", "OrderList"]


class OrderList(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False, array_like=True):
    """A NewOrderList (35=E) as the gateway tracks it (stored as an array, like Order: new
    fields go at the end)."""

    client_id: str
    ListID: str
    broker: str
    members: list[str] = []  # ClOrdIDs in list order
    ListStatusType: str | None = None  # last ListStatus (35=N) values
    ListOrderStatus: str | None = None
    Text: str | None = None
    pending: str | None = None  # "cancel" while a ListCancelRequest is in flight
    cancel_ids: tuple[str, ...] = ()  # a tuple: not tracked by the garbage collector
    created_ns: int = 0
    updated_ns: int = 0
    body_hash: str = ""
    fix_body: bytes | None = None  # the NewOrderList body as sent, until its first ListStatus/report
    cancel_body: bytes | None = None  # the ListCancelRequest as sent while a cancel is pending


class EventRow(msgspec.Struct, array_like=True):
    """One pushed message in a client's event log: sequence number and envelope JSON."""

    seq: int
    data: bytes


class OrderFilter(msgspec.Struct, kw_only=True):
    """GET /v1/orders query; ``after`` is the paging cursor (created_ns, Order.num of the last order seen)."""

    status: str | None = None  # OrdStatus code
    symbol: str | None = None
    broker: str | None = None
    since_ns: int | None = None
    after: tuple[int, int] | None = None
    limit: int = 100


class GatewayStore(ABC):
    """Durable state: orders, executions, order lists, per-client event logs, aliases."""

    # writes (queued; durable at the next commit) ---------------------------------
    @abstractmethod
    def put_order(self, order: Order) -> None: ...

    @abstractmethod
    def put_execution(self, order: Order, execution: Execution) -> None:
        """An execution of ``order`` (already stored or queued); a repeated ExecID is kept once."""

    @abstractmethod
    def put_list(self, order_list: OrderList) -> None: ...

    @abstractmethod
    def put_event(self, client_id: str, seq: int, data: bytes, now_ns: int) -> None: ...

    @abstractmethod
    def put_alias(self, client_id: str, alias: str, target: str, kind: str) -> None:
        """A request id (cancel ClOrdID) that refers to an order or list id."""

    def put_resume_point(self, session: str, mark: str) -> None:
        """The link's mark of the last inbound message of ``session`` (committed with its effects)."""
        return None  # stores without durable state have nothing to resume from

    def resume_points(self) -> dict[str, str]:
        """Committed resume points per session (see :meth:`put_resume_point`)."""
        return {}

    @abstractmethod
    async def commit(self) -> None:
        """Wait until everything queued so far is durable (shared by concurrent callers)."""

    def after_commit(self, fn: Callable[[list[Any]], None], item: Any) -> None:
        """Call ``fn(items)`` once the writes queued so far are durable, before :meth:`commit`
        returns to its waiters; ``items`` gathers every ``item`` given with the same ``fn``
        for one commit (the gateway hands a whole commit's orders to FIX in one write)."""
        raise NotImplementedError

    # reads (committed data) ---------------------------------------------------------
    @abstractmethod
    def get_order(self, client_id: str, cl_ord_id: str) -> Order | None: ...

    @abstractmethod
    def list_orders(self, client_id: str, flt: OrderFilter) -> list[Order]: ...

    @abstractmethod
    def executions(self, client_id: str, cl_ord_id: str) -> list[Execution]: ...

    @abstractmethod
    def get_list(self, client_id: str, list_id: str) -> OrderList | None: ...

    @abstractmethod
    def events_since(self, client_id: str, seq: int, limit: int) -> list[EventRow]: ...

    @abstractmethod
    def last_seqs(self) -> dict[str, int]:
        """Highest event sequence number per client."""

    @abstractmethod
    def open_orders(self) -> Iterable[Order]:
        """Orders not in a terminal state (loaded at start-up to keep matching reports)."""

    @abstractmethod
    def open_lists(self) -> Iterable[OrderList]: ...

    @abstractmethod
    def get_alias(self, client_id: str, alias: str) -> tuple[str, str] | None:
        """(target, kind) of a request id, or None."""

    @abstractmethod
    def start(self) -> None:
        """Open the database; called on the event loop that will await commits."""

    @abstractmethod
    async def close(self) -> None: ...
