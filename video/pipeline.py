"""Per-camera pipeline: frames in, analysers run, :class:`~farsight.types.Detection` values out.

:class:`CameraPipeline` builds the camera's enabled analysers (from the registry in
:mod:`video.camera_config`) on the first frame, when the frame size is known, feeds them every
frame with the frame's source offset as their clock, and turns each :class:`Finding` into a
:class:`Detection` stamped with the frame's UTC time. Snapshots are stored only when a kind
starts (absent in the previous frame) or, while it persists, at most once per
``evidence.snapshot_interval_s`` per kind, which bounds disk use on a busy scene. Every
detection of a kind carries the latest snapshot pair of its episode, and the episode's clip
(``evidence.clip_pre_s``/``clip_post_s``, :mod:`video.clips`) once it is written.

Between the analysers and the detections, the cross-analyser reasoning stage
(:mod:`video.reasoning`, ``config.reasoning``) holds back scene findings while a tamper or
global-change condition makes the view unreliable.

Tamper ``cleared`` findings end an episode: they are not detections (nothing is there any more);
they are listed in :attr:`CameraPipeline.cleared` for the live runner and re-arm the start snapshot.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from farsight.clock import Clock, SystemClock
from farsight.errors import ConfigError
from farsight.logs import kv
from farsight.settings import validation_problems
from farsight.types import Detection
from video.analysers.base import Analyser, Finding, Resettable
from video.camera_config import CameraConfig, FrameGeometry, analyser_entry
from video.clips import ClipRecorder
from video.episodes import FrameFindings
from video.evidence import EvidenceStore, snapshot
from video.reasoning import ReasoningState, reason, scene_analysers_to_reset, view_conditions
from video.sources import Frame, FrameSource, SourceEvent, open_source

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Observation:
    """A detection plus where it sits in the source (``offset_s``) and the analyser's detail
    values."""

    detection: Detection
    offset_s: float
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: the Detection fields (``ts`` ISO 8601, ``evidence`` a list),
        ``offset_s``, ``detail``."""
        d = self.detection
        return {
            "kind": d.kind,
            "offset_s": round(self.offset_s, 6),
            "site": d.site,
            "camera": d.camera,
            "confidence": round(float(d.confidence), 6),
            "ts": d.ts.isoformat(),
            "bbox": list(d.bbox) if d.bbox is not None else None,
            "zone": d.zone,
            "evidence": list(d.evidence),
            "detail": self.detail,
        }


def _is_cleared(f: Finding) -> bool:
    # Tamper says "cleared"; smoke, fire and black smoke keep reporting through their off
    # debounce with present=False: neither is something seen in this frame.
    return f.detail.get("state") == "cleared" or f.detail.get("present") is False


def _json_scalar(v: Any) -> Any:
    if isinstance(v, (str, bool, int)) or v is None:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


class CameraPipeline:
    """Runs one camera's analysers and turns their findings into detections.

    Parameters
    ----------
    config : CameraConfig
    evidence_store : EvidenceStore or None
        Where snapshots go; None stores none (detections carry no evidence).
    clock : Clock, optional
        Stamps frames of sources the pipeline opens itself (:meth:`run` without a source).
    """

    def __init__(
        self,
        config: CameraConfig,
        evidence_store: EvidenceStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(config, CameraConfig):
            raise ConfigError(f"config must be a CameraConfig, got {type(config).__name__}")
        self.config = config
        self.evidence_store = evidence_store
        self.clock = clock or SystemClock()
        self._sections = config.enabled_analysers()
        for name in self._sections:
            analyser_entry(
                name
            )  # unknown name: ConfigError listing the known ones, now rather than at frame 1
        self._zones = config.zone_objects()
        self._masks = config.mask_polygons()
        self._analysers: dict[str, Analyser] = {}
        self._size: tuple[int, int] | None = None
        self._prev_kinds: frozenset[str] = frozenset()
        self.reasoning = ReasoningState()
        """State of the reasoning stage after the last processed frame (``unsettled``,
        ``cause``)."""
        self._last_snapshot: dict[str, float] = {}
        self._evidence: dict[
            str, tuple[str, ...]
        ] = {}  # kind -> latest snapshot pair (+ clip) while it lasts
        self._clips: ClipRecorder | None = None
        ev = config.evidence
        if evidence_store is not None and (ev.clip_pre_s > 0 or ev.clip_post_s > 0):
            self._clips = ClipRecorder(evidence_store, ev.clip_pre_s, ev.clip_post_s)
        self.snapshots = 0
        """Snapshot pairs stored so far."""
        self.cleared: tuple[tuple[str, str | None], ...] = ()
        """(kind, zone) of the findings the last processed frame ended explicitly (tamper
        cleared)."""
        self.finished_clips: dict[str, str] = {}
        """Clips (kind -> sha256) the last processed frame completed; a latched finding (tamper)
        reported once is no longer in the frame's detections when its clip is done."""

    @property
    def analyser_names(self) -> tuple[str, ...]:
        """Enabled analysers, in configuration order."""
        return tuple(self._sections)

    def _build(self, width: int, height: int) -> None:
        geometry = FrameGeometry(width, height, self._zones, self._masks)
        self._analysers = {
            n: analyser_entry(n).factory(s, geometry) for n, s in self._sections.items()
        }
        self._size = (width, height)
        self._prev_kinds = frozenset()
        self.reasoning = ReasoningState()

    def reset(self) -> None:
        """After a gap in the stream: analysers with a ``reset()`` forget short-term state
        (motion background)."""
        for a in self._analysers.values():
            if isinstance(a, Resettable):
                a.reset()
        self._prev_kinds = frozenset()
        self.reasoning = ReasoningState()

    def process(self, frame: Frame) -> list[Observation]:
        """Analyse one frame; return its detections (possibly none)."""
        h, w = frame.image.shape[:2]
        if self._size != (w, h):
            if self._size is not None:
                log.warning(
                    "frame size changed, analysers rebuilt",
                    extra=kv(
                        site=self.config.site, camera=self.config.camera, old=self._size, new=(w, h)
                    ),
                )
            self._build(w, h)
        t = frame.offset_s
        findings: list[Finding] = []
        for name, analyser in self._analysers.items():
            try:
                findings += analyser.update(frame.image, t)
            except ConfigError as exc:  # bad data never raises out of the loop (Style 5)
                log.warning(
                    "analyser rejected frame",
                    extra=kv(
                        site=self.config.site, camera=self.config.camera, analyser=name, error=exc
                    ),
                )
        findings, self.reasoning = reason(
            findings,
            view_conditions(self._analysers.values()),
            t,
            self.reasoning,
            self.config.reasoning,
        )
        if self.reasoning.relearn:
            for a in scene_analysers_to_reset(self._analysers):
                a.reset()
        live = [f for f in findings if not _is_cleared(f)]
        self.cleared = tuple(
            (f.kind, f.zone) for f in findings if f.detail.get("state") == "cleared"
        )
        kinds = frozenset(f.kind for f in live)
        for kind in self._prev_kinds - kinds:
            self._evidence.pop(kind, None)
        for kind, sha in self._snapshots(frame, live, kinds).items():
            self._evidence[kind] = sha + tuple(
                h for h in self._evidence.get(kind, ())[2:] if h not in sha
            )
        self._record_clips(frame, kinds)
        evidence = {k: v for k, v in self._evidence.items() if k in kinds}
        self._prev_kinds = kinds
        out = []
        for f in live:
            det = Detection(
                site=self.config.site,
                camera=self.config.camera,
                kind=f.kind,
                confidence=float(f.confidence),
                ts=frame.ts,
                bbox=f.bbox,
                zone=f.zone,
                evidence=evidence.get(f.kind, ()),
            )
            out.append(Observation(det, t, {k: _json_scalar(v) for k, v in f.detail.items()}))
        return out

    def _snapshots(
        self, frame: Frame, live: list[Finding], kinds: frozenset[str]
    ) -> dict[str, tuple[str, ...]]:
        if self.evidence_store is None or not live:
            return {}
        interval = self.config.evidence.snapshot_interval_s
        t = frame.offset_s
        out: dict[str, tuple[str, ...]] = {}
        for kind in sorted(kinds):
            last = self._last_snapshot.get(kind)
            started = kind not in self._prev_kinds
            if not (started or last is None or t - last >= interval):
                continue
            # One pair per kind and frame: outline the largest box (whole-frame findings have none).
            group = [f for f in live if f.kind == kind]
            best = max(group, key=lambda f: (f.bbox[2] * f.bbox[3]) if f.bbox else -1)
            label = f"{kind} {best.confidence:.2f}" + (f" {best.zone}" if best.zone else "")
            annotated, raw = snapshot(
                frame.image, best.bbox, label, self.config.evidence.jpeg_quality
            )
            out[kind] = (
                self.evidence_store.put(annotated, ".jpg"),
                self.evidence_store.put(raw, ".jpg"),
            )
            self._last_snapshot[kind] = t
            self.snapshots += 1
        return out

    def _record_clips(self, frame: Frame, kinds: frozenset[str]) -> None:
        if self._clips is None:
            return
        for kind in sorted(kinds - self._prev_kinds):
            self._clips.start(kind, frame.offset_s)
        self.finished_clips = self._clips.push(frame.offset_s, frame.image)
        for kind, sha in self.finished_clips.items():
            # Snapshots first, then the clip: a later snapshot replaces the pair, the clip stays.
            if kind in kinds:
                self._evidence[kind] = self._evidence.get(kind, ())[:2] + (sha,)

    def run(self, source: FrameSource | None = None) -> Iterator[Observation]:
        """Process every frame of ``source`` (default: open ``config.source`` at
        ``config.rate_fps``); yield the detections.

        A ``lost`` or ``restored`` event resets short-term analyser state. The source is closed
        when the iterator ends or is closed.
        """
        for _, observations in self.run_frames(source):
            yield from observations

    def run_frames(
        self, source: FrameSource | None = None
    ) -> Iterator[tuple[Frame, list[Observation]]]:
        """As :meth:`run`, but one item per analysed frame, with or without detections; while
        an item is current, :attr:`cleared` holds that frame's ended episodes."""
        if source is None:
            if not self.config.source:
                raise ConfigError("camera has no source; set `source` or pass a FrameSource")
            source = open_source(
                self.config.source,
                self.config.rate_fps,
                camera_time=self.config.frame_time == "camera",
                clock=self.clock,
            )
        try:
            for item in source.frames():
                if isinstance(item, SourceEvent):
                    log.info(
                        "source event",
                        extra=kv(
                            site=self.config.site,
                            camera=self.config.camera,
                            event=item.kind,
                            detail=item.detail,
                        ),
                    )
                    self.reset()
                    continue
                yield item, self.process(item)
        finally:
            source.close()


def _id_from(text: str, default: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")[:64]
    return s if s and s[0].isalnum() else default


def file_pipeline(
    path: str | Path,
    config: CameraConfig | None = None,
    *,
    rate_fps: float | None = None,
    evidence: EvidenceStore | None = None,
    clock: Clock | None = None,
) -> CameraPipeline:
    """The pipeline that analyses a video file (see :func:`analyze_file` for the parameters).

    Raises
    ------
    ConfigError
        If the config with the file as its source and the rate is not valid.
    """
    path = Path(path)
    if config is None:
        config = CameraConfig(camera=_id_from(path.stem, "clip"), site="local")
    update: dict[str, Any] = {"source": str(path)}
    if rate_fps is not None:
        update["rate_fps"] = rate_fps
    merged = {**config.model_dump(exclude={"analysers"}), **update}
    try:
        config = CameraConfig.model_validate(merged).model_copy(
            update={"analysers": config.analysers}
        )
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, merged), source=str(path)) from None
    return CameraPipeline(config, evidence, clock)


def analyze_file(
    path: str | Path,
    config: CameraConfig | None = None,
    *,
    rate_fps: float | None = None,
    evidence: EvidenceStore | None = None,
    clock: Clock | None = None,
) -> Iterator[dict[str, Any]]:
    """Analyse a video file; yield one JSON-ready dict per detection (see
    :meth:`Observation.as_dict`).

    Parameters
    ----------
    path : str or Path
        Video file; it replaces ``config.source``.
    config : CameraConfig, optional
        Without one, every registered analyser runs on the whole frame with its defaults, as
        camera ``<file stem>`` of site ``local``.
    rate_fps : float, optional
        Analysis rate; default ``config.rate_fps`` (5 fps without a config).
    evidence : EvidenceStore, optional
        Store snapshots here; without one no files are written and ``evidence`` is empty.
    clock : Clock, optional
        ``ts`` of the clip start (default: now); ``ts = start + offset_s``.

    Raises
    ------
    VideoSourceError
        If the file does not exist or cannot be opened.
    """
    pipeline = file_pipeline(path, config, rate_fps=rate_fps, evidence=evidence, clock=clock)
    for obs in pipeline.run():
        yield obs.as_dict()


def analyze_file_frames(
    path: str | Path,
    config: CameraConfig | None = None,
    *,
    rate_fps: float | None = None,
    evidence: EvidenceStore | None = None,
    clock: Clock | None = None,
) -> Iterator[FrameFindings]:
    """As :func:`analyze_file`, but one :class:`~video.episodes.FrameFindings` per analysed
    frame (with or without detections, with the episodes its analysers ended), the input of
    :func:`video.episodes.episodes_of`."""
    pipeline = file_pipeline(path, config, rate_fps=rate_fps, evidence=evidence, clock=clock)
    for frame, observations in pipeline.run_frames():
        yield FrameFindings(
            frame.offset_s,
            frame.ts.isoformat(),
            tuple(o.as_dict() for o in observations),
            pipeline.cleared,
        )


def write_jsonl(rows: Iterable[dict[str, Any]], fh: TextIO) -> int:
    """Write one compact JSON object per line; return the number of lines."""
    import json

    n = 0
    for row in rows:
        fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        n += 1
    return n
