"""``farsight audit``, run as a real process against real SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.audit import canonical_json
from alerts.audit_store import SqliteAuditLog

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def run_cli(*args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARSIGHT")}
    if data_dir is not None:
        env["FARSIGHT_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "app", "audit", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "var" / "farsight.db"
    with SqliteAuditLog(path) as log:
        for i in range(10):
            log.append(
                "li.wei",
                "ack" if i % 2 else "opened",
                # Not alert subjects: `verify` checks alert entries against the queue's tables.
                f"silence:{i % 3}",
                {"i": i},
                at=T0 + timedelta(minutes=i),
            )
    return path


def head_of(db: Path) -> str:
    with SqliteAuditLog(db) as log:
        return log.head()[1]


def test_verify_ok(db: Path) -> None:
    done = run_cli("verify", "--db", str(db))
    assert done.returncode == 0, done.stderr
    chain, queue = done.stdout.strip().splitlines()
    assert chain == f"audit chain ok: 10 entries, head {head_of(db)}"
    assert queue == "queue ok: 0 alerts and 0 events are what the chain recorded"
    assert done.stderr == ""


def test_verify_reports_the_first_broken_link(db: Path) -> None:
    evil = sqlite3.connect(db, isolation_level=None)
    evil.execute("DROP TRIGGER audit_log_no_update")
    evil.execute(
        "UPDATE audit_log SET data = ? WHERE seq = 4", (canonical_json({"i": 99}).decode(),)
    )
    evil.close()
    done = run_cli("verify", "--db", str(db))
    assert done.returncode == 1
    assert done.stdout.startswith("audit chain broken at seq 4: hash mismatch")
    assert "append-only triggers missing: audit_log_no_update" in done.stderr


def test_anchor_then_truncation_is_caught_only_with_the_anchor(db: Path, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "anchor.key"
    assert run_cli("keygen", "--out", str(key)).returncode == 0
    anchor = tmp_path / "anchor.json"
    done = run_cli("anchor", "--out", str(anchor), "--db", str(db), "--key", str(key))
    assert done.returncode == 0, done.stderr
    assert json.loads(anchor.read_text())["seq"] == 10
    assert json.loads(anchor.read_text())["hash"] == head_of(db)
    public = ("--public-key", f"{key}.pub")
    assert run_cli("verify", "--db", str(db), "--anchor", str(anchor), *public).returncode == 0

    evil = sqlite3.connect(db, isolation_level=None)
    evil.execute("DROP TRIGGER audit_log_no_delete")
    evil.execute("DELETE FROM audit_log WHERE seq > 7")
    evil.close()
    assert run_cli("verify", "--db", str(db)).returncode == 0
    done = run_cli("verify", "--db", str(db), "--anchor", str(anchor), *public)
    assert done.returncode == 1
    assert done.stdout.startswith("audit chain broken at seq 8: chain ends at seq 7")


def test_head_and_log_use_the_settings_database_by_default(db: Path) -> None:
    done = run_cli("head", data_dir=db.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"10 {head_of(db)}"

    done = run_cli("log", "--subject", "silence:1", "--limit", "2", data_dir=db.parent)
    assert done.returncode == 0, done.stderr
    lines = [line.split("\t") for line in done.stdout.splitlines()]
    assert [(f[0], f[1], f[3], f[4], f[5]) for f in lines] == [
        ("2", "2026-11-25T08:01:00.000Z", "ack", "silence:1", '{"i": 1}'),
        ("5", "2026-11-25T08:04:00.000Z", "opened", "silence:1", '{"i": 4}'),
    ]
    done = run_cli("log", "--json", "--after", "9", "--db", str(db))
    (entry,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert entry["seq"] == 10 and entry["hash"] == head_of(db)


def test_a_missing_database_or_table_is_an_error_not_an_empty_chain(tmp_path: Path) -> None:
    done = run_cli("verify", "--db", str(tmp_path / "nowhere.db"))
    assert done.returncode == 1 and "no database at" in done.stderr
    assert not (tmp_path / "nowhere.db").exists()

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    done = run_cli("verify", "--db", str(other))
    assert done.returncode == 1 and "no audit_log table" in done.stderr


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(
    tmp_path: Path,
) -> None:
    key = tmp_path / "anchor.key"
    done = run_cli("keygen", "--out", str(key))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "anchor.key.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    again = run_cli("keygen", "--out", str(key))
    assert again.returncode == 1 and "never overwritten" in again.stderr


def test_verify_refuses_an_unsigned_anchor_and_a_key_open_to_others(
    db: Path, tmp_path: Path
) -> None:
    anchor = tmp_path / "anchor.json"
    done = run_cli("anchor", "--out", str(anchor), "--db", str(db))
    assert done.returncode == 0 and "not signed" in done.stderr
    key = tmp_path / "anchor.key"
    run_cli("keygen", "--out", str(key))
    done = run_cli("verify", "--db", str(db), "--anchor", str(anchor), "--public-key", f"{key}.pub")
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("audit chain ok")
    assert "anchor refused: the anchor is not signed" in done.stdout
    key.chmod(0o644)
    done = run_cli("anchor", "--out", str(anchor), "--db", str(db), "--key", str(key))
    assert done.returncode == 1 and "chmod 600" in done.stderr
