"""Department scope in the browser, live updates without reload, and reconnecting after the hub
restarts."""

from __future__ import annotations

import time
import urllib.error

import pytest

from tests.browser.conftest import DESKTOP
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


def test_a_department_token_sees_and_reaches_only_its_department(demo, open_page) -> None:
    token = demo.issue_token("bob", "transport")
    p = open_page(DESKTOP, name="scope-transport")
    page = p.page
    page.goto(f"{demo.url}/#token={token}")
    page.locator("body[data-rendered='1']").wait_for()
    page.get_by_text("bob · department transport").wait_for()
    dept = page.locator("#dept")
    assert dept.is_disabled() and dept.locator("option").all_inner_texts() == ["transport"]

    everything = demo.api("/api/alerts?limit=1000")["items"]
    env_ids = {a["id"] for a in everything if a["department"] == "env"}
    assert env_ids, "the demo raised no env alert to hide"
    wait_until(
        lambda: demo.api("/api/alerts?limit=1000&department=transport")["total"] > 0,
        timeout=60,
        what="a transport alert",
    )
    page.get_by_role("button", name="Desk").click()
    page.locator("#queue .qrow").first.wait_for()
    shown = {
        int(x)
        for x in page.eval_on_selector_all("#queue .qrow", "els => els.map(e => e.dataset.id)")
    }
    shown |= {
        int(x)
        for x in page.eval_on_selector_all(
            "#alert-list li[data-id]", "els => els.map(e => e.dataset.id)"
        )
    }
    assert shown and not (shown & env_ids), shown & env_ids
    # Sites of the other department are neither listed nor on the map.
    env_sites = {s["id"] for s in demo.api("/api/sites") if s["department"] == "env"}
    page.get_by_role("button", name="Dashboard").click()
    page.locator("#site-list li").first.wait_for()
    names = set(page.locator("#site-list .name").all_inner_texts())
    assert names and not names & {s["name"] for s in demo.api("/api/sites") if s["id"] in env_sites}

    # Enforced by the hub, not only hidden: opening an env alert by its address is refused, as
    # if there were no such alert (nothing tells that it exists or whose it is).
    env_id = min(env_ids)
    page.goto(f"{demo.url}/#/alert/{env_id}")
    page.locator("#detail-empty", has_text="HTTP 404").wait_for()
    with pytest.raises(urllib.error.HTTPError) as exc:
        demo.api(f"/api/alerts/{env_id}", token=token)
    assert exc.value.code == 404
    # A viewer's desk offers no handling buttons; the hub would refuse them anyway.
    assert page.locator("#d-actions button, #queue button[data-action]").count() == 0
    p.shot("desk-transport-scope")


def _timeline_len(page) -> int:
    return page.locator("#d-timeline li").count()


def test_updates_arrive_live_and_after_a_hub_restart(demo, open_page) -> None:
    p = open_page(DESKTOP, name="reconnect")
    page = p.page
    page.goto(f"{demo.url}/#token={demo.token}")
    page.locator("body[data-rendered='1']").wait_for()
    page.locator("#conn.conn-live").wait_for()
    alert = demo.api("/api/alerts?state=new,acknowledged&limit=1")["items"][0]
    page.goto(f"{demo.url}/#/alert/{alert['id']}")
    page.locator("#d-timeline li").first.wait_for()

    # A deadline, not a timing claim: how fast updates arrive is a figure for a benchmark (a
    # restarted demo replays two hours of history, which slows everything on a small machine).
    def comment_shows(note: str, deadline_s: float = 15.0) -> float:
        n = _timeline_len(page)
        t0 = time.monotonic()
        demo.api(f"/api/alerts/{alert['id']}/comment", method="POST", body={"note": note})
        page.locator("#d-timeline .tl-note", has_text=note).wait_for(timeout=deadline_s * 1000)
        assert _timeline_len(page) == n + 1
        return time.monotonic() - t0

    comment_shows("from another desk")

    # Watch the connection badge from inside the page, then restart the hub under it.
    page.evaluate(
        """() => { window.__conn = [];
             const conn = () => document.getElementById('conn');
             new MutationObserver(() => window.__conn.push(conn().textContent))
               .observe(conn(), {childList: true, characterData: true, subtree: true}); }"""
    )
    demo.restart()
    page.locator("#conn.conn-live").wait_for(timeout=30_000)
    seen = page.evaluate("window.__conn")
    assert any(s in ("reconnecting", "offline") for s in seen) and seen[-1] == "live", seen
    # Live again without a reload: a new step shows up.
    comment_shows("after the restart")
    p.shot("desk-after-restart")


def test_the_site_panel_follows_live_readings(demo, open_page) -> None:
    p = open_page(DESKTOP, name="site-live")
    page = p.page
    page.goto(f"{demo.url}/#token={demo.token}")
    page.locator("body[data-rendered='1']").wait_for()
    site = next(s for s in demo.api("/api/sites") if s["department"] == "env" and s["limits"])
    page.goto(f"{demo.url}/#/site/{site['id']}")
    page.locator("#site-h", has_text=site["name"]).wait_for()
    page.locator("#site-charts .uplot").first.wait_for()
    latest = page.locator("#site-charts .latest").first
    wait_until(lambda: latest.inner_text().strip(), timeout=30, what="a current value")
    page.evaluate("window.__marker = 1")
    first = latest.inner_text()
    points = page.evaluate(
        "window.__farsightMap && document.querySelectorAll('#site-charts .uplot').length"
    )
    assert points >= 1
    wait_until(
        lambda: latest.inner_text() != first,
        timeout=60,
        interval=0.2,
        what="the site's value to change live",
    )
    assert page.evaluate("window.__marker") == 1, "the page reloaded"
    # Day and week come downsampled from the hub (interval buckets), drawn the same way.
    page.get_by_role("button", name="Week").click()
    page.locator("#site-charts .uplot").first.wait_for()
    p.shot("dashboard-site-week")


def test_map_layers_and_the_satellite_alert_follow_the_scope(demo, open_page) -> None:
    sat = wait_until(
        lambda: [
            a
            for a in demo.api("/api/alerts?limit=1000&q=redline")["items"]
            if a["device"] == "satellite"
        ],
        timeout=120,
        interval=1,
        what="the demo's satellite change alert",
    )[0]
    layers = demo.api("/api/map/layers")
    assert (
        sat["site"] in layers["aois"]
        and layers["changes"]["features"]
        and layers["zones"]["features"]
    )
    transport = demo.issue_token("carol", "transport")
    assert demo.api("/api/map/layers", token=transport)["changes"]["features"] == []
    me = demo.api("/api/me", token=transport)
    assert me.pop("expires")  # when the token ends
    assert me == {
        "user": "carol",
        "department": "transport",
        "departments": ["transport"],
        "role": "viewer",  # `farsight token issue` without --role
    }

    p = open_page(DESKTOP, name="satellite")
    page = p.page
    page.goto(f"{demo.url}/#token={demo.token}")
    page.locator("body[data-rendered='1']").wait_for()
    page.goto(f"{demo.url}/#/alert/{sat['id']}")
    page.locator("#d-timeline li").first.wait_for()
    # The change polygon on the alert's map, and the quicklook as evidence.
    page.locator("#d-map path[stroke='#d92d20']").first.wait_for(state="attached")
    page.locator("#d-evidence img.thumb").first.wait_for()
    p.shot("desk-satellite-alert")
