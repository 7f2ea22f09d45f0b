"""Silence and inhibition patterns cannot stall the hub: RE2 matches in linear time, patterns are
bounded, and what RE2 refuses is a 422 (or a configuration error) that says why.

The hub runs for real (uvicorn on a free port, the entry point of the other hub tests) on its
own SQLite database; the test process applies signals through its own alert pipeline, as ingest
would, so the hub and an ingest worker both match the patterns while ``/healthz`` is timed.
Python's ``re`` took seconds on each of these patterns against values a tenth as long.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from alerts.matchers import MAX_VALUE, matches, parse_matcher
from alerts.pipeline import AlertPipeline, build_alert_pipeline
from farsight.errors import ConfigError, MatcherError
from farsight.linear_regex import MAX_PATTERN, MAX_SUBJECT, compile_linear
from farsight.settings import Settings, load_settings
from farsight.types import AlertSignal
from hub.app import create_app
from hub.auth import TokenStore
from tests.hub.conftest import bearer, make_registry, make_settings, start_server, stop_server

LONG = 4000
"""Length of the label values the patterns run against (under MAX_SUBJECT, so they are run)."""

LABELS = {"plate": "x" * LONG, "tag": "a" * LONG + "c", "code": "a" * LONG}

PATHOLOGICAL = {"plate": "~(.|.)+!", "tag": "~(a+)+$", "code": "~(a|aa)+b"}
"""Each backtracks exponentially in Python's re against its label in LABELS, and matches none."""


@dataclass
class RunningHub:
    base_url: str
    settings: Settings
    pipeline: AlertPipeline
    env_token: str
    province_token: str


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    settings = make_settings(tmp_path_factory.mktemp("silence-regex"))
    registry = make_registry()
    tokens = TokenStore(settings.database, registry.departments)
    env_token = tokens.issue("alice", "env", role="supervisor")
    province_token = tokens.issue("root", role="supervisor")
    tokens.close()
    app = create_app(settings, registry)
    server, thread, base_url = start_server(app)
    # Ingest's side: its own connection and pipeline on the hub's database.
    pipeline = build_alert_pipeline(settings.database, settings.alerts)
    try:
        yield RunningHub(base_url, settings, pipeline, env_token, province_token)
    finally:
        stop_server(server, thread)
        pipeline.close()


def _signal(n: int, site: str = "aq-1") -> AlertSignal:
    return AlertSignal(
        rule_id="security.regex",
        fingerprint=f"security-regex-{site}-{n}",
        status="firing",
        site=site,
        device="aq1" if site == "aq-1" else "wim1",
        metric="pm25",
        severity="major",
        summary=f"signal {n}",
        ts=datetime.now(UTC),
        value=99.0,
        threshold=75.0,
        department="env" if site == "aq-1" else "transport",
        labels=LABELS,
    )


def _silence(matchers: dict[str, str]) -> dict[str, object]:
    return {
        "matchers": matchers,
        "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "reason": "pattern test",
    }


def test_pathological_patterns_answer_at_once_and_healthz_stays_fast(running: RunningHub) -> None:
    running.pipeline.apply([_signal(n) for n in range(50)])
    headers = bearer(running.env_token)
    with httpx.Client(base_url=running.base_url, timeout=10.0) as c:
        for label, pattern in PATHOLOGICAL.items():
            t0 = time.perf_counter()
            r = c.post("/api/silences", json=_silence({label: pattern}), headers=headers)
            elapsed = time.perf_counter() - t0
            assert r.status_code == 201, r.text
            assert elapsed < 1.0, f"POST with {pattern} took {elapsed:.2f} s"
            assert r.json()["changed_alerts"] == [], f"{pattern} matches none of the values"
        # A pattern that does match the long value: the same engine mutes the 50 alerts.
        r = c.post("/api/silences", json=_silence({"code": "~(a|aa)+"}), headers=headers)
        assert r.status_code == 201, r.text
        muting = r.json()["id"]
        assert len(r.json()["changed_alerts"]) == 50

        # Ingest keeps raising alerts that every active silence is matched against, and ticks
        # its mute stage, while /healthz is timed.
        stop = threading.Event()
        raised: list[int] = []

        def ingest() -> None:
            n = 1000
            while not stop.is_set():
                raised.extend(a.id for a in running.pipeline.apply([_signal(n), _signal(n + 1)]))
                running.pipeline.mute.tick()
                n += 2

        worker = threading.Thread(target=ingest, name="ingest-like", daemon=True)
        worker.start()
        latencies: list[float] = []
        try:
            deadline = time.monotonic() + 30
            while len(latencies) < 60 or len(raised) < 20:
                assert time.monotonic() < deadline, f"only {len(raised)} alerts raised in 30 s"
                t0 = time.perf_counter()
                r = c.get("/healthz")
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 200
        finally:
            stop.set()
            worker.join(30)
        assert not worker.is_alive()
        median = statistics.median(latencies)
        assert median < 0.1, f"/healthz median {median * 1000:.0f} ms while patterns ran"
        assert max(latencies) < 1.0, f"/healthz worst {max(latencies) * 1000:.0f} ms"
        # The alerts raised meanwhile were matched: each one muted by the matching silence.
        mine = c.get(
            "/api/alerts",
            params={"rule_id": "security.regex", "muted": "true", "limit": 50},
            headers=bearer(running.province_token),
        )
        assert mine.status_code == 200, mine.text
        assert mine.json()["total"] >= 50 + len(raised) // 2
        for a in running.pipeline.store.get_many(raised[:10]):
            assert a.suppressed == {"silence": muting}


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("~(a)\\1", "backreferences"),
        ("~(?=a)a", "lookahead"),
        ("~(?<!a)b", "lookbehind"),
        ("~" + "a" * (MAX_PATTERN + 1), f"longer than {MAX_PATTERN}"),
        ("~[\\p{Han}]{1000}", "too large"),
    ],
)
def test_refused_patterns_are_a_422_that_says_why(
    running: RunningHub, pattern: str, reason: str
) -> None:
    with httpx.Client(base_url=running.base_url, timeout=10.0) as c:
        t0 = time.perf_counter()
        r = c.post(
            "/api/silences", json=_silence({"plate": pattern}), headers=bearer(running.env_token)
        )
    assert time.perf_counter() - t0 < 1.0
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "'plate'" in detail and reason in detail, detail


# -- unit: the bounds ------------------------------------------------------------------------------


def test_pattern_length_is_bounded_at_max_pattern() -> None:
    assert parse_matcher("site", "~" + "a" * MAX_PATTERN).matches({"site": "a" * MAX_PATTERN})
    with pytest.raises(MatcherError, match=f"'site'.*longer than {MAX_PATTERN}"):
        parse_matcher("site", "~" + "a" * (MAX_PATTERN + 1))
    # An equality value may be longer than a pattern, up to MAX_VALUE.
    assert parse_matcher("site", "b" * MAX_VALUE).matches({"site": "b" * MAX_VALUE})
    with pytest.raises(MatcherError, match=f"longer than {MAX_VALUE}"):
        parse_matcher("site", "b" * (MAX_VALUE + 1))


def test_values_past_max_subject_match_no_pattern() -> None:
    assert matches({"plate": "~x+"}, {"plate": "x" * MAX_SUBJECT})
    assert not matches({"plate": "~x+"}, {"plate": "x" * (MAX_SUBJECT + 1)})
    # Equality is not a pattern: it still compares.
    assert matches({"plate": "x" * 10}, {"plate": "x" * 10})


def test_matching_time_is_linear_in_the_value() -> None:
    for pattern, value in (
        ("(.|.)+!", "x" * MAX_SUBJECT),
        ("(a+)+$", "a" * (MAX_SUBJECT - 1) + "c"),
        ("(a|aa)+b", "a" * MAX_SUBJECT),
        ("[ab]*a[ab]{50}", "ab" * (MAX_SUBJECT // 2)),
    ):
        compiled = compile_linear(pattern)
        t0 = time.perf_counter()
        for _ in range(100):
            compiled.fullmatch(value)
        per_match = (time.perf_counter() - t0) / 100
        assert per_match < 0.01, f"{pattern}: {per_match * 1000:.1f} ms per match"


def test_inhibit_patterns_are_checked_with_the_key_path(tmp_path: Path) -> None:
    config = tmp_path / "farsight.yaml"
    config.write_text(
        "alerts:\n  inhibit:\n    - source: {rule_id: site-offline}\n"
        "      target: {device: '~(?!cam).+'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    text = str(caught.value)
    assert "alerts.inhibit.0.target" in text and "'device'" in text and "lookahead" in text
    config.write_text(
        "alerts:\n  inhibit:\n    - source: {rule_id: x}\n"
        f"      target: {{site: '~{'a' * 300}'}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=f"alerts.inhibit.0.target.*longer.*{MAX_PATTERN}"):
        load_settings(config, environ={})
