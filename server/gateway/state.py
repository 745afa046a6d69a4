"""Order state in memory: open orders and lists, request aliases.

Every stage reads and changes orders through :class:`OrderState`. Open orders
live in memory; an order that reached a terminal state leaves memory once the
projection holds that state (reads then come from the database), so memory
holds what is open plus what the projection has not caught up with.

Identifiers here are the client's own (without the wire namespace).
"""

from __future__ import annotations

import collections

from server.gateway.orders import Order, OrderList
from server.gateway.projection import Projection

__all__ = ["OrderState", "list_done"]


def list_done(ol: OrderList) -> bool:
    """A list whose every order ended (ListOrderStatus 6, all done; 7, rejected)."""
    return ol.ListOrderStatus in ("6", "7") and ol.pending is None


class OrderState:
    """Orders, lists and aliases of every client, keyed by (client id, identifier)."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.orders: dict[tuple[str, str], Order] = {}
        self.lists: dict[tuple[str, str], OrderList] = {}
        self.aliases: dict[tuple[str, str], tuple[str, str]] = {}
        # (journal position holding the terminal state, is a list, key, updated_ns): dropped from
        # memory once that position is projected and the record has not changed since.
        self._closed: collections.deque[tuple[int, bool, tuple[str, str], int]] = collections.deque()

    def get_order(self, client_id: str, cl_ord_id: str) -> Order | None:
        key = (client_id, cl_ord_id)
        o = self.orders.get(key)
        if o is None:
            o = self.projection.get_order(client_id, cl_ord_id)  # no read for a ClOrdID never stored
            if o is not None and not o.terminal:
                self.orders[key] = o
        return o

    def remember(self, order: Order) -> None:
        self.orders[(order.client_id, order.ClOrdID)] = order

    def get_list(self, client_id: str, list_id: str) -> OrderList | None:
        key = (client_id, list_id)
        ol = self.lists.get(key)
        if ol is None:
            ol = self.projection.get_list(client_id, list_id)
            if ol is not None:
                self.lists[key] = ol
        return ol

    def remember_list(self, ol: OrderList) -> None:
        self.lists[(ol.client_id, ol.ListID)] = ol

    def get_alias(self, client_id: str, alias: str) -> tuple[str, str] | None:
        key = (client_id, alias)
        hit = self.aliases.get(key)
        if hit is None:
            hit = self.projection.get_alias(client_id, alias)
            if hit is not None:
                self.aliases[key] = hit
        return hit

    def add_alias(self, client_id: str, alias: str, target: str, kind: str) -> None:
        self.aliases[(client_id, alias)] = (target, kind)

    def closed(self, order: Order, position: int) -> None:
        """``order`` is terminal as of the journal record at ``position``."""
        self._closed.append((position, False, (order.client_id, order.ClOrdID), order.updated_ns))

    def closed_list(self, ol: OrderList, position: int) -> None:
        """``ol`` is done (all filled, cancelled or rejected) as of the record at ``position``."""
        self._closed.append((position, True, (ol.client_id, ol.ListID), ol.updated_ns))

    def evict_projected(self) -> None:
        """Drop terminal orders and done lists whose state the projection now holds (cheap when none)."""
        closed = self._closed
        if not closed:
            return
        applied = self.projection.applied
        while closed and closed[0][0] <= applied:
            _, is_list, key, stamp = closed.popleft()
            if is_list:
                ol = self.lists.get(key)
                if ol is not None and ol.updated_ns == stamp and list_done(ol):
                    del self.lists[key]
                continue
            o = self.orders.get(key)
            if o is not None and o.terminal and o.updated_ns == stamp:  # unchanged since
                del self.orders[key]
                for cancel_id in o.cancel_ids:  # read from the projection if needed again
                    self.aliases.pop((key[0], cancel_id), None)

    def load(self, orders: list[Order], lists: list[OrderList]) -> None:
        """What the projection holds as open (start-up)."""
        for o in orders:
            self.remember(o)
        for ol in lists:
            self.remember_list(ol)
