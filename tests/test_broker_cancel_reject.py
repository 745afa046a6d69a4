"""The simulated broker's OrderCancelReject names the order as it stands: for a cancel that
comes after the order filled, its OrderID (37) and OrdStatus 2 (Filled), not NONE and 4."""

from __future__ import annotations

from pathlib import Path

from helpers import run
from test_broker import chain, s, until_done

from fastfix.codec import utc_timestamp


def test_cancel_of_a_filled_order_is_rejected_with_its_order_id_and_status(tmp_path: Path) -> None:
    async def main() -> None:
        async with chain(tmp_path) as (_, p):
            await p.send("GATEWAY", "D", [(128, "KIWOOM"), (11, "gw:f1"), (1, "ACC-1"), (38, 5), (40, "1"),
                                          (54, "1"), (55, "005930"), (60, utc_timestamp())])
            reports = await until_done(p, "GATEWAY", "gw:f1")
            assert s(reports[-1][39]) == "2"
            order_id = s(reports[-1][37])
            assert order_id and order_id != "NONE"
            await p.send("GATEWAY", "F", [(128, "KIWOOM"), (11, "gw:f1-x"), (41, "gw:f1"), (54, "1"),
                                          (55, "005930"), (38, 5), (60, utc_timestamp())])
            rej = await p.recv("GATEWAY")
            assert rej.msg_type == b"9" and s(rej[434]) == "1"
            assert (s(rej[37]), s(rej[39])) == (order_id, "2")

    run(main())
