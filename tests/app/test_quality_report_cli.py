"""``farsight report quality``: a department's month from a real database, as CSV and HTML.

The database holds one simulated day (tests/quality_day.py); the month's received and valid
counts equal that day's ground truth, and its expected counts owe every day of the month."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest
import yaml

from alerts.audit_store import SqlAuditLog
from app.cli import build_parser, main
from tests.quality_day import REGISTRY_DOC, make_registry, truth


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory, quality_day_sqlite: Path) -> Path:
    root = tmp_path_factory.mktemp("quality-cli")
    (root / "sites.yaml").write_text(yaml.safe_dump(REGISTRY_DOC), encoding="utf-8")
    cfg = root / "farsight.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"data_dir": str(root / "var"), "registry": {"sites_file": str(root / "sites.yaml")}}
        ),
        encoding="utf-8",
    )
    (root / "var").mkdir()
    shutil.copyfile(quality_day_sqlite, root / "var" / "farsight.db")
    return cfg


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("FARSIGHT")]:
        monkeypatch.delenv(name)


def test_csv_month_matches_the_simulated_day(installation: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.csv"
    args = build_parser().parse_args(
        ["report", "quality", "--month", "2026-11", "--department", "env", "--format", "csv"]
        + ["--out", str(out), "--config", str(installation)]
    )
    assert args.func(args) == 0
    rows = {(r["site"], r["device"]): r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert set(rows) == {("qd-stack", ""), ("qd-stack", "cems1"), ("qd-air", ""), ("qd-air", "aq1")}
    registry = make_registry()
    for site, device, metrics in (("qd-stack", "cems1", 7), ("qd-air", "aq1", 6)):
        want = truth(registry, site, device)
        row = rows[(site, device)]
        assert int(row["expected"]) == 30 * 24 * 60 * metrics
        assert int(row["received"]) == sum(want.received)
        assert int(row["valid"]) == sum(want.valid)
        assert int(row["hourly_valid"]) == sum(want.hourly_valid)
        assert int(row["daily_valid"]) == want.daily_valid
        assert float(row["effective_rate"]) == round(sum(want.valid) / (30 * 1440 * metrics), 4)
    with SqlAuditLog(installation.parent / "var" / "farsight.db", create=False) as audit:
        last = audit.entries(after_seq=audit.head()[0] - 1)[0]
        assert (last.action, last.subject, last.data["month"]) == (
            "export",
            "report:quality",
            "2026-11",
        )


def test_html_default_name_and_refusals(
    installation: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--config", str(installation), "report", "quality", "--month", "2026-11"]) == 0
    page = tmp_path / "quality-report-2026-11.html"
    assert capsys.readouterr().out.strip() == str(page)
    text = page.read_text(encoding="utf-8")
    assert "数据质量月报" in text and 'data-site="qd-air"' in text and "<script" not in text
    bad = ["--config", str(installation), "report", "quality", "--department", "nope"]
    assert main([*bad, "--month", "2026-11"]) == 2
    assert main(["--config", str(installation), "report", "quality", "--month", "2099-01"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["report", "quality", "--month", "2026-13"])
    assert exc.value.code == 2
