"""``/api/evidence``: files by hash for the alerts a token may see; uploads by bearer token,
audited."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import cv2
import numpy as np

from farsight.evidence import EvidenceLedger, EvidenceStore
from farsight.types import AlertSignal
from rules.engine import fingerprint
from tests.hub.conftest import bearer


def jpeg(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def alert_with_evidence(hub, rule_id: str, site: str, evidence: tuple[str, ...]) -> int:
    s = hub.registry.get(site)
    dev = s.devices[0].id
    sig = AlertSignal(
        rule_id=rule_id,
        fingerprint=fingerprint(rule_id, site, dev, "video_smoke"),
        status="firing",
        site=site,
        device=dev,
        metric="video_smoke",
        severity="warning",
        summary="smoke",
        ts=datetime.now(UTC),
        value=0.9,
        threshold=0.5,
        department=s.department,
        entity_id=s.entity_id,
        evidence=evidence,
    )
    return hub.alerts.apply([sig])[0].id


def test_snapshot_of_an_alert_is_served_to_its_department_only(hub, tokens, rule_id, anonymous):
    store = EvidenceStore.for_data_dir(hub.settings.data_dir)
    data = jpeg(1)
    sha = store.put(data, ".jpg")
    alert_with_evidence(hub, rule_id, "aq-1", (sha,))  # an env alert
    r = anonymous.get(f"/api/evidence/{sha}")
    assert r.status_code == 401
    for who in ("admin", "env"):
        r = anonymous.get(f"/api/evidence/{sha}", headers=bearer(tokens[who]))
        assert r.status_code == 200, r.text
        assert r.content == data and hashlib.sha256(r.content).hexdigest() == sha
        assert r.headers["content-type"] == "image/jpeg"
        assert (
            "immutable" in r.headers["cache-control"]
            and r.headers["x-content-type-options"] == "nosniff"
        )
    # The transport department sees nothing of env's alerts, not even that the file exists.
    assert (
        anonymous.get(f"/api/evidence/{sha}", headers=bearer(tokens["transport"])).status_code
        == 404
    )
    # Not a hash: refused before any lookup; a hash with no file: 404.
    assert anonymous.get(
        "/api/evidence/..%2f..%2fetc%2fpasswd", headers=bearer(tokens["admin"])
    ).status_code in (404, 422)
    assert (
        anonymous.get("/api/evidence/" + "A" * 64, headers=bearer(tokens["admin"])).status_code
        == 422
    )
    assert (
        anonymous.get("/api/evidence/" + "0" * 64, headers=bearer(tokens["admin"])).status_code
        == 404
    )


def test_upload_needs_a_bearer_token_checks_content_and_is_audited(hub, tokens, client, anonymous):
    data = jpeg(2)
    # The session cookie authenticates reads only: an upload through it is refused.
    assert client.post("/api/evidence", content=data).status_code == 401
    assert anonymous.post("/api/evidence", content=data).status_code == 401
    r = anonymous.post(
        "/api/evidence", content=b"<script>alert(1)</script>", headers=bearer(tokens["env"])
    )
    assert r.status_code == 415
    r = anonymous.post(
        "/api/evidence",
        content=data,
        headers={**bearer(tokens["env"]), "Content-Type": "text/html"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "media_type": "image/jpeg",
    }
    assert (
        EvidenceStore.for_data_dir(hub.settings.data_dir).path(body["sha256"]).read_bytes() == data
    )
    entries = [
        e
        for e in hub.alerts.audit.entries(subject=f"evidence:{body['sha256']}")
        if e.action == "evidence.upload"
    ]
    assert entries and entries[-1].actor == "alice"


def test_an_uploaded_photo_is_its_departments_and_is_cited_in_verification(
    hub, tokens, rule_id, anonymous
):
    a = alert_with_evidence(hub, rule_id, "aq-1", ())
    env = bearer(tokens["env"])
    sha = anonymous.post("/api/evidence", content=jpeg(3), headers=env).json()["sha256"]
    # Recorded with who uploaded it for which department: env reads it, transport does not.
    uploads = EvidenceLedger(hub.alerts.db).uploads(sha)
    assert [(u.department, u.uploader, u.media_type) for u in uploads] == [
        ("env", "alice", "image/jpeg")
    ]
    assert anonymous.get(f"/api/evidence/{sha}", headers=env).status_code == 200
    transport = bearer(tokens["transport"])
    assert anonymous.get(f"/api/evidence/{sha}", headers=transport).status_code == 404
    for action, body in (
        ("ack", {"note": "seen"}),
        ("dispatch", {"note": "go", "team": "team-1", "inspector": "Li", "due": "2026-12-01"}),
        (
            "verify",
            {"finding": "violation_confirmed", "note": "burning waste on site", "evidence": [sha]},
        ),
    ):
        r = anonymous.post(f"/api/alerts/{a}/{action}", json=body, headers=env)
        assert r.status_code == 200, r.text
    assert r.json()["evidence"] == [sha]
    assert anonymous.get(f"/api/evidence/{sha}", headers=env).status_code == 200
    assert anonymous.get(f"/api/evidence/{sha}", headers=transport).status_code == 404
    # Evidence cited in a step must be hashes: anything else is refused at the boundary.
    b = alert_with_evidence(hub, rule_id + "b", "aq-1", ())
    for action, body in (
        ("ack", {"note": "seen"}),
        ("dispatch", {"note": "go", "team": "t", "inspector": "Li", "due": "2026-12-01"}),
    ):
        assert (
            anonymous.post(f"/api/alerts/{b}/{action}", json=body, headers=env).status_code == 200
        )
    r = anonymous.post(
        f"/api/alerts/{b}/verify",
        json={"note": "n", "finding": "no_violation", "evidence": ["../../etc/passwd"]},
        headers=env,
    )
    assert r.status_code == 422


def _to_verify(anonymous, alert_id: int, headers: dict[str, str]) -> None:
    for action, body in (
        ("ack", {"note": "seen"}),
        ("dispatch", {"note": "go", "team": "t", "inspector": "Li", "due": "2026-12-01"}),
    ):
        r = anonymous.post(f"/api/alerts/{alert_id}/{action}", json=body, headers=headers)
        assert r.status_code == 200, r.text


def test_a_step_cites_only_evidence_that_exists_and_its_department_may_read(
    hub, tokens, rule_id, anonymous
):
    env, transport = bearer(tokens["env"]), bearer(tokens["transport"])
    # Transport's own upload, and a snapshot of a transport alert (a producer's file).
    theirs = anonymous.post("/api/evidence", content=jpeg(11), headers=transport).json()["sha256"]
    snapshot = EvidenceStore.for_data_dir(hub.settings.data_dir).put(jpeg(12), ".jpg")
    alert_with_evidence(hub, rule_id + "w", "wim-1", (snapshot,))
    missing = hashlib.sha256(b"never uploaded " + rule_id.encode()).hexdigest()
    a = alert_with_evidence(hub, rule_id, "aq-1", ())
    _to_verify(anonymous, a, env)
    for sha in (theirs, snapshot, missing):
        r = anonymous.post(
            f"/api/alerts/{a}/verify",
            json={"note": "n", "finding": "violation_confirmed", "evidence": [sha]},
            headers=env,
        )
        assert r.status_code == 422, (sha, r.text)
        assert sha in r.json()["detail"]
        # Citing failed and nothing changed: still not env's to read.
        assert anonymous.get(f"/api/evidence/{sha}", headers=env).status_code == 404
    assert hub.alerts.get(a).state == "dispatched" and hub.alerts.get(a).evidence == ()

    # A province-wide officer may not hand one department's file to another either.
    admin = bearer(tokens["admin"])
    r = anonymous.post(
        f"/api/alerts/{a}/verify",
        json={"note": "n", "finding": "violation_confirmed", "evidence": [theirs]},
        headers=admin,
    )
    assert r.status_code == 422 and theirs in r.json()["detail"]
    assert anonymous.get(f"/api/evidence/{theirs}", headers=env).status_code == 404

    # Its own upload, a province-wide upload, and a snapshot one of its alerts lists: citable.
    own = anonymous.post("/api/evidence", content=jpeg(13), headers=env).json()["sha256"]
    provincial = anonymous.post("/api/evidence", content=jpeg(14), headers=admin).json()["sha256"]
    env_snapshot = EvidenceStore.for_data_dir(hub.settings.data_dir).put(jpeg(15), ".jpg")
    alert_with_evidence(hub, rule_id + "s", "stack-1", (env_snapshot,))
    assert anonymous.get(f"/api/evidence/{provincial}", headers=env).status_code == 404
    r = anonymous.post(
        f"/api/alerts/{a}/verify",
        json={"note": "n", "finding": "violation_confirmed", "evidence": [own, env_snapshot]},
        headers=env,
    )
    assert r.status_code == 200, r.text
    b = alert_with_evidence(hub, rule_id + "p", "aq-1", ())
    _to_verify(anonymous, b, env)
    # The department cannot read the province-wide upload, so cannot cite it; the province can.
    body = {"note": "n", "finding": "no_violation", "evidence": [provincial]}
    assert anonymous.post(f"/api/alerts/{b}/verify", json=body, headers=env).status_code == 422
    r = anonymous.post(f"/api/alerts/{b}/verify", json=body, headers=admin)
    assert r.status_code == 200, r.text
    assert anonymous.get(f"/api/evidence/{provincial}", headers=env).status_code == 200
    assert anonymous.get(f"/api/evidence/{provincial}", headers=transport).status_code == 404
