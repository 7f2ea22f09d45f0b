"""The default rule pack's own tests (rules/packs/tests/*.test.yaml) pass, and cover every rule."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from rules.cli import pack_test_files
from rules.loader import default_pack_files
from rules.testing import format_result, run_test_file

TEST_FILES = pack_test_files()


def test_the_pack_has_tests() -> None:
    assert any(f.name == "env-thresholds.test.yaml" for f in TEST_FILES)


@pytest.mark.parametrize("path", TEST_FILES, ids=[f.name for f in TEST_FILES])
def test_pack_test_file_passes(path: Path) -> None:
    result = run_test_file(path)
    if not result.passed:
        # The runner's own report (PASS/FAIL per case, missing/unexpected alerts) says it best.
        pytest.fail(format_result(result), pytrace=False)
    assert result.cases, f"{path.name} has no test cases"


def _pack_rule_ids() -> dict[str, list[str]]:
    """Rule ids per pack file, read from the YAML itself so a file whose kind is not (yet)
    registered still counts its rules."""
    out: dict[str, list[str]] = {}
    for name, text in default_pack_files():
        doc = yaml.safe_load(text) or {}
        out[name] = [r["id"] for r in doc.get("rules") or [] if isinstance(r, dict) and "id" in r]
    return out


def _tested_rule_ids() -> set[str]:
    # Change-region rules judge change events, not reading series: their tests are Python.
    from tests.rules.test_kind_change_region import DEFAULT_PACK_RULES_TESTED

    ids: set[str] = set(DEFAULT_PACK_RULES_TESTED)
    for f in TEST_FILES:
        doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for case in doc.get("tests") or []:
            for check in (case or {}).get("alert_rule_test") or []:
                if isinstance(check, dict) and isinstance(check.get("rule"), str):
                    ids.add(check["rule"])
    return ids


def test_every_rule_of_the_default_pack_is_tested() -> None:
    tested = _tested_rule_ids()
    missing: dict[str, list[str]] = defaultdict(list)
    for pack, ids in _pack_rule_ids().items():
        for rid in ids:
            if rid not in tested:
                missing[pack].append(rid)
    report = "\n".join(f"  {pack}: {', '.join(ids)}" for pack, ids in sorted(missing.items()))
    if missing:
        pytest.fail(
            "MISSING TESTS: rules of the default pack that no alert_rule_test names:\n" + report,
            pytrace=False,
        )
