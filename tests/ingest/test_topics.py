"""Device topics and the codec registry they point at."""

from __future__ import annotations

import pytest

from farsight.errors import ConfigError, DecodeError
from ingest.codecs import CODECS, get_codec
from ingest.topics import CODEC_FOR_KIND, Topic, hj212_topic, parse_topic, reading_topic


def test_parse_topic() -> None:
    assert parse_topic("fs/v1/env/plant-7/cems.1/hj212") == Topic(
        "env", "plant-7", "cems.1", "hj212"
    )


@pytest.mark.parametrize("kind", ["reading", "hj212", "detection", "status"])
def test_every_kind_parses(kind: str) -> None:
    assert parse_topic(f"fs/v1/env/s1/d1/{kind}").kind == kind


def test_topic_builders_round_trip() -> None:
    assert reading_topic("env", "s1", "d1") == "fs/v1/env/s1/d1/reading"
    assert hj212_topic("env", "s1", "d1") == "fs/v1/env/s1/d1/hj212"
    assert parse_topic(hj212_topic("transport", "s_2", "D-3")) == Topic(
        "transport", "s_2", "D-3", "hj212"
    )


def test_builders_refuse_ids_that_would_break_the_topic() -> None:
    with pytest.raises(ValueError):
        reading_topic("env", "s/1", "d1")


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "fs/v1/env/s1/d1",
        "fs/v1/env/s1/d1/reading/extra",
        "fs/v2/env/s1/d1/reading",
        "xx/v1/env/s1/d1/reading",
        "fs/v1/env/s1/d1/video",
        "fs/v1/env/-s1/d1/reading",
        "fs/v1/env/s1//reading",
        "fs/v1/e nv/s1/d1/reading",
        "fs/v1/env/s1/+/reading",
        "fs/v1/gw/gateway-1/batch",
    ],
)
def test_bad_topics_are_rejected(topic: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse_topic(topic)
    assert info.value.reason == "bad_topic"


def test_codec_for_kind_names_registered_codecs() -> None:
    assert CODEC_FOR_KIND == {"reading": "json", "hj212": "hj212", "detection": "detection"}
    for name in CODEC_FOR_KIND.values():
        assert get_codec(name) is CODECS[name] and get_codec(name).name == name


def test_unknown_codec_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        get_codec("protobuf")
    assert "hj212" in str(info.value) and "json" in str(info.value)
