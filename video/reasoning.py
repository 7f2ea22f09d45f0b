"""Cross-analyser reasoning per camera: what the view says decides what the scene findings mean.

Analysers look at one camera independently. When the camera itself is tampered with or its
whole picture changes, the scene analysers see that change too and report it in their own
terms: a defocused lens removes edges (one of the smoke cues), an exposure step or a switch to
infrared changes every pixel of the motion, fire and smoke backgrounds, a covered or turned
camera shows nothing of the scene they learned. A duty officer wants the cause, not its echoes.

:func:`reason` is one pipeline stage between the analysers and the detections (both the file
path and the live runner go through :class:`video.pipeline.CameraPipeline`). It takes a frame's
findings and the *view conditions* the view-watching analysers hold in that frame (tamper:
``camera_covered``, ``camera_defocused``, ``camera_moved``; global change:
``exposure_change``, ``colour_change``, ``infrared_switch``, ``focus_drift``), confirmed or not
yet: a defocus makes smoke long before tamper's 10 s debounce confirms it.

* The view is *unsettled* from the moment a global-change condition holds, or a tamper
  condition has held for ``settle_s``, until ``hold_off_s`` after the last frame in which one
  held: the scene analysers' backgrounds and baselines need that long to re-learn the view.
  Tamper's per-frame checks are whole-frame measures that a flame at night or headlights
  sweep for a frame or two (its own 10 s debounce guards its findings); the global-change
  conditions already need most of the view's tiles to agree, and a defocus ramp makes motion
  within a second.
* While unsettled, :data:`SUPPRESSED` findings (smoke, fire, black smoke, motion, stopped
  vehicle, intrusion) are dropped: each is an alarm an officer would act on, and each rests on a
  background or a reference the change has spoilt. :data:`MARKED` findings (vehicle crossings)
  are kept with ``detail["unreliable"]`` naming the cause: they are counts, and a count missing
  a vehicle is worse than a count flagged as uncertain.
* The tamper finding is what is reported: a global-change finding that starts while a tamper
  condition holds, or within the hold-off after one, is the tamper's echo (covering the lens is
  also an exposure step) and is dropped until it ends.
* When the last condition stops holding after the view was unsettled for ``relearn_min_s``
  or longer, the state's ``relearn`` is set for that frame: the pipeline then resets the
  background-model analysers of :data:`RELEARN` (motion, intrusion, stopped vehicle), so that
  they learn the settled view afresh instead of taking the difference from the view they
  learned during the change (a background learned out of focus) for movement.
* Tamper and global-change findings themselves always pass; so do kinds not listed here (a
  plugin analyser's, ``stream_lost``).

Pure: findings, conditions, time and the previous :class:`ReasoningState` in; findings and
the next state out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, Field

from video.analysers.base import Finding, Resettable, ViewMonitor
from video.analysers.global_change import KINDS as GLOBAL_KINDS
from video.analysers.tamper import COVERED, DEFOCUSED, MOVED

TAMPER_KINDS = frozenset({COVERED, DEFOCUSED, MOVED})
"""View conditions that are tampering: their finding is what is reported."""

GLOBAL_CHANGE_KINDS = frozenset(GLOBAL_KINDS)
"""View conditions that are a global change of the picture."""

SUPPRESSED = frozenset({"smoke", "fire", "black_smoke", "motion", "stopped_vehicle", "intrusion"})
"""Scene findings dropped while the view is unsettled."""

MARKED = frozenset({"vehicle_crossing"})
"""Scene findings kept while the view is unsettled, with ``detail["unreliable"]``."""

RELEARN = frozenset({"motion", "intrusion", "stopped_vehicle"})
"""Analysers (registry names) reset when the view settles after a long change. Not line count:
its background follows in 1.5 s by itself, and a reset loses the crossings in progress (the
simulator's counts fell from 307 to 305 of 319 with it)."""


class ReasoningParams(BaseModel):
    """Cross-analyser reasoning of one camera (``reasoning`` in the camera YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    enabled: bool = Field(
        True,
        title="Enabled",
        description=(
            "Hold back smoke, fire, motion and the other scene findings while a tamper or "
            "global-change condition makes the view unreliable."
        ),
    )
    settle_s: float = Field(
        1.0,
        title="Settle time",
        description="Seconds a tamper condition must hold before the view counts as unsettled.",
        ge=0,
        le=60,
    )
    relearn_min_s: float = Field(
        3.0,
        title="Re-learn after",
        description=(
            "A view unsettled at least this long has spoilt the scene analysers' backgrounds: "
            "they are reset when it settles (a shorter flicker has not)."
        ),
        ge=0,
        le=3600,
    )
    hold_off_s: float = Field(
        5.0,
        title="Hold-off",
        description=(
            "Seconds after the last view condition during which scene findings are still held "
            "back, while the analysers' backgrounds re-learn the view."
        ),
        ge=0,
        le=600,
    )


@dataclass(frozen=True, slots=True)
class ReasoningState:
    """What :func:`reason` remembers between frames.

    ``held_since``: each view condition held now and since when; ``until``: end of the hold-off
    of the view (None: settled) and ``cause`` its latest condition; ``tamper_until``: end of
    the hold-off of the latest tamper condition; ``reported``: global-change kinds passed in the
    last frame; ``absorbed``: global-change kinds dropped as a tamper's echo until they end;
    ``counting_since``: since when conditions have counted without a break (None: none
    counts); ``relearn``: the conditions ended in the last frame after counting
    ``relearn_min_s`` (the scene analysers should forget what they learned).
    """

    held_since: tuple[tuple[str, float], ...] = ()
    until: float | None = None
    cause: str | None = None
    tamper_until: float | None = None
    reported: frozenset[str] = frozenset()
    absorbed: frozenset[str] = frozenset()
    counting_since: float | None = None
    relearn: bool = False

    @property
    def unsettled(self) -> bool:
        """Whether the last frame was in an unsettled view (or its hold-off)."""
        return self.cause is not None


def scene_analysers_to_reset(analysers: Mapping[str, object]) -> list[Resettable]:
    """The analysers (by registry name) to reset when the view settles: those of
    :data:`RELEARN` that can forget their short-term state."""
    return [a for n, a in analysers.items() if n in RELEARN and isinstance(a, Resettable)]


def view_conditions(analysers: Iterable[object]) -> frozenset[str]:
    """The union of the view conditions of the analysers that watch the view."""
    out: frozenset[str] = frozenset()
    for a in analysers:
        if isinstance(a, ViewMonitor):
            out |= a.view_conditions()
    return out


def _settled_conditions(
    conditions: frozenset[str], ts: float, state: ReasoningState, settle_s: float
) -> tuple[tuple[tuple[str, float], ...], list[str]]:
    since = dict(state.held_since)
    held = tuple(sorted((c, since.get(c, ts)) for c in conditions))
    # The 1 us slack keeps float timestamps (i / fps) from missing the edge by an ulp.
    counting = [c for c, t0 in held if c not in TAMPER_KINDS or ts - t0 + 1e-6 >= settle_s]
    return held, counting


def _cause(counting: list[str]) -> str:
    tamper = [c for c in counting if c in TAMPER_KINDS]
    return (tamper or counting)[0]


def reason(
    findings: Sequence[Finding],
    conditions: frozenset[str],
    ts: float,
    state: ReasoningState,
    params: ReasoningParams,
) -> tuple[list[Finding], ReasoningState]:
    """Apply the cross-analyser rules of the module docstring to one frame.

    Parameters
    ----------
    findings : sequence of Finding
        Every analyser's findings for the frame.
    conditions : frozenset of str
        View conditions held in this frame (:func:`view_conditions`).
    ts : float
        The frame's time in seconds (the analysers' clock).
    state : ReasoningState
        The state returned for the previous frame (``ReasoningState()`` at the start).
    params : ReasoningParams

    Returns
    -------
    list of Finding
        The findings to report, in their order; marked ones are copies with
        ``detail["unreliable"]``.
    ReasoningState
        The state for the next frame.
    """
    if not params.enabled:
        return list(findings), state
    held, counting = _settled_conditions(conditions, ts, state, params.settle_s)
    until, cause, tamper_until = state.until, state.cause, state.tamper_until
    if counting:
        until, cause = ts + params.hold_off_s, _cause(counting)
        if any(c in TAMPER_KINDS for c in counting):
            tamper_until = ts + params.hold_off_s
    elif until is not None and ts > until + 1e-6:
        until, cause = None, None
    # Counting stays unbroken across frames where a condition still holds but has not settled.
    since: float | None = state.counting_since if conditions else None
    if counting and since is None:
        since = ts
    relearn = (
        state.counting_since is not None
        and not conditions
        and ts - state.counting_since + 1e-6 >= params.relearn_min_s
    )
    # Held, settled or not: the echo can be confirmed before its cause has settled.
    tamper_context = bool(conditions & TAMPER_KINDS) or (
        tamper_until is not None and ts <= tamper_until + 1e-6
    )
    present = {f.kind for f in findings}
    absorbed = {k for k in state.absorbed if k in present or k in conditions}
    out: list[Finding] = []
    reported: set[str] = set()
    for f in findings:
        if f.kind in GLOBAL_CHANGE_KINDS:
            if f.kind not in state.reported and tamper_context:
                absorbed.add(f.kind)
            if f.kind in absorbed:
                continue
            reported.add(f.kind)
        elif cause is not None and f.kind in SUPPRESSED:
            continue
        elif cause is not None and f.kind in MARKED:
            f = replace(f, detail={**f.detail, "unreliable": cause})
        out.append(f)
    return out, ReasoningState(
        held,
        until,
        cause,
        tamper_until,
        frozenset(reported),
        frozenset(absorbed),
        counting_since=since,
        relearn=relearn,
    )
