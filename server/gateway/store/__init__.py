"""Gateway persistence: the interface, and the SQLite implementation.

The gateway talks to :class:`GatewayStore` only, so another database (e.g.
PostgreSQL) can follow without touching the order path. Writes are queued with
``put_*`` and become durable together at the next :meth:`GatewayStore.commit`
(group commit); reads see committed data.
"""

from __future__ import annotations

from server.gateway.store.base import EventRow, GatewayStore, OrderFilter, OrderList
from server.gateway.store.sqlite import SQLiteStore

__all__ = ["EventRow", "GatewayStore", "OrderFilter", "OrderList", "SQLiteStore"]
