"""What every payload codec returns, the protocol it implements and the checks codecs share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from farsight.errors import DecodeError
from farsight.types import HJ212_FLAGS, ID_RE, Reading


@dataclass(frozen=True, slots=True)
class Decoded:
    """The readings in one payload, what was off about it but still unambiguous, and its header."""

    readings: tuple[Reading, ...]
    irregularities: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)
    """The frame's own password (HJ 212 ``PW``), handed to the pipeline to check against the
    device's registered one; kept out of ``meta`` and ``repr`` so it is never stored or logged."""


class Codec(Protocol):
    """Turns one payload into readings; raises :class:`DecodeError` (and nothing else) on reject."""

    name: str

    def decode(self, payload: bytes, *, site: str, device: str) -> Decoded: ...


def check_target(site: str, device: str) -> None:
    """Refuse bad ids at once: they are the caller's arguments, not the payload's fault."""
    for kind, value in (("site", site), ("device", device)):
        if not isinstance(value, str) or not ID_RE.match(value):
            raise ValueError(f"{kind} {value!r} must match {ID_RE.pattern}")


DETAIL_SEP = ": "
"""Between an irregularity's fixed name and its details (``unknown code: x99001``)."""


def irregularity(name: str, detail: str = "") -> str:
    """An irregularity text: its fixed name, then what this payload had (``name: detail``).

    Ingest counts an irregularity per device under its name alone (:func:`irregularity_name`),
    so a device sending a thousand different unknown codes adds one counter, not a thousand,
    while ``decode --irregular`` shows the details of each payload.
    """
    return f"{name}{DETAIL_SEP}{detail}" if detail else name


def irregularity_name(text: str) -> str:
    """The fixed name of an irregularity text (what comes before :data:`DETAIL_SEP`)."""
    return text.split(DETAIL_SEP, 1)[0]


def parse_flag(raw: object, where: str, irregular: list[str]) -> str:
    """An HJ 212 data flag; a lower-case letter is unambiguous, anything else is a reject."""
    if isinstance(raw, str) and raw in HJ212_FLAGS:
        return raw
    if isinstance(raw, str) and raw.upper() in HJ212_FLAGS:
        irregular.append(irregularity("lowercase flag", f"{raw!r} for {where}"))
        return raw.upper()
    raise DecodeError(
        "bad_flag", f"flag {raw!r} for {where} is not one of {''.join(sorted(HJ212_FLAGS))}"
    )


def unique(items: list[str]) -> tuple[str, ...]:
    """Irregularities once each, in the order first seen."""
    return tuple(dict.fromkeys(items))
