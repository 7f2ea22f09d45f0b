"""The dashboard's data quality: a quality column in the site list that says what the API says,
and a per-site quality chart drawn with uPlot from ``/api/quality``."""

from __future__ import annotations

import pytest

from tests.browser.conftest import DESKTOP

pytestmark = pytest.mark.e2e


def test_the_site_list_and_panel_show_data_quality(demo, open_page) -> None:
    p = open_page(DESKTOP, name="quality")
    page = p.page
    page.goto(f"{demo.url}/#token={demo.token}")
    page.locator("body[data-rendered='1']").wait_for()
    page.locator("#site-list .q").first.wait_for()
    summary = {s["site"]: s for s in demo.api("/api/quality/summary")["sites"]}
    site = next(s for s in demo.api("/api/sites") if s["id"] in summary)
    rate = summary[site["id"]]["effective_rate"]
    button = page.locator("#site-list .site-btn", has_text=site["name"])
    cell = button.locator(".q").inner_text()
    # The demo has two hours of history: most of the last 24 hours were owed and not received.
    assert cell.strip() == f"· data {rate * 100:.{0 if rate >= 0.9995 else 1}f} %"
    assert (button.locator(".q-low").count() == 1) == (rate < 0.9)
    button.click()
    page.locator("#site-quality .uplot").wait_for()
    assert "effective" in page.locator("#site-quality figcaption").inner_text()
    page.get_by_role("button", name="Week").click()
    page.locator("#site-quality .uplot").wait_for()
    assert page.locator("#site-quality .uplot").count() == 1
    p.shot("site-quality")
