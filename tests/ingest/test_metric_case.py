"""HJ 212 pollutant codes match whatever their letter case: the registry, the hj212 codec and
admission share one spelling of a metric (the catalogue name), so a frame's ``A21026`` is the
registry's ``a21026`` is ``so2``."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from farsight.db import Database
from farsight.errors import RegistryError
from farsight.hj212 import build_data_frame
from farsight.metrics import canonical_metric
from farsight.registry import Registry, parse_registry
from ingest.codecs import get_codec
from ingest.pipeline import IngestPipeline, Message
from ingest.store import ReadingStore
from tests.factories import T0, registry_doc

TOPIC = "fs/v1/env/yc-stack-1/cems1/hj212"
MN = "42050000000001"


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("a34004", "pm25"), ("A34004", "pm25"), ("PM25", "pm25"), ("pm25", "pm25"),
     ("A99001", "a99001"), ("SO2.AVG_1H", "so2.avg_1h"), ("la", "noise"), ("running", "running")],
)  # fmt: skip
def test_one_spelling_of_a_metric(name: str, canonical: str) -> None:
    assert canonical_metric(name) == canonical


def coded_registry() -> Registry:
    """The test registry with the stack's metrics and permit written as HJ 212 codes, in the
    cases data loggers' manuals print them."""
    doc = copy.deepcopy(registry_doc())
    stack = next(s for s in doc["sites"] if s["id"] == "yc-stack-1")
    stack["devices"][0]["metrics"] = ["A21026", "a21002", "A34013", "a99001"]
    stack["limits"] = {"A21026": 35, "NOx": 50, "particulate": 10}
    return parse_registry(doc)


def test_the_registry_reads_codes_in_any_case_as_the_catalogue_name() -> None:
    site = coded_registry().get("yc-stack-1")
    assert site is not None
    assert site.devices[0].metrics == ("so2", "nox", "particulate", "a99001")
    assert (site.limit("so2"), site.limit("nox")) == (35, 50)


def test_two_spellings_of_one_metric_with_different_limits_are_refused_by_key_path() -> None:
    doc = copy.deepcopy(registry_doc())
    doc["sites"][1]["limits"] = {"so2": 35, "A21026": 50}
    with pytest.raises(RegistryError, match=r"sites\.1\.limits.*'A21026' and 'so2'"):
        parse_registry(doc)


def test_a_code_in_capitals_decodes_to_the_catalogue_metric_with_the_case_noted() -> None:
    frame = build_data_frame(mn=MN, ts=T0, values={"A21026": {"Rtd": 20.5}})
    decoded = get_codec("hj212").decode(frame, site="yc-stack-1", device="cems1")
    assert [(r.metric, r.value) for r in decoded.readings] == [("so2", 20.5)]
    assert decoded.irregularities == ("letter case: code 'A21026' for 'a21026'",)


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[tuple[IngestPipeline, ReadingStore]]:
    store = ReadingStore(Database.open(tmp_path / "farsight.db"))
    yield IngestPipeline(coded_registry(), store), store
    store.close()


def test_a_frame_whose_code_case_differs_from_the_registry_is_admitted(
    ingest: tuple[IngestPipeline, ReadingStore],
) -> None:
    pipe, store = ingest
    ts = T0 + timedelta(minutes=1)
    frame = build_data_frame(
        mn=MN,
        ts=ts,
        values={
            "a21026": {"Rtd": 20.0},  # registry: A21026
            "A21002": {"Rtd": 30.0},  # registry: a21002
            "a34013": {"Rtd": 5.0},  # registry: A34013
            "A99001": {"Rtd": 7.0},  # no catalogue metric; registry: a99001
        },
    )
    result = pipe.process([Message(TOPIC, frame, ts + timedelta(seconds=5))])
    assert (result.stored, result.rejected) == (4, 0), store.dead_letters()
    stored = {m: store.count(site="yc-stack-1", metric=m) for m in ("so2", "nox", "a99001")}
    assert stored == {"so2": 1, "nox": 1, "a99001": 1}
    assert store.count(site="yc-stack-1", metric="particulate") == 1
    counts = store.irregularity_counts(device="cems1")
    assert counts[("yc-stack-1", "cems1", "letter case")] == 1


def test_a_code_not_registered_in_any_case_is_still_refused(
    ingest: tuple[IngestPipeline, ReadingStore],
) -> None:
    pipe, store = ingest
    frame = build_data_frame(mn=MN, ts=T0, values={"A21026": {"Rtd": 20.0}, "A01012": {"Rtd": 1}})
    result = pipe.process([Message(TOPIC, frame, T0 + timedelta(seconds=5))])
    assert (result.stored, result.rejected) == (1, 1)
    (letter,) = store.dead_letters()
    assert letter.reason == "unknown_metric" and "flue_temp" in letter.detail
