"""``farsight rules test``: the expanding notation, the runner's semantics and its report."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cli import main
from rules.testing import MAX_VALUES, Replay, expand_values, format_result, run_test_file
from tests.factories import T0, reading, registry_doc

# -- expand_values ----------------------------------------------------------------------------


def test_promtool_examples() -> None:
    assert expand_values("1+1x3") == [1, 2, 3, 4]
    assert expand_values("10-2x2") == [10, 8, 6]
    assert expand_values("5x2") == [5, 5, 5]
    assert expand_values("_x2 7") == [None, None, None, 7]
    assert expand_values("1 _ -3.5 +2 1e2") == [1, None, -3.5, 2, 100]
    assert expand_values("-2+4x3") == [-2, 2, 6, 10]
    assert expand_values("1e-2x1") == [0.01, 0.01]
    assert expand_values("") == []


_finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
_step = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False).map(abs)
_count = st.integers(min_value=0, max_value=40)
_segment = st.one_of(
    st.tuples(st.just("one"), _finite),
    st.tuples(st.just("blank")),
    st.tuples(st.just("blanks"), _count),
    st.tuples(st.just("repeat"), _finite, _count),
    st.tuples(st.just("step"), _finite, st.sampled_from("+-"), _step, _count),
)


def _render(seg: tuple) -> tuple[str, list[float | None]]:
    """A segment as notation (repr round-trips floats exactly) and the values it must give."""
    kind = seg[0]
    if kind == "one":
        return repr(seg[1]), [seg[1]]
    if kind == "blank":
        return "_", [None]
    if kind == "blanks":
        return f"_x{seg[1]}", [None] * (seg[1] + 1)
    if kind == "repeat":
        return f"{seg[1]!r}x{seg[2]}", [seg[1]] * (seg[2] + 1)
    _, a, op, b, n = seg
    signed = b if op == "+" else -b
    return f"{a!r}{op}{b!r}x{n}", [a + i * signed for i in range(n + 1)]


@given(
    st.lists(_segment, max_size=12),
    st.lists(st.sampled_from([" ", "  ", "\t", "\n"]), min_size=12, max_size=12),
)
def test_generated_sequences_round_trip(segments: list[tuple], seps: list[str]) -> None:
    text, expected = "", []
    for seg, sep in zip(segments, seps):
        token, values = _render(seg)
        text += token + sep
        expected += values
    assert expand_values(text) == expected


_VALID_CHARS = set("0123456789.+-_xeE")
_garbage = st.text(
    alphabet=st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")),
    min_size=1,
    max_size=8,
).filter(
    lambda t: not t.isspace() and any(c not in _VALID_CHARS for c in t) and len(t.split()) == 1
)


@given(st.lists(_segment, max_size=4), _garbage, st.data())
def test_garbage_is_refused_naming_the_token_and_its_position(
    segments: list[tuple], bad: str, data: st.DataObject
) -> None:
    tokens = [_render(s)[0] for s in segments]
    pos = data.draw(st.integers(min_value=0, max_value=len(tokens)))
    tokens.insert(pos, bad)
    with pytest.raises(ValueError) as info:
        expand_values(" ".join(tokens))
    assert f"token {pos + 1} {bad!r}" in str(info.value)


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_any_text_gives_values_or_a_value_error(text: str) -> None:
    try:
        values = expand_values(text)
    except ValueError as exc:
        assert "token" in str(exc)
    else:
        assert all(v is None or isinstance(v, float) for v in values)


@pytest.mark.parametrize(
    "text, message",
    [
        ("1+x3", "token 1 '1+x3' is not a number"),
        ("5 _+1x2", "token 2 '_+1x2': a missing sample cannot step; write '_x2'"),
        ("1 2 abc", "token 3 'abc' is not"),
        ("1,2", "token 1 '1,2' is not"),
        ("1x", "token 1 '1x' is not"),
        ("nan", "token 1 'nan' is not"),
        ("1e400", "out of the float range"),
        ("1e308+1e308x3", "out of the float range"),
        (f"1x{MAX_VALUES}", "expands past 1,000,000 values"),
        ("١٢", "token 1 '١٢' is not"),  # digits of another script are not ASCII numbers
    ],
)
def test_error_messages(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        expand_values(text)


# -- the runner -------------------------------------------------------------------------------

RULES = {
    "rules": [
        {
            "id": "pm25",
            "select": {"metric": "pm25", "device_kind": "air_quality"},
            "op": ">",
            "threshold": 75,
            "for": "10m",
            "severity": "warning",
            "labels": {"team": "air"},
            "summary": "PM2.5 at {site} is {value}",
        },
        {
            "id": "so2",
            "select": {"metric": "so2", "device_kind": "cems"},
            "threshold": "site_limit",
            "for": "5m",
            "severity": "major",
        },
    ]
}


def write_suite(tmp_path: Path, tests: list[dict], rules: dict = RULES, **top: object) -> Path:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    (tmp_path / "sites.yaml").write_text(yaml.safe_dump(registry_doc()), encoding="utf-8")
    doc = {"rule_files": ["rules.yaml"], "registry": "sites.yaml", "tests": tests, **top}
    path = tmp_path / "suite.test.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def pm25_case(
    name: str = "pm25", values: str = "80x12 40", checks: list[dict] | None = None
) -> dict:
    return {
        "name": name,
        "start": "2026-11-25T08:00:00+08:00",
        "interval": "1m",
        "input_series": [{"series": "yc-aq-1/aq1/pm25", "values": values, "unit": "ug/m3"}],
        "alert_rule_test": checks
        if checks is not None
        else [
            {"eval_time": "9m", "rule": "pm25", "exp_alerts": []},
            {
                "eval_time": "10m",
                "rule": "pm25",
                "exp_alerts": [
                    {
                        "labels": {
                            "site": "yc-aq-1",
                            "team": "air",
                            "severity": "warning",
                            "department": "env",
                        },
                        "annotations": {"summary": "PM2.5 at yc-aq-1 is 80"},
                    }
                ],
            },
            {"eval_time": "13m", "rule": "pm25", "exp_alerts": []},
        ],
    }


def test_a_passing_case(tmp_path: Path) -> None:
    result = run_test_file(write_suite(tmp_path, [pm25_case()]))
    assert result.error is None and result.passed, format_result(result)
    assert [c.passed for c in result.cases[0].checks] == [True, True, True]


def test_checks_run_in_time_order_and_report_in_file_order(tmp_path: Path) -> None:
    checks = [
        {"eval_time": "13m", "rule": "pm25", "exp_alerts": []},
        {"eval_time": "10m", "rule": "pm25", "exp_alerts": [{"labels": {"site": "yc-aq-1"}}]},
    ]
    result = run_test_file(write_suite(tmp_path, [pm25_case(checks=checks)]))
    assert result.passed, format_result(result)
    assert [c.eval_time for c in result.cases[0].checks] == [
        timedelta(minutes=13),
        timedelta(minutes=10),
    ]


def test_each_case_has_a_fresh_engine(tmp_path: Path) -> None:
    # The first case leaves pm25 pending; were state shared, the second would fire at 5 min.
    first = pm25_case("first", "80x5", [{"eval_time": "5m", "rule": "pm25", "exp_alerts": []}])
    second = pm25_case("second", "80x5", [{"eval_time": "5m", "rule": "pm25", "exp_alerts": []}])
    second["start"] = "2026-11-25T08:06:00+08:00"
    assert run_test_file(write_suite(tmp_path, [first, second])).passed


def test_failures_say_what_is_missing_unexpected_or_different(tmp_path: Path) -> None:
    checks = [
        {
            "eval_time": "10m",
            "rule": "pm25",
            "exp_alerts": [
                {"labels": {"site": "yc-aq-1"}, "annotations": {"summary": "PM2.5 is fine"}}
            ],
        },
        {"eval_time": "11m", "rule": "pm25", "exp_alerts": []},
        {
            "eval_time": "12m",
            "rule": "pm25",
            "exp_alerts": [{"labels": {"site": "yc-aq-1"}}, {"labels": {"site": "yc-aq-2"}}],
        },
    ]
    result = run_test_file(write_suite(tmp_path, [pm25_case(checks=checks)]))
    assert result.error is None and not result.passed
    c10, c11, c12 = result.cases[0].checks
    assert c10.problems == (
        (
            "annotation 'summary' of alert {department: env, device: aq1, metric: pm25, rule: pm25,"
            " severity: warning, site: yc-aq-1, team: air}:\n"
            "    expected: 'PM2.5 is fine'\n    got:      'PM2.5 at yc-aq-1 is 80'"
        ),
    )
    assert len(c11.problems) == 1 and c11.problems[0].startswith(
        "unexpected alert: {department: env, device: aq1, metric: pm25"
    )
    assert c12.problems == ("missing alert: {site: yc-aq-2}",)
    report = format_result(result)
    assert (
        "FAIL  pm25" in report
        and "at 12m (2026-11-25T08:12:00+08:00), rule pm25: 1 firing" in report
    )
    assert "0 passed, 1 failed" in report


def test_partial_labels_are_matched_as_sets_not_greedily(tmp_path: Path) -> None:
    # {metric: pm25} fits both alerts, {site: yc-aq-1} only one: a greedy pairing of the first
    # expectation with the first alert would report a false miss.
    tests = [
        {
            "name": "two stations",
            "input_series": [
                {"series": "yc-aq-1/aq1/pm25", "values": "80x10"},
                {"series": "yc-aq-1/aq2/pm25", "values": "90x10"},
            ],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "rule": "pm25",
                    "exp_alerts": [{"labels": {"metric": "pm25"}}, {"labels": {"device": "aq1"}}],
                }
            ],
        }
    ]
    doc = registry_doc()
    doc["sites"][0]["devices"].append({"id": "aq2", "kind": "air_quality", "metrics": ["pm25"]})
    path = write_suite(tmp_path, tests)
    (tmp_path / "sites.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = run_test_file(path)
    assert result.passed, format_result(result)


def test_flags_units_and_defaults(tmp_path: Path) -> None:
    tests = [
        {
            # no start: 2026-01-01T00:00:00Z; no interval: 1m
            "name": "calibration data does not fire",
            "input_series": [
                {"series": "yc-stack-1/cems1/so2", "values": "90x20", "flag": "C", "unit": "mg/m3"}
            ],
            "alert_rule_test": [{"eval_time": "20m", "rule": "so2"}],
        },
        {
            "name": "site limit 35 from the registry",
            "interval": "30s",
            "input_series": [
                {"series": "yc-stack-1/cems1/so2", "values": "36x10", "unit": "mg/m3"}
            ],
            "alert_rule_test": [
                {"eval_time": 270, "rule": "so2"},
                {
                    "eval_time": "5m",
                    "rule": "so2",
                    "exp_alerts": [{"labels": {"site": "yc-stack-1", "severity": "major"}}],
                },
            ],
        },
    ]
    result = run_test_file(write_suite(tmp_path, tests))
    assert result.passed, format_result(result)
    assert result.cases[0].checks[0].at.isoformat() == "2026-01-01T00:20:00+00:00"


def test_invalid_file_names_every_problem_with_its_key_path(tmp_path: Path) -> None:
    tests = [
        {
            "name": "broken",
            "start": "2026-11-25T08:00:00",
            "input_series": [
                {"series": "yc-aq-1/aq1/pm25", "values": "80 x3"},
                {"series": "nowhere/aq1/pm25", "values": "1"},
                {"series": "yc-aq-1/aq1", "values": "1"},
                {"series": "yc-aq-1/aq1/pm10", "values": "1", "flag": "Z"},
            ],
            "alert_rule_test": [
                {"eval_time": "ten", "rule": "pm25"},
                {"eval_time": "1m", "rule": "pm2.5"},
            ],
            "colour": "blue",
        },
        {
            "name": "unknowns",
            "input_series": [{"series": "nowhere/aq1/pm25", "values": "1"}],
            "alert_rule_test": [{"eval_time": "1m", "rule": "no-such-rule"}],
        },
        {
            "name": "overlap",
            "input_series": [
                {"series": "yc-aq-1/aq1/pm25", "values": "1 2"},
                {"series": "yc-aq-1/aq1/pm25", "values": "_ 2"},
            ],
        },
    ]
    result = run_test_file(write_suite(tmp_path, tests))
    assert result.error is not None and not result.passed
    paths = {p.path: p.message for p in result.error.problems}
    assert "token 2 'x3' is not a number" in paths["tests.0[broken].input_series.0.values"]
    assert "tests.0[broken].input_series.2.series" in paths
    assert "HJ 212" in paths["tests.0[broken].input_series.3.flag"]
    assert "tests.0[broken].alert_rule_test.0.eval_time" in paths
    assert "UTC offset" in paths["tests.0[broken].start"]
    assert "tests.0[broken].colour" in paths
    assert paths["tests.1[unknowns].input_series.0.series"] == "site is not in the test's registry"
    assert (
        "no such rule" in paths["tests.0[broken].alert_rule_test.1.rule"]
    )  # reported beside the schema errors
    assert "overlaps input_series.0" in paths["tests.2[overlap].input_series.1.values"]
    assert (
        "no such rule in rule_files; rules: pm25, so2"
        in paths["tests.1[unknowns].alert_rule_test.0.rule"]
    )
    assert str(result.error).startswith(str(tmp_path / "suite.test.yaml") + ":")


def test_rule_file_errors_and_missing_files_are_invalid(tmp_path: Path) -> None:
    bad_rules = {
        "rules": [{"id": "pm25", "select": {"metric": "pm25"}, "threshold": 1, "for": "soon"}]
    }
    result = run_test_file(write_suite(tmp_path, [pm25_case()], rules=bad_rules))
    assert result.error is not None and "rules.0[pm25].for" in str(result.error)
    missing = run_test_file(tmp_path / "nope.test.yaml")
    assert missing.error is not None and "cannot read" in str(missing.error)
    doc = {"rule_files": [], "tests": []}
    (tmp_path / "empty.test.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    paths = {p.path for p in run_test_file(tmp_path / "empty.test.yaml").error.problems}
    assert {"rule_files", "tests"} <= paths


def test_rule_files_resolve_beside_a_tests_folder(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    path = write_suite(tmp_path, [pm25_case()])
    moved = tmp_path / "tests" / path.name
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["registry"] = "../sites.yaml"
    moved.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert run_test_file(moved).passed


# -- replay: the engine clock moves along event time --------------------------------------------


class RecordingEngine:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def evaluate(self, readings: list) -> list:
        self.calls.append(("evaluate", [(r.ts, r.device, r.metric) for r in readings]))
        return []

    def tick(self, now) -> list:
        self.calls.append(("tick", now))
        return []


def test_replay_feeds_one_sample_per_device_then_ticks_the_grid() -> None:
    e = RecordingEngine()
    # RecordingEngine stands in for an Engine on purpose: it records the calls Replay makes.
    replay = Replay(e, T0, timedelta(minutes=1), lambda s: None)  # type: ignore[arg-type]
    for r in [
        reading("pm25", 1, 0),
        reading("so2", 1, 0, device="cems1"),
        reading("pm10", 1, 0),
        reading("pm25", 1, 2.5),
    ]:
        replay.push(r)
    replay.advance(T0 + timedelta(minutes=4, seconds=30))
    m = lambda x: T0 + timedelta(minutes=x)  # noqa: E731
    assert e.calls == [
        ("evaluate", [(m(0), "aq1", "pm25"), (m(0), "aq1", "pm10"), (m(0), "cems1", "so2")]),
        ("tick", m(0)),
        ("tick", m(1)),
        ("tick", m(2)),
        ("evaluate", [(m(2.5), "aq1", "pm25")]),
        ("tick", m(3)),
        ("tick", m(4)),
        ("tick", m(4.5)),
    ]


def test_replay_refuses_a_zero_tick() -> None:
    with pytest.raises(ValueError):
        # A recording stand-in for an Engine, on purpose.
        Replay(RecordingEngine(), T0, timedelta(0), lambda s: None)  # type: ignore[arg-type]


# -- the command ------------------------------------------------------------------------------


def test_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    good = write_suite(tmp_path / "a", [pm25_case()])
    assert main(["rules", "test", str(good)]) == 0
    out = capsys.readouterr().out
    assert "PASS  pm25" in out and "1 file(s): 1 passed, 0 failed, 0 invalid file(s)" in out

    failing = write_suite(
        tmp_path, [pm25_case(checks=[{"eval_time": "10m", "rule": "pm25", "exp_alerts": []}])]
    )
    assert main(["rules", "test", str(good), str(failing)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  pm25" in out and "unexpected alert: {department: env" in out

    (tmp_path / "bad.test.yaml").write_text(
        "rule_files: [rules.yaml]\ntests: [{name: x, input_series: [{series: yc-aq-1/aq1/pm25,"
        " values: 'oops'}]}]\n",
        encoding="utf-8",
    )
    assert main(["rules", "test", str(failing), str(tmp_path / "bad.test.yaml")]) == 2
    err = capsys.readouterr().err
    assert (
        "INVALID test file" in err and "tests.0[x].input_series.0.values" in err and "'oops'" in err
    )

    assert main(["rules", "test", "--run", "^nomatch$", str(good)]) == 0
    assert "0 passed, 0 failed" in capsys.readouterr().out


def test_command_without_files_runs_the_pack_tests(capsys: pytest.CaptureFixture[str]) -> None:
    main(["rules", "test", "--run", "aq-pm25-high"])
    assert "env-thresholds.test.yaml" in capsys.readouterr().out
