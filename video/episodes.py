"""From per-frame findings to the messages a camera publishes: start, keep-alive and cleared.

Analysers report in two styles. Most (motion, smoke, fire, black smoke, stopped vehicle) report a
finding in every frame where the condition holds; camera tampering reports once when a condition
is confirmed (``detail.state == "active"``) and once when it ends (``"cleared"``). The rule engine
needs neither style as such: a rule such as "covered for 2 minutes" needs the condition re-stated
every few seconds while it lasts, and a clear end so that it resolves.

:class:`EpisodeTracker` turns both styles into one protocol per ``(kind, zone)`` episode:

- the first finding publishes at once (``state: active``);
- while the episode lasts, the latest finding is published again every ``resend_s``;
- a per-frame episode not seen for ``clear_after_s`` is published as ``state: cleared``
  (confidence 0); a latched one (tamper) only when its analyser says ``cleared``;
- a stream loss ends every episode (nothing is known about a camera that sends no frames);
- point findings (:data:`POINT_KINDS`, a vehicle crossing a line) are published one by one.

Pure: it takes observations and a clock value and returns messages; the runner publishes them.

:func:`episodes_of` applies the same rules to a whole analysed file: one record per episode
(start, end, peak) instead of one line per frame, for ``farsight video analyze``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

EpisodeKey = tuple[str, str | None]  # (kind, zone)

POINT_KINDS = frozenset({"vehicle_crossing"})
"""Findings that are events, not conditions (a vehicle crossing a counting line): each one is
published as it comes, never kept alive nor cleared."""


@dataclass(slots=True)
class _Episode:
    payload: dict[str, Any]
    latched: bool
    last_seen: float
    last_sent: float


@dataclass(slots=True)
class EpisodeTracker:
    """Per-camera episode state.

    Parameters
    ----------
    resend_s : float
        Interval of keep-alive messages while an episode lasts.
    clear_after_s : float
        A per-frame episode absent this long is cleared.
    """

    resend_s: float = 5.0
    clear_after_s: float = 3.0
    _episodes: dict[EpisodeKey, _Episode] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.resend_s > 0 or not self.clear_after_s > 0:
            raise ValueError(
                f"resend_s and clear_after_s must be > 0, got {self.resend_s}, {self.clear_after_s}"
            )

    @property
    def active(self) -> frozenset[EpisodeKey]:
        """Episodes currently open."""
        return frozenset(self._episodes)

    def update(
        self,
        now: float,
        ts: str,
        observations: list[dict[str, Any]],
        cleared: tuple[EpisodeKey, ...] | list[EpisodeKey] = (),
    ) -> list[dict[str, Any]]:
        """Feed one analysed frame; return the messages to publish now.

        Parameters
        ----------
        now : float
            Monotonic seconds (the frame's source offset or a wall clock; one camera, one clock).
        ts : str
            The frame's time, ISO 8601: clears and latched keep-alives carry it, so that each
            message is a new reading (ingest drops a repeat of device, metric and time).
        observations : list of dict
            The frame's detections as JSON-ready dicts (``Observation.as_dict()``): at least
            ``kind``, ``zone``, ``confidence``, ``ts``; ``detail.state == "active"`` marks a
            latched finding.
        cleared : list of (kind, zone)
            Episodes the analysers ended explicitly in this frame.
        """
        out: list[dict[str, Any]] = []
        for key in cleared:
            ep = self._episodes.pop(key, None)
            if ep is not None:
                out.append(_cleared(ep.payload, ts))
        seen: set[EpisodeKey] = set()
        for obs in observations:
            if obs["kind"] in POINT_KINDS:
                out.append({**obs, "state": "active"})
                continue
            key = (obs["kind"], obs.get("zone"))
            if (
                key in seen
            ):  # several boxes of one kind and zone in a frame: the first stands for them
                continue
            seen.add(key)
            payload = {**obs, "state": "active"}
            latched = (obs.get("detail") or {}).get("state") == "active"
            ep = self._episodes.get(key)
            if ep is None:
                self._episodes[key] = _Episode(payload, latched, now, now)
                out.append(payload)
                continue
            ep.payload, ep.last_seen = payload, now
            ep.latched = ep.latched or latched
            if now - ep.last_sent >= self.resend_s:
                ep.last_sent = now
                out.append(payload)
        out += self.tick(now, ts, exclude=seen)
        return out

    def tick(
        self, now: float, ts: str, exclude: set[EpisodeKey] | frozenset[EpisodeKey] = frozenset()
    ) -> list[dict[str, Any]]:
        """Keep-alives and clears due at ``now`` (time ``ts``) for episodes not updated in this
        frame."""
        out: list[dict[str, Any]] = []
        for key, ep in list(self._episodes.items()):
            if key in exclude:
                continue
            if not ep.latched and now - ep.last_seen >= self.clear_after_s:
                del self._episodes[key]
                out.append(_cleared(ep.payload, ts))
            elif ep.latched and now - ep.last_sent >= self.resend_s:
                ep.last_sent = now
                ep.payload = {**ep.payload, "ts": ts}
                out.append(ep.payload)
        return out

    def add_evidence(self, kind: str, sha: str) -> None:
        """Attach a finished clip to the open episodes of ``kind`` (sent with their next
        message)."""
        for (k, _), ep in self._episodes.items():
            if k == kind and sha not in ep.payload.get("evidence", ()):
                ep.payload = {**ep.payload, "evidence": [*ep.payload.get("evidence", ()), sha]}

    def end_all(self, ts: str) -> list[dict[str, Any]]:
        """Clear every open episode (the stream was lost or the camera removed)."""
        out = [_cleared(ep.payload, ts) for ep in self._episodes.values()]
        self._episodes.clear()
        return out


def _cleared(payload: dict[str, Any], ts: str) -> dict[str, Any]:
    # The detail goes: a Ringelmann grade or a latched "active" left in it would say the
    # condition still holds.
    return {
        **payload,
        "state": "cleared",
        "confidence": 0.0,
        "ts": ts,
        "detail": {"state": "cleared"},
    }


# ---------------------------------------------------------------------------------------------
# Episodes of a whole file


@dataclass(frozen=True, slots=True)
class FrameFindings:
    """One analysed frame: its source offset and time, its detections as JSON-ready dicts
    (``Observation.as_dict()``) and the ``(kind, zone)`` episodes its analysers ended (tamper
    cleared). Every analysed frame counts, with or without detections: the gap that closes an
    episode is measured in analysed frames."""

    offset_s: float
    ts: str
    rows: tuple[dict[str, Any], ...] = ()
    cleared: tuple[EpisodeKey, ...] = ()


@dataclass(slots=True)
class _Run:
    start: dict[str, Any]
    latched: bool
    peak: dict[str, Any]
    last_seen: float
    frames: int = 0
    evidence: list[str] = field(default_factory=list)

    def add(self, row: dict[str, Any], offset_s: float, new_frame: bool) -> None:
        self.last_seen = offset_s
        self.frames += new_frame
        if row["confidence"] > self.peak["confidence"]:
            self.peak = row
        self.evidence += [sha for sha in row.get("evidence", ()) if sha not in self.evidence]

    def record(self, end_s: float, ongoing: bool) -> dict[str, Any]:
        s, p = self.start, self.peak
        return {
            "kind": s["kind"],
            "offset_s": s["offset_s"],
            "end_s": round(end_s, 6),
            "site": s.get("site"),
            "camera": s.get("camera"),
            "ts": s["ts"],
            "confidence": p["confidence"],
            "peak_offset_s": p["offset_s"],
            "bbox": p.get("bbox"),
            "zone": s.get("zone"),
            "frames": self.frames,
            "ongoing": ongoing,
            "evidence": list(self.evidence),
            "peak_evidence": list(p.get("evidence", ())),
            "detail": p.get("detail", {}),
        }


def episodes_of(
    frames: Iterable[FrameFindings], clear_after_s: float = 3.0
) -> Iterator[dict[str, Any]]:
    """Group per-frame detections into episodes with the live runner's rules.

    An :class:`EpisodeTracker` (no keep-alives) decides when an episode starts and ends, so a
    file and a live camera agree: a per-frame kind ends once absent ``clear_after_s``, a latched
    one (tamper) when its analyser clears it, a point kind (vehicle crossing) is an episode of
    its own.

    Parameters
    ----------
    frames : iterable of FrameFindings
        Every analysed frame of the file, in order.
    clear_after_s : float
        Absence that ends a per-frame episode (the tracker's default, 3 s).

    Yields
    ------
    dict
        One record per episode, when it ends (so in order of their ends): ``kind``,
        ``offset_s`` (first frame), ``end_s`` (last frame seen; for a latched kind, the frame
        that cleared it), ``site``, ``camera``, ``ts`` (of the start), ``confidence`` (the
        peak), ``peak_offset_s``, ``bbox`` and ``detail`` of the peak frame, ``zone``,
        ``frames`` (analysed frames with the finding), ``ongoing`` (still open when the file
        ended; ``end_s`` is then the last analysed frame for a latched kind), ``evidence``
        (every evidence sha256 of the episode, in order) and ``peak_evidence`` (the peak row's).
    """
    tracker = EpisodeTracker(resend_s=math.inf, clear_after_s=clear_after_s)
    runs: dict[EpisodeKey, _Run] = {}
    last_offset: float | None = None
    for frame in frames:
        t = frame.offset_s
        for msg in tracker.update(t, frame.ts, list(frame.rows), frame.cleared):
            key = (msg["kind"], msg.get("zone"))
            if msg["state"] == "cleared":
                run = runs.pop(key, None)
                if run is not None:
                    yield run.record(t if run.latched else run.last_seen, ongoing=False)
            elif msg["kind"] in POINT_KINDS:
                yield _Run(msg, False, msg, t, 1, list(msg.get("evidence", ()))).record(t, False)
            elif key not in runs:
                latched = (msg.get("detail") or {}).get("state") == "active"
                runs[key] = _Run(msg, latched, msg, t)
        seen: set[EpisodeKey] = set()
        for row in frame.rows:
            key = (row["kind"], row.get("zone"))
            run = runs.get(key)
            if run is not None and row["kind"] not in POINT_KINDS:
                run.add(row, t, key not in seen)
                seen.add(key)
        last_offset = t
    for run in runs.values():
        end = last_offset if run.latched and last_offset is not None else run.last_seen
        yield run.record(end, ongoing=True)
