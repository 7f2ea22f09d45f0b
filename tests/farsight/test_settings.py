"""Settings: defaults, YAML, environment overrides, and errors naming key path, value and fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from farsight.errors import ConfigError
from farsight.settings import load_settings


def test_defaults_need_no_file() -> None:
    s = load_settings(None, environ={})
    assert s.broker.port == 1883 and s.hub.port == 8000 and s.ingest.qos == 1
    assert s.db_path == Path("var") / "farsight.db"


def test_yaml_and_environment_overrides(tmp_path: Path) -> None:
    f = tmp_path / "farsight.yaml"
    f.write_text("broker:\n  port: 1999\nhub:\n  port: 8100\n", encoding="utf-8")
    s = load_settings(
        f,
        environ={
            "FARSIGHT__HUB__PORT": "8200",
            "FARSIGHT__INGEST__TOPICS": "[a/b, c/d]",
            "FARSIGHT_DATA_DIR": "/tmp/x",
        },
    )
    assert s.broker.port == 1999
    assert s.hub.port == 8200  # environment wins over the file
    assert s.ingest.topics == ("a/b", "c/d")
    assert s.data_dir == Path("/tmp/x")


def test_every_error_is_reported_with_its_key_path(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "broker:\n  port: 70000\n  colour: blue\nhub:\n  stream_poll_ms: 1\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(f, environ={})
    paths = {p.path: p for p in info.value.problems}
    assert set(paths) == {"broker.port", "broker.colour", "hub.stream_poll_ms"}
    assert paths["broker.port"].value == 70000
    assert (
        paths["broker.colour"].value == "blue" and "unknown key" in paths["broker.colour"].message
    )
    assert "greater than or equal to 50" in paths["hub.stream_poll_ms"].message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("broker:\n  port: [1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line"):
        load_settings(f, environ={})


def test_check_config_cli_exit_status_and_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  qos: 2\n  batch_max: 0\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "app", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "ingest.qos" in proc.stderr and "(got 2)" in proc.stderr
    assert "ingest.batch_max" in proc.stderr and "(got 0)" in proc.stderr
    good = tmp_path / "good.yaml"
    good.write_text("hub:\n  port: 8123\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "app", "check-config", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "configuration ok" in proc.stdout


def test_environment_values_take_the_type_of_their_field() -> None:
    s = load_settings(
        None,
        environ={
            "FARSIGHT__BROKER__PASSWORD": "0123",  # a string field stays a string, not YAML's 83
            "FARSIGHT__BROKER__USERNAME": "null",
            "farsight__hub__port": "8300",  # names are case-insensitive
            "FARSIGHT__ALERTS__RISK__SEVERITY__CRITICAL": "9",
        },
    )
    assert s.broker.password == "0123" and s.broker.username is None
    assert s.hub.port == 8300
    assert s.alerts.risk.severity == {"critical": 9.0}


def test_environment_errors_name_the_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            None,
            environ={
                "FARSIGHT__HBU__PORT": "8200",
                "FARSIGHT__HUB__COLOUR": "blue",
                "FARSIGHT__HUB__STREAM_POLL_MS": "1",
                "OTHER__HUB__PORT": "x",
            },
        )
    paths = {p.path: p for p in info.value.problems}
    assert set(paths) == {"hbu", "hub.colour", "hub.stream_poll_ms"}
    assert "unknown key" in paths["hbu"].message
    assert paths["hbu"].value == {"FARSIGHT__HBU__PORT": "8200"}
    assert paths["hub.colour"].value == "blue" and "unknown key" in paths["hub.colour"].message
    assert "greater than or equal to 50" in paths["hub.stream_poll_ms"].message
