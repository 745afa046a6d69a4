"""/docs in a real browser (Debian's chromium driven by Playwright): Swagger UI loads from
the gateway itself, "Authorize" takes an API key, and "Try it out" places an order that then
exists when read back over REST."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
async_api = pytest.importorskip("playwright.async_api")

sys.path.insert(0, str(Path(__file__).resolve().parent / "gateway"))
from _gateway_harness import KEYS, GatewayProcess, Http, gateway_toml  # noqa: E402

KEY = KEYS["alpha"]
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 20_000


def test_swagger_ui_places_an_order(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, gateway_toml()).start()  # loopback broker: no hub needed
    try:
        asyncio.run(asyncio.wait_for(drive(gw), 120))
    finally:
        gw.stop()


async def drive(gw: GatewayProcess) -> None:
    base = f"http://127.0.0.1:{gw.rest}"
    cl = f"docs-{time.time_ns()}"
    requests: list[str] = []
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda req: requests.append(req.url))
            await page.goto(base + "/docs")
            await page.wait_for_selector("#operations-default-newOrder", timeout=WAIT_MS)
            assert "fastfix order gateway" in await page.inner_text(".info .title")

            # Authorize with the API key (the apiKey scheme: X-API-Key header)
            await page.click("button.authorize")
            box = page.locator(".auth-container").filter(has_text="X-API-Key")
            await box.locator("input#api_key_value").fill(KEY)
            await box.locator("button.authorize").click()
            await box.locator("h6", has_text="Authorized").wait_for(timeout=WAIT_MS)
            await box.locator("button.btn-done").click()

            # Try it out: POST /v1/orders
            op = page.locator("#operations-default-newOrder")
            await op.locator(".opblock-summary").click()
            await op.locator("button.try-out__btn").click()
            body = {"ClOrdID": cl, "DeliverToCompID": "BRKA", "Symbol": "005930", "Side": "1", "OrdType": "2",
                    "OrderQty": "10", "Price": "70000"}
            await op.locator("textarea.body-param__text").fill(json.dumps(body))
            await op.locator("button.execute").click()
            status = op.locator(".live-responses-table .response .response-col_status").first
            await status.wait_for(timeout=WAIT_MS)
            assert (await status.inner_text()).strip().startswith("202")
            answer = json.loads(await op.locator(".live-responses-table .microlight").first.inner_text())
            assert answer["ClOrdID"] == cl and answer["state"] == "PendingNew"
            assert not errors, errors
        finally:
            await browser.close()
    # every file came from the gateway itself
    assert requests and all(u.startswith(base) for u in requests), requests
    async with Http(gw.rest, KEY) as h:
        status, order = await h.call("GET", f"/v1/orders/{cl}")
    assert status == 200 and order["ClOrdID"] == cl and order["Symbol"] == "005930" and order["OrderQty"] == "10"


def test_docs_assets_are_served_locally(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, gateway_toml()).start()
    try:
        async def go() -> dict[str, Any]:
            async with Http(gw.rest) as h:
                out = {}
                for path in ("/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/nope.js",
                             "/docs/../openapi.json"):
                    status, headers, data = await h.raw("GET", path)
                    out[path] = (status, headers.get("content-type"), len(data))
                return out

        got = asyncio.run(go())
    finally:
        gw.stop()
    assert got["/docs"][:2] == (200, "text/html; charset=utf-8")
    assert got["/docs/swagger-ui-bundle.js"][0] == 200 and got["/docs/swagger-ui-bundle.js"][2] > 100_000
    assert got["/docs/swagger-ui.css"][:2] == (200, "text/css; charset=utf-8")
    assert got["/docs/nope.js"][0] == 404 and got["/docs/../openapi.json"][0] == 404
