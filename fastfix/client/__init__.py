"""Python SDK of the fastfix order gateway: REST calls and the event stream.

    from fastfix.client import Client

    with Client("http://127.0.0.1:8080", api_key="demo-alpha-key") as c:
        accepted = c.new_order(DeliverToCompID="KIWOOM", Symbol="005930", Side="1", OrdType="2",
                               OrderQty="10", Price="70000")
        print(c.get_order(accepted.ClOrdID).state)

:class:`AsyncClient` is the same API for asyncio (``await c.new_order(...)``,
``async for event in c.stream(since=0)``). Request and event types are generated from the
FIX data dictionary (:mod:`fastfix.client.messages`). Depends only on the fastfix library,
msgspec and picows (for the stream).
"""

from fastfix.client.client import AsyncClient, Client, RetryPolicy, new_id
from fastfix.client.messages import Messages, messages
from fastfix.client.models import (
    Accepted,
    ApiError,
    Broker,
    Event,
    Execution,
    FieldProblem,
    Order,
    OrderList,
    OrderPage,
    StreamError,
    TransportError,
)
from fastfix.client.stream import EventStream, FileCursor

__all__ = [
    "Accepted", "ApiError", "AsyncClient", "Broker", "Client", "Event", "EventStream", "Execution",
    "FieldProblem", "FileCursor", "Messages", "Order", "OrderList", "OrderPage", "RetryPolicy",
    "StreamError", "TransportError", "messages", "new_id",
]
