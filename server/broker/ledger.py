"""Accounts, positions and orders of a simulated broker, persisted in SQLite.

No FIX here: the broker application asks :meth:`Ledger.check_order` before it
sends an order to the exchange and calls :meth:`Ledger.fill` /
:meth:`Ledger.done` as the exchange reports. Cash and shares committed to open
orders are not available to new ones: an open buy holds ``leaves x price``
(its limit, or the daily upper limit for market-like orders), an open sell holds
its leaves quantity.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from server.broker.config import AccountConfig

__all__ = ["Account", "BrokerOrder", "Ledger", "Refusal"]


class Account(msgspec.Struct):
    id: str
    cash: int
    holdings: dict[str, int]
    owners: list[str] = []
    advisors: list[str] = []  # the advisors (buy side sub-ids) owning the account; [] = any


class BrokerOrder(msgspec.Struct):
    """One client order as the broker tracks it (ids: the client's and ours at the exchange)."""

    key: str  # our first ClOrdID at the exchange: the order's identity here
    origin: str  # the buy side (OnBehalfOfCompID of the request)
    origin_sub: str
    client_clordid: str  # the client's current ClOrdID
    broker_clordid: str  # our current ClOrdID at the exchange
    account: str
    symbol: str
    side: str  # "1" buy, "2"/"5"/"6" sell
    qty: int
    reserve_price: int  # KRW per share held back for a buy
    cum_qty: int = 0
    value: int = 0  # sum of fill qty x price
    open: bool = True
    client_list_id: str = ""
    status: str = "A"  # OrdStatus (39) as last reported; A = pending new (not yet acknowledged)
    order_id: str = ""  # the exchange's OrderID (37)
    ord_type: str = ""  # OrdType (40) as requested
    price: int = 0  # limit price (0: none)

    @property
    def is_buy(self) -> bool:
        return self.side == "1"

    @property
    def leaves(self) -> int:
        return max(self.qty - self.cum_qty, 0) if self.open else 0


class Refusal(msgspec.Struct):
    """Why an order is refused: ``kind`` is unknown-account, not-owner, cash or holdings."""

    kind: str
    text: str


class Ledger:
    """Accounts and orders; every change is written through to SQLite (``None``: memory only)."""

    def __init__(self, accounts: dict[str, AccountConfig], database: str | Path | None = None) -> None:
        self.accounts: dict[str, Account] = {}
        self.orders: dict[str, BrokerOrder] = {}
        self.requests: dict[str, tuple[str, str]] = {}  # our ClOrdID -> (order key, client ClOrdID)
        self.by_client: dict[tuple[str, str], str] = {}  # (origin, client ClOrdID) -> order key
        self.lists: dict[str, tuple[str, str, str]] = {}  # our ListID -> (origin, sub, client ListID)
        self.lists_by_client: dict[tuple[str, str], str] = {}
        self.counter = 0
        self._db: sqlite3.Connection | None = None
        if database is not None:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(database), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS state (kind TEXT, key TEXT, value BLOB, "
                             "PRIMARY KEY (kind, key))")
            self._load()
        for acc in accounts.values():
            if acc.id not in self.accounts:  # the configured opening position
                self.accounts[acc.id] = Account(acc.id, acc.cash, dict(acc.holdings), list(acc.owners))
                self._put("account", acc.id, self.accounts[acc.id])
            else:
                self.accounts[acc.id].owners = list(acc.owners)
            self.accounts[acc.id].advisors = list(acc.advisors)

    # ------------------------------------------------------------------ persistence

    def _put(self, kind: str, key: str, value: object) -> None:
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?)",
                             (kind, key, msgspec.json.encode(value)))

    def _load(self) -> None:
        assert self._db is not None
        for kind, key, value in self._db.execute("SELECT kind, key, value FROM state"):
            if kind == "account":
                self.accounts[key] = msgspec.json.decode(value, type=Account)
            elif kind == "order":
                self.orders[key] = msgspec.json.decode(value, type=BrokerOrder)
            elif kind == "request":
                order_key, client_id = msgspec.json.decode(value, type=tuple[str, str])
                self.requests[key] = (order_key, client_id)
            elif kind == "list":
                self.lists[key] = msgspec.json.decode(value, type=tuple[str, str, str])
            elif kind == "counter":
                self.counter = int(msgspec.json.decode(value))
        for order_key, client_id in self.requests.values():
            o = self.orders.get(order_key)
            if o is not None:
                self.by_client[(o.origin, client_id)] = order_key
        for list_id, (origin, _sub, client_list) in self.lists.items():
            self.lists_by_client[(origin, client_list)] = list_id

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # ------------------------------------------------------------------ ids

    def next_id(self, prefix: str) -> str:
        """A fresh ClOrdID/ListID for the exchange (the counter survives restarts)."""
        self.counter += 1
        self._put("counter", "", self.counter)
        return f"{prefix}{self.counter}"

    def add_request(self, broker_id: str, order: BrokerOrder, client_id: str) -> None:
        self.requests[broker_id] = (order.key, client_id)
        self.by_client[(order.origin, client_id)] = order.key
        self._put("request", broker_id, (order.key, client_id))

    def add_list(self, broker_list: str, origin: str, sub: str, client_list: str) -> None:
        self.lists[broker_list] = (origin, sub, client_list)
        self.lists_by_client[(origin, client_list)] = broker_list
        self._put("list", broker_list, (origin, sub, client_list))

    def add_order(self, order: BrokerOrder) -> None:
        self.orders[order.key] = order
        self.save(order)

    def save(self, order: BrokerOrder) -> None:
        self._put("order", order.key, order)

    def find(self, origin: str, client_id: str) -> BrokerOrder | None:
        key = self.by_client.get((origin, client_id))
        return self.orders.get(key) if key else None

    def for_request(self, broker_id: str) -> tuple[BrokerOrder, str] | None:
        req = self.requests.get(broker_id)
        if req is None:
            return None
        order = self.orders.get(req[0])
        return (order, req[1]) if order is not None else None

    # ------------------------------------------------------------------ checks

    def open_orders(self, origin: str, advisor: str) -> list[BrokerOrder]:
        """Open orders that ``advisor`` at ``origin`` placed, oldest first."""
        return [o for o in self.orders.values() if o.open and o.origin == origin and o.origin_sub == advisor]

    def held_cash(self, account: str) -> int:
        """Cash committed to open buy orders (leaves x limit or reserve price)."""
        return sum(o.leaves * o.reserve_price for o in self.orders.values()
                   if o.open and o.account == account and o.is_buy)

    def available_cash(self, account: str) -> int:
        return self.accounts[account].cash - self.held_cash(account)

    def available_shares(self, account: str, symbol: str) -> int:
        acc = self.accounts[account]
        held = sum(o.leaves for o in self.orders.values()
                   if o.open and o.account == account and not o.is_buy and o.symbol == symbol)
        return acc.holdings.get(symbol, 0) - held

    def check_account(self, origin: str, account: str | None, advisor: str = "") -> Refusal | None:
        """May ``advisor`` at buy side ``origin`` use ``account``? None if so."""
        if not account:
            return Refusal("unknown-account", "Account (1) is required")
        acc = self.accounts.get(account)
        if acc is None:
            return Refusal("unknown-account", f"unknown account {account!r}")
        if acc.owners and origin not in acc.owners:
            return Refusal("not-owner", f"account {account!r} is not open to {origin}")
        if acc.advisors and not advisor:
            return Refusal("not-owner", f"account {account!r} belongs to an advisor: the request must name "
                                        "the advisor in SenderSubID (50)")
        if acc.advisors and advisor not in acc.advisors:
            return Refusal("not-owner", f"account {account!r} is not owned by advisor {advisor!r}")
        return None

    def check_order(self, origin: str, account: str | None, symbol: str, side: str, qty: int,
                    price: int, extra_cash: int = 0, extra_shares: int = 0,
                    advisor: str = "") -> Refusal | None:
        """Can ``origin`` put this order on ``account``? ``extra_*``: more already asked in the same list."""
        refusal = self.check_account(origin, account, advisor)
        if refusal is not None:
            return refusal
        assert account is not None
        if side == "1":
            need = qty * price + extra_cash
            have = self.available_cash(account)
            if need > have:
                return Refusal("cash", f"insufficient cash: the order needs {need:,} KRW "
                                       f"({qty:,} x {price:,}), {have:,} KRW available")
        else:
            need = qty + extra_shares
            have = self.available_shares(account, symbol)
            if need > have:
                return Refusal("holdings", f"insufficient holdings: selling {need:,} {symbol}, "
                                           f"{have:,} available")
        return None

    # ------------------------------------------------------------------ execution

    def fill(self, order: BrokerOrder, qty: int, price: int) -> None:
        """A fill: cash and shares move, the order's cumulative quantity grows."""
        acc = self.accounts[order.account]
        if order.is_buy:
            acc.cash -= qty * price
            acc.holdings[order.symbol] = acc.holdings.get(order.symbol, 0) + qty
        else:
            acc.cash += qty * price
            acc.holdings[order.symbol] = acc.holdings.get(order.symbol, 0) - qty
        order.cum_qty += qty
        order.value += qty * price
        self._put("account", acc.id, acc)
        self.save(order)

    def done(self, order: BrokerOrder) -> None:
        """The order is done (filled, cancelled, rejected, expired): what it held is free again."""
        order.open = False
        self.save(order)
