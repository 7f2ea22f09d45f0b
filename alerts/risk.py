"""The risk score that orders the queue, and its explanation.

score = severity weight x credit-grade factor x (1 + repeat x earlier alerts of the operator)
        x (1 + evidence x evidence files) x (1 + min(age_per_hour x hours waiting, age_cap))

A product, so that each factor reads as "this alert counts N times more because ...": the
explanation lists every factor with its multiplier. The same formula runs in SQL to sort the
queue (:func:`sql_order`) and in Python to explain one alert (:func:`explain`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from farsight.clock import to_epoch_ms
from farsight.settings import RiskSettings


@dataclass(frozen=True, slots=True)
class Factor:
    """One multiplier of the score and why it applies."""

    name: str
    detail: str
    multiplier: float


@dataclass(frozen=True, slots=True)
class RiskScore:
    value: float
    factors: tuple[Factor, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.value, 3),
            "factors": [
                {"name": f.name, "detail": f.detail, "multiplier": round(f.multiplier, 3)}
                for f in self.factors
            ],
        }


def _weight(table: Mapping[Any, float], key: str) -> float:
    # Keys the settings do not know (a severity or grade added later) weigh 1: neutral.
    return table.get(key, 1.0)


def explain(
    *,
    severity: str,
    credit_grade: str,
    repeats: int,
    evidence: int,
    created: datetime,
    now: datetime,
    params: RiskSettings,
) -> RiskScore:
    """The score of one alert with every factor that made it."""
    hours = max(0.0, (now - created).total_seconds() / 3600)
    counted = min(repeats, params.repeat_cap)
    factors = (
        Factor("severity", severity, _weight(params.severity, severity)),
        Factor(
            "credit_grade",
            f"operator graded {credit_grade}",
            _weight(params.credit, credit_grade),
        ),
        Factor(
            "repeat",
            f"{repeats} earlier alert(s) of the operator"
            + (f", {counted} counted" if counted < repeats else ""),
            1 + params.repeat * counted,
        ),
        Factor("evidence", f"{evidence} evidence file(s)", 1 + params.evidence * evidence),
        Factor(
            "age", f"waiting {hours:.1f} h", 1 + min(params.age_per_hour * hours, params.age_cap)
        ),
    )
    value = 1.0
    for f in factors:
        value *= f.multiplier
    return RiskScore(value, factors)


def sql_order(
    params: RiskSettings, now: datetime, greatest: str = "greatest", least: str = "least"
) -> tuple[str, list[Any]]:
    """An SQL expression of the score over the alerts table, and its parameters (bound, never
    formatted into the SQL). ``greatest``/``least`` name the dialect's scalar max and min
    (:attr:`farsight.db.Database.greatest`)."""
    args: list[Any] = []
    sev = "CASE severity " + " ".join("WHEN ? THEN ?" for _ in params.severity) + " ELSE 1.0 END"
    for k, v in params.severity.items():
        args += [k, v]
    credit = (
        "CASE credit_grade " + " ".join("WHEN ? THEN ?" for _ in params.credit) + " ELSE 1.0 END"
    )
    for grade, w in params.credit.items():
        args += [grade, w]
    expr = (
        f"({sev}) * ({credit}) * (1 + ? * {least}(entity_repeats, ?)) * (1 + ? * evidence_count)"
        f" * (1 + {least}(? * {greatest}(0, ? - created) / 3600000.0, ?))"
    )
    args += [
        params.repeat,
        params.repeat_cap,
        params.evidence,
        params.age_per_hour,
        to_epoch_ms(now),
        params.age_cap,
    ]
    return expr, args
