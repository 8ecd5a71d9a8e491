"""``/docs`` and ``/redoc`` render with the network cut off: every asset comes from this server.

The browser context refuses any request that leaves the server's origin (as an offline machine would),
and the test checks the pages drew the API's operations, asked for nothing elsewhere and logged no error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.web.conftest import Console

REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture()
def offline_page(browser: Any, live_server: str) -> Iterator[tuple[Any, list[str], Console]]:
    context = browser.new_context(base_url=live_server, viewport={"width": 1100, "height": 900})
    elsewhere: list[str] = []

    def only_this_server(route: Any) -> None:
        url = route.request.url
        if url.startswith(live_server + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", only_this_server)
    page = context.new_page()
    page.set_default_timeout(30_000)
    console = Console()
    console.attach(page)
    yield page, elsewhere, console
    context.close()


def test_swagger_ui_renders_offline(
    offline_page: tuple[Any, list[str], Console], playwright_api: Any, screenshots: Path
) -> None:
    page, elsewhere, console = offline_page
    response = page.goto("/docs")
    assert response is not None and response.ok
    expect = playwright_api.expect
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("voxvault")
    expect(page.locator(".opblock-summary-path[data-path='/v1/audio/speech']")).to_be_visible()
    page.screenshot(path=str(screenshots / "docs-offline.png"))
    assert elsewhere == [], f"/docs asked for assets elsewhere: {elsewhere}"
    assert console.errors == [], console.errors
    icon = page.request.get("/favicon.ico")
    assert icon.ok and icon.headers["content-type"] == "image/x-icon"


def test_redoc_renders_offline(
    offline_page: tuple[Any, list[str], Console], playwright_api: Any, screenshots: Path
) -> None:
    page, elsewhere, console = offline_page
    response = page.goto("/redoc")
    assert response is not None and response.ok
    playwright_api.expect(page.locator("h1").first).to_contain_text("voxvault", timeout=60_000)
    page.screenshot(path=str(screenshots / "redoc-offline.png"))
    # The one request ReDoc makes elsewhere is the "by Redocly" footer logo, which it hides when the image
    # fails to load (built for offline use); everything the page needs came from here.
    others = [u for u in elsewhere if u != REDOCLY_LOGO]
    assert others == [], f"/redoc asked for assets elsewhere: {others}"
    assert console.uncaught() == [], console.uncaught()
