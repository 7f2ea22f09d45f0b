"""Data quality of the monitoring devices: completeness, validity, timeliness and the effective
data transmission rate, per device and site, per hour and day. Pure: counts in, figures out.

The definitions regulators use (HJ 75-2017, and the Ministry's pollution-source monitoring
centre's assessment of automatic monitoring data):

completeness (数据传输率)
    values received over values expected by the registered cadence (``Device.cadence_s``): a
    device reporting ``m`` metrics every ``c`` seconds owes ``m * 3600 / c`` values an hour.
validity (数据有效率)
    valid values over values received. A value is valid when its HJ 212 data flag says so
    (:func:`counts_as_valid`: flag ``N``; maintenance, calibration, fault, stopped and the other
    flags are not).
effective data transmission rate (有效数据传输率)
    "the product of the data transmission rate and the data validity rate" (数据传输有效率定义为
    数据传输率和数据有效率的乘积: Ministry of Environmental Protection, pollution-source
    monitoring centre, 污染源自动监控数据传输有效率考核要求, https://fr.slideserve.com/kaemon/envsc
    and https://www.renrendoc.com/p-62656122.html), so valid values over values expected; DOMAIN.md
    says the same ("valid values received over values expected by the registered cadence").
hourly and daily validity (HJ 75-2017)
    an hourly value of a metric needs at least 45 valid minutes, a daily value at least 20 valid
    hourly values. A value of a device whose cadence is not a minute stands for one cadence of
    time: 45 valid minutes are ``45 * 60 / c`` valid values in the hour.
timeliness
    receive time minus measure time of each reading (seconds; ``readings.received`` is when ingest
    received the reading's message, :attr:`ingest.message.Message.received`, not when it was
    stored), as mean, maximum and the count later than a bound.

declared stoppages (停运)
    the periods an operator declared a site or device stopped (the registry's ``stoppages``)
    are left out: nothing is owed then, and what arrived then is not counted (the store leaves
    it out, :func:`declared_stops`). Data flagged F (stopped) outside a declared stoppage is
    owed and received as any other, and not valid.

Values are counted per metric stream (device, metric) and per cadence slot: a device that sends
faster than its cadence is not more than complete (received is capped at expected per hour), and
metrics the registry does not list for a device are not counted (the registry says what is owed).
Hours are UTC hours, which are the local hours of every zone a whole number of hours from UTC
(Beijing time among them); days are local days of ``tz``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from farsight.clock import BEIJING, from_epoch_ms, to_epoch_ms
from farsight.registry import Registry
from farsight.types import Site
from farsight.validity import is_valid

Interval = Literal["hour", "day"]

HOUR_MS = 3_600_000
VALID_MINUTES_PER_HOUR = 45
"""HJ 75-2017: an hourly value needs at least 45 valid minutes."""
VALID_HOURS_PER_DAY = 20
"""HJ 75-2017: a daily value needs at least 20 valid hourly values."""

EVENT_DEVICE_KINDS = ("wim", "camera", "gateway", "gps")
"""Device kinds without a cadence to owe: weigh stations report per truck, cameras send
detections, gateways status, GPS trackers sleep when parked."""


def counts_as_valid(flag: str) -> bool:
    """Whether a value with this HJ 212-2017 data flag counts as valid (``N`` only): the one
    reading of the flags, :func:`farsight.validity.is_valid`, which the rule engine uses too."""
    return is_valid(flag)


Window = tuple[int, int]
"""A period ``[start, end)`` in epoch ms."""


def merge_windows(windows: Iterable[Window]) -> tuple[Window, ...]:
    """Sorted, with overlapping and touching windows joined."""
    out: list[list[int]] = []
    for a, b in sorted(windows):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def overlap_ms(windows: Sequence[Window], start: int, end: int) -> int:
    """Milliseconds of ``[start, end)`` inside ``windows`` (merged, as :func:`merge_windows`)."""
    return sum(max(0, min(b, end) - max(a, start)) for a, b in windows if a < end and b > start)


def in_windows(t: int, windows: Sequence[Window]) -> bool:
    """Whether epoch ms ``t`` falls in one of ``windows`` (merged)."""
    i = bisect_right(windows, (t, math.inf)) - 1
    return i >= 0 and windows[i][0] <= t < windows[i][1]


def stopped_windows(site: Site, device: str) -> tuple[Window, ...]:
    """The declared stoppages of ``site`` that cover ``device``, as merged windows."""
    return merge_windows(
        (to_epoch_ms(st.start), to_epoch_ms(st.end)) for st in site.stoppages if st.covers(device)
    )


@dataclass(frozen=True, slots=True)
class Stream:
    """One metric a registered device owes at its cadence, outside its declared stoppages."""

    site: str
    device: str
    metric: str
    cadence_s: float
    stopped: tuple[Window, ...] = ()
    """Declared stoppages of the device (merged windows, epoch ms): nothing owed then."""

    def __post_init__(self) -> None:
        if not self.cadence_s > 0:
            raise ValueError(f"{self.site}/{self.device}: cadence_s must be positive")

    def owed(self, seconds: float) -> int:
        """Values owed over ``seconds`` (whole cadences)."""
        return math.floor(seconds / self.cadence_s + 1e-9) if seconds > 0 else 0


@dataclass(frozen=True, slots=True)
class Cell:
    """Readings of one stream in one hour with one flag, as the store counts them.

    ``hour`` is the hour's start (epoch ms, UTC); latencies in ms (receive minus measure time).
    """

    site: str
    device: str
    metric: str
    hour: int
    flag: str
    count: int
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    late: int = 0


@dataclass(frozen=True, slots=True)
class Figures:
    """Quality of one device (or of a site, ``device == ""``) over one period.

    ``hourly_values``: (metric, hour) pairs owed; ``hourly_valid``: those with 45 valid minutes.
    ``daily_values`` and ``daily_valid``: the same for (metric, day) pairs with 20 valid hours
    (``interval == "day"`` only; zero for hours).
    """

    site: str
    device: str
    start: datetime
    end: datetime
    expected: int
    received: int
    valid: int
    hourly_values: int
    hourly_valid: int
    daily_values: int = 0
    daily_valid: int = 0
    latency_mean_s: float | None = None
    latency_max_s: float | None = None
    late: int = 0

    @property
    def completeness(self) -> float | None:
        """Received over expected (数据传输率); ``None`` when nothing was owed."""
        return self.received / self.expected if self.expected else None

    @property
    def validity(self) -> float | None:
        """Valid over received (数据有效率); ``None`` when nothing arrived."""
        return self.valid / self.received if self.received else None

    @property
    def effective_rate(self) -> float | None:
        """Valid over expected (有效数据传输率): completeness times validity."""
        return self.valid / self.expected if self.expected else None


@dataclass(slots=True)
class _Acc:
    """Running sums of one (site, device, period)."""

    expected: int = 0
    received: int = 0
    valid: int = 0
    hourly_values: int = 0
    hourly_valid: int = 0
    daily_values: int = 0
    daily_valid: int = 0
    arrived: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float | None = None
    late: int = 0

    def add(self, other: _Acc) -> None:
        self.expected += other.expected
        self.received += other.received
        self.valid += other.valid
        self.hourly_values += other.hourly_values
        self.hourly_valid += other.hourly_valid
        self.daily_values += other.daily_values
        self.daily_valid += other.daily_valid
        self.arrived += other.arrived
        self.latency_sum_ms += other.latency_sum_ms
        if other.latency_max_ms is not None:
            self.latency_max_ms = max(
                self.latency_max_ms or other.latency_max_ms, other.latency_max_ms
            )
        self.late += other.late


def streams_of(
    sites: Iterable[Site], ignore_kinds: Sequence[str] = EVENT_DEVICE_KINDS
) -> list[Stream]:
    """The streams the registry says ``sites`` owe: each metric of each device with a cadence.

    Devices of ``ignore_kinds`` and devices that list no metrics owe nothing (nothing says what).
    """
    return [
        Stream(s.id, d.id, m, d.cadence_s, stopped_windows(s, d.id))
        for s in sites
        for d in s.devices
        if d.kind not in ignore_kinds
        for m in d.metrics
    ]


def registry_streams(
    registry: Registry, department: str | None = None, site: str | None = None
) -> list[Stream]:
    """:func:`streams_of` the registry's sites, of one department or one site."""
    sites = registry.for_department(department)
    return streams_of(s for s in sites if site is None or s.id == site)


def declared_stops(streams: Iterable[Stream]) -> list[tuple[str, str, int, int]]:
    """(site, device, start ms, end ms) of every declared stoppage of the streams' devices:
    what ``QualityStore.cells(exclude=...)`` leaves out, so that what arrived while a device
    owed nothing is not counted either."""
    out: dict[tuple[str, str], tuple[Window, ...]] = {}
    for s in streams:
        if s.stopped:
            out[(s.site, s.device)] = s.stopped
    return [(site, dev, a, b) for (site, dev), ws in sorted(out.items()) for a, b in ws]


def period_start(ts: datetime, interval: Interval, tz: tzinfo = BEIJING) -> datetime:
    """The start of the hour or local day holding ``ts`` (UTC)."""
    if interval == "hour":
        ms = to_epoch_ms(ts)
        return from_epoch_ms(ms - ms % HOUR_MS)
    local = ts.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def periods(
    start: datetime, end: datetime, interval: Interval, tz: tzinfo = BEIJING
) -> list[tuple[datetime, datetime]]:
    """Whole periods from the one holding ``start`` to the last one ending at or before ``end``."""
    out: list[tuple[datetime, datetime]] = []
    t = period_start(start, interval, tz)
    while True:
        if interval == "hour":
            nxt = t + timedelta(hours=1)
        else:
            # Local midnight to local midnight (a day is 24 h in zones without daylight saving).
            nxt = period_start(t.astimezone(tz) + timedelta(hours=36), "day", tz)
        if nxt > end:
            return out
        out.append((t, nxt))
        t = nxt


def compute(
    cells: Iterable[Cell],
    streams: Sequence[Stream],
    start: datetime,
    end: datetime,
    interval: Interval,
    *,
    tz: tzinfo = BEIJING,
    is_valid: Callable[[str], bool] = counts_as_valid,
    since: dict[tuple[str, str], datetime] | None = None,
) -> list[Figures]:
    """Quality figures per device and per site for each whole period in ``[start, end)``.

    Parameters
    ----------
    cells
        Counts of readings per stream, hour and flag (:class:`Cell`), e.g. from
        ``ingest.quality_store.QualityStore.cells`` (with ``exclude=declared_stops(streams)``,
        so readings of declared stoppages are not counted); cells of streams not in
        ``streams`` and of hours outside the periods are ignored.
    streams
        What is owed (:func:`streams_of`).
    start, end
        Timezone-aware; the periods are the whole hours or local days between them.
    interval
        ``"hour"`` or ``"day"``.
    tz
        Zone whose midnight starts a day (Beijing time by default, as HJ 212 stations keep).
    is_valid
        Whether a flag counts as valid (default :func:`counts_as_valid`).
    since
        Per (site, device), when it began to owe data (a device registered mid-period): hours
        before are not owed. Default: owed throughout.

    Returns
    -------
    list of Figures
        Ordered by site, device (the site's own figure, device ``""``, first) and period start.
        Memory: one small record per stream and hour.
    """
    if interval not in ("hour", "day"):
        raise ValueError(f"interval must be hour or day, not {interval!r}")
    spans = periods(start, end, interval, tz)
    if not spans:
        return []
    first, last = to_epoch_ms(spans[0][0]), to_epoch_ms(spans[-1][1])
    by_stream = {(s.site, s.device, s.metric): s for s in streams}
    # (site, device, metric, hour) -> [received, valid, arrived, latency sum, latency max, late]
    hours: dict[tuple[str, str, str, int], list[float]] = defaultdict(
        lambda: [0, 0, 0, 0.0, -math.inf, 0]
    )
    for c in cells:
        if (c.site, c.device, c.metric) not in by_stream or not first <= c.hour < last:
            continue
        h = hours[(c.site, c.device, c.metric, c.hour)]
        h[0] += c.count
        if is_valid(c.flag):
            h[1] += c.count
        h[2] += c.count
        h[3] += c.latency_sum_ms
        h[4] = max(h[4], c.latency_max_ms)
        h[5] += c.late
    starts = [to_epoch_ms(a) for a, _ in spans]
    acc: dict[tuple[str, str, int], _Acc] = defaultdict(_Acc)
    for stream in streams:
        owed_from = (
            to_epoch_ms(since[(stream.site, stream.device)])
            if since
            and (
                stream.site,
                stream.device,
            )
            in since
            else first
        )
        for (a, b), p in zip(spans, starts, strict=True):
            a_ms, b_ms = to_epoch_ms(a), to_epoch_ms(b)
            cell = acc[(stream.site, stream.device, p)]
            valid_hours = 0
            owed_hours = 0
            for hour in range(a_ms, b_ms, HOUR_MS):
                owed_start = max(hour, owed_from)
                free_ms = hour + HOUR_MS - owed_start
                if stream.stopped and free_ms > 0:
                    free_ms -= overlap_ms(stream.stopped, owed_start, hour + HOUR_MS)
                owed = stream.owed(free_ms / 1000)
                if hour + HOUR_MS <= owed_from or owed == 0:
                    continue
                got = hours.get((stream.site, stream.device, stream.metric, hour))
                received = min(int(got[0]), owed) if got else 0
                valid = min(int(got[1]), received) if got else 0
                cell.expected += owed
                cell.received += received
                cell.valid += valid
                cell.hourly_values += 1
                owed_hours += 1
                if valid * stream.cadence_s >= VALID_MINUTES_PER_HOUR * 60 - 1e-6:
                    cell.hourly_valid += 1
                    valid_hours += 1
                if got:
                    cell.arrived += int(got[2])
                    cell.latency_sum_ms += got[3]
                    if got[2]:
                        cell.latency_max_ms = max(cell.latency_max_ms or got[4], got[4])
                    cell.late += int(got[5])
            if interval == "day" and owed_hours:
                cell.daily_values += 1
                if valid_hours >= VALID_HOURS_PER_DAY:
                    cell.daily_valid += 1
    site_acc: dict[tuple[str, int], _Acc] = defaultdict(_Acc)
    for (site, _device, p), sums in acc.items():
        site_acc[(site, p)].add(sums)
    bounds = {p: span for p, span in zip(starts, spans, strict=True)}
    out = [_figures(site, "", bounds[p], sums) for (site, p), sums in site_acc.items()]
    out += [_figures(site, device, bounds[p], sums) for (site, device, p), sums in acc.items()]
    out.sort(key=lambda f: (f.site, f.device, f.start))
    return out


def _figures(site: str, device: str, span: tuple[datetime, datetime], a: _Acc) -> Figures:
    return Figures(
        site=site,
        device=device,
        start=span[0],
        end=span[1],
        expected=a.expected,
        received=a.received,
        valid=a.valid,
        hourly_values=a.hourly_values,
        hourly_valid=a.hourly_valid,
        daily_values=a.daily_values,
        daily_valid=a.daily_valid,
        latency_mean_s=round(a.latency_sum_ms / a.arrived / 1000, 3) if a.arrived else None,
        latency_max_s=round(a.latency_max_ms / 1000, 3) if a.latency_max_ms is not None else None,
        late=a.late,
    )


def total(figures: Iterable[Figures]) -> Figures | None:
    """One figure over several periods of one key (a month of days); ``None`` for none.

    Latency mean is weighted by the periods' received values.
    """
    items = list(figures)
    if not items:
        return None
    received = sum(f.received for f in items)
    weighted = [(f.latency_mean_s, f.received) for f in items if f.latency_mean_s is not None]
    weight = sum(w for _, w in weighted)
    maxes = [f.latency_max_s for f in items if f.latency_max_s is not None]
    return Figures(
        site=items[0].site,
        device=items[0].device,
        start=min(f.start for f in items),
        end=max(f.end for f in items),
        expected=sum(f.expected for f in items),
        received=received,
        valid=sum(f.valid for f in items),
        hourly_values=sum(f.hourly_values for f in items),
        hourly_valid=sum(f.hourly_valid for f in items),
        daily_values=sum(f.daily_values for f in items),
        daily_valid=sum(f.daily_valid for f in items),
        latency_mean_s=round(sum(m * w for m, w in weighted) / weight, 3) if weight else None,
        latency_max_s=max(maxes) if maxes else None,
        late=sum(f.late for f in items),
    )


def figures_dict(f: Figures) -> dict[str, object]:
    """A figure as JSON-ready data (API, report); rates as fractions rounded to 4 places."""

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {
        "site": f.site,
        "device": f.device,
        "start": f.start.isoformat(),
        "end": f.end.isoformat(),
        "expected": f.expected,
        "received": f.received,
        "valid": f.valid,
        "completeness": r(f.completeness),
        "validity": r(f.validity),
        "effective_rate": r(f.effective_rate),
        "hourly_values": f.hourly_values,
        "hourly_valid": f.hourly_valid,
        "daily_values": f.daily_values,
        "daily_valid": f.daily_valid,
        "latency_mean_s": f.latency_mean_s,
        "latency_max_s": f.latency_max_s,
        "late": f.late,
    }
