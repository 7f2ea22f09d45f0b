"""Per-camera configuration: where frames come from, zones, masks and the analysers to run.

One YAML file per camera. The fixed part (ids, source, rate, zones, masks, evidence policy) is
the pydantic model :class:`CameraConfig`; each entry of its ``analysers`` mapping is validated
against the params model registered for that analyser name (:func:`register_analyser`), so a new
analyser is one ``register_analyser(...)`` call and needs no change here. The registered model
is the analyser's own (``MotionParams`` beside ``MotionDetector``, ...): the YAML and Python
callers share one set of fields and bounds. Every problem is reported as a
:class:`~farsight.errors.ConfigError` naming its key path (``zones.0.points``,
``analysers.motion.threshold``).

Example::

    camera: cam-01
    site: site-001
    source: rtsp://10.0.0.5/stream1
    rate_fps: 5
    zones:
      - name: gate
        points: [[0, 100], [160, 100], [160, 180], [0, 180]]
    masks:
      - points: [[0, 0], [320, 0], [320, 20], [0, 20]]   # timestamp overlay
    reasoning: {hold_off_s: 10}
    analysers:
      motion: {threshold: 30}
      tamper: {on_s: 15}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from farsight.errors import ConfigError, ConfigProblem
from farsight.settings import read_yaml, validation_problems
from farsight.types import ID_RE
from video.analysers.base import Analyser, Polygon, Zone
from video.analysers.black_smoke import BlackSmokeDetector, BlackSmokeParams
from video.analysers.fire import FireDetector, FireParams
from video.analysers.global_change import GlobalChangeDetector, GlobalChangeParams
from video.analysers.intrusion import IntrusionDetector, IntrusionParams
from video.analysers.line_count import LineCounter, LineCountParams
from video.analysers.motion import MotionDetector, MotionParams
from video.analysers.smoke import SmokeDetector, SmokeParams
from video.analysers.stopped import StoppedVehicleDetector, StoppedVehicleParams
from video.analysers.tamper import TamperDetector, TamperParams
from video.reasoning import ReasoningParams

_ID = ID_RE.pattern
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

Point = tuple[float, float]


class Section(BaseModel):
    """Base of every camera config section: strict keys, frozen after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class PolygonSection(Section):
    """A polygon in full-resolution pixels (zones and masks)."""

    points: tuple[Point, ...] = Field(
        ...,
        title="Polygon",
        description="At least three (x, y) vertices in full-resolution pixels.",
        min_length=3,
        max_length=256,
    )

    @field_validator("points")
    @classmethod
    def _non_negative(cls, v: tuple[Point, ...]) -> tuple[Point, ...]:
        if any(not (0 <= c <= 100_000) for p in v for c in p):
            raise ValueError("coordinates must be pixels in 0..100000")
        return v


class ZoneConfig(PolygonSection):
    """A named polygon; findings inside it carry its name."""

    name: str = Field(
        ...,
        title="Zone name",
        description="Unique name reported with findings in this zone.",
        pattern=_ID,
    )


class MaskConfig(PolygonSection):
    """A polygon where changes are ignored (trees, clocks, timestamp overlays, a busy road)."""

    name: str | None = Field(
        None, title="Mask name", description="Optional label, for humans only.", max_length=64
    )


class EvidenceSection(Section):
    """When snapshots are stored, to bound disk use."""

    snapshot_interval_s: float = Field(
        60.0,
        title="Snapshot interval",
        description=(
            "While a kind keeps being found, store at most one snapshot per this many seconds "
            "(a new start always stores one)."
        ),
        ge=0,
        le=86_400,
    )
    jpeg_quality: int = Field(
        85, title="JPEG quality", description="Quality of stored snapshots.", ge=10, le=100
    )
    clip_pre_s: float = Field(
        0.0,
        title="Clip lead-in",
        description=(
            "Seconds of analysed frames before a finding starts kept in its clip; 0 with "
            "clip_post_s 0: no clips."
        ),
        ge=0,
        le=60,
    )
    clip_post_s: float = Field(
        0.0,
        title="Clip follow-on",
        description=(
            "Seconds of analysed frames after a finding starts kept in its clip (an MP4 stored "
            "as evidence)."
        ),
        ge=0,
        le=120,
    )


# --------------------------------------------------------------------------- analyser registry


@dataclass(frozen=True, slots=True)
class FrameGeometry:
    """What a factory knows when the first frame arrives: its size and the camera's zones and
    masks."""

    width: int
    height: int
    zones: tuple[Zone, ...] = ()
    masks: tuple[Polygon, ...] = ()


AnalyserFactory = Callable[[Any, FrameGeometry], Analyser]
"""``factory(params, geometry) -> Analyser``; ``params`` is an instance of the registered params
model."""


@dataclass(frozen=True, slots=True)
class AnalyserEntry:
    """One registered analyser: its params model and the factory that builds it."""

    name: str
    params_model: type[BaseModel]
    factory: AnalyserFactory


_ANALYSERS: dict[str, AnalyserEntry] = {}


def register_analyser(
    name: str, params_model: type[BaseModel], factory: AnalyserFactory, replace: bool = False
) -> None:
    """Register an analyser under ``name`` (the key of its section under ``analysers:``).

    ``params_model`` is the analyser's own params model and should subclass
    :class:`~video.analysers.params.AnalyserParams` (for ``enabled``, strict keys and defaults
    on every field): a camera without an ``analysers`` mapping runs every registered analyser
    with ``params_model()``.

    Raises
    ------
    ConfigError
        If the name is malformed, already taken (unless ``replace``) or the model is not pydantic.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"analyser name {name!r} must match {_NAME_RE.pattern}")
    if not (isinstance(params_model, type) and issubclass(params_model, BaseModel)):
        raise ConfigError(
            f"analyser {name!r}: params_model must be a pydantic model class, got {params_model!r}"
        )
    if not callable(factory):
        raise ConfigError(f"analyser {name!r}: factory must be callable")
    if name in _ANALYSERS and not replace:
        raise ConfigError(f"analyser {name!r} is already registered")
    _ANALYSERS[name] = AnalyserEntry(name, params_model, factory)


def registered_analysers() -> dict[str, AnalyserEntry]:
    """A copy of the registry, by name, in registration order."""
    return dict(_ANALYSERS)


def analyser_entry(name: str) -> AnalyserEntry:
    """The registry entry for ``name``; an unknown name raises ConfigError listing the known
    ones."""
    try:
        return _ANALYSERS[name]
    except KeyError:
        raise ConfigError(f"unknown analyser {name!r}; known: {', '.join(_ANALYSERS)}") from None


def _motion(p: MotionParams, g: FrameGeometry) -> Analyser:
    return MotionDetector(g.width, g.height, g.zones, g.masks, p)


def _black_smoke(p: BlackSmokeParams, g: FrameGeometry) -> Analyser:
    if p.plume is None or p.sky is None:  # only when built disabled: the model checks enabled
        raise ConfigError("black_smoke needs both 'plume' and 'sky' boxes")
    return BlackSmokeDetector(p.plume, p.sky, p)


def _line_count(p: LineCountParams, g: FrameGeometry) -> Analyser:
    return LineCounter(g.width, g.height, p.line, p, p.name)


register_analyser("motion", MotionParams, _motion)
register_analyser("tamper", TamperParams, lambda p, g: TamperDetector(p))
register_analyser("global_change", GlobalChangeParams, lambda p, g: GlobalChangeDetector(p))
register_analyser("smoke", SmokeParams, lambda p, g: SmokeDetector(p, zones=g.zones))
register_analyser("fire", FireParams, lambda p, g: FireDetector(p, zones=g.zones))
register_analyser("black_smoke", BlackSmokeParams, _black_smoke)
register_analyser(
    "stopped_vehicle",
    StoppedVehicleParams,
    lambda p, g: StoppedVehicleDetector(g.width, g.height, g.zones, p),
)
register_analyser(
    "intrusion", IntrusionParams, lambda p, g: IntrusionDetector(g.width, g.height, g.zones, p)
)
register_analyser("line_count", LineCountParams, _line_count)


# --------------------------------------------------------------------------- camera model


class CameraConfig(Section):
    """One camera: identity, source, analysis rate, zones, masks, evidence policy and analysers.

    ``analysers`` holds validated params-model instances by analyser name. Leaving the key out
    runs every registered analyser with its defaults; giving it runs exactly the listed ones.
    """

    camera: str = Field(
        "camera", title="Camera id", description="Camera id, unique within the site.", pattern=_ID
    )
    site: str = Field(
        "site",
        title="Site id",
        description="Id of the site the camera watches (the registry's site id).",
        pattern=_ID,
    )
    source: str = Field(
        "",
        title="Source",
        description=(
            "Video file path, rtsp://, http(s):// MJPEG or snapshot+http(s):// URL; empty when "
            "frames come from elsewhere."
        ),
        max_length=2048,
    )
    rate_fps: float = Field(
        5.0,
        title="Analysis rate",
        description="Frames per second analysed; the source decimates to this.",
        gt=0,
        le=60,
    )
    frame_time: Literal["arrival", "camera"] = Field(
        "arrival",
        title="Frame time",
        description=(
            "What a frame's time is, for its timestamp and for every duration the analysers and "
            "keep-alives measure: `arrival` (when it reached Farsight; any camera), or `camera`: "
            "the capture time an MJPEG or snapshot camera sends in its X-Timestamp header "
            "(epoch seconds; needs a camera clock set by NTP)."
        ),
    )
    zones: tuple[ZoneConfig, ...] = Field(
        (),
        title="Zones",
        description="Named polygons; motion outside every zone is dropped when any is given.",
        max_length=64,
    )
    masks: tuple[MaskConfig, ...] = Field(
        (), title="Masks", description="Polygons where changes are ignored.", max_length=64
    )
    evidence: EvidenceSection = Field(
        default_factory=EvidenceSection, title="Evidence", description="Snapshot policy."
    )
    reasoning: ReasoningParams = Field(
        default_factory=ReasoningParams,
        title="Reasoning",
        description=(
            "Cross-analyser reasoning: scene findings held back while tamper or a global "
            "change makes the view unreliable (video.reasoning)."
        ),
    )
    analysers: dict[str, Any] | None = Field(
        None,
        title="Analysers",
        description=(
            "Analyser name -> its settings ({} or null for defaults); omitted: every registered "
            "analyser with defaults."
        ),
    )

    @field_validator("zones")
    @classmethod
    def _unique_zone_names(cls, v: tuple[ZoneConfig, ...]) -> tuple[ZoneConfig, ...]:
        names = [z.name for z in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"zone names must be unique; repeated: {', '.join(dupes)}")
        return v

    def zone_objects(self) -> tuple[Zone, ...]:
        """Zones as analyser value objects."""
        return tuple(Zone(z.name, z.points) for z in self.zones)

    def mask_polygons(self) -> tuple[Polygon, ...]:
        """Masks as plain polygons."""
        return tuple(m.points for m in self.masks)

    def enabled_analysers(self) -> dict[str, BaseModel]:
        """Enabled analysers' params by name (every registered one with defaults if none were
        configured)."""
        sections = self.analysers
        if sections is None:
            sections = {name: e.params_model() for name, e in _ANALYSERS.items()}
        out: dict[str, BaseModel] = {}
        for name, s in sections.items():
            if not isinstance(s, BaseModel):  # built in code rather than by parse_camera_config
                s = analyser_entry(name).params_model.model_validate({} if s is None else s)
            if getattr(s, "enabled", True):
                out[name] = s
        return out


def parse_camera_config(raw: Any, source: str = "camera config") -> CameraConfig:
    """Validate a parsed YAML mapping into a :class:`CameraConfig`.

    Raises
    ------
    ConfigError
        Listing every problem with its key path, e.g. ``zones.0.points`` or
        ``analysers.tamper.on_s``; an unknown analyser name lists the known ones.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            [ConfigProblem("", type(raw).__name__, "the top level must be a mapping")],
            source=source,
        )
    problems: list[ConfigProblem] = []
    base: CameraConfig | None = None
    try:
        base = CameraConfig.model_validate(dict(raw))
    except ValidationError as exc:
        problems += validation_problems(exc, raw)
    sections: dict[str, BaseModel] | None = None
    raw_analysers = raw.get("analysers")
    if raw_analysers is not None:
        if not isinstance(raw_analysers, Mapping):
            if not any(p.path.startswith("analysers") for p in problems):
                problems.append(
                    ConfigProblem(
                        "analysers", raw_analysers, "must be a mapping of analyser name to settings"
                    )
                )
        else:
            sections = {}
            for name, body in raw_analysers.items():
                path = f"analysers.{name}"
                if name not in _ANALYSERS:
                    problems.append(
                        ConfigProblem(
                            path, body, f"unknown analyser; known: {', '.join(_ANALYSERS)}"
                        )
                    )
                    continue
                try:
                    sections[name] = _ANALYSERS[name].params_model.model_validate(
                        {} if body is None else body
                    )
                except ValidationError as exc:
                    problems += validation_problems(exc, body, prefix=path)
                except ConfigError as exc:  # raised by a plugin's own validator
                    problems += [
                        ConfigProblem(f"{path}{'.' + p.path if p.path else ''}", body, p.message)
                        for p in exc.problems
                    ]
    if problems:
        raise ConfigError(problems, source=source)
    assert base is not None
    return base.model_copy(update={"analysers": sections})


def load_camera_config(path: str | Path) -> CameraConfig:
    """Read and validate a camera YAML file.

    Raises
    ------
    ConfigError
        On an unreadable file, a YAML syntax error or invalid content (each problem names its
        key path).
    """
    return parse_camera_config(read_yaml(Path(path)), source=str(path))
