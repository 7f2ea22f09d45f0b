"""Dead letters: cut payloads keep their length and hash; retention by age and total size, counted,
on SQLite and PostgreSQL, by ingest's periodic task and by ``farsight deadletters prune`` (and its
old name ``prune-dead-letters``)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from app.cli import main
from farsight.db import Database
from farsight.migrate import current, upgrade
from farsight.settings import DeadLetterSettings
from hub.metrics import counter_families
from ingest.retention import MIB, DeadLetterRetention
from ingest.store import PRUNED_COUNTER, DeadLetter, Pruned, ReadingStore
from tests.factories import T0


def letter(i: int, size: int = 10, minutes: float = 0.0) -> DeadLetter:
    payload = bytes([65 + i % 26]) * size
    return DeadLetter(f"t/{i}", payload, "bad", f"#{i}", T0 + timedelta(minutes=minutes))


def test_a_long_payload_keeps_its_first_bytes_its_length_and_hash(backend: str) -> None:
    store = ReadingStore(backend, keep_bytes=100)
    whole = bytes(range(256)) * 4
    store.write_batch([], dead=[DeadLetter("t/big", whole, "too_large", "", T0), letter(1)])
    small, big = store.dead_letters()  # newest first
    assert big.payload == whole[:100] and big.size == 1024 and big.truncated
    assert big.sha256 == hashlib.sha256(whole).hexdigest()
    assert small.payload == b"B" * 10 and small.size == 10 and not small.truncated
    assert small.sha256 == hashlib.sha256(small.payload).hexdigest()
    assert store.dead_letter_bytes() == 110
    store.close()


def test_retention_deletes_by_age_then_oldest_by_size_and_counts_it(backend: str) -> None:
    store = ReadingStore(backend)
    # Ten letters of 100 bytes, one a minute; the first three older than the age limit.
    store.write_batch([], dead=[letter(i, 100, minutes=i) for i in range(10)])
    now = T0 + timedelta(minutes=12)
    pruned = store.prune_dead_letters(timedelta(minutes=9.5), 450, now)
    assert pruned == Pruned(by_age=3, by_size=3)
    # The four newest stay: 400 bytes <= 450.
    assert [d.topic for d in store.dead_letters()] == ["t/9", "t/8", "t/7", "t/6"]
    assert store.dead_letter_bytes() == 400
    assert store.counters() == {(PRUNED_COUNTER, "age"): 3, (PRUNED_COUNTER, "size"): 3}
    # Nothing left to do: nothing deleted, the counters unchanged.
    assert store.prune_dead_letters(timedelta(minutes=9.5), 450, now) == Pruned()
    assert store.prune_dead_letters(timedelta(days=1), 400, now) == Pruned()
    assert store.prune_dead_letters(timedelta(days=1), 0, now) == Pruned(0, 4)
    assert store.dead_letter_count() == 0
    (family,) = [f for f in counter_families(store.counters()) if f.name.endswith("removed")]
    assert {s.labels["cause"]: s.value for s in family.samples} == {"age": 3.0, "size": 7.0}
    store.close()


def test_ingest_runs_retention_on_the_wall_clock_period(tmp_path: Path) -> None:
    store = ReadingStore(tmp_path / "farsight.db", keep_bytes=2 * MIB)
    settings = DeadLetterSettings(max_age_days=1, max_total_mb=1, every_s=60)
    now, ticks = T0 + timedelta(days=2), [1000.0]
    run = DeadLetterRetention(store, settings, clock=lambda: now, monotonic=lambda: ticks[0])
    store.write_batch([], dead=[letter(1)])  # received at T0: two days before the clock
    assert run() == Pruned(by_age=1)  # the first call runs at once
    store.write_batch([], dead=[letter(2)])
    ticks[0] += 59
    assert run() is None and store.dead_letter_count() == 1
    ticks[0] += 1
    assert run() == Pruned(by_age=1) and store.dead_letter_count() == 0
    # A payload of 1.5 MiB, received now and kept whole, is over the 1 MiB total on its own.
    store.write_batch([], dead=[DeadLetter("t/x", b"x" * (3 * MIB // 2), "r", "", now)])
    ticks[0] += 60
    assert run() == Pruned(by_size=1)
    store.close()


def test_the_prune_command_applies_settings_and_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "farsight.db"
    store = ReadingStore(path)
    # 90 days old: the default 30 days removes them all, a larger age keeps them.
    store.write_batch([], dead=[letter(i, 100, minutes=i - 90 * 1440) for i in range(5)])
    store.close()
    prune = ["deadletters", "prune", "--db", str(path)]
    assert main([*prune, "--max-age-days", "3650"]) == 0
    out = capsys.readouterr()
    assert "deleted 0 older than 3650 days and 0 beyond 512 MiB; 5 kept" in out.out
    assert "deprecated" not in out.err
    code = main([*prune, "--max-age-days", "3650", "--max-total-mb", str(250 / MIB)])
    assert code == 2  # below the 1 MiB floor of the setting
    assert "ingest.dead_letters.max_total_mb" in capsys.readouterr().err
    assert main(prune) == 0
    assert "deleted 5 older than 30 days" in capsys.readouterr().out
    store = ReadingStore(path)
    assert store.dead_letter_count() == 0 and store.counters() == {(PRUNED_COUNTER, "age"): 5}
    store.close()


def test_a_dry_run_says_what_the_prune_would_delete_and_deletes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "farsight.db"
    store = ReadingStore(path, keep_bytes=2 * MIB)
    # Two 90 days old (gone by age); of the three recent 0.6 MiB ones, the cap of 1 MiB keeps the
    # newest only.
    old = [letter(i, 100, minutes=i - 90 * 1440) for i in range(2)]
    recent = [letter(i, 6 * MIB // 10, minutes=i) for i in range(2, 5)]
    store.write_batch([], dead=old + recent)
    store.close()
    args = ["deadletters", "prune", "--db", str(path), "--max-total-mb", "1"]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run, nothing deleted: would delete 2 older than 30 days and 2 beyond 1 MiB" in out
    assert "1 would be kept" in out
    store = ReadingStore(path)
    assert store.dead_letter_count() == 5 and store.counters() == {}
    store.close()
    assert main(args) == 0  # what the dry run announced, done
    assert "deleted 2 older than 30 days and 2 beyond 1 MiB; 1 kept" in capsys.readouterr().out
    store = ReadingStore(path)
    assert [d.detail for d in store.dead_letters()] == ["#4"]
    assert store.counters() == {(PRUNED_COUNTER, "age"): 2, (PRUNED_COUNTER, "size"): 2}
    store.close()


def test_the_old_command_name_still_prunes_and_names_the_new_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "farsight.db"
    store = ReadingStore(path)
    store.write_batch([], dead=[letter(i, 100, minutes=i - 90 * 1440) for i in range(3)])
    store.close()
    assert main(["prune-dead-letters", "--db", str(path), "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "would delete 3 older than 30 days" in out.out
    # One line of its own (the rest of stderr is the log).
    note = [line for line in out.err.splitlines() if "prune-dead-letters" in line]
    assert note == [
        "farsight prune-dead-letters is deprecated: use `farsight deadletters prune` (same options)"
    ]
    assert main(["prune-dead-letters", "--db", str(path)]) == 0
    assert "deleted 3 older than 30 days" in capsys.readouterr().out
    store = ReadingStore(path)
    assert store.dead_letter_count() == 0
    store.close()
    # Hidden: the help lists `deadletters` (with prune) but not the old name.
    with pytest.raises(SystemExit):
        main(["--help"])
    helped = capsys.readouterr().out
    assert "deadletters" in helped and "prune-dead-letters" not in helped
    with pytest.raises(SystemExit):
        main(["deadletters", "--help"])
    assert "prune" in capsys.readouterr().out


def test_migration_0003_sizes_the_letters_already_stored(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "old.db")
    upgrade(db, "0002")
    with db.transaction() as c:
        c.execute(
            "INSERT INTO dead_letters (received, topic, payload, codec, reason, detail)"
            " VALUES (1, 't', ?, NULL, 'bad', '')",
            (b"12345",),
        )
    assert upgrade(db, "0003") == ("0002", "0003") and current(db) == "0003"
    (old,) = ReadingStore(db).dead_letters()
    assert old.payload == b"12345" and old.size == 5 and old.sha256 is None and not old.truncated
    db.close()
