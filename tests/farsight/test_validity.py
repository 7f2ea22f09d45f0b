"""HJ 212 data flags decide validity: only N is valid; M, C and D are upkeep."""

from __future__ import annotations

import pytest

from farsight.types import HJ212_FLAGS
from farsight.validity import (
    day_is_valid,
    hour_is_valid,
    invalid_reason,
    is_upkeep,
    is_valid,
)


def test_only_normal_data_is_valid() -> None:
    assert {f for f in HJ212_FLAGS if is_valid(f)} == {"N"}
    assert not is_valid("") and not is_valid("n") and not is_valid("X")


@pytest.mark.parametrize(
    ("flag", "reason"),
    [("M", "maintenance"), ("C", "calibration"), ("D", "fault"), ("F", "stopped"),
     ("T", "over range"), ("B", "communication fault"), ("S", "manual input"), ("N", None)],
)  # fmt: skip
def test_invalid_reason_names_the_flag(flag: str, reason: str | None) -> None:
    assert invalid_reason(flag) == reason


def test_upkeep_is_maintenance_calibration_and_fault() -> None:
    assert {f for f in HJ212_FLAGS if is_upkeep(f)} == {"M", "C", "D"}


def test_hj75_hour_and_day_thresholds() -> None:
    assert not hour_is_valid(44) and hour_is_valid(45)
    assert not day_is_valid(19) and day_is_valid(20)
