"""The blotter's market and account panel in a real browser (chromium through Playwright):
instruments with their limits and session state, positions and balance, against a gateway
process with the loopback broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
async_api = pytest.importorskip("playwright.async_api")

from _gateway_harness import KEYS, GatewayProcess, gateway_toml  # noqa: E402

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 15_000


def test_market_and_account_panel(tmp_path: Path) -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        gw = GatewayProcess(tmp_path, gateway_toml())
        await loop.run_in_executor(None, gw.start)
        try:
            async with async_api.async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
                try:
                    page = await browser.new_page(viewport={"width": 1440, "height": 900})
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    await page.goto(f"http://127.0.0.1:{gw.rest}/")
                    await page.fill("#api-key", KEYS["alpha"])
                    await page.click("#connect")
                    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)
                    row = page.locator('#instruments tr[data-symbol="005930"]')
                    await row.wait_for(timeout=WAIT_MS)
                    text = await row.inner_text()
                    assert "49,000" in text and "91,000" in text and "CONTINUOUS" in text, text
                    assert "exchange" in await page.inner_text("#instruments-source")
                    await page.fill("#account", "ACC1")
                    await page.click("#refresh-market")
                    await page.locator("#positions tbody tr").first.wait_for(timeout=WAIT_MS)
                    assert "005930" in await page.inner_text("#positions")
                    await page.wait_for_function(
                        "document.getElementById('positions-state').textContent.includes('buying power')",
                        timeout=WAIT_MS)
                    assert errors == []
                finally:
                    await browser.close()
        finally:
            await loop.run_in_executor(None, gw.stop)

    asyncio.run(asyncio.wait_for(go(), 120))
