"""What rule kinds implement, and the alert lifecycle they share.

A rule kind is a :class:`Condition`: per bound scope (one series, one device or one site) it
turns what it observes into :class:`Verdict` s, "the condition holds (or not) at time t". The
:class:`Lifecycle` turns a stream of verdicts into firing and resolved transitions with ``for``
and ``keep_firing_for``, identically for every kind, on event time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, overload

from farsight.clock import from_epoch_ms, to_epoch_ms
from farsight.errors import RuleError
from farsight.types import Reading, Site
from rules.model import Rule


class Sample:
    """The readings one device reported for one timestamp (usually one message)."""

    __slots__ = ("device", "readings", "site", "ts")

    def __init__(self, site: str, device: str, ts: datetime, readings: dict[str, Reading]) -> None:
        self.site = site
        self.device = device
        self.ts = ts
        self.readings = readings

    def value(self, metric: str) -> float | None:
        r = self.readings.get(metric)
        return None if r is None else r.value


@dataclass(slots=True)
class Verdict:
    """Whether a rule's condition holds at ``ts``, with the values that decided it.

    ``key`` separates the alert series one bound condition can raise (e.g. one per silent
    device of a site); ``device`` and ``metric`` name what the alert is about.
    """

    ts: datetime
    active: bool
    value: float | None = None
    threshold: float | None = None
    device: str = ""
    metric: str = ""
    key: str = ""
    unit: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Binding:
    """A rule bound to one scope at one site, with its credit-grade adjustment applied."""

    rule: Rule
    site: Site
    device: str | None
    metric: str | None
    limit_factor: float
    for_: timedelta
    severity: str

    @classmethod
    def make(cls, rule: Rule, site: Site, device: str | None, metric: str | None) -> Binding:
        adj = rule.adjustment(site)
        return cls(
            rule=rule,
            site=site,
            device=device,
            metric=metric,
            limit_factor=adj.limit_factor if adj else 1.0,
            for_=rule.for_ * (adj.for_factor if adj else 1.0),
            severity=(adj.severity if adj and adj.severity else rule.severity),
        )

    @property
    def series_metric(self) -> str:
        """The metric of a single-metric rule: the bound one, else the rule's ``select.metric``
        (the kind's model requires one)."""
        metric = self.metric or self.rule.select.metric
        if not metric:
            raise RuleError(f"rule {self.rule.id!r} ({self.rule.kind}) has no select.metric")
        return metric

    def site_limit(self, metric: str) -> float | None:
        limit = self.site.limit(metric)
        return None if limit is None else limit * self.limit_factor


class Condition:
    """Base of every rule kind's per-scope state. Subclasses override what they need.

    ``observe`` gets samples in event-time order (the engine puts late arrivals in order within
    the rule's allowed lateness); ``tick`` gets the engine's clock, for conditions that must
    notice what does not arrive. Both return ``None``, one verdict or a list of verdicts.
    """

    accepts_flagged = False
    """True for kinds that judge flagged data themselves (a plant reporting itself stopped)."""

    devices: frozenset[str] | None = None
    """Devices whose samples concern this condition; None: all of the scope. A sample of another
    device never reaches it, nor moves its event-time order (a camera's detections, stamped to
    the millisecond, must not make the site's sensor readings look late)."""

    __slots__ = ("b",)

    def __init__(self, binding: Binding) -> None:
        self.b = binding

    def observe(self, sample: Sample) -> Verdict | list[Verdict] | None:
        return None

    def tick(self, now: datetime) -> Verdict | list[Verdict] | None:
        return None

    def state(self) -> dict[str, Any]:
        """JSON-ready state, so pending windows survive a restart."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state`."""


RESEND_EVERY = timedelta(minutes=10)
"""A firing series repeats its signal this often (event time) so the alert's last-seen moves."""


class Lifecycle:
    """inactive -> pending (``for``) -> firing -> (``keep_firing_for``) -> inactive."""

    __slots__ = ("last_sent", "last_true", "notified", "since", "state")

    def __init__(self) -> None:
        self.state = "inactive"
        self.since: datetime | None = None
        self.last_true: datetime | None = None
        self.last_sent: datetime | None = None
        self.notified = False

    def step(self, v: Verdict, for_: timedelta, keep_firing_for: timedelta) -> str | None:
        """Advance on one verdict; return ``"firing"``, ``"resolved"``, ``"refresh"`` or None."""
        if v.active:
            self.last_true = v.ts
            if self.state == "inactive":
                self.state, self.since = "pending", v.ts
            # Each is set with its state (pending: since, firing: last_sent); the checks narrow.
            since, last_sent = self.since, self.last_sent
            if self.state == "pending" and since is not None and v.ts - since >= for_:
                self.state, self.last_sent = "firing", v.ts
                return "firing"
            if (
                self.state == "firing"
                and last_sent is not None
                and v.ts - last_sent >= RESEND_EVERY
            ):
                self.last_sent = v.ts
                return "refresh"
            return None
        if self.state == "pending":
            self.state, self.since = "inactive", None
            return None
        if self.state == "firing":
            if (
                keep_firing_for
                and self.last_true is not None
                and v.ts - self.last_true < keep_firing_for
            ):
                return None
            self.state, self.since = "inactive", None
            return "resolved"
        return None

    def to_state(self) -> dict[str, Any]:
        def ms(t: datetime | None) -> int | None:
            return None if t is None else to_epoch_ms(t)

        return {
            "s": self.state,
            "since": ms(self.since),
            "true": ms(self.last_true),
            "sent": ms(self.last_sent),
            "n": self.notified,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Lifecycle:
        def dt(v: int | None) -> datetime | None:
            return None if v is None else from_epoch_ms(v)

        lc = cls()
        lc.state, lc.since, lc.last_true, lc.last_sent, lc.notified = (
            d["s"],
            dt(d["since"]),
            dt(d["true"]),
            dt(d["sent"]),
            d["n"],
        )
        return lc


def as_list(out: Verdict | list[Verdict] | None) -> Iterable[Verdict]:
    if out is None:
        return ()
    if isinstance(out, Verdict):
        return (out,)
    return out


@overload
def ts_ms(t: datetime) -> int: ...
@overload
def ts_ms(t: None) -> None: ...
def ts_ms(t: datetime | None) -> int | None:
    """Epoch milliseconds of ``t`` (None stays None): the engine's state is kept in integers."""
    return None if t is None else to_epoch_ms(t)


@overload
def ms_ts(v: int) -> datetime: ...
@overload
def ms_ts(v: None) -> None: ...
def ms_ts(v: int | None) -> datetime | None:
    """The UTC time of epoch milliseconds ``v`` (None stays None)."""
    return None if v is None else from_epoch_ms(v)
