"""Unit tests for rules (``farsight rules test``) and replays of stored readings (backtests).

A rule test file works like ``promtool test rules``: it names rule files, gives input series in
expanding notation (``"20+0x59 90x120 _ 5"``), and at chosen moments lists the alerts a rule must
be firing. Each test case runs on a fresh :class:`~rules.engine.Engine` loaded with only the
named rule files, so a case proves what those rules do, not what the rest of a pack happens to.

Both the runner and the backtest drive the engine with :class:`Replay`: readings in event-time
order, one sample per device and timestamp, and the engine's clock ticking along event time the
way the consumer's periodic tick moves it in production.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from farsight.errors import ConfigError, ConfigProblem
from farsight.registry import Registry, load_registry
from farsight.settings import read_yaml, validation_problems
from farsight.types import HJ212_FLAGS, ID_RE, AlertSignal, Reading
from rules.engine import Engine
from rules.loader import load_ruleset
from rules.matching import max_matching
from rules.model import RuleSet, parse_duration

# -- expanding notation ---------------------------------------------------------------------

MAX_VALUES = 1_000_000
"""Most values one ``values`` string may expand to: a typo like ``1x100000000`` is refused, not
allocated."""

_UNUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# ASCII only: Python's \d and float() would otherwise accept digits of other scripts.
_TOKEN = re.compile(
    rf"(?:(?P<blank>_)|(?P<a>[-+]?{_UNUM}))(?:(?:(?P<op>[-+])(?P<b>{_UNUM}))?x(?P<n>\d+))?",
    re.ASCII,
)
_GRAMMAR = (
    "a number, '_' (missing), 'a+bxn' or 'a-bxn' (n+1 values stepping by b), 'axn' (n+1 repeats)"
    " or '_xn' (n+1 missing)"
)


def expand_values(text: str) -> list[float | None]:
    """Expand promtool's series notation into values, ``None`` standing for a missing sample.

    Parameters
    ----------
    text
        Whitespace-separated tokens: ``a`` (one value), ``_`` (one missing sample), ``a+bxn``
        (n+1 values a, a+b, ..., a+n*b), ``a-bxn`` (decreasing), ``axn`` (n+1 repeats of a)
        and ``_xn`` (n+1 missing samples).

    Returns
    -------
    list of float or None
        One entry per step. The i-th value of ``a+bxn`` is computed as ``a + i*b`` (not by
        repeated addition), so long ramps carry no accumulated rounding error.

    Raises
    ------
    ValueError
        Naming the first bad token and its position, and the grammar.
    """
    out: list[float | None] = []
    for pos, token in enumerate(text.split(), start=1):
        m = _TOKEN.fullmatch(token)
        if m is None:
            raise ValueError(f"token {pos} {token!r} is not {_GRAMMAR}")
        n = int(m["n"]) if m["n"] is not None else 0
        if len(out) + n + 1 > MAX_VALUES:
            raise ValueError(f"token {pos} {token!r} expands past {MAX_VALUES:,} values")
        if m["blank"]:
            if m["op"]:
                raise ValueError(
                    f"token {pos} {token!r}: a missing sample cannot step; write '_x{n}'"
                )
            out.extend([None] * (n + 1))
            continue
        a = float(m["a"])
        b = float(m["b"]) if m["b"] is not None else 0.0
        if m["op"] == "-":
            b = -b
        if not (math.isfinite(a) and math.isfinite(a + n * b)):
            raise ValueError(
                f"token {pos} {token!r} gives a value out of the float range; readings must be"
                " finite"
            )
        out.extend(a + i * b for i in range(n + 1))
    return out


# -- the test file ----------------------------------------------------------------------------

_SERIES = rf"^{ID_RE.pattern[1:-1]}/{ID_RE.pattern[1:-1]}/[^/\s]{{1,64}}$"
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeriesModel(_Model):
    """One input series of a test case."""

    series: str = Field(title="Series", description="site/device/metric.", pattern=_SERIES)
    values: str = Field(title="Values", description=f"Expanding notation: {_GRAMMAR}.")
    flag: str = Field(
        "N",
        title="Flag",
        description="HJ 212 data flag of every value (N normal, C calibration, M maintenance...).",
    )
    unit: str = Field("", title="Unit", description="Unit of every value.", max_length=32)

    @field_validator("values", mode="before")
    @classmethod
    def _number_is_text(cls, v: Any) -> Any:
        # YAML reads `values: 5` as an int; it is the one-value series "5".
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("values")
    @classmethod
    def _expandable(cls, v: str) -> str:
        if not expand_values(v):
            raise ValueError("no values; give at least one")
        return v

    @field_validator("flag")
    @classmethod
    def _hj212_flag(cls, v: str) -> str:
        if v not in HJ212_FLAGS:
            raise ValueError(f"not an HJ 212 data flag; one of {', '.join(sorted(HJ212_FLAGS))}")
        return v


class ExpectedAlertModel(_Model):
    labels: dict[str, str] = Field(
        default_factory=dict,
        title="Labels",
        description="Labels the alert must carry (a subset of rule, site, device, metric,"
        " severity, department and the rule's labels).",
    )
    annotations: dict[str, str] | None = Field(
        None,
        title="Annotations",
        description="Annotations that must equal the alert's, key by key.",
    )


class AlertRuleTestModel(_Model):
    eval_time: str | float = Field(
        title="Evaluation time", description="Offset from the test's start, e.g. 10m or 2h."
    )
    rule: str = Field(
        title="Rule", description="Id of the rule whose firing alerts are compared.", min_length=1
    )
    exp_alerts: list[ExpectedAlertModel] = Field(
        default_factory=list,
        title="Expected alerts",
        description="Alerts that must be firing at eval_time; empty means none.",
    )

    @field_validator("eval_time")
    @classmethod
    def _duration(cls, v: str | float) -> str | float:
        parse_duration(v)
        return v


class CaseModel(_Model):
    name: str = Field("", title="Name", description="Shown in the report.", max_length=200)
    start: datetime = Field(
        DEFAULT_START,
        title="Start",
        description="Time of each series' first value, ISO 8601 with offset.",
    )
    interval: str | float = Field(
        "1m", title="Interval", description="Step between two values of a series."
    )
    input_series: list[SeriesModel] = Field(
        default_factory=list, title="Input series", description="Readings fed to the engine."
    )
    alert_rule_test: list[AlertRuleTestModel] = Field(
        default_factory=list, title="Alert tests", description="What must be firing when."
    )

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-25T08:00:00+08:00")
        return v

    @field_validator("interval")
    @classmethod
    def _positive(cls, v: str | float) -> str | float:
        if parse_duration(v) <= timedelta(0):
            raise ValueError("must be more than zero")
        return v


class FileModel(_Model):
    rule_files: list[str] = Field(
        title="Rule files",
        description="Rule files to load, relative to the test file.",
        min_length=1,
    )
    registry: str | None = Field(
        None,
        title="Registry",
        description="Site registry, relative to the test file; default: the built-in demo"
        " registry.",
    )
    tests: list[Any] = Field(title="Tests", description="Test cases.", min_length=1)


# -- loaded test cases ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpectedAlert:
    labels: dict[str, str]
    annotations: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class AlertRuleTest:
    eval_time: timedelta
    rule: str
    expected: tuple[ExpectedAlert, ...]


@dataclass(frozen=True, slots=True)
class RuleTestCase:
    __test__ = False  # not a pytest class

    name: str
    start: datetime
    interval: timedelta
    readings: tuple[Reading, ...]
    """Every reading of the case, in time order, then by site and device."""
    checks: tuple[AlertRuleTest, ...]


@dataclass(frozen=True, slots=True)
class RuleTestFile:
    __test__ = False

    path: Path
    ruleset: RuleSet
    registry: Registry
    cases: tuple[RuleTestCase, ...]


def _resolve(base: Path, name: str) -> Path:
    """A path named in a test file: relative to the file, or to the parent of a ``tests/`` folder.

    The second form lets ``rules/packs/tests/x.test.yaml`` name ``env-thresholds.yaml`` the way
    the pack itself does.
    """
    p = Path(name)
    if p.is_absolute():
        return p
    first = base / p
    if not first.exists() and base.name == "tests" and (base.parent / p).exists():
        return base.parent / p
    return first


@lru_cache(maxsize=1)
def _demo_registry() -> Registry:
    return load_registry(None)


def load_test_file(path: Path | str) -> RuleTestFile:
    """Read and validate a rule test file, with its rules and registry.

    Raises
    ------
    ConfigError
        Every problem of the test file, each with its key path
        (``tests.0[name].input_series.1.values``);
        a :class:`~farsight.errors.RuleError` of a rule file it names; an unreadable registry.
    """
    path = Path(path)
    raw = read_yaml(path)
    source = str(path)
    try:
        top = FileModel.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, raw), source=source) from None
    base = path.parent
    ruleset = load_ruleset([_resolve(base, f) for f in top.rule_files], default_pack=False)
    registry = load_registry(_resolve(base, top.registry)) if top.registry else _demo_registry()
    rule_ids = {r.id for r in ruleset.rules}
    problems: list[ConfigProblem] = []
    cases: list[RuleTestCase] = []
    for i, item in enumerate(top.tests):
        name = item.get("name") if isinstance(item, dict) else None
        where = f"tests.{i}" + (f"[{name}]" if isinstance(name, str) and name else "")
        # Names of sites and rules are checked on the raw document too, so a case with a
        # schema error still reports its unknown rule: every problem at once.
        ref_problems = _reference_problems(item, where, registry, rule_ids)
        problems.extend(ref_problems)
        try:
            m = CaseModel.model_validate(item)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, item, prefix=where))
            continue
        if ref_problems:
            continue
        case, case_problems = _build_case(m, where, fallback_name=f"tests.{i}")
        problems.extend(case_problems)
        if case is not None:
            cases.append(case)
    if problems:
        raise ConfigError(problems, source=source)
    return RuleTestFile(path, ruleset, registry, tuple(cases))


def _reference_problems(
    item: Any, where: str, registry: Registry, rule_ids: set[str]
) -> list[ConfigProblem]:
    """Sites of input series not in the registry, and rules not in the rule files."""
    problems: list[ConfigProblem] = []
    if not isinstance(item, dict):
        return problems
    for j, s in enumerate(item.get("input_series") or []):
        series = s.get("series") if isinstance(s, dict) else None
        if (
            isinstance(series, str)
            and re.match(_SERIES, series)
            and registry.get(series.split("/", 1)[0]) is None
        ):
            problems.append(
                ConfigProblem(
                    f"{where}.input_series.{j}.series", series, "site is not in the test's registry"
                )
            )
    for j, t in enumerate(item.get("alert_rule_test") or []):
        rule = t.get("rule") if isinstance(t, dict) else None
        if isinstance(rule, str) and rule not in rule_ids:
            problems.append(
                ConfigProblem(
                    f"{where}.alert_rule_test.{j}.rule",
                    rule,
                    f"no such rule in rule_files; rules: {', '.join(sorted(rule_ids)) or 'none'}",
                )
            )
    return problems


def _build_case(
    m: CaseModel, where: str, fallback_name: str
) -> tuple[RuleTestCase | None, list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    interval = parse_duration(m.interval)
    readings: list[Reading] = []
    owner: dict[tuple[str, str, str, datetime], int] = {}
    for j, s in enumerate(m.input_series):
        site, device, metric = s.series.split("/", 2)
        for k, v in enumerate(expand_values(s.values)):
            if v is None:
                continue
            ts = m.start + k * interval
            key = (site, device, metric, ts)
            if key in owner:
                # Two values for one series at one time: the engine would keep only one.
                problems.append(
                    ConfigProblem(
                        f"{where}.input_series.{j}.values",
                        s.values,
                        f"value {k} at {ts.isoformat()} overlaps input_series.{owner[key]}; use"
                        " '_' where the other series has a value",
                    )
                )
                break
            owner[key] = j
            try:
                readings.append(Reading(site, device, metric, v, s.unit, ts, s.flag))
            except ValueError as exc:
                problems.append(
                    ConfigProblem(f"{where}.input_series.{j}.values", s.values, f"value {k}: {exc}")
                )
                break
    checks: list[AlertRuleTest] = []
    for t in m.alert_rule_test:
        expected = tuple(
            ExpectedAlert(
                dict(e.labels), dict(e.annotations) if e.annotations is not None else None
            )
            for e in t.exp_alerts
        )
        checks.append(AlertRuleTest(parse_duration(t.eval_time), t.rule, expected))
    if problems:
        return None, problems
    # Time order, then one device's readings together: one sample per device per step.
    readings.sort(key=lambda r: (r.ts, r.site, r.device))
    return RuleTestCase(
        m.name or fallback_name, m.start, interval, tuple(readings), tuple(checks)
    ), []


# -- replay -----------------------------------------------------------------------------------


class Replay:
    """Feeds readings to an engine in event-time order and moves its clock along event time.

    The clock ticks at ``start + k * tick_every`` once every reading up to that moment has been
    fed, as the consumer's periodic tick would in a live system; rules that watch for silence
    therefore see time pass even where no reading arrives. Readings of one timestamp are fed
    together, grouped by site and device, so each device gives one sample per timestamp.
    """

    def __init__(
        self,
        engine: Engine,
        start: datetime,
        tick_every: timedelta,
        on_signals: Callable[[list[AlertSignal]], None],
    ) -> None:
        if tick_every <= timedelta(0):
            raise ValueError("tick_every must be more than zero")
        self.engine = engine
        self.tick_every = tick_every
        self.on_signals = on_signals
        self._next_tick = start
        self._last_tick: datetime | None = None
        self._buf: list[Reading] = []

    def push(self, reading: Reading) -> None:
        """Add one reading; readings must come in non-decreasing time order."""
        if self._buf and reading.ts != self._buf[0].ts:
            self._flush()
            self._tick_before(reading.ts)
        elif not self._buf:
            self._tick_before(reading.ts)
        self._buf.append(reading)

    def advance(self, until: datetime) -> None:
        """Feed what is buffered, then tick every grid moment up to and including ``until``."""
        self._flush()
        while self._next_tick <= until:
            self._tick(self._next_tick)
            self._next_tick += self.tick_every
        if self._last_tick is None or self._last_tick < until:
            self._tick(until)

    def _tick_before(self, ts: datetime) -> None:
        while self._next_tick < ts:
            self._tick(self._next_tick)
            self._next_tick += self.tick_every

    def _tick(self, now: datetime) -> None:
        if self._last_tick is not None and now <= self._last_tick:
            return
        self._last_tick = now
        signals = self.engine.tick(now)
        if signals:
            self.on_signals(signals)

    def _flush(self) -> None:
        if not self._buf:
            return
        batch = sorted(
            self._buf, key=lambda r: (r.site, r.device)
        )  # stable: a device's metrics stay in order
        self._buf = []
        signals = self.engine.evaluate(batch)
        if signals:
            self.on_signals(signals)


# -- running tests ----------------------------------------------------------------------------


def alert_labels(s: AlertSignal) -> dict[str, str]:
    """The labels a test matches against: the rule's labels, then the built-in ones."""
    labels = dict(s.labels)
    labels.update(
        rule=s.rule_id,
        site=s.site,
        device=s.device,
        metric=s.metric,
        severity=s.severity,
        department=s.department,
    )
    return labels


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One ``alert_rule_test`` entry: what was firing, and what did not match."""

    eval_time: timedelta
    at: datetime
    rule: str
    firing: tuple[AlertSignal, ...]
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass(frozen=True, slots=True)
class TestFileResult:
    """The outcome of one test file: its cases, or the error that made it invalid."""

    __test__ = False

    path: Path
    cases: tuple[CaseResult, ...] = ()
    error: ConfigError | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.passed for c in self.cases)

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed]


def run_test_file(path: Path | str, name_filter: re.Pattern[str] | None = None) -> TestFileResult:
    """Load and run one rule test file; an invalid file gives a result whose ``error`` says why."""
    try:
        tf = load_test_file(path)
    except ConfigError as exc:
        return TestFileResult(Path(path), error=exc)
    cases = tuple(
        run_case(c, tf.ruleset, tf.registry)
        for c in tf.cases
        if name_filter is None or name_filter.search(c.name)
    )
    return TestFileResult(tf.path, cases)


def run_case(case: RuleTestCase, ruleset: RuleSet, registry: Registry) -> CaseResult:
    """Run one test case on a fresh engine and compare what fires with what is expected."""
    engine = Engine(ruleset, registry)
    firing: dict[str, AlertSignal] = {}

    def track(signals: list[AlertSignal]) -> None:
        for s in signals:
            if s.status == "firing":
                firing[s.fingerprint] = (
                    s  # a repeated firing signal refreshes value and annotations
                )
            else:
                firing.pop(s.fingerprint, None)

    replay = Replay(engine, case.start, case.interval, track)
    readings = iter(case.readings)
    pending: Reading | None = next(readings, None)
    results: dict[int, CheckResult] = {}
    # Checks run in time order whatever their order in the file; results keep the file's order.
    for idx in sorted(range(len(case.checks)), key=lambda i: case.checks[i].eval_time):
        check = case.checks[idx]
        at = case.start + check.eval_time
        while pending is not None and pending.ts <= at:
            replay.push(pending)
            pending = next(readings, None)
        replay.advance(at)
        got = tuple(
            sorted(
                (s for s in firing.values() if s.rule_id == check.rule),
                key=lambda s: sorted(alert_labels(s).items()),
            )
        )
        results[idx] = CheckResult(
            check.eval_time, at, check.rule, got, tuple(compare_alerts(check.expected, got))
        )
    return CaseResult(case.name, tuple(results[i] for i in range(len(case.checks))))


def _labels_match(e: ExpectedAlert, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in e.labels.items())


def _annotations_match(e: ExpectedAlert, s: AlertSignal) -> bool:
    if e.annotations is None:
        return True
    got = dict(s.annotations)
    return all(got.get(k) == v for k, v in e.annotations.items())


def _fmt_map(d: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(d.items())) + "}"


def compare_alerts(expected: Sequence[ExpectedAlert], got: Sequence[AlertSignal]) -> list[str]:
    """Differences between expected and firing alerts, compared as sets; empty when they agree."""
    labels = [alert_labels(s) for s in got]
    # Expected alerts may give only some labels, so one expectation can fit several alerts; a
    # greedy pairing could report a miss that another pairing avoids.
    full = max_matching(
        len(expected),
        len(got),
        lambda i, j: (
            _labels_match(expected[i], labels[j]) and _annotations_match(expected[i], got[j])
        ),
    )
    left_e = [i for i in range(len(expected)) if i not in full]
    used = set(full.values())
    left_g = [j for j in range(len(got)) if j not in used]
    # Alerts whose labels match but whose annotations differ are one problem, not a miss plus a
    # surprise.
    partial = max_matching(
        len(left_e), len(left_g), lambda i, j: _labels_match(expected[left_e[i]], labels[left_g[j]])
    )
    problems: list[str] = []
    for i, j in sorted(partial.items()):
        e, s = expected[left_e[i]], got[left_g[j]]
        have = dict(s.annotations)
        for k, v in sorted((e.annotations or {}).items()):
            if have.get(k) != v:
                problems.append(
                    f"annotation {k!r} of alert {_fmt_map(labels[left_g[j]])}:\n    expected:"
                    f" {v!r}\n    got:      {have.get(k)!r}"
                )
    paired_e = {left_e[i] for i in partial}
    paired_g = {left_g[j] for j in partial.values()}
    for i in left_e:
        if i not in paired_e:
            e = expected[i]
            extra = f" with annotations {_fmt_map(e.annotations)}" if e.annotations else ""
            problems.append(f"missing alert: {_fmt_map(e.labels)}{extra}")
    for j in left_g:
        if j not in paired_g:
            problems.append(
                f"unexpected alert: {_fmt_map(labels[j])} annotations"
                f" {_fmt_map(dict(got[j].annotations))}"
            )
    return problems


def _fmt_offset(d: timedelta) -> str:
    s = int(d.total_seconds())
    if s % 3600 == 0 and s:
        return f"{s // 3600}h"
    if s % 60 == 0 and s:
        return f"{s // 60}m"
    return f"{d.total_seconds():g}s"


def format_result(result: TestFileResult, verbose: bool = False) -> str:
    """A human report of one test file: PASS/FAIL per case, with the differences of failures."""
    lines = [f"{result.path}"]
    if result.error is not None:
        lines.append("  INVALID test file")
        lines += ["  " + line for line in str(result.error).splitlines()]
        return "\n".join(lines)
    for case in result.cases:
        lines.append(f"  {'PASS' if case.passed else 'FAIL'}  {case.name}")
        for c in case.checks:
            if c.passed and not verbose:
                continue
            lines.append(
                f"        at {_fmt_offset(c.eval_time)} ({c.at.isoformat()}), rule {c.rule}:"
                f" {len(c.firing)} firing"
            )
            for p in c.problems:
                lines += ["          " + line for line in p.splitlines()]
    n_fail = len(result.failed)
    lines.append(f"  {len(result.cases) - n_fail} passed, {n_fail} failed")
    return "\n".join(lines)


# -- backtest ---------------------------------------------------------------------------------


@dataclass(slots=True)
class BacktestAlert:
    """One alert a backtest opened: when it fired and, if it did, when it resolved."""

    signal: AlertSignal
    fired_at: datetime
    resolved_at: datetime | None = None


@dataclass(slots=True)
class RuleSummary:
    rule: str
    fired: int = 0
    resolved: int = 0
    open: int = 0
    firing_s: float = 0.0


@dataclass(slots=True)
class BacktestResult:
    alerts: list[BacktestAlert] = field(default_factory=list)
    rules: dict[str, RuleSummary] = field(default_factory=dict)
    readings: int = 0
    flagged: int = 0
    late: int = 0


def backtest(
    readings: Iterable[Reading],
    ruleset: RuleSet,
    registry: Registry,
    start: datetime,
    end: datetime,
    tick_every: timedelta = timedelta(seconds=60),
    on_event: Callable[[str, AlertSignal], None] | None = None,
) -> BacktestResult:
    """Replay stored readings through a fresh engine; report the alerts that would have fired.

    Parameters
    ----------
    readings
        Readings between ``start`` and ``end`` in time order (``ReadingStore.iter_range``);
        streamed, never held in memory.
    tick_every
        Event time between two engine clock ticks (the consumer ticks every few seconds of
        wall time; a replay ticks on the readings' own time).
    on_event
        Called with ``"firing"`` or ``"resolved"`` and the signal, as the replay goes. Repeated
        firing signals of an alert already open are not events.

    Returns
    -------
    BacktestResult
        Every alert opened (with its resolution time, if any) and a summary per rule.
    """
    engine = Engine(ruleset, registry)
    result = BacktestResult(rules={r.id: RuleSummary(r.id) for r in ruleset.rules})
    open_: dict[str, BacktestAlert] = {}

    def track(signals: list[AlertSignal]) -> None:
        for s in signals:
            summ = result.rules.setdefault(s.rule_id, RuleSummary(s.rule_id))
            if s.status == "firing":
                if s.fingerprint in open_:
                    continue
                a = BacktestAlert(s, s.ts)
                open_[s.fingerprint] = a
                result.alerts.append(a)
                summ.fired += 1
            else:
                closed = open_.pop(s.fingerprint, None)
                if closed is None:
                    continue
                closed.resolved_at = s.ts
                summ.resolved += 1
                summ.firing_s += (s.ts - closed.fired_at).total_seconds()
            if on_event is not None:
                on_event(s.status, s)

    replay = Replay(engine, start, tick_every, track)
    for r in readings:
        replay.push(r)
    replay.advance(end)
    for a in open_.values():
        summ = result.rules[a.signal.rule_id]
        summ.open += 1
        summ.firing_s += max(0.0, (end - a.fired_at).total_seconds())
    result.readings = engine.stats.readings
    result.flagged = engine.stats.flagged
    result.late = engine.stats.late
    return result
