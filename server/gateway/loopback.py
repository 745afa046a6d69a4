"""The loopback link: an in-process broker simulator behind the hub (no network).

It acknowledges orders and cancels or replaces them, fills market orders at once
and leaves limit orders resting, answering on a later loop pass as a counterparty
would. For demos (``link = "loopback"``) and for tests of the REST/WS side.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from server.gateway.link import Link, LinkDown, SessionState

__all__ = ["LoopbackLink", "body_fields"]



class _SimOrder:
    __slots__ = ("f", "cum", "order_id")

    def __init__(self, f: dict[int, str], order_id: str) -> None:
        self.f = f
        self.cum = 0
        self.order_id = order_id

    @property
    def qty(self) -> int:
        try:
            return int(Decimal(self.f.get(38, "0") or "0"))
        except ArithmeticError:
            return 0


class LoopbackLink(Link):
    """In-process broker simulator behind the hub (no FIX connection).

    Behaviour, per message type: D and list members are acknowledged
    (PendingNew, then New); market orders (OrdType 1) are then filled in two
    executions at 70000; a limit order whose Price ends in 1 (e.g. 70001) is
    rejected, so demos can show a reject; other limit orders rest. F cancels,
    G replaces, K cancels every member of a list. Reports carry
    OnBehalfOfCompID = the broker, as a hub delivers them.
    """

    FILL_PRICE = "70000"

    def __init__(self, begin_string: str = "FIX.4.4", name: str = "LOOPBACK",
                 sender: str = "GATEWAY", target: str = "HUB") -> None:
        super().__init__()
        self._begin = begin_string
        self._name = name
        self._sender, self._target = sender, target
        self._up = False
        self._ids = itertools.count(1)
        self._orders: dict[str, _SimOrder] = {}  # wire ClOrdID -> order
        self._lists: dict[str, list[str]] = {}

    @property
    def begin_string(self) -> str:
        return self._begin

    async def start(self) -> None:
        self._up = True
        self.on_state(self._name, True)

    async def stop(self) -> None:
        self._up = False
        self.on_state(self._name, False)

    def set_up(self, up: bool) -> None:
        """Simulate the session dropping or coming back."""
        self._up = up
        self.on_state(self._name, up)

    def sessions(self) -> list[SessionState]:
        return [SessionState(name=self._name, begin_string=self._begin, sender_comp_id=self._sender,
                             target_comp_id=self._target, logged_on=self._up,
                             state="logged_on" if self._up else "disconnected")]

    async def send(self, session: str, msg_type: str, fields: Sequence[tuple[int, Any]]) -> None:
        if not self._up:
            raise LinkDown(session)
        self._accept(msg_type, fields)

    def send_bodies(self, session: str, messages: Sequence[tuple[str, bytes, Sequence[tuple[int, Any]]]]) -> None:
        if not self._up:
            raise LinkDown(session)
        for msg_type, body, header in messages:
            self._accept(msg_type, list(header) + body_fields(self._begin, msg_type, body))

    def _accept(self, msg_type: str, fields: Sequence[tuple[int, Any]]) -> None:
        f: dict[int, str] = {}
        entries: list[dict[int, str]] = []
        in_group = False
        for tag, v in fields:  # flat wire order; NoOrders (73) entries start at ClOrdID (11)
            if tag == 73:
                in_group = True
                continue
            if in_group and tag == 11:
                entries.append({})
            (entries[-1] if in_group and entries else f)[tag] = _text(v)
        # Answer on a later loop iteration, as a real counterparty would.
        asyncio.get_running_loop().call_soon(self._answer, msg_type, f, entries)

    # simulation -------------------------------------------------------------------
    def _answer(self, msg_type: str, f: dict[int, str], entries: list[dict[int, str]]) -> None:
        if not self._up:
            return
        broker = f.get(128, "")
        if msg_type == "D":
            self._new(f)
        elif msg_type == "E":
            list_id = f.get(66, "")
            self._emit("N", [(115, broker), (66, list_id), (429, "1"), (82, "0"), (431, "3"), (83, "1"), (68, len(entries)),
                             (73, [[(11, e.get(11, "")), (14, "0"), (39, "A"), (151, e.get(38, "0")),
                                    (84, "0"), (6, "0")] for e in entries])])
            for e in entries:
                e[128] = broker
                e[66] = list_id
                self._new(e)
            self._lists[list_id] = [e.get(11, "") for e in entries]
        elif msg_type == "F":
            self._cancel(f.get(41, ""), f.get(11, ""), broker)
        elif msg_type == "G":
            self._replace(f)
        elif msg_type == "K":
            list_id = f.get(66, "")
            for cl in self._lists.get(list_id, []):
                self._cancel(cl, cl, broker)
            self._emit("N", [(115, broker), (66, list_id), (429, "5"), (82, "0"), (431, "6"), (83, "1"), (68, len(self._lists.get(list_id, []))),
                             (73, [])])
        self.on_read_end()  # the answers of one request arrive together, as one read would bring them

    def _er(self, o: _SimOrder, exec_type: str, status: str, leaves: int, last_qty: int = 0,
            cl: str | None = None, orig: str | None = None, text: str | None = None) -> None:
        f = o.f
        if self._begin == "FIX.4.2" and exec_type == "F":
            exec_type = "2" if leaves == 0 else "1"
        fields: list[tuple[int, Any]] = [(115, f.get(128, "")), (37, o.order_id), (11, cl or f.get(11, ""))]
        if orig:
            fields.append((41, orig))
        fields.append((17, f"E{next(self._ids)}"))
        if self._begin == "FIX.4.2":
            fields.append((20, "0"))
        fields += [(150, exec_type), (39, status)]
        if f.get(1):
            fields.append((1, f[1]))
        fields += [(55, f.get(55, "")), (54, f.get(54, "1")), (38, f.get(38, "0")), (40, f.get(40, "2"))]
        if f.get(44):
            fields.append((44, f[44]))
        if f.get(66):
            fields.append((66, f[66]))
        if last_qty:
            fields += [(32, str(last_qty)), (31, self.FILL_PRICE if f.get(40) == "1" else f.get(44, "0"))]
        avg = (self.FILL_PRICE if f.get(40) == "1" else f.get(44, "0")) if o.cum else "0"
        fields += [(151, str(leaves)), (14, str(o.cum)), (6, avg), (60, datetime.now(UTC))]
        if text:
            fields.append((58, text))
        self._emit("8", fields)

    def _new(self, f: dict[int, str]) -> None:
        o = _SimOrder(f, f"LB{next(self._ids)}")
        self._orders[f.get(11, "")] = o
        qty = o.qty
        self._er(o, "A", "A", qty)
        if f.get(40) == "2" and f.get(44, "").endswith("1"):
            o.cum = qty  # closed
            self._er(o, "8", "8", 0, text="price rejected by the simulator")
            o.cum = 0
            self._orders.pop(f.get(11, ""), None)
            return
        self._er(o, "0", "0", qty)
        if f.get(40) == "1" and qty > 0:
            first = qty // 2 or qty
            o.cum = first
            self._er(o, "F", "1" if first < qty else "2", qty - first, first)
            if first < qty:
                o.cum = qty
                self._er(o, "F", "2", 0, qty - first)

    def _cancel(self, orig: str, cl: str, broker: str) -> None:
        o = self._orders.get(orig)
        if o is None or o.cum >= o.qty:
            self._emit("9", [(115, broker), (37, "NONE" if o is None else o.order_id), (11, cl), (41, orig),
                             (39, "8" if o is None else "2"), (434, "1"), (102, "1" if o is None else "0"),
                             (58, "unknown order" if o is None else "too late to cancel")])
            return
        self._er(o, "6", "6", o.qty - o.cum, cl=cl, orig=orig)
        self._er(o, "4", "4", 0, cl=cl, orig=orig)
        self._orders.pop(orig, None)

    def _replace(self, f: dict[int, str]) -> None:
        orig, cl = f.get(41, ""), f.get(11, "")
        o = self._orders.get(orig)
        if o is None or o.cum >= o.qty:
            self._emit("9", [(115, f.get(128, "")), (37, "NONE"), (11, cl), (41, orig), (39, "8"),
                             (434, "2"), (102, "1"), (58, "unknown order")])
            return
        nf = dict(o.f)
        nf.update({k: v for k, v in f.items() if k in (11, 38, 44, 40, 54, 55, 1)})
        new = _SimOrder(nf, o.order_id)
        new.cum = o.cum
        self._orders[cl] = new
        self._orders.pop(orig, None)
        self._er(new, "E", "E", new.qty - new.cum, cl=cl, orig=orig)
        self._er(new, "5", "1" if new.cum else "0", new.qty - new.cum, cl=cl, orig=orig)

    def _emit(self, msg_type: str, fields: list[tuple[int, Any]]) -> None:
        from fastfix.codec import encode, parse

        header: list[tuple[int, Any]] = [(49, self._target), (56, self._sender), (34, next(self._ids)),
                                         (52, datetime.now(UTC))]
        self.on_message(parse(encode(self._begin, msg_type, header + fields)), self._name)


def body_fields(begin_string: str, msg_type: str, body: bytes) -> list[tuple[int, bytes]]:
    """The fields of an encoded message body (framed and parsed by the codec)."""
    from fastfix.codec import checksum, parse

    payload = b"35=" + msg_type.encode() + b"\x01" + body
    raw = b"8=" + begin_string.encode() + b"\x019=%d\x01" % len(payload) + payload
    return parse(raw + b"10=%03d\x01" % checksum(raw)).fields()[3:-1]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list):
        return ""
    return str(value)
