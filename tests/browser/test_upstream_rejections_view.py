"""上报退回 in a real browser, against the running demo: a real outbox sender pushes the demo's
records to a real receiver that rejects one alert's record; a viewer sees the rejection and no
way to correct it (and the hub refuses a viewer's correction), a supervisor corrects the flagged
field in the form, the list shows it corrected, and the re-pushed record is accepted."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.outbox import OutboxSender
from alerts.upstream_rejections import Rejection, get_rejection, list_rejections
from farsight.db import Database
from farsight.settings import UpstreamSettings
from hub.auth import Role, TokenStore
from tests.alerts.receiver import OK, RawRequest, Receiver, reject
from tests.browser.conftest import DESKTOP
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


def _post_status(url: str, token: str, body: dict[str, Any]) -> int:
    req = urllib.request.Request(
        url,
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass(frozen=True)
class Rejected:
    """The demo's record the receiver rejected, and the real sender and receiver behind it."""

    db: Database
    sender: OutboxSender
    receiver: Receiver
    rejection: Rejection
    sent_value: float
    message: str


@pytest.fixture
def rejected(demo: Any) -> Iterator[Rejected]:
    """A real outbox sender pushes the demo's waiting records (the demo has no upstream
    configured) to a real receiver whose quality rule refuses one alert's value as first
    reported; the rest is accepted."""
    db = Database.open(demo.data_dir / "farsight.db")
    # The first record of an alert with a value, still waiting in the demo's outbox.
    seen: set[int] = set()
    first = None
    for row in db.query(
        "SELECT alert_id, status, payload FROM outbox WHERE alert_id > 0 ORDER BY id"
    ):
        alert_id, status, payload = int(row[0]), row[1], json.loads(row[2])
        value = payload["alert"]["value"]
        if alert_id not in seen and status == "pending" and isinstance(value, (int, float)):
            first = payload
            break
        seen.add(alert_id)
    assert first is not None, "the demo has no alert record waiting"
    target_id, sent_value = first["alert"]["id"], first["alert"]["value"]
    message = f"数值不可信 implausible value {sent_value}"

    def script(req: RawRequest) -> tuple:
        alert = req.payload.get("alert") if isinstance(req.payload, dict) else None
        if (
            isinstance(alert, dict)
            and alert.get("id") == target_id
            and alert.get("value") == sent_value
        ):
            return reject([{"field": "/alert/value", "message": message, "code": "value.range"}])
        return OK

    # The rest of the demo's backlog (thousands of records once the queue test has run) is made
    # not yet due, so the sender pushes this alert's records and the few the demo adds meanwhile.
    later = 2**62
    with db.transaction() as c:
        c.execute(
            "UPDATE outbox SET next_at = ? WHERE status = 'pending' AND alert_id != ?",
            (later, target_id),
        )
    receiver = Receiver(script)
    settings = UpstreamSettings.model_validate(
        {"url": receiver.url, "timeout_s": 5.0, "batch": 500, "lease_s": 60.0}
    )
    sender = OutboxSender(db, settings)
    try:
        rejection = wait_until(
            lambda: (
                sender.run_once()
                and [r for r in list_rejections(db, None, "open") if r.alert_id == target_id]
            ),
            timeout=30,
            what="the receiver to reject the target alert's record",
        )[0]
        yield Rejected(db, sender, receiver, rejection, sent_value, message)
    finally:
        sender.close()
        receiver.close()
        with db.transaction() as c:
            c.execute("UPDATE outbox SET next_at = 0 WHERE next_at = ?", (later,))
        db.close()


def test_a_supervisor_corrects_a_rejected_record_in_the_browser_and_a_viewer_cannot(
    demo: Any, open_page: Any, rejected: Rejected
) -> None:
    db, sender, receiver = rejected.db, rejected.sender, rejected.receiver
    rejection, sent_value, message = rejected.rejection, rejected.sent_value, rejected.message
    tokens = TokenStore(demo.data_dir / "farsight.db", ())
    try:
        viewer = tokens.issue("rej-viewer", None, role=Role.VIEWER)
    finally:
        tokens.close()
    rejected_at = datetime.fromisoformat(rejection.to_json()["rejected_at"])
    beijing = rejected_at.astimezone(ZoneInfo("Asia/Shanghai"))

    # The viewer sees it, with no way to correct it; the hub refuses one anyway.
    pv = open_page(DESKTOP, name="rejections-viewer")
    # (The tab loads the list on its own: no need to wait for the map and the queue.)
    pv.page.goto(f"{demo.url}/#token={viewer}")
    pv.page.locator("#tab-rejections").click()
    row = pv.page.locator(f"#rej-list[data-role='viewer'] #rej-{rejection.id}")
    row.wait_for()
    assert row.locator(".rej-correct").count() == 0
    url = f"{demo.url}/api/upstream/rejections/{rejection.id}/correct"
    body = {"fields": {"/alert/value": 1.0}, "note": "n"}
    assert _post_status(url, viewer, body) == 403

    # The supervisor (the demo's link) sees the count on the tab, the record as sent and
    # its error, corrects the flagged field and sees it corrected.
    p = open_page(DESKTOP, name="rejections")
    page = p.page
    page.goto(f"{demo.url}/#token={demo.token}")
    opened = demo.api("/api/upstream/rejections?status=open")["count"]
    badge = page.locator("#rej-count")
    badge.wait_for()
    assert badge.inner_text().strip() == str(opened)
    page.locator("#tab-rejections").click()
    row = page.locator(f"#rej-{rejection.id}")
    row.wait_for()
    assert row.locator(".rej-when").inner_text() == beijing.strftime("%Y-%m-%d %H:%M:%S")
    cells = row.locator(".rej-errors tbody td").all_inner_texts()
    assert cells[:3] == ["/alert/value", message, "value.range"]
    assert float(cells[3]) == sent_value
    row.locator(".rej-correct").click()
    field = row.locator("input[data-pointer='/alert/value']")
    assert float(field.input_value()) == sent_value
    fixed = round(sent_value / 10, 3) or 1.0
    field.fill(str(fixed))
    row.locator("textarea").fill("decimal point lost by the meter")
    p.shot("rejection-form")
    row.get_by_role("button", name="提交更正 Submit correction").click()
    page.locator("#rej-message", has_text="corrected").wait_for()
    assert page.locator(f"#rej-{rejection.id}").count() == 0  # no longer open
    page.locator("#rej-status").select_option("corrected")
    done = page.locator(f"#rej-{rejection.id}[data-status='corrected']")
    done.wait_for()
    assert float(done.locator(".rej-fixed").inner_text()) == fixed
    assert "demo-officer" in done.locator(".rej-by").inner_text()
    if opened == 1:
        assert badge.is_hidden()
    else:
        assert badge.inner_text().strip() == str(opened - 1)

    # The outbox pushes the corrected record again; the receiver takes it.
    wait_until(
        lambda: sender.run_once() and get_rejection(db, rejection.id).outbox_status == "sent",
        timeout=30,
        what="the corrected record to be accepted",
    )
    assert receiver.accepted[rejection.key]["alert"]["value"] == fixed
    page.locator("#rej-status").select_option("")
    page.locator(f"#rej-{rejection.id} .rej-delivery", has_text="accepted").wait_for()
    p.shot("rejection-corrected")
