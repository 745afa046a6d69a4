"""Views: the JSON shapes of orders, lists and brokers in REST answers, and the reads.

Reads that must see the latest writes wait until the projection has applied the
journal up to now (a read waits; an order never does). Large reads run in a
reader thread, so the event loop keeps serving orders meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from server.gateway._intake import iso as _iso
from server.gateway.errors import ApiError
from server.gateway.orders import Order, OrderList
from server.gateway.projection import OrderFilter

if TYPE_CHECKING:
    from server.gateway.config import ClientConfig
    from server.gateway.state import OrderState

__all__ = ["Views", "list_view", "order_view"]

_json = msgspec.json.Encoder()
_order_dec = msgspec.msgpack.Decoder(Order)
# A query for more rows than this runs in the reader thread (a point read stays on the loop).
LARGE_READ = 100
# Waits for the projection while reports keep coming during one (then the answer is as of the last).
DETAIL_TRIES = 5


def order_view(o: Order, executions: list[Any] | None = None) -> dict[str, Any]:
    """The JSON shape of an order in REST answers (FIX-JSON names, string values)."""
    out: dict[str, Any] = {
        "ClOrdID": o.ClOrdID,
        "state": o.state,
        "OrdStatus": o.OrdStatus,
        "broker": o.broker,
        "Symbol": o.Symbol,
        "Side": o.Side,
        "OrdType": o.OrdType,
        "OrderQty": o.OrderQty,
        "CumQty": o.CumQty,
        "LeavesQty": o.LeavesQty,
        "AvgPx": o.AvgPx,
        "created": _iso(o.created_ns),
        "updated": _iso(o.updated_ns),
    }
    for key in ("Price", "Account", "ListID", "OrigClOrdID", "ReplacedBy", "OrderID", "Text", "pending"):
        value = getattr(o, key)
        if value is not None:
            out[key] = value
    for key, value in o.carried:
        if key in ("TimeInForce", "ExecInst"):
            out[key] = value
    if executions is not None:
        out["executions"] = [msgspec.structs.asdict(e) for e in executions]
        for e in out["executions"]:
            e["received"] = _iso(e.pop("received_ns"))
            if not e.get("stale"):
                e.pop("stale", None)
            for k in [k for k, v in e.items() if v is None]:
                del e[k]
    return out


def list_view(ol: OrderList, state: OrderState) -> dict[str, Any]:
    out: dict[str, Any] = {"ListID": ol.ListID, "broker": ol.broker, "created": _iso(ol.created_ns),
                           "updated": _iso(ol.updated_ns)}
    for key in ("ListStatusType", "ListOrderStatus", "Text", "pending"):
        value = getattr(ol, key)
        if value is not None:
            out[key] = value
    orders = []
    for cl in ol.members:
        o = state.get_order(ol.client_id, cl)
        if o is not None:
            orders.append(order_view(o))
    out["orders"] = orders
    return out



class Views:
    """The read side of the REST API."""

    def __init__(self, state: OrderState) -> None:
        self.state = state
        self.projection = state.projection

    async def order_detail(self, client: ClientConfig, cl: str) -> bytes:
        # Its executions are read from the projection, its state from memory: a report applied
        # while this waited is waited for too, so the two agree.
        for _ in range(DETAIL_TRIES):
            target = self.projection.position()
            await self.projection.wait_applied(target)
            if self.projection.position() == target:
                break
        o = self.state.get_order(client.id, cl)
        if o is None:
            raise ApiError(404, "not_found", f"no order {cl}")
        return _json.encode(order_view(o, self.projection.executions(client.id, cl)))

    def list_detail(self, client: ClientConfig, list_id: str) -> bytes:
        ol = self.state.get_list(client.id, list_id)
        if ol is None:
            raise ApiError(404, "not_found", f"no order list {list_id}")
        return _json.encode(list_view(ol, self.state))

    async def search_orders(self, client: ClientConfig, flt: OrderFilter) -> list[Order]:
        await self.projection.wait_applied()
        if flt.limit > LARGE_READ:
            found = await self.projection.in_thread(
                lambda conn: self.projection.list_orders(client.id, flt, conn))
        else:
            found = self.projection.list_orders(client.id, flt)
        # The in-memory copy may be newer than the projection.
        orders = self.state.orders
        return [orders.get((o.client_id, o.ClOrdID), o) for o in found]

