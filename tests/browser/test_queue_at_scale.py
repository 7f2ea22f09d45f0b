"""10,000 open alerts on the desk: the queue renders only what is on screen (virtual scrolling),
reaches the last alert by keyboard and by scrolling, and stays live. Frame times are measured in
benchmarks/dashboard_render.py, not asserted here."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.browser.conftest import DESKTOP
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

N = 10_000
OPEN_STATES = "new,acknowledged,dispatched,verified"


def _raise_many(demo, n: int) -> None:
    """n open alerts written into the demo's queue, as the rule engine would (one per
    fingerprint)."""
    from alerts.store import AlertStore
    from farsight.types import AlertSignal

    site = next(s for s in demo.api("/api/sites") if s["department"] == "env")
    store = AlertStore(demo.data_dir / "farsight.db")
    try:
        now = datetime.now(UTC)
        sev = ("critical", "major", "warning", "info")
        store.apply(
            AlertSignal(
                rule_id="scale-test",
                fingerprint=f"scale-{i:05d}",
                status="firing",
                site=site["id"],
                device="bulk",
                metric="pm25",
                severity=sev[i % 4],
                summary=f"scale test alert {i:05d}",
                ts=now,
                value=float(i),
                department="env",
                entity_id=site["entity_id"],
                credit_grade="ABCD"[i % 4],
            )
            for i in range(n)
        )
    finally:
        store.close()


def test_ten_thousand_open_alerts_scroll_in_a_virtual_list(demo, open_page) -> None:
    _raise_many(demo, N)
    # What the queue shows: the open alerts (not the ones closed by the tests before this one).
    total = demo.api(f"/api/alerts?limit=1&state={OPEN_STATES}")["total"]
    assert total >= N
    p = open_page(DESKTOP, name="scale")
    page = p.page
    page.goto(f"{demo.url}/#token={demo.token}")
    page.locator("body[data-rendered='1']").wait_for()
    page.get_by_role("button", name="Desk").click()
    queue = page.locator("#queue")
    queue.locator(".qrow").first.wait_for()
    # All pages arrive in the background (keyset cursor) while the first one is already shown.
    wait_until(
        lambda: int(page.locator("#queue .qrow").first.get_attribute("aria-setsize")) >= total,
        timeout=90,
        interval=0.5,
        what=f"{total} alerts in the queue",
    )
    rows = queue.locator(".qrow").count()
    assert 0 < rows < 80, f"{rows} rows in the DOM for {total} alerts"

    queue.focus()
    page.keyboard.press("End")
    last = queue.locator(".qrow.selected")
    last.wait_for()
    assert int(last.get_attribute("aria-posinset")) == int(last.get_attribute("aria-setsize"))
    assert queue.locator(".qrow").count() < 80
    page.keyboard.press("k")
    page.keyboard.press("Home")
    assert queue.locator(".qrow.selected").get_attribute("aria-posinset") == "1"

    # Scrolling half way renders the rows there, and only those.
    page.evaluate(
        "() => { const q = document.getElementById('queue'); q.scrollTop = q.scrollHeight / 2; }"
    )
    mid = total // 2
    wait_until(
        lambda: any(
            abs(int(x) - mid) < 40
            for x in queue.locator(".qrow").evaluate_all(
                "els => els.map(e => e.getAttribute('aria-posinset'))"
            )
        ),
        timeout=5,
        what="rows around the middle",
    )
    assert queue.locator(".qrow").count() < 80
    p.shot("desk-10000-alerts")
