"""The filter of an explicit stream subscription (``server.gateway.ws.EventFilter``): each
event of the client is matched once per filtered subscription before it is pushed. One
round matches one ExecutionReport event (about 400 bytes) against a filter of two keys;
``no_filter`` is the same call for a subscription without a filter (no decoding)."""

from __future__ import annotations

from typing import Any

import msgspec

from server.gateway.ws import EventFilter

EVENT = msgspec.json.encode({"type": "message", "seq": 7, "ts": "2026-11-26T09:00:00.000000Z", "message": {
    "Header": {"MsgType": "8", "SendingTime": "20261126-09:00:00.000", "OnBehalfOfCompID": "KIWOOM"},
    "Body": {"OrderID": "O1", "ClOrdID": "o-1", "ExecID": "X1", "ExecType": "0", "OrdStatus": "0",
             "Account": "ALPHA-01", "Symbol": "005930", "Side": "1", "OrderQty": "10", "OrdType": "2",
             "Price": "70000", "LeavesQty": "10", "CumQty": "0", "AvgPx": "0",
             "TransactTime": "20261126-09:00:00.000"}}})


def test_filter_two_keys(benchmark: Any) -> None:
    flt = EventFilter.parse({"Account": "ALPHA-01", "MsgType": ["8", "9"]})
    assert isinstance(flt, EventFilter)
    assert benchmark(flt.matches, EVENT) is True


def test_no_filter(benchmark: Any) -> None:
    flt = EventFilter.parse(None)
    assert isinstance(flt, EventFilter)
    assert benchmark(flt.matches, EVENT) is True
