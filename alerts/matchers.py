"""Label matchers of silences and inhibition rules, as in Alertmanager.

A matcher set is a mapping ``{label: value}``: a value starting with ``~`` is a regular
expression that must match the whole label value (as Alertmanager anchors its regexes); any
other value must be equal. A label the alert does not carry has the value
``""`` (Alertmanager's convention), so ``{"device": ""}`` matches alerts without a device.
All matchers of a set must match (AND).

Expressions are compiled once, when the matcher is parsed, by RE2
(:mod:`farsight.linear_regex`): matching takes time linear in the value, so no pattern a caller
posts can stall the process. RE2 has no backreferences and no lookaround, and its ``\\d``,
``\\w``, ``\\s`` and ``\\b`` are ASCII only (:data:`~farsight.linear_regex.UNSUPPORTED`).
A pattern is at most :data:`~farsight.linear_regex.MAX_PATTERN` characters, and a label value
longer than :data:`~farsight.linear_regex.MAX_SUBJECT` matches no pattern.

Pure: values in, values out. The labels of an alert are :func:`alert_labels`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alerts.model import Alert
from farsight.errors import MatcherError
from farsight.linear_regex import MAX_PATTERN, LinearPattern, PatternError, compile_linear

LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""Label names (Prometheus and Alertmanager's rule)."""

MAX_VALUE = 1000
"""Longest matcher value, in characters (a ``~`` pattern: :data:`MAX_PATTERN`)."""

MAX_MATCHERS = 50
"""Most matchers in one set."""

ALERT_FIELDS = (
    "site",
    "device",
    "metric",
    "rule_id",
    "department",
    "entity_id",
    "severity",
    "item_code",
)
"""Alert columns that are labels too (they win over a rule label of the same name)."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher: ``label`` equal to ``value``, or fully matching ``pattern`` (``~``
    values)."""

    label: str
    value: str
    """As given, with the ``~`` of a regex."""
    pattern: LinearPattern | None = None

    @property
    def is_regex(self) -> bool:
        return self.pattern is not None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when the label's value in ``labels`` (``""`` when absent) satisfies this matcher."""
        actual = labels.get(self.label, "")
        if self.pattern is not None:
            return self.pattern.fullmatch(actual)
        return actual == self.value

    def matches_empty(self) -> bool:
        """True when an alert without this label would match (a matcher that selects nothing)."""
        return self.matches({})


Matchers = tuple[Matcher, ...]
MatcherInput = Mapping[str, Any] | Iterable[Matcher]


def parse_matcher(label: Any, value: Any) -> Matcher:
    """Validate and compile one matcher.

    Raises
    ------
    MatcherError
        The label is not a label name, the value is not a string or too long, or a ``~`` value
        is not a valid RE2 expression or is longer than :data:`MAX_PATTERN`; the message names
        the label and the value, and says what RE2 does not support.
    """
    if not isinstance(label, str) or not LABEL_NAME.match(label):
        raise MatcherError(
            f"matcher label {label!r} is not a label name (letters, digits and _, not starting with"
            " a digit)"
        )
    if not isinstance(value, str):
        raise MatcherError(
            f"matcher {label!r}: value {value!r} must be a string (a value, or '~regex')"
        )
    if len(value) > MAX_VALUE:
        raise MatcherError(
            f"matcher {label!r}: value {value[:40]!r}... is longer than {MAX_VALUE} characters"
        )
    if value.startswith("~"):
        if len(value) - 1 > MAX_PATTERN:
            raise MatcherError(
                f"matcher {label!r}: the regular expression {value[:40]!r}... is longer than"
                f" {MAX_PATTERN} characters"
            )
        try:
            pattern = compile_linear(value[1:])
        except PatternError as exc:
            raise MatcherError(
                f"matcher {label!r}: value {value!r} is not a valid regular expression ({exc})"
            ) from None
        return Matcher(label, value, pattern)
    return Matcher(label, value)


def parse_matchers(doc: MatcherInput, *, allow_empty: bool = False) -> Matchers:
    """Validate and compile a matcher set ``{label: value | "~regex"}``.

    Parameters
    ----------
    doc : Mapping or iterable of Matcher
        The set as configured or posted; already compiled matchers pass through.
    allow_empty : bool
        Accept an empty set (which matches every alert).

    Returns
    -------
    tuple of Matcher
        In label order, so equal sets compare equal.

    Raises
    ------
    MatcherError
        ``doc`` is not a mapping, is empty (unless allowed), has too many matchers, or one
        matcher is invalid (see :func:`parse_matcher`).
    """
    if isinstance(doc, Mapping):
        out = tuple(parse_matcher(k, v) for k, v in sorted(doc.items(), key=lambda kv: str(kv[0])))
    elif isinstance(doc, (str, bytes)) or not isinstance(doc, Iterable):
        raise MatcherError(f"matchers must be an object {{label: value}}, not {type(doc).__name__}")
    else:
        out = tuple(doc)
        if not all(isinstance(m, Matcher) for m in out):
            raise MatcherError("matchers must be an object {label: value}")
    if not out and not allow_empty:
        raise MatcherError("at least one matcher is needed (an empty set would match every alert)")
    if len(out) > MAX_MATCHERS:
        raise MatcherError(f"{len(out)} matchers; at most {MAX_MATCHERS}")
    return out


def matches(matchers: MatcherInput, labels: Mapping[str, str]) -> bool:
    """True when every matcher matches ``labels`` (an empty set matches everything).

    Raises
    ------
    MatcherError
        ``matchers`` is a mapping with an invalid matcher.
    """
    ms = parse_matchers(matchers, allow_empty=True) if isinstance(matchers, Mapping) else matchers
    return all(m.matches(labels) for m in ms)


def to_dict(matchers: Iterable[Matcher]) -> dict[str, str]:
    """The set back in its ``{label: value}`` form (for storage and the API)."""
    return {m.label: m.value for m in matchers}


def pinned(matchers: Iterable[Matcher], label: str) -> str | None:
    """The value ``label`` must equal under ``matchers``, or ``None`` when it is not pinned by
    an equality matcher (absent, or a regex)."""
    for m in matchers:
        if m.label == label and m.pattern is None:
            return m.value
    return None


def alert_labels(alert: Alert) -> dict[str, str]:
    """The labels matchers see on an alert: its rule labels plus site, device, metric, rule_id,
    department, entity_id, severity and item_code (the columns win over a label of the same
    name)."""
    labels = {str(k): str(v) for k, v in dict(getattr(alert, "labels", None) or {}).items()}
    for f in ALERT_FIELDS:
        v = getattr(alert, f, "")
        labels[f] = "" if v is None else str(v)
    return labels
