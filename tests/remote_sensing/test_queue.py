"""ChangeRegion events reach the risk queue: `farsight rs watch --queue` over the demo area raises
one alert for the change inside the ecological red line, with its quicklook in the platform's
evidence store; a later revisit confirms the same alert instead of opening a second one, and a
change not seen again expires and resolves its alert."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import rasterio
import yaml

from alerts.store import AlertStore
from app.cli import main
from app.demos.satellite import AOI, prepare_demo_aoi
from farsight.evidence import EvidenceStore


def test_watch_queue_raises_one_alert_per_tracked_change_with_its_quicklook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    config = tmp_path / "farsight.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(data)}), encoding="utf-8")
    data.mkdir()
    scenes, zones, _ = prepare_demo_aoi(tmp_path / "rs")
    argv = [
        "--config",
        str(config),
        "rs",
        "watch",
        str(scenes),
        "--once",
        "--queue",
        "--zones",
        str(zones),
        "--out-dir",
        str(tmp_path / "out"),
        "--confirm",
        "first_later",
    ]
    assert main(argv) == 0
    store = AlertStore(data / "farsight.db")
    try:
        alerts, _ = store.list(limit=50)
        assert len(alerts) == 1, [a.summary for a in alerts]
        a = alerts[0]
        assert (a.site, a.rule_id, a.department, a.state) == (
            AOI,
            "rs-change-protected",
            "env",
            "new",
        )
        assert dict(a.labels)["zones"] == "redline-1" and dict(a.labels)["state"] == "possible"
        assert dict(a.labels)["change"] == "new_construction"
        assert a.severity == "major"  # possible, one step up inside an ecological red line
        assert "possible" in a.summary and a.value > 5000  # area in m2
        (sha,) = a.evidence
        png = EvidenceStore(data / "evidence").path(sha)
        assert png.suffix == ".png" and png.read_bytes().startswith(b"\x89PNG")
        # Every alert event went through the audit chain and the outbox like the rules' alerts.
        assert [e.action for e in store.audit.entries(subject=f"alert:{a.id}")] == ["opened"]

        # A later revisit sees the change again: the same track, confirmed, on the same alert.
        aoi_dir = scenes / AOI
        later = aoi_dir / "later.tif"
        shutil.copy(aoi_dir / "after.tif", later)
        with rasterio.open(later, "r+") as dst:
            dst.update_tags(ACQUISITION_DATETIME="2026-07-20T03:10:00Z")
        assert main(argv) == 0
        alerts, _ = store.list(limit=50)
        assert [x.id for x in alerts] == [a.id]
        assert "confirmed" in alerts[0].summary
        assert alerts[0].severity == "critical"  # confirmed, one step up inside the red line
        events = [
            json.loads(line)
            for line in (tmp_path / "out" / "events.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        assert [e["state"] for e in events] == ["possible", "confirmed"]
        # Nothing new: a third run with no new scene changes nothing.
        assert main(argv) == 0
        assert len(store.list(limit=50)[0]) == 1
    finally:
        store.close()


def test_watch_queue_resolves_the_alert_of_a_change_that_expires(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "farsight.yaml"
    # The policy from the settings file: one look, and a change not seen in it expires.
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(data),
                "remote_sensing": {"confirmation": {"rule": "k_of_n", "k": 1, "n": 1}},
            }
        ),
        encoding="utf-8",
    )
    data.mkdir()
    scenes, zones, _ = prepare_demo_aoi(tmp_path / "rs")
    argv = ["--config", str(config), "rs", "watch", str(scenes), "--once", "--queue"]
    argv += ["--zones", str(zones), "--out-dir", str(tmp_path / "out")]
    assert main(argv) == 0
    store = AlertStore(data / "farsight.db")
    try:
        (a,) = store.list(limit=50)[0]
        assert (a.activity, dict(a.labels)["state"]) == ("firing", "possible")
        # A later scene in which the change is gone (the before scene, dated later).
        aoi_dir = scenes / AOI
        gone = aoi_dir / "later.tif"
        shutil.copy(aoi_dir / "before.tif", gone)
        with rasterio.open(gone, "r+") as dst:
            dst.update_tags(ACQUISITION_DATETIME="2026-07-20T03:10:00Z")
        assert main(argv) == 0
        (b,) = store.list(limit=50)[0]
        assert b.id == a.id and b.activity == "resolved" and b.resolved_at is not None
        events = [
            json.loads(line)
            for line in (tmp_path / "out" / "events.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        assert [(e["state"], e["previous"]) for e in events] == [
            ("possible", None),
            ("expired", "possible"),
        ]
    finally:
        store.close()
