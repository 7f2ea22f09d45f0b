"""Payload codecs by name: ``json`` for reading payloads, ``hj212`` for HJ 212-2017 frames,
``detection`` for video findings."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from farsight.errors import ConfigError, ConfigProblem
from ingest.codecs.base import Codec, Decoded
from ingest.codecs.detection import DetectionCodec
from ingest.codecs.hj212 import Hj212Codec
from ingest.codecs.json_codec import JsonCodec

CODECS: Mapping[str, Codec] = MappingProxyType(
    {"json": JsonCodec(), "hj212": Hj212Codec(), "detection": DetectionCodec()}
)


def get_codec(name: str) -> Codec:
    """The codec registered as ``name``; an unknown name is a configuration error."""
    try:
        return CODECS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(CODECS))
        raise ConfigError(
            [ConfigProblem("codec", name, f"unknown codec; known codecs: {known}")]
        ) from None


__all__ = ["CODECS", "Codec", "Decoded", "get_codec"]
