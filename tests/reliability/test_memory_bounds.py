"""The gateway keeps open orders in memory, not every order it ever saw.

Found by the soak test: the gateway process grew by about 2 KiB per order because
orders stayed in its in-memory table after they were filled, cancelled, rejected
or replaced. Closed orders now leave memory once their final state is committed;
reads, late reports and duplicates then go to the projection.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from _gateway_harness import started_gateway

from fastfix.codec import encode, parse


def test_closed_orders_leave_memory_and_stay_readable(tmp_path: Path) -> None:
    async def go() -> None:
        gw = await started_gateway(tmp_path)
        link = gw.link
        alpha = gw.cfg.clients["alpha"]
        try:
            for i in range(40):
                kind = {"OrdType": "1"} if i % 2 == 0 else {"OrdType": "2", "Price": "70000"}
                body = {"ClOrdID": f"m-{i}", "DeliverToCompID": "BRKA", "Symbol": "005930", "Side": "1",
                        "OrderQty": "10", **kind}
                await gw.new_order(alpha, json.dumps(body).encode())
            for _ in range(200):  # the loopback broker answers on later loop turns
                if all((o := gw.orders.get(("alpha", f"m-{i}"))) is None or o.state == "Filled"
                       for i in range(0, 40, 2)) and len(gw.orders) <= 20:
                    break
                await asyncio.sleep(0.01)
            await gw.projection.wait_applied()
            open_ids = {k[1] for k in gw.orders}
            assert open_ids == {f"m-{i}" for i in range(1, 40, 2)}, sorted(open_ids)  # the resting ones
            # closed orders are still served from the projection, with their executions
            detail = json.loads(await gw.order_detail(alpha, "m-0"))
            assert detail["state"] == "Filled" and detail["CumQty"] == "10" and len(detail["executions"]) >= 3
            # a late duplicate of a fill changes nothing and is not pushed again
            last = detail["executions"][-1]
            seq_before = gw.seq.get("alpha", 0)
            dup = parse(encode("FIX.4.4", "8", [
                (49, "HUB"), (56, "GATEWAY"), (34, 999), (52, "20240102-09:00:00"), (43, "Y"),
                (122, "20240102-09:00:00"), (37, "X"), (11, "alpha:m-0"), (17, last["ExecID"]), (150, "F"),
                (39, "2"), (55, "005930"), (54, "1"), (38, "10"), (32, "5"), (31, "70000"), (151, "0"),
                (14, "10"), (6, "70000")]))
            gw.on_message(dup, "LOOPBACK")
            assert gw.seq.get("alpha", 0) == seq_before
            assert json.loads(await gw.order_detail(alpha, "m-0"))["CumQty"] == "10"
            assert ("alpha", "m-0") not in gw.orders
            # cancelling a resting order closes it too
            await gw.cancel_order(alpha, "m-1", b"")
            for _ in range(200):
                if ("alpha", "m-1") not in gw.orders:
                    break
                await asyncio.sleep(0.01)
            assert ("alpha", "m-1") not in gw.orders
            assert not [k for k, v in gw.aliases.items() if v[0] == "m-1"], "the cancel's id stayed in memory"
            assert json.loads(await gw.order_detail(alpha, "m-1"))["state"] == "Canceled"
        finally:
            await link.stop()
            await gw.close()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_done_lists_leave_memory_and_stay_readable(tmp_path: Path) -> None:
    """A list whose orders all filled leaves memory once projected; GET still finds it."""

    async def go() -> None:
        gw = await started_gateway(tmp_path)
        link = gw.link
        alpha = gw.cfg.clients["alpha"]
        try:
            body = {"ListID": "done-1", "DeliverToCompID": "BRKA", "NoOrders": [
                {"ClOrdID": f"d-{i}", "Symbol": "005930", "Side": "1", "OrderQty": "10", "OrdType": "1"}
                for i in range(2)]}
            await gw.new_list(alpha, json.dumps(body).encode())
            for _ in range(200):  # the loopback broker fills market orders on a later loop turn
                ol = gw.lists.get(("alpha", "done-1"))
                if ol is None or ol.ListOrderStatus == "6":
                    break
                await asyncio.sleep(0.01)
            await gw.projection.wait_applied()
            gw.state.evict_projected()
            assert ("alpha", "done-1") not in gw.lists
            view = json.loads(gw.list_detail(alpha, "done-1"))
            assert view["ListOrderStatus"] == "6" and {o["state"] for o in view["orders"]} == {"Filled"}
        finally:
            await link.stop()
            await gw.close()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_user_defined_tags_do_not_grow_the_codec() -> None:
    """Every distinct user-defined tag a client sends used to be cached by the JSON codec for
    ever; the cache is now bounded, and tags past its size still convert."""
    import gc

    import msgspec

    from fastfix.jsonfix import JsonCodec

    codec = JsonCodec("FIX.4.4")
    body = {"ClOrdID": "u-1", "Symbol": "005930", "Side": "1", "OrdType": "1", "OrderQty": "1",
            "TransactTime": "20240102-09:00:00.000", "HandlInst": "1"}

    def largest_dict() -> int:
        return max((len(d) for d in gc.get_referents(codec) if isinstance(d, dict)), default=0)

    before = largest_dict()
    for i in range(20_000):
        out = codec.body_to_fix("D", msgspec.json.encode(dict(body, **{str(5000 + i): "x"})))
        assert f"\x01{5000 + i}=x\x01".encode() in b"\x01" + out, out
    assert largest_dict() <= max(before, 1024), (before, largest_dict())
