"""What an HJ 212-2017 data flag says about a value: valid or not, and why not.

HJ 212-2017 flags each value: N normal, F stopped (停运), M maintenance (维护), S manual input
(手工输入), D fault (故障), C calibration (校准), T over the measuring range (超测上限), B
communication fault (通讯异常); some loggers also send P (power), H (hand entry) and E (error).
The project's reading (DOMAIN.md) of HJ 75-2017: only N data count toward valid averages and
exceedances; an hourly mean needs 45 valid minutes, a daily mean 20 valid hourly means.

Pure functions only, so that ingest, the rule engine and the quality figures judge a flag alike.
"""

from __future__ import annotations

from farsight.types import HJ212_FLAGS

FLAG_MEANINGS: dict[str, str] = {
    "N": "normal",
    "F": "stopped",
    "M": "maintenance",
    "S": "manual input",
    "D": "fault",
    "C": "calibration",
    "T": "over range",
    "B": "communication fault",
    "P": "power failure",
    "H": "hand entry",
    "E": "error",
}
"""Each data flag the codecs accept, in words."""

VALID_FLAGS = frozenset("N")
"""Flags whose values count as valid (HJ 75-2017 as DOMAIN.md reads it: only normal data)."""

UPKEEP_FLAGS = frozenset("MCD")
"""Flags that say the analyser itself was not measuring the stack: maintenance, calibration,
fault. A device that sends these much of the day is itself a finding (a site 'in maintenance'
all the time hides its emissions)."""

HOURLY_VALID_MINUTES = 45
"""HJ 75-2017: an hourly mean needs at least 45 valid minute values."""

DAILY_VALID_HOURS = 20
"""HJ 75-2017: a daily mean needs at least 20 valid hourly means."""

assert set(FLAG_MEANINGS) == HJ212_FLAGS, "every accepted flag needs a meaning"


def is_valid(flag: str) -> bool:
    """True when a value with this HJ 212 data flag counts as valid data.

    Only ``N`` does: maintenance, calibration, fault, stopped, manual, over-range and link-fault
    values count toward neither averages nor exceedances. An unknown flag is not valid.
    """
    return flag in VALID_FLAGS


def is_upkeep(flag: str) -> bool:
    """True for maintenance, calibration or fault (``M``, ``C``, ``D``): the analyser was being
    looked after or was broken, so the value says nothing about the emissions."""
    return flag in UPKEEP_FLAGS


def invalid_reason(flag: str) -> str | None:
    """Why a value with this flag is not valid (e.g. ``"maintenance"``), or ``None`` if valid."""
    if is_valid(flag):
        return None
    return FLAG_MEANINGS.get(flag, f"unknown flag {flag[:8]!r}")


def hour_is_valid(valid_minutes: int) -> bool:
    """True when an hourly mean with this many valid minute values is valid (HJ 75-2017)."""
    return valid_minutes >= HOURLY_VALID_MINUTES


def day_is_valid(valid_hours: int) -> bool:
    """True when a daily mean with this many valid hourly means is valid (HJ 75-2017)."""
    return valid_hours >= DAILY_VALID_HOURS
