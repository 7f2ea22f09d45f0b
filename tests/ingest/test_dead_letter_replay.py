"""Dead letters replayed after a registry fix, on both backends and through `farsight
deadletters`: what now decodes is stored exactly once, what still fails keeps its reason, and
who replayed what is in the audit chain."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from alerts.audit_store import SqlAuditLog
from app.cli import main as farsight
from farsight.clock import to_epoch_ms
from farsight.credit import make_credit_code
from farsight.db import Database
from farsight.registry import Registry, parse_registry
from ingest.dead_letters import (
    PENDING,
    LetterFilter,
    get_letter,
    replay_letters,
    select_letters,
    topic_matches,
)
from ingest.pipeline import IngestPipeline, Message
from ingest.store import ReadingStore
from tests.factories import T0, registry, registry_doc

NEW_SITE = "yc-aq-2"


def fixed_doc() -> dict:
    """The test registry after the fix: the site the devices published for is registered."""
    doc = copy.deepcopy(registry_doc())
    doc["sites"].append(
        {
            "id": NEW_SITE,
            "name": "Yichang Wujiagang air station",
            "department": "env",
            "entity_id": make_credit_code("12420500MB0000003"),
            "location": {"lon": 111.30, "lat": 30.72},
            "city": "Yichang",
            "kind": "air_quality",
            "devices": [{"id": "aq1", "kind": "air_quality", "metrics": ["pm25", "pm10"]}],
        }
    )
    return doc


def aq(site: str, minute: int) -> Message:
    body = {"ts": (T0 + timedelta(minutes=minute)).isoformat(), "metrics": {"pm25": 30 + minute}}
    return Message(f"fs/v1/env/{site}/aq1/reading", json.dumps(body).encode(), T0)


BROKEN = Message("fs/v1/env/yc-aq-1/aq1/reading", b'{"ts": "2026-11-25T00:0', T0)


@pytest.fixture
def store(backend: str) -> Iterator[ReadingStore]:
    s = ReadingStore(Database.open(backend))
    yield s
    s.close()


def refuse_some(store: ReadingStore) -> None:
    """Live ingest before the fix: the new site's messages and a broken one are dead letters."""
    pipe = IngestPipeline(registry(), store)
    r = pipe.process([aq("yc-aq-1", 0), aq(NEW_SITE, 0), aq(NEW_SITE, 1), BROKEN])
    assert (r.stored, r.rejected) == (1, 3)


def fixed_pipeline(store: ReadingStore, reg: Registry | None = None) -> IngestPipeline:
    return IngestPipeline(reg or parse_registry(fixed_doc()), store)


def test_a_refused_site_is_stored_once_after_the_fix_and_a_bad_letter_keeps_its_reason(
    store: ReadingStore,
) -> None:
    refuse_some(store)
    letters = select_letters(store.db, LetterFilter())
    assert [x.letter.reason for x in letters] == ["unknown_site", "unknown_site", "not_json"]
    audit = SqlAuditLog(store.db)

    # Before the fix a replay stores nothing and says why.
    before = replay_letters(
        IngestPipeline(registry(), store), letters, now=T0, actor="cli:test", audit=audit
    )
    assert [r.outcome for r in before] == ["failed"] * 3
    assert [r.reason for r in before] == ["unknown_site", "unknown_site", "not_json"]
    assert store.count(site=NEW_SITE) == 0

    pending = select_letters(store.db, LetterFilter(outcome=PENDING))
    results = replay_letters(
        fixed_pipeline(store), pending, now=T0 + timedelta(hours=1), actor="cli:test", audit=audit
    )
    assert [(r.outcome, r.stored) for r in results] == [("stored", 1), ("stored", 1), ("failed", 0)]
    assert results[2].reason == "not_json"
    assert store.count(site=NEW_SITE, metric="pm25") == 2
    assert store.dead_letter_count() == 3  # marked, not deleted
    # Stored with the time the letters first arrived, not the replay's: the device was on time.
    arrived = store.db.query("SELECT DISTINCT received FROM readings WHERE site = ?", (NEW_SITE,))
    assert [r[0] for r in arrived] == [to_epoch_ms(T0)]

    # A second replay of what is pending takes only the still-bad letter and stores nothing.
    again = select_letters(store.db, LetterFilter(outcome=PENDING))
    assert [x.letter.reason for x in again] == ["not_json"]
    second = replay_letters(fixed_pipeline(store), again, now=T0, actor="cli:test", audit=audit)
    assert [(r.outcome, r.reason) for r in second] == [("failed", "not_json")]
    # Forcing every letter again: the readings are there already, none is stored twice.
    forced = replay_letters(
        fixed_pipeline(store),
        select_letters(store.db, LetterFilter(reason="unknown_site")),
        now=T0,
        actor="cli:test",
        audit=audit,
    )
    assert [(r.outcome, r.stored, r.duplicates) for r in forced] == [("duplicate", 0, 1)] * 2
    assert store.count(site=NEW_SITE) == 2 and store.count() == 3

    marked = get_letter(store.db, results[0].id)
    assert marked is not None and marked.replay_outcome == "duplicate" and marked.replays == 3
    bad = get_letter(store.db, results[2].id)
    assert bad is not None and bad.letter.reason == "not_json"
    assert bad.replay_outcome == "failed" and (bad.replay_detail or "").startswith("not_json")

    entries = [e for e in audit.entries() if e.action == "deadletters.replay"]
    assert [e.data["outcomes"] for e in entries] == [
        {"failed": 3},
        {"failed": 1, "stored": 2},
        {"failed": 1},
        {"duplicate": 2},
    ]
    assert entries[1].actor == "cli:test" and entries[1].data["stored_readings"] == 2
    assert audit.verify().ok


def test_filters_by_site_device_topic_time_and_id(store: ReadingStore) -> None:
    refuse_some(store)
    ids = [x.id for x in select_letters(store.db, LetterFilter())]
    assert len(select_letters(store.db, LetterFilter(site=NEW_SITE))) == 2
    assert [x.letter.reason for x in select_letters(store.db, LetterFilter(site="yc-aq-1"))] == [
        "not_json"
    ]
    assert len(select_letters(store.db, LetterFilter(site=NEW_SITE, device="aq1"))) == 2
    assert select_letters(store.db, LetterFilter(device="cems1")) == []
    assert len(select_letters(store.db, LetterFilter(topic="fs/v1/env/+/aq1/#"))) == 3
    assert select_letters(store.db, LetterFilter(topic="fs/v1/transport/#")) == []
    assert len(select_letters(store.db, LetterFilter(topic=aq(NEW_SITE, 0).topic))) == 2
    assert select_letters(store.db, LetterFilter(since=T0 + timedelta(seconds=1))) == []
    assert len(select_letters(store.db, LetterFilter(until=T0))) == 3
    assert [x.id for x in select_letters(store.db, LetterFilter(ids=(ids[1],)))] == [ids[1]]
    assert [x.id for x in select_letters(store.db, LetterFilter(limit=2))] == ids[:2]
    with pytest.raises(ValueError, match="limit"):
        LetterFilter(limit=0)


def test_topic_matching_follows_mqtt_wildcards() -> None:
    assert topic_matches("fs/v1/+/+/aq1/reading", "fs/v1/env/s/aq1/reading")
    assert topic_matches("fs/v1/#", "fs/v1/env/s/aq1/reading")
    assert not topic_matches("fs/v1/+/reading", "fs/v1/env/s/aq1/reading")
    assert not topic_matches("fs/v1/env/s/aq1", "fs/v1/env/s/aq1/reading")


def test_a_truncated_payload_is_listed_and_never_replayed(tmp_path: Path) -> None:
    """Retention may keep only a payload's first bytes and its hash: such a letter is shown as
    truncated and its replay says it cannot be replayed, instead of a misleading decode error."""
    store = ReadingStore(tmp_path / "f.db")
    try:
        refuse_some(store)
        with store.db.transaction() as c:
            # The columns a retention step could add (read tolerantly, whatever it adds).
            c.execute("ALTER TABLE dead_letters ADD COLUMN payload_size BIGINT")
            c.execute("ALTER TABLE dead_letters ADD COLUMN payload_sha256 TEXT")
            c.execute(
                "UPDATE dead_letters SET payload = substr(payload, 1, 10), payload_size = 999,"
                " payload_sha256 = 'ab' WHERE reason = 'unknown_site'"
            )
        letters = select_letters(store.db, LetterFilter(reason="unknown_site"))
        assert [x.truncated for x in letters] == [True, True]
        results = replay_letters(fixed_pipeline(store), letters, now=T0, actor="t")
        assert {(r.outcome, r.reason) for r in results} == {("unreplayable", "truncated")}
        assert "sha256 ab" in results[0].detail and store.count(site=NEW_SITE) == 0
    finally:
        store.close()


def test_the_command_lists_shows_and_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARSIGHT__DATA_DIR", str(tmp_path / "data"))
    db_path = tmp_path / "farsight.db"
    store = ReadingStore(db_path)
    refuse_some(store)
    store.close()
    sites = tmp_path / "sites.yaml"
    sites.write_text(yaml.safe_dump(fixed_doc()), encoding="utf-8")
    db = ["--db", str(db_path)]

    assert farsight(["deadletters", "list", *db, "--json", "--reason", "unknown_site"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["reason"] for x in listed] == ["unknown_site"] * 2
    assert listed[0]["topic"] == f"fs/v1/env/{NEW_SITE}/aq1/reading"
    assert listed[0]["replay_outcome"] is None and "payload" not in listed[0]

    assert farsight(["deadletters", "show", *db, str(listed[0]["id"])]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert json.loads(shown["payload"])["metrics"] == {"pm25": 30}

    replay = ["deadletters", "replay", *db, "--registry", str(sites), "--actor", "ops:li"]
    assert farsight([*replay, "--json"]) == 0
    out, err = capsys.readouterr()
    done = [json.loads(line) for line in out.splitlines()]
    assert [(x["outcome"], x["stored"], x["reason"]) for x in done] == [
        ("stored", 1, ""),
        ("stored", 1, ""),
        ("failed", 0, "not_json"),
    ]
    assert "2 stored" in err and "2 readings stored" in err

    assert farsight(replay) == 0  # the table form; only the bad letter is pending
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and "failed" in out and "not_json" in out
    assert "0 readings stored" in err

    store = ReadingStore(db_path)
    try:
        assert store.count(site=NEW_SITE) == 2
        entries = [e for e in SqlAuditLog(store.db).entries() if e.action == "deadletters.replay"]
        assert [e.actor for e in entries] == ["ops:li", "ops:li"]
    finally:
        store.close()

    assert farsight(["deadletters", "list", *db, "--outcome", "stored"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("id\t") and len(table) == 3

    assert farsight(["deadletters", "show", *db, "999"]) == 1
    assert farsight(["deadletters", "list", "--db", str(tmp_path / "none.db")]) == 1
    assert not (tmp_path / "none.db").exists()
