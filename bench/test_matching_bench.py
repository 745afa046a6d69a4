"""Matching engine throughput: resting adds, aggressive matches, cancels, a mixed flow.

Each round processes a batch of ``N`` requests; ops/s in the table is batches per
second, so per-request cost is the mean time divided by ``N``.
"""

from __future__ import annotations

import random

from server.exchange.clock import AlwaysOpenClock
from server.exchange.matching import MatchingEngine, NewOrder, OrdType, Side

N = 10_000
SAM = "005930"


def _engine() -> MatchingEngine:
    return MatchingEngine(clock=AlwaysOpenClock())


def _resting(n: int, seed: int = 1) -> list[NewOrder]:
    """Non-crossing limit orders on 20 levels per side around 70,000."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            out.append(NewOrder(SAM, Side.BUY, rng.randint(1, 100), OrdType.LIMIT, 70_000 - 100 * rng.randint(1, 20)))
        else:
            out.append(NewOrder(SAM, Side.SELL, rng.randint(1, 100), OrdType.LIMIT, 70_000 + 100 * rng.randint(1, 20)))
    return out


def test_add_resting_limit_orders(benchmark):
    orders = _resting(N)

    def setup():
        return (_engine(),), {}

    def run(engine):
        submit = engine.submit
        for o in orders:
            submit(o)

    benchmark.pedantic(run, setup=setup, rounds=10)


def test_match_market_orders_against_deep_book(benchmark):
    """Every request is a 1-lot market order that trades once against a deep book."""
    book_orders = [NewOrder(SAM, Side.SELL, 1, OrdType.LIMIT, 70_000 + 100 * (i % 20)) for i in range(N)]
    takers = [NewOrder(SAM, Side.BUY, 1, OrdType.MARKET) for _ in range(N)]

    def setup():
        engine = _engine()
        for o in book_orders:
            engine.submit(o)
        return (engine,), {}

    def run(engine):
        submit = engine.submit
        for o in takers:
            submit(o)

    benchmark.pedantic(run, setup=setup, rounds=10)


def test_cancel_resting_orders(benchmark):
    orders = _resting(N)

    def setup():
        engine = _engine()
        ids = [engine.submit(o)[0].order.order_id for o in orders]
        random.Random(3).shuffle(ids)
        return (engine, ids), {}

    def run(engine, ids):
        cancel = engine.cancel
        for i in ids:
            cancel(i)

    benchmark.pedantic(run, setup=setup, rounds=10)


def test_mixed_flow(benchmark):
    """60% limit orders that often cross, 25% cancels, 15% market orders."""
    rng = random.Random(5)
    plan = []
    for _ in range(N):
        r = rng.random()
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        if r < 0.60:
            plan.append(("new", NewOrder(SAM, side, rng.randint(1, 50), OrdType.LIMIT, 70_000 + 100 * rng.randint(-10, 10))))
        elif r < 0.85:
            plan.append(("cancel", rng.random()))
        else:
            plan.append(("new", NewOrder(SAM, side, rng.randint(1, 50), OrdType.MARKET)))

    def setup():
        return (_engine(),), {}

    def run(engine):
        live: list[int] = []
        for kind, arg in plan:
            if kind == "new":
                ev = engine.submit(arg)
                live.append(ev[0].order.order_id)
            elif live:
                engine.cancel(live.pop(int(arg * len(live))))

    benchmark.pedantic(run, setup=setup, rounds=5)


def test_fix_new_order_to_reports(benchmark):
    """The exchange's FIX layer: a parsed NewOrderSingle that trades once, to its reports."""
    from fastfix.codec import encode, parse
    from fastfix.settings import SessionID
    from server.exchange.fix_app import ExchangeApplication

    sid = SessionID("FIX.4.4", "KRX", "BROKER")
    header = [(49, "BROKER"), (56, "KRX"), (34, 2), (52, "20240304-01:00:00.000")]
    msgs = [
        parse(encode("FIX.4.4", "D", header + [(11, f"C{i}"), (1, "ACC"), (55, SAM), (54, "1"),
                                               (60, "20240304-01:00:00"), (38, 1), (40, "1")]))
        for i in range(N)
    ]
    sent = []

    def setup():
        engine = _engine()
        for i in range(N):
            engine.submit(NewOrder(SAM, Side.SELL, 1, OrdType.LIMIT, 70_000 + 100 * (i % 20)))
        app = ExchangeApplication(engine, sender=lambda s, t, f: sent.append(f))
        app.on_logon(sid)
        sent.clear()
        return (app,), {}

    def run(app):
        from_app = app.from_app
        for m in msgs:
            from_app(m, sid)

    benchmark.pedantic(run, setup=setup, rounds=5)
    assert len(sent) == 2 * N  # ack + fill per order
