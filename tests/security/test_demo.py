"""``farsight demo`` runs with authentication on: its credentials are made at start (and kept
across a restart), its broker lets no anonymous client in, and its simulated devices, each
connected as itself, still feed ingest."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from app.demos.trust import demo_credentials
from farsight.broker import free_port
from farsight.credentials import INGEST, read_secrets
from farsight.registry import load_registry
from farsight.settings import Settings
from tests.security.conftest import BrokerAt, Peer, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_demo_credentials_are_kept_across_runs_and_remade_when_lost(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path)})
    registry = load_registry(None)
    first = demo_credentials(settings, registry)
    assert stat.S_IMODE(first.secrets_file.stat().st_mode) == 0o600
    assert first.auth.password_file.is_file() and first.auth.acl_file.is_file()
    again = demo_credentials(settings, registry)
    assert {k: v.password for k, v in again.secrets.items()} == {
        k: v.password for k, v in first.secrets.items()
    }
    first.secrets_file.unlink()
    remade = demo_credentials(settings, registry)
    assert remade.secrets[INGEST].password != first.secrets[INGEST].password
    assert read_secrets(remade.secrets_file)[INGEST].password == remade.secrets[INGEST].password


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _readings(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return int(con.execute("SELECT count(*) FROM readings").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_the_demo_runs_with_authentication_on(
    mosquitto_path: str, tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    hub_port, broker_port = free_port(), free_port()
    data = tmp_path / "var"
    log = tmp_path / "demo.log"
    env = {
        **os.environ,
        "FARSIGHT_DATA_DIR": str(data),
        "FARSIGHT__BROKER__PORT": str(broker_port),
        "FARSIGHT__SIMULATOR__BACKFILL_MIN": "2",
        "FARSIGHT__SIMULATOR__INTERVAL_S": "0.5",
        "FARSIGHT__SIMULATOR__CAMERAS__ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "demo", "--port", str(hub_port), "--duration", "300"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _healthy(hub_port) or proc.poll() is not None, "the demo's /healthz", 90)
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        secrets_file = data / "trust" / "demo-secrets.json"
        banner = log.read_text(errors="replace")
        assert f"credentials {secrets_file}" in banner
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        # The demo's simulated devices get their readings in, each on its own connection.
        wait_for(lambda: _readings(data / "farsight.db") > 0, "readings in the demo's store", 60)
        demo_broker = BrokerAt("127.0.0.1", broker_port)
        assert peers(None, broker=demo_broker).connack().is_failure
        secret = read_secrets(secrets_file)["env/yc-aq-xiling/aq1"]
        device = peers("env/yc-aq-xiling/aq1", broker=demo_broker, password=secret.password)
        assert not device.connack().is_failure
        assert device.publish("fs/v1/env/yc-aq-wujiagang/aq1/reading", b"{}").is_failure
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]
