"""``fastfix-client``: the order gateway from a shell.

Connection: ``--url`` / ``FASTFIX_URL`` (REST base, default http://127.0.0.1:8080),
``--ws-url`` / ``FASTFIX_WS_URL`` (stream; asked of the gateway when not given),
``--api-key`` / ``FASTFIX_API_KEY``. Output is a table for people (coloured on a terminal,
unless ``NO_COLOR`` is set or ``--color never``), JSON with ``--json`` (one object per line
for ``stream``).

Exit status: 0 done; 1 unexpected failure; 2 bad command line; 3 request refused as
invalid (400, 409, 413, 422); 4 not authorized (401, 403); 5 not found (404); 6 gateway
unavailable (cannot connect, 429 or 503 after the retries, stream refused); 7 gateway
error (500 and other 5xx).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from fastfix.client.client import AsyncClient, RetryPolicy
from fastfix.client.models import ApiError, Event, Order, StreamError, TransportError

__all__ = ["main", "EXIT_CODES"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INVALID, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_SERVER = range(8)
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILURE: "unexpected failure",
    EXIT_USAGE: "bad command line (unknown flag, bad value)",
    EXIT_INVALID: "request refused as invalid (HTTP 400, 409, 413, 422)",
    EXIT_AUTH: "not authorized (HTTP 401, 403)",
    EXIT_NOT_FOUND: "not found (HTTP 404)",
    EXIT_UNAVAILABLE: "gateway unavailable (no connection, 429 or 503 after retries, stream refused)",
    EXIT_SERVER: "gateway error (HTTP 5xx)",
}

# Short names accepted beside the dictionary's enumeration names and codes.
_ALIASES = {"TimeInForce": {"day": "0", "gtc": "1", "ioc": "3", "fok": "4"}}


class UsageError(Exception):
    """A bad value on the command line (exit status 2)."""


def _exit_status(exc: ApiError) -> int:
    if exc.status in (401, 403):
        return EXIT_AUTH
    if exc.status == 404:
        return EXIT_NOT_FOUND
    if exc.status in (429, 502, 503, 504):
        return EXIT_UNAVAILABLE
    if exc.status >= 500:
        return EXIT_SERVER
    return EXIT_INVALID


# --------------------------------------------------------------------------- output


class Out:
    """Tables and colours for people, JSON for scripts."""

    _COLOURS = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "dim": "2", "bold": "1"}
    _STATES = {"Filled": "green", "PartiallyFilled": "cyan", "New": "yellow", "PendingNew": "yellow",
               "Canceled": "dim", "Replaced": "dim", "Rejected": "red", "Expired": "dim"}

    def __init__(self, json_mode: bool, color: str, stream: Any = None) -> None:
        self.json = json_mode
        self.f = stream or sys.stdout
        tty = hasattr(self.f, "isatty") and self.f.isatty()
        self.color = color == "always" or (color == "auto" and tty and not os.environ.get("NO_COLOR")
                                           and os.environ.get("TERM") != "dumb")

    def paint(self, text: str, colour: str | None) -> str:
        if not self.color or colour is None:
            return text
        return f"\x1b[{self._COLOURS[colour]}m{text}\x1b[0m"

    def state(self, state: str) -> str:
        return self.paint(state, self._STATES.get(state))

    def emit_json(self, obj: Any) -> None:
        self.f.write(msgspec.json.encode(obj).decode() + "\n")
        self.f.flush()

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]],
              paint: dict[int, Callable[[str], str]] | None = None) -> None:
        widths = [len(h) for h in headers]
        for r in rows:
            for i, cell in enumerate(r):
                widths[i] = max(widths[i], len(cell))
        self.f.write("  ".join(self.paint(h.ljust(w), "bold") for h, w in zip(headers, widths, strict=True)).rstrip()
                     + "\n")
        for r in rows:
            cells = []
            for i, cell in enumerate(r):
                padded = cell.ljust(widths[i])
                if paint and i in paint and cell:
                    padded = paint[i](cell) + " " * (widths[i] - len(cell))
                cells.append(padded)
            self.f.write("  ".join(cells).rstrip() + "\n")
        self.f.flush()

    def fields(self, pairs: Sequence[tuple[str, str]]) -> None:
        width = max((len(k) for k, _ in pairs), default=0)
        for k, v in pairs:
            self.f.write(f"{self.paint(k.ljust(width), 'bold')}  {v}\n")
        self.f.flush()


_ORDER_COLUMNS = ("ClOrdID", "state", "Side", "Symbol", "OrderQty", "Price", "CumQty", "LeavesQty", "AvgPx",
                  "broker")


def _order_rows(orders: Sequence[Order], side_names: dict[str, str]) -> list[list[str]]:
    rows = []
    for o in orders:
        row = []
        for c in _ORDER_COLUMNS:
            v = getattr(o, c) or ""
            row.append(side_names.get(v, v) if c == "Side" else v)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("connection and output")
    g.add_argument("--url", help="REST base URL (FASTFIX_URL; default http://127.0.0.1:8080)")
    g.add_argument("--ws-url", help="stream URL (FASTFIX_WS_URL; default: asked of the gateway)")
    g.add_argument("--api-key", help="API key (FASTFIX_API_KEY)")
    g.add_argument("--json", action="store_true", help="JSON output for scripts")
    g.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour in tables (auto: on a terminal, unless NO_COLOR is set)")
    g.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    g.add_argument("--retries", type=int, default=3, help="resends of a request the gateway could not "
                                                          "take yet (429, 503, no connection; default 3)")
    epilog = "exit status:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
    p = argparse.ArgumentParser(prog="fastfix-client", description="The fastfix order gateway from a shell.",
                                epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    n = sub.add_parser("new", parents=[common], help="place an order (NewOrderSingle)")
    n.add_argument("--symbol", required=True)
    n.add_argument("--side", required=True, help="buy, sell, or a Side (54) code")
    n.add_argument("--qty", required=True, help="OrderQty")
    n.add_argument("--type", default=None, help="limit (default with --price), market (default without), "
                                                "or an OrdType (40) code")
    n.add_argument("--price", help="limit price")
    n.add_argument("--tif", help="day, ioc, fok, gtc, or a TimeInForce (59) code")
    n.add_argument("--broker", help="DeliverToCompID (optional when the client has one broker)")
    n.add_argument("--account")
    n.add_argument("--clordid", help="ClOrdID (default: a fresh unique one)")
    n.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                   help="any other field of the Body (repeatable)")

    c = sub.add_parser("cancel", parents=[common], help="cancel an order (OrderCancelRequest)")
    c.add_argument("clordid")
    c.add_argument("--cancel-id", help="ClOrdID of the cancel request itself")

    r = sub.add_parser("replace", parents=[common], help="replace an order (OrderCancelReplaceRequest)")
    r.add_argument("clordid")
    r.add_argument("--new-clordid", help="ClOrdID of the replacement (default: a fresh one)")
    r.add_argument("--qty", help="new OrderQty")
    r.add_argument("--price", help="new Price")
    r.add_argument("--field", action="append", default=[], metavar="NAME=VALUE")

    s = sub.add_parser("show", parents=[common], help="one order with its executions")
    s.add_argument("clordid")

    ls = sub.add_parser("list", parents=[common], help="the client's orders (a page; --all for every page)")
    ls.add_argument("--status", help="state name (Filled) or OrdStatus code")
    ls.add_argument("--symbol")
    ls.add_argument("--broker")
    ls.add_argument("--since", help="created at or after: ISO 8601 time or epoch milliseconds")
    ls.add_argument("--limit", type=int)
    ls.add_argument("--cursor", help="`next` of the previous page")
    ls.add_argument("--all", action="store_true", help="follow `next` to the last page")

    lists = sub.add_parser("lists", parents=[common], help="order lists: new, show, cancel")
    lsub = lists.add_subparsers(dest="action", metavar="ACTION", required=True)
    ln = lsub.add_parser("new", parents=[common], help="send a NewOrderList from a JSON Body file ('-': stdin)")
    ln.add_argument("file")
    lsh = lsub.add_parser("show", parents=[common], help="a list and its orders")
    lsh.add_argument("list_id")
    lc = lsub.add_parser("cancel", parents=[common], help="cancel every order of a list")
    lc.add_argument("list_id")

    sub.add_parser("brokers", parents=[common], help="routing targets and their FIX session state")

    osr = sub.add_parser("status", parents=[common], help="ask the broker for an order's status "
                                                          "(OrderStatusRequest; the answer comes on the stream)")
    osr.add_argument("clordid")

    mc = sub.add_parser("mass-cancel", parents=[common], help="cancel the client's open orders at a broker "
                                                              "(OrderMassCancelRequest; the report comes on the stream)")
    mc.add_argument("broker", help="DeliverToCompID")
    mc.add_argument("--symbol", help="only this Symbol (default: every order)")
    mc.add_argument("--side", help="only this side: buy, sell, or a Side (54) code")
    mc.add_argument("--account", help="only this Account")

    ins = sub.add_parser("instruments", parents=[common], help="instruments: code, limits, tick size, session")
    ins.add_argument("symbol", nargs="?", help="one instrument (default: all)")
    ins.add_argument("--broker", help="the broker to ask (optional when the client has one)")

    pos = sub.add_parser("positions", parents=[common], help="positions of an account (RequestForPositions)")
    pos.add_argument("account")
    pos.add_argument("--broker", help="the broker to ask (optional when the client has one)")
    pos.add_argument("--symbol", help="only this Symbol")

    bal = sub.add_parser("balance", parents=[common], help="cash and buying power of an account "
                                                           "(CollateralInquiry)")
    bal.add_argument("account")
    bal.add_argument("--broker", help="the broker to ask (optional when the client has one)")

    st = sub.add_parser("stream", parents=[common], help="tail the event stream (reconnects by itself)")
    st.add_argument("--since", type=int, help="replay after this seq first (0: the whole day)")
    st.add_argument("--cursor-file", help="resume after the seq kept in this file, and keep it there")
    st.add_argument("--count", type=int, help="stop after this many events")
    st.add_argument("--idle-exit", type=float, metavar="SECONDS",
                    help="stop when no event came for this long (default: run until interrupted)")
    return p


def _fields(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--field {pair!r}: expected NAME=VALUE")
        out[name] = value
    return out


def _enum(client: AsyncClient, name: str, value: str, flag: str) -> str:
    """A code from a code, an enumeration name of the dictionary (any case) or an alias."""
    dd = client.msgs.dictionary
    f = next(f for f in dd.fields.values() if f.name == name)
    if value in f.enums:
        return value
    key = value.strip().upper().replace("-", "_")
    for code, desc in f.enums.items():
        if desc.upper() == key:
            return code
    alias = _ALIASES.get(name, {}).get(value.lower())
    if alias is not None and alias in f.enums:
        return alias
    allowed = ", ".join(f"{code} ({desc.lower()})" for code, desc in f.enums.items())
    raise UsageError(f"{flag} {value!r}: not a {name}; allowed: {allowed}")


def _enum_names(client: AsyncClient, name: str) -> dict[str, str]:
    f = next((f for f in client.msgs.dictionary.fields.values() if f.name == name), None)
    if f is None:  # a dictionary without the field: codes are shown as they are
        return {}
    return {code: desc.title().replace("_", "") for code, desc in f.enums.items()}


# --------------------------------------------------------------------------- commands


async def _run(args: argparse.Namespace, out: Out) -> int:
    retry = RetryPolicy(retries=max(0, args.retries))
    async with AsyncClient(args.url, args.api_key, ws_url=args.ws_url, timeout=args.timeout, retry=retry) as c:
        if not c.api_key:
            raise UsageError("no API key: give --api-key or set FASTFIX_API_KEY")
        cmd = args.command
        sides = _enum_names(c, "Side")
        if cmd == "new":
            body: dict[str, Any] = {"Symbol": args.symbol, "Side": _enum(c, "Side", args.side, "--side"),
                                    "OrderQty": args.qty}
            ord_type = args.type or ("limit" if args.price else "market")
            body["OrdType"] = _enum(c, "OrdType", ord_type, "--type")
            for key, value in (("Price", args.price), ("DeliverToCompID", args.broker), ("Account", args.account),
                               ("ClOrdID", args.clordid)):
                if value is not None:
                    body[key] = value
            if args.tif is not None:
                body["TimeInForce"] = _enum(c, "TimeInForce", args.tif, "--tif")
            body.update(_fields(args.field))
            accepted = await c.new_order(body)
            if out.json:
                out.emit_json(accepted)
            else:
                out.table(("ClOrdID", "state", "OrdStatus", "broker", "created"),
                          [[accepted.ClOrdID or "", accepted.state, accepted.OrdStatus or "", accepted.broker or "",
                            accepted.created or ""]], {1: out.state})
        elif cmd in ("cancel", "replace"):
            if cmd == "cancel":
                answer: Any = await c.cancel_order(args.clordid, args.cancel_id)
            else:
                changes = _fields(args.field)
                for key, value in (("OrderQty", args.qty), ("Price", args.price), ("ClOrdID", args.new_clordid)):
                    if value is not None:
                        changes[key] = value
                answer = await c.replace_order(args.clordid, changes)
            if out.json:
                out.emit_json(answer)
            else:
                pending = getattr(answer, "pending", None) or ("replace" if cmd == "replace" else "")
                out.table(("ClOrdID", "OrigClOrdID", "state", "pending"),
                          [[answer.ClOrdID or "", getattr(answer, "OrigClOrdID", None) or "", answer.state,
                            pending]], {2: out.state})
        elif cmd == "show":
            order = await c.get_order(args.clordid)
            if out.json:
                out.emit_json(order)
            else:
                pairs = [(k, str(v)) for k, v in msgspec.structs.asdict(order).items()
                         if v is not None and k != "executions"]
                pairs = [(k, out.state(v) if k == "state" else sides.get(v, v) if k == "Side" else v)
                         for k, v in pairs]
                out.fields(pairs)
                if order.executions:
                    out.f.write("\n")
                    cols = ("ExecID", "ExecType", "OrdStatus", "LastQty", "LastPx", "CumQty", "LeavesQty", "AvgPx",
                            "received")
                    out.table(cols, [[getattr(e, k) or "" for k in cols] for e in order.executions])
        elif cmd == "list":
            cursor = args.cursor
            if args.limit is not None and not 1 <= args.limit <= 1000:
                raise UsageError("--limit: an integer 1..1000")
            orders: list[Order] = []
            for _ in range(100_000):  # pages, bounded
                page = await c.list_orders(status=args.status, symbol=args.symbol, broker=args.broker,
                                           since=args.since, limit=args.limit, cursor=cursor)
                orders += page.orders
                cursor = page.next
                if not args.all or cursor is None:
                    break
            if out.json:
                out.emit_json({"orders": orders, "next": cursor})
            else:
                out.table(_ORDER_COLUMNS, _order_rows(orders, sides), {1: out.state})
                if cursor is not None:
                    out.f.write(out.paint(f"more: --cursor {cursor}", "dim") + "\n")
        elif cmd == "lists":
            if args.action == "new":
                try:
                    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
                    body = msgspec.json.decode(raw)
                except OSError as exc:
                    raise UsageError(f"{args.file}: {exc.strerror or exc}") from None
                except msgspec.DecodeError as exc:
                    raise UsageError(f"{args.file}: not JSON: {exc}") from None
                if not isinstance(body, dict):
                    raise UsageError(f"{args.file}: expected a JSON object (the NewOrderList Body)")
                answer = await c.new_order_list(body)
            elif args.action == "show":
                answer = await c.get_order_list(args.list_id)
            else:
                answer = await c.cancel_order_list(args.list_id)
            if out.json:
                out.emit_json(answer)
            else:
                pairs = [(k, str(v)) for k, v in msgspec.structs.asdict(answer).items()
                         if v is not None and k != "orders"]
                out.fields([(k, out.state(v) if k == "state" else v) for k, v in pairs])
                members = [o if isinstance(o, Order) else msgspec.convert(o, Order) for o in answer.orders or []]
                if members:
                    out.f.write("\n")
                    out.table(_ORDER_COLUMNS, _order_rows(members, sides), {1: out.state})
        elif cmd == "brokers":
            brokers = await c.brokers()
            if out.json:
                out.emit_json(brokers)
            else:
                def session(v: str) -> str:
                    return out.paint(v, "green" if v == "logged on" else "red")

                out.table(("id", "name", "tick_size", "session", "state"),
                          [[b.id, b.name or "", b.tick_size or "", b.session.name if b.session else "",
                            "logged on" if b.session and b.session.logged_on else "down"] for b in brokers],
                          {4: session})
        elif cmd == "status":
            order = await c.order_status(args.clordid)
            if out.json:
                out.emit_json(order)
            else:
                out.table(("ClOrdID", "state", "OrdStatus", "broker", "OrdStatusReqID"),
                          [[order.ClOrdID, order.state, order.OrdStatus, order.broker, order.OrdStatusReqID or ""]],
                          {1: out.state})
        elif cmd == "mass-cancel":
            side = _enum(c, "Side", args.side, "--side") if args.side is not None else None
            sent = await c.mass_cancel(args.broker, Symbol=args.symbol, Side=side, Account=args.account)
            if out.json:
                out.emit_json(sent)
            else:
                out.fields([(k, sides.get(v, v) if k == "Side" else str(v)) for k, v in sent.items()])
        elif cmd == "instruments":
            if args.symbol is not None:
                listing = [await c.instrument(args.symbol, broker=args.broker)]
                answer = listing[0]
            else:
                answer = await c.instruments(broker=args.broker)
                listing = answer["instruments"]
            if out.json:
                out.emit_json(answer)
            else:
                cols = ("Symbol", "name", "market", "tick_size", "base_price", "lower_limit", "upper_limit",
                        "session", "source")
                ses = _enum_names(c, "TradSesStatus")
                out.table(cols, [[_session_state(i, ses) if k == "session" else str(i.get(k, "")) for k in cols]
                                 for i in listing])
                if answer.get("fallback_reason"):
                    out.f.write(out.paint(f"from the static file: {answer['fallback_reason']}", "dim") + "\n")
        elif cmd == "positions":
            answer = await c.positions(args.account, broker=args.broker, symbol=args.symbol)
            if out.json:
                out.emit_json(answer)
            else:
                cols = ("Symbol", "PosType", "LongQty", "ShortQty", "SettlPrice")
                rows = []
                for report in answer.get("PositionReports") or []:
                    for p in report.get("NoPositions") or [{}]:
                        rows.append([str(report.get("Symbol", "")), str(p.get("PosType", "")),
                                     str(p.get("LongQty", "")), str(p.get("ShortQty", "")),
                                     str(report.get("SettlPrice", ""))])
                out.fields([("Account", str(answer.get("Account", args.account))),
                            ("broker", str(answer.get("broker", "")))])
                out.f.write("\n")
                out.table(cols, rows)
        elif cmd == "balance":
            answer = await c.balance(args.account, broker=args.broker)
            if out.json:
                out.emit_json(answer)
            else:
                report = answer.get("CollateralReport") or {}
                out.fields([("Account", str(answer.get("Account", args.account))),
                            ("broker", str(answer.get("broker", "")))]
                           + [(k, str(v)) for k, v in report.items()
                              if k not in ("Account", "broker") and not isinstance(v, (list, dict))])
        elif cmd == "stream":
            return await _stream(c, args, out)
    return EXIT_OK


def _session_state(instrument: dict[str, Any], names: dict[str, str]) -> str:
    """The trading-session status of an instrument's row: TradSesStatus (by name), and the sub-session."""
    session = instrument.get("session") or {}
    status = session.get("TradSesStatus")
    parts = [names.get(status, status), session.get("TradingSessionSubID")]
    return "/".join(str(p) for p in parts if p)


async def _stream(c: AsyncClient, args: argparse.Namespace, out: Out) -> int:
    if args.since is not None and args.since < 0:
        raise UsageError("--since: a non-negative integer")
    if args.count is not None and args.count < 1:
        raise UsageError("--count: a positive integer")
    statuses = _enum_names(c, "OrdStatus")
    events = c.stream(args.since, cursor_file=args.cursor_file)
    seen = 0
    try:
        while args.count is None or seen < args.count:
            try:
                ev: Event = await (asyncio.wait_for(events.__anext__(), args.idle_exit) if args.idle_exit
                                   else events.__anext__())
            except TimeoutError:
                break
            seen += 1
            if out.json:
                out.emit_json({"seq": ev.seq, "ts": ev.ts, "msg_type": ev.msg_type, "Header": ev.header,
                               "Body": ev.body})
                continue
            body = ev.body if isinstance(ev.body, dict) else msgspec.structs.asdict(ev.body)
            get = body.get
            status = get("OrdStatus") or ""
            line = [f"{ev.seq:>6}", ev.ts, ev.name, get("ClOrdID") or get("ListID") or "",
                    out.state(statuses.get(status, status)) if status else ""]
            if get("LastQty") and get("LastQty") != "0":
                line.append(f"{get('LastQty')} @ {get('LastPx')}")
            if get("CumQty") is not None:
                line.append(f"cum {get('CumQty')} leaves {get('LeavesQty')}")
            if get("Text"):
                line.append(out.paint(str(get("Text")), "dim"))
            out.f.write("  ".join(x for x in line if x) + "\n")
            out.f.flush()
    finally:
        await events.aclose()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 with a message on a bad flag
    out = Out(args.json, args.color)
    prog = "fastfix-client"
    try:
        return asyncio.run(_run(args, out))
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return _exit_status(exc)
    except (TransportError, StreamError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ValueError as exc:  # e.g. a malformed --url or cursor file
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
