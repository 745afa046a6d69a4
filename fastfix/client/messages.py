"""Typed messages of the gateway API, generated from the FIX data dictionary.

Each request Body (NewOrderSingle, OrderCancelReplaceRequest, NewOrderList...) and each
pushed report (ExecutionReport, OrderCancelReject, ListStatus, BusinessMessageReject) is a
:class:`msgspec.Struct` built with :func:`msgspec.defstruct` from the message definition of
the dictionary, the same definitions the gateway validates with and publishes as JSON Schema
in its OpenAPI document: the shapes are never written by hand.

FIX-JSON conventions: field names as in the dictionary, values as strings (the gateway also
takes JSON numbers for numeric fields), repeating groups as arrays under their NumInGroup
name. Fields left ``None`` are not sent.

    >>> from fastfix.client.messages import messages
    >>> m = messages("FIX.4.4")
    >>> order = m.NewOrderSingle(ClOrdID="o-1", Symbol="005930", Side="1", OrdType="2",
    ...                          OrderQty="10", Price="70000")
    >>> m.encode(order)
    b'{"ClOrdID":"o-1","Symbol":"005930","Side":"1","OrderQty":"10","OrdType":"2","Price":"70000"}'
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from fastfix.dictionary import DataDictionary, Member

__all__ = ["Messages", "messages", "REQUESTS", "REPORTS", "GATEWAY_FILLED", "ROUTING_FIELD"]

# Bodies the REST API accepts, by MsgType.
REQUESTS = ("D", "E", "G", "F", "K")
# Messages pushed on the WebSocket stream, by MsgType.
REPORTS = ("8", "9", "N", "j", "3", "r", "h")
# Required by the dictionary but filled by the gateway when absent (so optional in requests).
GATEWAY_FILLED: dict[str, frozenset[str]] = {
    "D": frozenset({"TransactTime", "HandlInst"}),
    "E": frozenset({"TransactTime", "HandlInst", "TotNoOrders", "BidType"}),
}
# A replace names its new ClOrdID; every other field is taken from the order when absent.
_ONLY_REQUIRED: dict[str, frozenset[str]] = {"G": frozenset({"ClOrdID"}), "F": frozenset(),
                                             "K": frozenset()}
# The broker to route to: a Body field of new orders and lists (a header field in FIX).
ROUTING_FIELD = "DeliverToCompID"
_ROUTED = frozenset({"D", "E"})


class Messages:
    """The message Structs of one FIX version (attributes named after the messages).

    ``requests`` and ``reports`` map MsgType to Struct type; :meth:`decode_body` reads the
    Body of a pushed message by its MsgType.
    """

    def __init__(self, begin_string: str) -> None:
        self.dictionary = dd = DataDictionary.load(begin_string)
        self.begin_string = dd.begin_string
        self.requests: dict[str, type[msgspec.Struct]] = {}
        self.reports: dict[str, type[msgspec.Struct]] = {}
        self.entries: dict[str, type[msgspec.Struct]] = {}  # "NewOrderList.NoOrders" -> entry Struct
        for t in REQUESTS:
            self.requests[t] = self._struct(t, request=True)
        for t in REPORTS:
            if t in dd.messages:  # FIX 4.2 has no OrderMassCancelReport
                self.reports[t] = self._struct(t, request=False)
        self.Header = self._object("Header", dd.header.members, required=frozenset(), top=False)
        for cls in (*self.requests.values(), *self.reports.values()):
            setattr(self, cls.__name__, cls)
        self._body_decoders = {t: msgspec.json.Decoder(cls) for t, cls in self.reports.items()}
        self._header_decoder = msgspec.json.Decoder(self.Header)
        self._encoder = msgspec.json.Encoder()

    def _struct(self, msg_type: str, request: bool) -> type[msgspec.Struct]:
        mdef = self.dictionary.message(msg_type)
        fields = self.dictionary.fields
        if not request:
            required: frozenset[str] = frozenset()  # reports are read leniently
        elif msg_type in _ONLY_REQUIRED:
            required = _ONLY_REQUIRED[msg_type]
        else:
            required = frozenset(fields[m.tag].name for m in mdef.members if m.required) - GATEWAY_FILLED.get(
                msg_type, frozenset())
        extra = [(ROUTING_FIELD, str | None, None)] if request and msg_type in _ROUTED else []
        return self._object(mdef.name, mdef.members, required, top=True, extra=extra,
                            doc=f"Body of {mdef.name} (MsgType {msg_type}), from the {self.begin_string} dictionary.")

    def _object(self, name: str, members: tuple[Member, ...], required: frozenset[str], top: bool,
                extra: list[tuple[str, Any, Any]] | None = None, doc: str | None = None) -> type[msgspec.Struct]:
        fields = self.dictionary.fields
        spec: list[Any] = []
        for m in members:
            f = fields[m.tag]
            if m.group is not None:
                # Group entries: every field optional, the gateway lists what is missing.
                entry = self._object(f"{name}_{f.name}", m.group.members, frozenset(), top=False,
                                     doc=f"One entry of the {f.name} ({f.tag}) group.")
                self.entries[f"{name.replace('_', '.')}.{f.name}"] = entry
                tp: Any = list[entry]  # type: ignore[valid-type]
            else:
                tp = str
            if f.name in required:
                spec.append((f.name, tp))
            else:
                spec.append((f.name, tp | None, None))
        spec += extra or []
        cls = msgspec.defstruct(name, spec, kw_only=True, omit_defaults=True, module=__name__)
        cls.__doc__ = doc or f"{name} fields, from the {self.begin_string} dictionary."
        return cls

    def request(self, msg_type: str) -> type[msgspec.Struct]:
        """The Struct of a request Body by MsgType (``"D"``) or name (``"NewOrderSingle"``)."""
        return self.requests[self.dictionary.message(msg_type).msg_type]

    def entry(self, message: str, group: str) -> type[msgspec.Struct]:
        """The Struct of one entry of a repeating group: ``entry("NewOrderList", "NoOrders")``."""
        return self.entries[f"{message}.{group}"]

    def encode(self, body: Any) -> bytes:
        """JSON of a request Body (a Struct or a plain dict)."""
        return self._encoder.encode(body)

    def decode_header(self, raw: bytes) -> Any:
        return self._header_decoder.decode(raw)

    def decode_body(self, msg_type: str, raw: bytes) -> Any:
        """The Body of a pushed message as its Struct; a dict for a MsgType not listed in
        :data:`REPORTS` (the stream may carry more types in later gateway versions)."""
        dec = self._body_decoders.get(msg_type)
        return dec.decode(raw) if dec is not None else msgspec.json.decode(raw)


@functools.cache
def messages(begin_string: str = "FIX.4.4") -> Messages:
    """The generated Structs of one FIX version (built once per process)."""
    return Messages(begin_string)
