"""The web blotter in a real browser (Debian's chromium driven by Playwright).

The gateway runs as a process with a FIX session to a hub double that fills
market orders and rests limit orders. The page places orders, follows them over
the WebSocket stream, cancels and replaces with its buttons, shows the REST
error list of a bad order, and resumes the stream from its cursor after a drop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
async_api = pytest.importorskip("playwright.async_api")

from _fix_hub import HubDouble, acceptor_settings, initiator_settings_text  # noqa: E402
from _gateway_harness import KEYS, GatewayProcess, Http, gateway_toml  # noqa: E402

from fastfix.engine import Acceptor  # noqa: E402

KEY = KEYS["alpha"]
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 15_000


class FillingHub(HubDouble):
    """A counterparty to click against: market orders fill at once, limit orders rest."""

    def _new(self, f: dict[int, str]) -> None:
        if f.get(40) == "1" and 58 not in f:
            f = {**f, 58: "fill"}
        super()._new(f)

    def count(self, msg_type: str) -> int:
        return sum(1 for mt, _ in self.received if mt == msg_type)


class StreamTap:
    """Sits on the page's WebSocket: records what the page sends, can drop and hold the connection."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.connections: list[tuple[Any, Any]] = []  # (page side, server side or None while held)
        self.hold = False
        self._held: list[tuple[Any, list[str]]] = []

    def handler(self, route: Any) -> None:
        queued: list[str] = []
        server: list[Any] = []

        def from_page(message: str | bytes) -> None:
            text = message.decode() if isinstance(message, bytes) else message
            self.sent.append(json.loads(text))
            if server:
                server[0].send(text)
            else:
                queued.append(text)

        route.on_message(from_page)
        if self.hold:
            self._held.append((route, queued, server))
            self.connections.append((route, None))
            return
        server.append(route.connect_to_server())
        self.connections.append((route, server[0]))

    async def drop(self) -> None:
        """Close the current connection from the gateway's side, as a network failure would."""
        page_side, server_side = self.connections[-1]
        await page_side.close(code=1011, reason="dropped by test")
        if server_side is not None:
            await server_side.close()

    def release(self) -> None:
        """Let held connections through to the gateway, with what the page already sent."""
        self.hold = False
        held, self._held = self._held, []
        for route, queued, server in held:
            server.append(route.connect_to_server())
            for text in queued:
                server[0].send(text)
            queued.clear()


async def wait_ready(rest: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with Http(rest) as h:
        while time.monotonic() < deadline:
            status, _ = await h.call("GET", "/readyz")
            if status == 200:
                return
            await asyncio.sleep(0.05)
    raise TimeoutError("the gateway's FIX session never logged on")


async def place(page: Any, *, symbol: str, qty: str, ord_type: str, price: str = "", sell: bool = False) -> str:
    """Fill the ticket, submit, and return the ClOrdID of the accepted order."""
    before = await page.get_attribute("#ticket-result", "data-clordid")
    await page.fill("#symbol", symbol)
    await page.click(f'label[for="side-{"sell" if sell else "buy"}"]')
    await page.select_option("#ordtype", ord_type)
    await page.fill("#qty", qty)
    if price:
        await page.fill("#price", price)
    await page.click("#place")
    await page.wait_for_function(
        "before => { const r = document.querySelector('#ticket-result');"
        " return r.classList.contains('error') || (r.classList.contains('ok') && r.dataset.clordid !== before); }",
        arg=before, timeout=WAIT_MS)
    assert "ok" in (await page.get_attribute("#ticket-result", "class") or ""), await page.inner_text("#ticket-result")
    cl = await page.get_attribute("#ticket-result", "data-clordid")
    assert cl and cl != before
    return cl


def row(cl: str, status: str | None = None) -> str:
    sel = f'#orders tr[data-clordid="{cl}"]'
    return sel + (f'[data-status="{status}"]' if status else "")


async def cell(page: Any, cl: str, name: str) -> str:
    return (await page.inner_text(f"{row(cl)} td.{name}")).strip()


def test_blotter_in_browser(tmp_path: Path) -> None:
    async def go() -> None:
        hub = FillingHub()
        acceptor = Acceptor(acceptor_settings(tmp_path), hub, host="127.0.0.1", port=0)
        await acceptor.start()
        loop = asyncio.get_running_loop()
        gw: GatewayProcess | None = None
        try:
            (tmp_path / "gw.cfg").write_text(initiator_settings_text(acceptor.port))
            gw = GatewayProcess(tmp_path, gateway_toml(link="fix", fix_settings="gw.cfg"))
            await loop.run_in_executor(None, gw.start)
            await wait_ready(gw.rest)
            async with async_api.async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
                try:
                    await drive(browser, gw, hub, tmp_path)
                finally:
                    await browser.close()
        finally:
            if gw is not None:
                await loop.run_in_executor(None, gw.stop)
            await acceptor.stop()

    asyncio.run(asyncio.wait_for(go(), 180))


async def drive(browser: Any, gw: GatewayProcess, hub: FillingHub, tmp_path: Path) -> None:
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    tap = StreamTap()
    await page.route_web_socket(re.compile(r"/v1/stream"), tap.handler)
    base = f"http://127.0.0.1:{gw.rest}"

    # The page, its files and the stream location come from the gateway itself.
    await page.goto(base + "/")
    assert await page.title() == "fastfix blotter"
    assert await page.locator("#symbols option").count() == 10
    # A wrong key is refused before any stream is opened.
    await page.fill("#api-key", "not-a-key")
    await page.click("#connect")
    await page.wait_for_selector('#conn[data-state="error"]', timeout=WAIT_MS)
    assert "invalid API key" in await page.inner_text("#conn-text")
    assert "401" in await page.inner_text("#notices .notice.error")
    assert tap.sent == []
    await page.fill("#api-key", KEY)
    await page.click("#connect")
    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)
    assert tap.sent[0] == {"op": "auth", "api_key": KEY}  # first connection: live, then a snapshot
    brokers = await page.eval_on_selector_all("#broker option", "os => os.map(o => o.value)")
    assert brokers == ["BRKA", "BRKB"]  # GET /v1/brokers for this client
    types = await page.eval_on_selector_all("#ordtype option", "os => os.map(o => o.textContent)")
    assert types == ["Limit", "Market", "Conditional limit", "Best limit", "Primary best"]

    # 1. A market order fills: row Filled with its quantities, and the fill listed.
    filled = await place(page, symbol="005930", qty="10", ord_type="1")
    await page.wait_for_selector(row(filled, "Filled"), timeout=WAIT_MS)
    assert await cell(page, filled, "cumqty") == "10"
    assert await cell(page, filled, "leavesqty") == "0"
    assert await cell(page, filled, "avgpx") == "70,000"
    fill = page.locator(f'#fills tr[data-clordid="{filled}"]')
    await fill.first.wait_for(timeout=WAIT_MS)
    assert await fill.count() == 1
    assert "10" in await fill.inner_text() and "70,000" in await fill.inner_text()
    assert await page.locator(f"{row(filled)} button").count() == 0  # closed orders have no actions
    sent = [f for mt, f in hub.received if mt == "D" and f[11] == f"alpha:{filled}"]
    assert sent and sent[0][40] == "1" and sent[0][55] == "005930" and sent[0][38] == "10" and sent[0][128] == "BRKA"
    assert 44 not in sent[0]

    # 2. A limit order rests; its Cancel button cancels it.
    resting = await place(page, symbol="000660", qty="5", ord_type="2", price="180000", sell=True)
    await page.wait_for_selector(row(resting, "New"), timeout=WAIT_MS)
    assert await cell(page, resting, "leavesqty") == "5"
    await page.click(f"{row(resting)} button.cancel")
    await page.wait_for_selector(row(resting, "Canceled"), timeout=WAIT_MS)
    assert await cell(page, resting, "leavesqty") == "0"
    assert [f for mt, f in hub.received if mt == "F" and f[41] == f"alpha:{resting}"]
    assert await page.locator(f'#fills tr[data-clordid="{resting}"]').count() == 0

    # 3. Replace: the prompts ask for the new price and quantity.
    original = await place(page, symbol="035420", qty="3", ord_type="2", price="200000")
    await page.wait_for_selector(row(original, "New"), timeout=WAIT_MS)
    answers = iter(["200500", "4"])

    async def answer(dialog: Any) -> None:
        await dialog.accept(next(answers))

    page.on("dialog", answer)
    await page.click(f"{row(original)} button.replace")
    await page.wait_for_selector(row(original, "Replaced"), timeout=WAIT_MS)
    repl = [f for mt, f in hub.received if mt == "G" and f[41] == f"alpha:{original}"]
    assert repl and repl[0][44] == "200500" and repl[0][38] == "4"
    new_cl = repl[0][11].split(":", 1)[1]
    await page.wait_for_selector(row(new_cl, "New"), timeout=WAIT_MS)
    assert await cell(page, new_cl, "price") == "200,500"
    assert await cell(page, new_cl, "qty") == "4"

    # 4. An invalid order: the gateway's list of problems is shown, field by field.
    orders_before, d_before = await page.locator("#orders tbody tr").count(), hub.count("D")
    await page.fill("#symbol", "005930")
    await page.select_option("#ordtype", "2")
    await page.fill("#qty", "0")
    await page.fill("#price", "70001")
    await page.click("#place")
    await page.wait_for_selector("#ticket-result.error", timeout=WAIT_MS)
    text = await page.inner_text("#ticket-result")
    assert "422" in text
    problems = await page.eval_on_selector_all(
        "#ticket-result li", "ls => ls.map(l => [l.dataset.field, l.textContent])")
    fields = {f: t for f, t in problems}
    assert set(fields) == {"OrderQty", "Price"}, problems
    assert "must be positive" in fields["OrderQty"] and "tick" in fields["Price"]
    assert await page.get_attribute("#qty", "aria-invalid") == "true"
    assert await page.get_attribute("#price", "aria-invalid") == "true"
    assert await page.get_attribute("#symbol", "aria-invalid") is None
    assert await page.locator("#orders tbody tr").count() == orders_before
    assert hub.count("D") == d_before

    # 5. The stream drops; what happens meanwhile is replayed from the page's cursor.
    seq_text = await page.inner_text("#conn-seq")
    last_seq = int(seq_text.split()[-1])
    assert last_seq > 0
    tap.hold = True
    n_sent = len(tap.sent)
    await tap.drop()
    await page.wait_for_function(
        "() => document.querySelector('#conn').dataset.state !== 'live'", timeout=WAIT_MS)
    # Wait until the page reconnected (and is held), then trade behind its back over REST.
    deadline = time.monotonic() + WAIT_MS / 1000
    while len(tap.sent) == n_sent:
        assert time.monotonic() < deadline, "the page did not reconnect"
        await asyncio.sleep(0.05)
    assert tap.sent[-1] == {"op": "auth", "api_key": KEY, "since": last_seq}
    async with Http(gw.rest, KEY) as h:
        status, ans = await h.call("POST", "/v1/orders", {
            "ClOrdID": "rest-1", "DeliverToCompID": "BRKB", "Symbol": "068270", "Side": "1",
            "OrdType": "1", "OrderQty": "7"})
        assert status == 202, ans
        deadline = time.monotonic() + 10
        while (await h.call("GET", "/v1/orders/rest-1"))[1]["state"] != "Filled":
            assert time.monotonic() < deadline, "rest-1 never filled"
            await asyncio.sleep(0.05)
    assert await page.locator(row("rest-1")).count() == 0
    tap.release()
    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)
    await page.wait_for_selector(row("rest-1", "Filled"), timeout=WAIT_MS)
    await page.locator('#fills tr[data-clordid="rest-1"]').first.wait_for(timeout=WAIT_MS)
    assert await cell(page, "rest-1", "cumqty") == "7"

    # 6. A reload keeps the key (localStorage) and rebuilds the day from REST.
    await page.reload()
    assert await page.input_value("#api-key") == KEY
    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)
    for cl, status in ((filled, "Filled"), (resting, "Canceled"), (original, "Replaced"), (new_cl, "New"),
                       ("rest-1", "Filled")):
        await page.wait_for_selector(row(cl, status), timeout=WAIT_MS)
    await page.locator(f'#fills tr[data-clordid="{filled}"]').first.wait_for(timeout=WAIT_MS)
    assert await page.locator(f'#fills tr[data-clordid="{filled}"]').count() == 1
    assert await page.locator(f"{row(new_cl)} button.cancel").is_enabled()

    shot = tmp_path / "blotter.png"
    await page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("BLOTTER_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["BLOTTER_SCREENSHOT"])
    assert not page_errors, page_errors
