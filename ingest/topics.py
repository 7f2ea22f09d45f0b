"""MQTT topics for device data: ``fs/v1/{dept}/{site}/{device}/{kind}``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from farsight.errors import DecodeError
from farsight.types import ID_RE

PREFIX = "fs/v1"
KINDS = ("reading", "hj212", "detection", "status")
CODEC_FOR_KIND = {"reading": "json", "hj212": "hj212", "detection": "detection"}


@dataclass(frozen=True, slots=True)
class Topic:
    """The parts of a device topic."""

    dept: str
    site: str
    device: str
    kind: str

    def __post_init__(self) -> None:
        for part, value in (("dept", self.dept), ("site", self.site), ("device", self.device)):
            if not isinstance(value, str) or not ID_RE.match(value):
                raise ValueError(f"topic {part} {value!r} must match {ID_RE.pattern}")
        if self.kind not in KINDS:
            raise ValueError(f"topic kind {self.kind!r} must be one of {', '.join(KINDS)}")

    @property
    def path(self) -> str:
        """The topic string."""
        return f"{PREFIX}/{self.dept}/{self.site}/{self.device}/{self.kind}"


def parse_topic(topic: str) -> Topic:
    """Split a device topic; anything else is a ``bad_topic`` decode error."""
    return _parse_topic(topic)


# A site's devices publish on the same few topics all day: parse each once. Errors are not
# cached (lru_cache does not keep exceptions), so a bad topic costs a parse every time.
@lru_cache(maxsize=65536)
def _parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != PREFIX:
        raise DecodeError("bad_topic", f"{topic[:120]!r} is not {PREFIX}/dept/site/device/kind")
    try:
        return Topic(*parts[2:])
    except ValueError as exc:
        raise DecodeError("bad_topic", f"{topic[:120]!r}: {exc}") from None


def reading_topic(dept: str, site: str, device: str) -> str:
    """Where a device publishes JSON readings."""
    return Topic(dept, site, device, "reading").path


def hj212_topic(dept: str, site: str, device: str) -> str:
    """Where a device (or a gateway on its behalf) publishes HJ 212 frames."""
    return Topic(dept, site, device, "hj212").path
