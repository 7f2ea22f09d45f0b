"""The duty officer's desk in a real browser, against the running demo: sign in with the demo's
link, see alerts arrive live, and take one alert through its whole handling with the audit trail."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.browser.conftest import DESKTOP
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


def test_sign_in_see_live_alert_and_handle_it_to_closure(demo, open_page) -> None:
    p = open_page(DESKTOP, name="desk")
    page = p.page
    page.goto(f"{demo.url}/#token={demo.token}")
    # Signed in: the token leaves the address bar, the scope shows, the list fills.
    # (No wait_for_function: it evaluates strings, which the dashboard's CSP rightly refuses.)
    page.locator("body[data-rendered='1']").wait_for()
    assert "token=" not in page.url
    page.get_by_text("demo-officer · all departments").wait_for()
    page.locator("#alert-list li").first.wait_for()
    page.locator("#conn.conn-live").wait_for()
    p.shot("dashboard-desktop")

    # A new alert raised after the page loaded reaches it without a reload, through the live
    # stream: a weigh-in-motion station of the demo reports an overloaded truck (to the demo's
    # broker, as its simulated stations do) and the demo's rule wim-overload raises it at once.
    page.evaluate("window.__marker = 1")
    known = max(
        a["id"]
        for a in demo.api("/api/alerts?limit=1000&sort=newest&muted=true")["items"]
        + demo.api("/api/alerts?limit=1000&sort=newest")["items"]
    )
    weight = 49.37  # tonnes on two axles: far beyond the 18 t limit and the scale's 5 % error
    demo.publish(
        "fs/v1/transport/yc-wim-g318-yiling/wim1/reading",
        {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "metrics": {"gross_weight": weight, "axles": 2.0, "speed": 61.0},
            "attrs": {"plate": "鄂E·T4937"},
        },
    )
    fresh = wait_until(
        lambda: [
            a
            for a in demo.api("/api/alerts?limit=50&sort=newest")["items"]
            if a["id"] > known and a["rule_id"] == "wim-overload" and f"{weight} t" in a["summary"]
        ],
        timeout=60,
        interval=0.2,
        what="the demo to raise the overloaded truck's alert",
    )[0]
    page.get_by_role("button", name="Desk").click()
    page.locator("#f-q").fill(f"{weight} t")
    page.locator(f"#q-{fresh['id']}").wait_for(timeout=5000)
    assert page.evaluate("window.__marker") == 1, "the page reloaded"
    page.locator("#f-q").fill("")

    # The desk: the risk queue, highest score first.
    queue = page.locator("#queue")
    queue.locator(".qrow").first.wait_for()
    scores = [float(s) for s in queue.locator(".qscore").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)

    # Take a new alert from the API, open it from the queue by keyboard.
    target = next(a for a in demo.api("/api/alerts?state=new&sort=risk&limit=100")["items"])
    page.locator("#f-q").fill(target["rule_id"])
    wait_until(
        lambda: queue.locator(f"#q-{target['id']}").count() == 1,
        timeout=10,
        what="the alert in the filtered queue",
    )
    queue.focus()
    page.keyboard.press("Home")
    for _ in range(queue.locator(".qrow").count()):
        if queue.locator(".qrow.selected").get_attribute("data-id") == str(target["id"]):
            break
        page.keyboard.press("j")
    assert queue.get_attribute("aria-activedescendant") == f"q-{target['id']}"
    page.keyboard.press("Enter")
    page.locator("#detail-h", has_text=f"Alert {target['id']}").wait_for()
    page.locator("#d-timeline li").first.wait_for()
    assert page.locator("#d-risk tbody tr").count() >= 3, "the score's explanation is shown"

    def act(button: str, fill=None) -> None:
        page.locator("#d-actions").get_by_role("button", name=button, exact=True).click()
        dialog = page.locator("#action-dialog")
        dialog.wait_for(state="visible")
        assert "You are about to" in dialog.locator("#action-confirm").inner_text()
        dialog.locator("#action-note").fill(f"browser test: {button.lower()}")
        if fill:
            fill(dialog)
        dialog.locator("#action-submit").click()
        dialog.wait_for(state="hidden")

    act("Acknowledge")
    page.locator("#d-state", has_text="acknowledged").wait_for()

    def dispatch_fields(d) -> None:
        d.locator("#f-team").fill("Team 3")
        d.locator("#f-inspector").fill("Wang")
        d.locator("#f-due").fill((date.today() + timedelta(days=2)).isoformat())

    act("Dispatch", dispatch_fields)
    page.locator("#d-state", has_text="dispatched").wait_for()
    act("Verify", lambda d: d.locator("#f-finding").select_option("violation_confirmed"))
    page.locator("#d-state", has_text="verified").wait_for()
    act("Close", lambda d: d.locator("#f-case").fill("YC-2026-0042"))
    page.locator("#d-state", has_text="closed").wait_for()

    # The audit timeline: every step with who, the note and its hash in the audit chain.
    timeline = page.locator("#d-timeline")
    for step in ("ack", "dispatch", "verify", "close"):
        timeline.locator(f"li.tl-{step}").wait_for()
    text = timeline.inner_text()
    assert "browser test: dispatch" in text and "Team 3" in text and "YC-2026-0042" in text
    hashes = timeline.locator(
        ".tl-ack .hash, .tl-dispatch .hash, .tl-verify .hash, .tl-close .hash"
    ).all_inner_texts()
    assert len(hashes) == 4 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), hashes
    server = demo.api(f"/api/alerts/{target['id']}/timeline")
    assert [
        e["audit"]["hash"]
        for e in server["timeline"]
        if e["action"] in ("ack", "dispatch", "verify", "close")
    ] == hashes
    assert server["alert"]["state"] == "closed"
    p.shot("desk-detail-desktop")


def test_comment_and_silence_from_the_desk(demo, open_page) -> None:
    p = open_page(DESKTOP, name="silence")
    page = p.page
    page.goto(f"{demo.url}/#token={demo.token}")
    page.locator("body[data-rendered='1']").wait_for()
    target = demo.api("/api/alerts?state=new,acknowledged&sort=newest&limit=1")["items"][0]
    page.goto(f"{demo.url}/#/alert/{target['id']}")
    page.locator("#d-timeline li").first.wait_for()

    page.locator("#d-actions").get_by_role("button", name="Comment", exact=True).click()
    page.locator("#action-note").fill("called the operator")
    page.locator("#action-submit").click()
    page.locator("#d-timeline .tl-comment", has_text="called the operator").wait_for()

    # Cancel changes nothing; the confirmed silence mutes the alert, which leaves the queue.
    page.locator("#d-actions").get_by_role("button", name="Silence", exact=True).click()
    page.locator("#action-cancel").click()
    assert not [s for s in demo.api("/api/silences")["items"] if s["reason"] == "maintenance visit"]
    page.locator("#d-actions").get_by_role("button", name="Silence", exact=True).click()
    page.locator("#f-silence-hours").select_option("4")
    page.locator("#action-note").fill("maintenance visit")
    page.locator("#action-submit").click()
    page.locator("#action-dialog").wait_for(state="hidden")
    mine = [s for s in demo.api("/api/silences")["items"] if s["reason"] == "maintenance visit"]
    assert (
        len(mine) == 1 and mine[0]["creator"] == "demo-officer" and mine[0]["status"] == "active"
    ), mine
    assert target["site"] in str(mine[0]["matchers"]) and target["rule_id"] in str(
        mine[0]["matchers"]
    ), mine
    wait_until(
        lambda: demo.api(f"/api/alerts/{target['id']}")["alert"]["suppressed"],
        timeout=10,
        what="the alert to be muted",
    )
    page.get_by_role("button", name="Desk").click()
    page.locator("#queue .qrow").first.wait_for()
    wait_until(
        lambda: page.locator(f"#q-{target['id']}").count() == 0,
        timeout=5,
        what="the muted alert to leave the queue",
    )
