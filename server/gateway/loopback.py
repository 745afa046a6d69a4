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
    __slots__ = ("f", "cum", "order_id", "status")

    def __init__(self, f: dict[int, str], order_id: str) -> None:
        self.f = f
        self.cum = 0
        self.order_id = order_id
        self.status = "A"  # OrdStatus as last reported

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
        self._orders: dict[str, _SimOrder] = {}  # wire ClOrdID -> open order
        self._closed: dict[str, _SimOrder] = {}  # wire ClOrdID -> filled, cancelled, replaced
        self._lists: dict[str, list[str]] = {}
        self._out_seq = 0  # MsgSeqNum the messages sent would have had
        self._sent: dict[int, tuple[str, bytes, Sequence[tuple[int, Any]]]] = {}
        #: Message types not answered (tests: an order left PendingNew, a refused request).
        self.silent: set[str] = set()

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
            self._out_seq += 1
            self._sent[self._out_seq] = (msg_type, body, header)
            if len(self._sent) > 10000:  # bounded: the oldest is forgotten
                del self._sent[next(iter(self._sent))]
            if msg_type not in self.silent:
                self._accept(msg_type, list(header) + body_fields(self._begin, msg_type, body))

    @property
    def last_seq_num(self) -> int:
        """MsgSeqNum of the last message sent."""
        return self._out_seq

    def sent_message(self, session: str, seq_num: int) -> Any:
        from fastfix.codec import encode, parse

        item = self._sent.get(seq_num)
        if item is None:
            return None
        msg_type, body, header = item
        fields = [(49, self._sender), (56, self._target), (34, seq_num), (52, datetime.now(UTC)), *header]
        return parse(encode(self._begin, msg_type, fields + body_fields(self._begin, msg_type, body)))

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
        elif msg_type == "H":
            self._status(f)
        elif msg_type == "q":
            self._mass_cancel(f)
        elif msg_type in ("AN", "BB", "x"):
            self._inquiry(msg_type, f)
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
        o.status = status
        if self._begin == "FIX.4.2" and exec_type == "F":
            exec_type = "2" if leaves == 0 else "1"
        fields: list[tuple[int, Any]] = [(115, f.get(128, "")), (37, o.order_id), (11, cl or f.get(11, ""))]
        if orig:
            fields.append((41, orig))
        fields.append((17, f"E{next(self._ids)}"))
        if self._begin == "FIX.4.2":
            fields.append((20, "3" if exec_type == "I" else "0"))
            if exec_type == "I":
                exec_type = status  # FIX 4.2 has no ExecType I: a status report restates the status
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

    def _close(self, cl: str) -> None:
        o = self._orders.pop(cl, None)
        if o is not None:
            self._closed[cl] = o
            if len(self._closed) > 10000:  # bounded: the oldest is forgotten
                del self._closed[next(iter(self._closed))]

    def _new(self, f: dict[int, str]) -> None:
        o = _SimOrder(f, f"LB{next(self._ids)}")
        self._orders[f.get(11, "")] = o
        qty = o.qty
        self._er(o, "A", "A", qty)
        if f.get(40) == "2" and f.get(44, "").endswith("1"):
            o.cum = qty  # closed
            self._er(o, "8", "8", 0, text="price rejected by the simulator")
            o.cum = 0
            self._close(f.get(11, ""))
            return
        self._er(o, "0", "0", qty)
        if f.get(40) == "1" and qty > 0:
            first = qty // 2 or qty
            o.cum = first
            self._er(o, "F", "1" if first < qty else "2", qty - first, first)
            if first < qty:
                o.cum = qty
                self._er(o, "F", "2", 0, qty - first)
            self._close(f.get(11, ""))

    def _refuse(self, orig: str, cl: str, broker: str, response_to: str) -> None:
        """OrderCancelReject: the order's own OrderID and OrdStatus when it is known (filled,
        cancelled...), NONE and 8 (Rejected) with reason 1 (unknown order) when it is not."""
        o = self._orders.get(orig) or self._closed.get(orig)
        self._emit("9", [(115, broker), (37, "NONE" if o is None else o.order_id), (11, cl), (41, orig),
                         (39, "8" if o is None else o.status), (434, response_to),
                         (102, "1" if o is None else "0"),
                         (58, "unknown order" if o is None else "too late to cancel")])

    def _cancel(self, orig: str, cl: str, broker: str) -> None:
        o = self._orders.get(orig)
        if o is None or o.cum >= o.qty:
            self._refuse(orig, cl, broker, "1")
            return
        self._er(o, "6", "6", o.qty - o.cum, cl=cl, orig=orig)
        self._er(o, "4", "4", 0, cl=cl, orig=orig)
        self._close(orig)

    def _replace(self, f: dict[int, str]) -> None:
        orig, cl = f.get(41, ""), f.get(11, "")
        o = self._orders.get(orig)
        if o is None or o.cum >= o.qty:
            self._refuse(orig, cl, f.get(128, ""), "2")
            return
        nf = dict(o.f)
        nf.update({k: v for k, v in f.items() if k in (11, 38, 44, 40, 54, 55, 1)})
        new = _SimOrder(nf, o.order_id)
        new.cum = o.cum
        self._orders[cl] = new
        o.status = "5"
        self._close(orig)
        self._er(new, "E", "E", new.qty - new.cum, cl=cl, orig=orig)
        self._er(new, "5", "1" if new.cum else "0", new.qty - new.cum, cl=cl, orig=orig)

    def _status(self, f: dict[int, str]) -> None:
        """OrderStatusRequest: an ExecutionReport 150=I with the order as last reported."""
        cl = f.get(11, "")
        o = self._orders.get(cl) or self._closed.get(cl)
        if o is None:
            unknown = _SimOrder({**f, 40: f.get(40, "2")}, "NONE")
            self._er(unknown, "I", "8", 0, text=f"unknown order {cl!r}")
            return
        leaves = 0 if o.status in "2348C" else o.qty - o.cum
        self._er(o, "I", o.status, leaves)

    def _mass_cancel(self, f: dict[int, str]) -> None:
        """OrderMassCancelRequest: the report, then a cancel report for each matching open order
        of the same party (the ClOrdID namespace ``<client>:``)."""
        broker = f.get(128, "")
        party = f.get(11, "").partition(":")[0] + ":"
        kind = f.get(530, "7")
        hits = [(cl, o) for cl, o in self._orders.items()
                if cl.startswith(party) and o.f.get(128, broker) == broker
                and (kind != "1" or o.f.get(55) == f.get(55))
                and (not f.get(54) or o.f.get(54) == f[54]) and (not f.get(1) or o.f.get(1) == f[1])]
        fields: list[tuple[int, Any]] = [(115, broker), (11, f.get(11, "")), (37, f"MC{next(self._ids)}"),
                                         (530, kind)]
        if kind not in ("1", "7"):
            fields += [(531, "0"), (532, "0"), (58, f"MassCancelRequestType {kind} not supported")]
            self._emit("r", fields)
            return
        fields += [(531, kind), (533, len(hits))]
        if hits:
            fields.append((534, [[(41, cl), (535, o.order_id)] for cl, o in hits]))
        if f.get(55):
            fields.append((55, f[55]))
        self._emit("r", fields)
        for cl, o in hits:
            self._er(o, "4", "4", 0, cl=cl)
            self._close(cl)

    # (Symbol, ISIN, name, base price) of the simulated listing
    LISTING = (("005930", "KR7005930003", "Samsung Electronics", 70000),
               ("000660", "KR7000660001", "SK hynix", 180000))

    def _inquiry(self, msg_type: str, f: dict[int, str]) -> None:
        """Positions (one holding of 100 shares of the first listed instrument per account),
        collateral (a fixed cash balance less what open buy orders hold) and the listing."""
        from server.krx import price_limits, tick_size

        broker = f.get(128, "")
        if msg_type == "AN":
            code, isin, _, base = self.LISTING[0]
            common = [(115, broker), (710, f.get(710, "")), (1, f.get(1, "")), (581, f.get(581, "1"))]
            self._emit("AO", [*common[:2], (721, f"P{next(self._ids)}"), (727, 1), (728, "0"), (729, "0"),
                              *common[2:]])
            self._emit("AP", [*common[:2], (721, f"P{next(self._ids)}"), (724, "0"), (727, 1), (728, "0"),
                              *common[2:], (715, f.get(715, "")), (55, code), (48, isin), (22, "4"),
                              (730, base), (731, "2"), (734, base),
                              (702, [[(703, "FIN"), (704, 100), (705, 0)]]),
                              (753, [[(707, "FMTM"), (708, 100 * base)]])])
        elif msg_type == "BB":
            held = sum((o.qty - o.cum) * int(Decimal(o.f.get(44) or "0")) for o in self._orders.values()
                       if o.f.get(54) == "1" and o.f.get(1) == f.get(1))
            cash = 100_000_000
            self._emit("BA", [(115, broker), (908, f"C{next(self._ids)}"), (909, f.get(909, "")), (910, "3"),
                              (1, f.get(1, "")), (15, "KRW"), (899, cash - held), (901, held), (922, cash),
                              (900, cash + 100 * self.LISTING[0][3])])
        else:
            entries = []
            for code, isin, name, base in self.LISTING:
                if f.get(559) == "0" and f.get(55) != code:
                    continue
                lo, hi = price_limits(base)
                entries.append([(55, code), (48, isin), (22, "4"), (107, name), (762, "KOSPI"),
                                (232, [[(233, "MININCR"), (234, tick_size(base))], [(233, "PRICE"), (234, f"{lo}-{hi}")]]),
                                (662, base), (663, "2"), (336, "REGULAR"), (625, "CONTINUOUS")])
            self._emit("y", [(115, broker), (320, f.get(320, "")), (322, f"S{next(self._ids)}"),
                             (560, "0" if entries else "2"), (393, len(entries)), (893, "Y"),
                             (146, entries)])

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
