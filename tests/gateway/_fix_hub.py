"""A scripted STP-HUB + broker double on the fastfix acceptor, for gateway tests and benchmarks.

The behaviour for an order is chosen by its Text (58):
``fill`` (New, then a full fill), ``partial`` (New, fill of half, rests),
``reject`` (ExecType 8), ``bmr`` (BusinessMessageReject), ``hold`` (no answer
until :meth:`HubDouble.release`), ``nocancel`` (cancels are refused with 35=9),
anything else rests as New. Reports carry OnBehalfOfCompID = the broker named
in DeliverToCompID, as a hub forwards them.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastfix.engine import Acceptor, Application
from fastfix.settings import SessionSettings


def acceptor_settings(workdir: Path, begin: str = "FIX.4.4", sender: str = "HUB",
                      target: str = "GATEWAY") -> SessionSettings:
    return SessionSettings.from_string(f"""
[DEFAULT]
ConnectionType=acceptor
SocketAcceptPort=0
SocketAcceptAddress=127.0.0.1
StartTime=00:00:00
EndTime=00:00:00
HeartBtInt=5
UseDataDictionary=Y
[SESSION]
BeginString={begin}
SenderCompID={sender}
TargetCompID={target}
""")


def initiator_settings_text(port: int, begin: str = "FIX.4.4", sender: str = "GATEWAY",
                            target: str = "HUB") -> str:
    return f"""[DEFAULT]
ConnectionType=initiator
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
StartTime=00:00:00
EndTime=00:00:00
HeartBtInt=5
ReconnectInterval=1
FileStorePath=fixstore
[SESSION]
BeginString={begin}
SenderCompID={sender}
TargetCompID={target}
"""


class _Order:
    __slots__ = ("f", "cum", "order_id", "script")

    def __init__(self, f: dict[int, str], order_id: str) -> None:
        self.f = f
        self.cum = Decimal(0)
        self.order_id = order_id
        self.script = f.get(58, "")

    @property
    def qty(self) -> Decimal:
        return Decimal(self.f.get(38, "0"))


class HubDouble(Application):
    """Answers the gateway's orders according to their script."""

    def __init__(self, begin: str = "FIX.4.4") -> None:
        self.begin = begin
        self.ids = itertools.count(1)
        self.orders: dict[str, _Order] = {}
        self.lists: dict[str, list[str]] = {}
        self.held: list[_Order] = []
        self.received: list[tuple[str, dict[int, str]]] = []
        self.sid: Any = None
        self.sent_reports: list[list[tuple[int, Any]]] = []

    def on_logon(self, session_id: Any) -> None:
        self.sid = session_id

    def from_app(self, msg: Any, session_id: Any) -> None:
        self.sid = session_id
        mt = msg.msg_type.decode()
        f: dict[int, str] = {}
        entries: list[dict[int, str]] = []
        in_group = False
        for tag, v in msg.fields():
            if tag == 73:
                in_group = True
                continue
            if in_group and tag == 11:
                entries.append({})
            (entries[-1] if in_group and entries else f)[tag] = v.decode()
        self.received.append((mt, f))
        if mt == "D":
            self._new(f)
        elif mt == "F":
            self._cancel(f.get(41, ""), f.get(11, ""), f.get(128, ""))
        elif mt == "G":
            self._replace(f)
        elif mt == "E":
            list_id = f.get(66, "")
            self._send("N", [(115, f.get(128, "")), (66, list_id), (429, "1"), (82, "0"), (431, "3"), (83, "1"), (68, len(entries)),
                             (73, [[(11, e[11]), (14, "0"), (39, "A"), (151, e.get(38, "0")), (84, "0"),
                                    (6, "0")] for e in entries])])
            for e in entries:
                e[128] = f.get(128, "")
                e[66] = list_id
                self._new(e)
            self.lists[list_id] = [e[11] for e in entries]
        elif mt == "K":
            list_id = f.get(66, "")
            for cl in self.lists.get(list_id, []):
                self._cancel(cl, cl, f.get(128, ""))
            self._send("N", [(115, f.get(128, "")), (66, list_id), (429, "5"), (82, "0"), (431, "6"), (83, "1"), (68, len(self.lists.get(list_id, []))),
                             (73, [])])

    # ---------------------------------------------------------------- scripted answers
    def _send(self, mt: str, fields: list[tuple[int, Any]]) -> None:
        self.engine.session(self.sid).send(mt, fields)  # type: ignore[union-attr]

    def er(self, o: _Order, exec_type: str, status: str, last: Decimal = Decimal(0), cl: str | None = None,
           orig: str | None = None, text: str | None = None, poss_dup: bool = False) -> list[tuple[int, Any]]:
        f = o.f
        leaves = Decimal(0) if status in ("2", "4", "8", "C") else o.qty - o.cum
        px = f.get(44, "70000")
        fields: list[tuple[int, Any]] = [(115, f.get(128, "")), (37, o.order_id), (11, cl or f[11])]
        if orig:
            fields.append((41, orig))
        if self.begin == "FIX.4.2":
            if exec_type == "F":  # 4.2 has no Trade: partial fill / fill
                exec_type = "2" if status == "2" else "1"
            fields.append((20, "0"))
        fields += [(17, f"X{next(self.ids)}"), (150, exec_type), (39, status)]
        if f.get(1):
            fields.append((1, f[1]))
        fields += [(55, f.get(55, "")), (54, f.get(54, "1")), (38, f.get(38, "0")), (40, f.get(40, "2"))]
        if f.get(44):
            fields.append((44, f[44]))
        if last:
            fields += [(32, last), (31, px)]
        fields += [(151, leaves), (14, o.cum), (6, px if o.cum else "0"), (60, "20240102-09:00:00")]
        if text:
            fields.append((58, text))
        self._send("8", fields)
        self.sent_reports.append(fields)
        return fields

    def _new(self, f: dict[int, str]) -> None:
        o = _Order(f, f"OID{next(self.ids)}")
        self.orders[f[11]] = o
        if o.script == "hold":
            self.held.append(o)
            return
        if o.script == "bmr":
            self._send("j", [(115, f.get(128, "")), (45, "0"), (372, "D"), (379, f[11]), (380, "4"),
                             (58, "broker not available")])
            return
        if o.script == "reject":
            self.er(o, "8", "8", text="insufficient balance")
            return
        self.er(o, "0", "0")
        if o.script == "fill":
            o.cum = o.qty
            self.er(o, "F", "2", o.qty)
        elif o.script == "partial":
            half = (o.qty / 2).to_integral_value()
            o.cum = half
            self.er(o, "F", "1", half)

    def release(self, fill: bool = True) -> None:
        """Answer the held orders (New, then filled when ``fill``)."""
        held, self.held = self.held, []
        for o in held:
            self.er(o, "0", "0")
            if fill:
                o.cum = o.qty
                self.er(o, "F", "2", o.qty)

    def resend_last_report(self) -> None:
        """Send the last ExecutionReport again as a possible duplicate (same ExecID)."""
        self._send("8", [(43, "Y"), (122, "20240102-09:00:00")] + self.sent_reports[-1])

    def _cancel(self, orig: str, cl: str, broker: str) -> None:
        o = self.orders.get(orig)
        if o is None or o.cum >= o.qty or o.script == "nocancel":
            self._send("9", [(115, broker), (37, o.order_id if o else "NONE"), (11, cl), (41, orig),
                             (39, "8" if o is None else ("2" if o.cum >= o.qty else "0")), (434, "1"),
                             (102, "1" if o is None else "0"), (58, "cancel refused")])
            return
        self.er(o, "6", "6", cl=cl, orig=orig)
        self.er(o, "4", "4", cl=cl, orig=orig)

    def _replace(self, f: dict[int, str]) -> None:
        orig, cl = f.get(41, ""), f[11]
        o = self.orders.get(orig)
        if o is None or o.script == "nocancel":
            self._send("9", [(115, f.get(128, "")), (37, "NONE"), (11, cl), (41, orig), (39, "0"), (434, "2"),
                             (102, "0"), (58, "replace refused")])
            return
        nf = dict(o.f)
        nf.update({k: v for k, v in f.items() if k in (11, 38, 44, 40, 54, 55, 1)})
        new = _Order(nf, o.order_id)
        new.cum = o.cum
        self.orders[cl] = new
        self.er(new, "5", "1" if new.cum else "0", cl=cl, orig=orig)


async def start_hub(workdir: Path, begin: str = "FIX.4.4") -> tuple[Acceptor, HubDouble]:
    app = HubDouble(begin)
    acceptor = Acceptor(acceptor_settings(workdir, begin), app, host="127.0.0.1", port=0)
    await acceptor.start()
    return acceptor, app
