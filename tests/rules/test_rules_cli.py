"""``farsight rules check`` and ``farsight rules kinds``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.cli import main


def test_check_prints_every_problem_with_file_rule_key_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {"id": "ok", "select": {"metric": "pm25"}, "threshold": 1},
                    {
                        "id": "bad-for",
                        "select": {"metric": "pm25"},
                        "threshold": 1,
                        "for": "ten minutes",
                    },
                    {"id": "bad-kind", "kind": "psychic"},
                ]
            }
        ),
        encoding="utf-8",
    )
    b.write_text(
        yaml.safe_dump(
            {
                "rules": [{"id": "ok", "select": {"metric": "pm10"}, "threshold": 2}],
                "colour": "blue",
            }
        ),
        encoding="utf-8",
    )
    assert main(["rules", "check", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert f"{a}: rule bad-for: rules.1[bad-for].for: " in err and "(got 'ten minutes')" in err
    assert f"{a}: rule bad-kind: rules.2[bad-kind].kind: unknown rule kind; known kinds: " in err
    assert f"{b}: colour: unknown top-level key" in err
    assert "3 problem(s) in 2 of 2 file(s)" in err


def test_check_reports_ids_duplicated_across_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {"rules": [{"id": "ok", "select": {"metric": "pm25"}, "threshold": 1}]}
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert main(["rules", "check", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]) == 2
    assert (
        f"{tmp_path / 'b.yaml'}: rule ok: rules[ok].id: rule id already defined in"
        f" {tmp_path / 'a.yaml'}" in capsys.readouterr().err
    )


def test_check_of_valid_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(
        yaml.safe_dump({"rules": [{"id": "ok", "select": {"metric": "pm25"}, "threshold": 1}]}),
        encoding="utf-8",
    )
    assert main(["rules", "check", str(f)]) == 0
    assert "1 file(s) ok" in capsys.readouterr().out
    assert main(["rules", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_kinds_lists_the_registered_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "kinds"]) == 0
    out = capsys.readouterr().out
    assert any(
        line.startswith("threshold ") and "series" in line and "hysteresis" in line
        for line in out.splitlines()
    )
    assert main(["rules", "kinds", "threshold"]) == 0
    out = capsys.readouterr().out
    assert (
        "threshold (series scope)" in out
        and "  threshold: A number, or 'site_limit'" in out
        and "(required)" in out
    )
    assert main(["rules", "kinds", "psychic"]) == 2
    assert "known kinds:" in capsys.readouterr().err


def test_rules_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["rules"])
    assert info.value.code == 2
