"""Per-camera configuration: where frames come from, zones, masks and the analysers to run.

One YAML file per camera. The fixed part (ids, source, rate, zones, masks, evidence policy) is
the pydantic model :class:`CameraConfig`; each entry of its ``analysers`` mapping is validated
against the params model registered for that analyser name (:func:`register_analyser`), so a new
analyser is one ``register_analyser(...)`` call and needs no change here. Every problem is
reported as a :class:`~farsight.errors.ConfigError` naming its key path (``zones.0.points``,
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
    analysers:
      motion: {threshold: 30}
      tamper: {on_s: 15}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from farsight.errors import ConfigError, ConfigProblem
from farsight.settings import read_yaml, validation_problems
from video.analysers.base import Analyser, Polygon, Zone
from video.analysers.black_smoke import BlackSmokeDetector, BlackSmokeParams
from video.analysers.fire import FireDetector, FireParams
from video.analysers.motion import MotionDetector, MotionParams
from video.analysers.smoke import SmokeDetector, SmokeParams
from video.analysers.stopped import StoppedVehicleDetector, StoppedVehicleParams
from video.analysers.tamper import TamperDetector, TamperParams

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # farsight.types.ID_RE
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
        description="While a kind keeps being found, store at most one snapshot per this many seconds (a new start always stores one).",
        ge=0,
        le=86_400,
    )
    jpeg_quality: int = Field(
        85, title="JPEG quality", description="Quality of stored snapshots.", ge=10, le=100
    )
    clip_pre_s: float = Field(
        0.0,
        title="Clip lead-in",
        description="Seconds of analysed frames before a finding starts kept in its clip; 0 with clip_post_s 0: no clips.",
        ge=0,
        le=60,
    )
    clip_post_s: float = Field(
        0.0,
        title="Clip follow-on",
        description="Seconds of analysed frames after a finding starts kept in its clip (an MP4 stored as evidence).",
        ge=0,
        le=120,
    )


class AnalyserSection(Section):
    """Base of every analyser's params model: an ``enabled`` switch plus its tuning."""

    enabled: bool = Field(True, title="Enabled", description="Run this analyser on this camera.")


class MotionSection(AnalyserSection):
    """Motion detector tuning; see :class:`video.analysers.motion.MotionParams`."""

    resize_height: int = Field(
        180,
        title="Analysis height",
        description="Height in pixels frames are downscaled to.",
        ge=16,
        le=2160,
    )
    blur_ksize: int = Field(
        5,
        title="Blur kernel",
        description="Odd Gaussian kernel size at analysis resolution (1 disables).",
        ge=1,
        le=31,
    )
    threshold: int = Field(
        25,
        title="Change threshold",
        description="Gray-level difference counted as change.",
        ge=1,
        le=255,
    )
    alpha: float = Field(
        0.02, title="Background rate", description="Background learning rate per frame.", gt=0, lt=1
    )
    dilate_iterations: int = Field(
        2,
        title="Dilations",
        description="3x3 dilations merging nearby changed pixels.",
        ge=0,
        le=10,
    )
    min_area: float = Field(
        0.0005,
        title="Minimum area",
        description="Smallest motion box as a fraction of the frame.",
        ge=0,
        lt=1,
    )
    global_change: float = Field(
        0.5,
        title="Global change",
        description="Changed fraction treated as a lighting or camera change, not motion.",
        gt=0,
        le=1,
    )

    @field_validator("blur_ksize")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("must be odd")
        return v

    def params(self) -> MotionParams:
        """The analyser's own parameter object."""
        return MotionParams(**self.model_dump(exclude={"enabled"}))


class TamperSection(AnalyserSection):
    """Tamper detector tuning; see :class:`video.analysers.tamper.TamperParams`."""

    analysis_height: int = Field(
        180,
        title="Analysis height",
        description="Height of the downscaled grayscale used by every check.",
        ge=32,
        le=1080,
    )
    on_s: float = Field(
        10.0,
        title="Debounce on",
        description="Seconds a condition must hold before it is reported.",
        ge=0,
        le=3600,
    )
    off_s: float = Field(
        5.0,
        title="Debounce off",
        description="Seconds a condition must be false before it clears.",
        ge=0,
        le=3600,
    )
    warmup_s: float = Field(
        5.0,
        title="Warm-up",
        description="Seconds learning the focus baseline and reference view.",
        ge=0,
        le=3600,
    )
    covered_std_max: float = Field(
        12.0,
        title="Covered contrast",
        description="Gray std below which a dark or bright frame is covered.",
        ge=0,
        le=128,
    )
    covered_dark_max: float = Field(
        40.0,
        title="Covered dark level",
        description="Mean gray at or below which a low-contrast frame is covered.",
        ge=0,
        le=255,
    )
    covered_bright_min: float = Field(
        215.0,
        title="Covered bright level",
        description="Mean gray at or above which a low-contrast frame is covered.",
        ge=0,
        le=255,
    )
    uniform_std_max: float = Field(
        3.0,
        title="Uniform contrast",
        description="Gray std below which any frame is covered.",
        ge=0,
        le=128,
    )
    defocus_ratio: float = Field(
        0.35,
        title="Defocus ratio",
        description="Defocused below this fraction of the focus baseline.",
        gt=0,
        lt=1,
    )
    baseline_tau_s: float = Field(
        120.0,
        title="Baseline time constant",
        description="Seconds over which the focus baseline and reference view follow slow change.",
        gt=0,
        le=86_400,
    )
    moved_shift_px: float = Field(
        20.0,
        title="Moved shift",
        description="Shift in pixels beyond which the camera has moved.",
        gt=0,
        le=10_000,
    )
    moved_min_response: float = Field(
        0.03,
        title="Moved match",
        description="Phase-correlation peak below which the view no longer matches.",
        ge=0,
        lt=1,
    )

    def params(self) -> TamperParams:
        """The analyser's own parameter object (its cross-field checks raise ConfigError)."""
        return TamperParams(**self.model_dump(exclude={"enabled"}))


# --------------------------------------------------------------------------- analyser registry


@dataclass(frozen=True, slots=True)
class FrameGeometry:
    """What a factory knows when the first frame arrives: its size and the camera's zones and masks."""

    width: int
    height: int
    zones: tuple[Zone, ...] = ()
    masks: tuple[Polygon, ...] = ()


AnalyserFactory = Callable[[Any, FrameGeometry], Analyser]
"""``factory(section, geometry) -> Analyser``; ``section`` is an instance of the registered params model."""


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

    ``params_model`` should subclass :class:`AnalyserSection` (for ``enabled``, strict keys and
    defaults on every field): a camera without an ``analysers`` mapping runs every registered
    analyser with ``params_model()``.

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
    """The registry entry for ``name``; an unknown name raises ConfigError listing the known ones."""
    try:
        return _ANALYSERS[name]
    except KeyError:
        raise ConfigError(f"unknown analyser {name!r}; known: {', '.join(_ANALYSERS)}") from None


register_analyser(
    "motion",
    MotionSection,
    lambda s, g: MotionDetector(g.width, g.height, g.zones, g.masks, s.params()),
)
register_analyser("tamper", TamperSection, lambda s, g: TamperDetector(s.params()))


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
        description="Video file path, rtsp://, http(s):// MJPEG or snapshot+http(s):// URL; empty when frames come from elsewhere.",
        max_length=2048,
    )
    rate_fps: float = Field(
        5.0,
        title="Analysis rate",
        description="Frames per second analysed; the source decimates to this.",
        gt=0,
        le=60,
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
    analysers: dict[str, Any] | None = Field(
        None,
        title="Analysers",
        description="Analyser name -> its settings ({} or null for defaults); omitted: every registered analyser with defaults.",
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
        """Enabled analyser sections by name (every registered one with defaults if none were configured)."""
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
                    section = _ANALYSERS[name].params_model.model_validate(
                        {} if body is None else body
                    )
                    # Cross-field checks live in the analysers' own params (e.g. dark < bright).
                    if hasattr(section, "params"):
                        section.params()
                    sections[name] = section
                except ValidationError as exc:
                    problems += validation_problems(exc, body, prefix=path)
                except ConfigError as exc:
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
        On an unreadable file, a YAML syntax error or invalid content (each problem names its key path).
    """
    return parse_camera_config(read_yaml(Path(path)), source=str(path))


# --------------------------------------------------------------------------- smoke, fire, black smoke

BoxField = tuple[int, int, int, int]


class SmokeSection(AnalyserSection):
    """Smoke detector tuning; see :class:`video.analysers.smoke.SmokeParams` for the rest."""

    persist_s: float = Field(
        3.0,
        title="Persistence",
        description="Seconds a region must look like smoke before it counts.",
        gt=0,
        le=600,
    )
    min_area: float = Field(
        0.003,
        title="Minimum area",
        description="Smallest smoke region as a fraction of the frame.",
        gt=0,
        lt=1,
    )
    on_s: float = Field(
        1.0,
        title="Debounce on",
        description="Seconds smoke must persist before it is reported.",
        ge=0,
        le=3600,
    )
    off_s: float = Field(
        2.0,
        title="Debounce off",
        description="Seconds without smoke before it clears.",
        ge=0,
        le=3600,
    )

    def params(self) -> SmokeParams:
        return SmokeParams(**self.model_dump(exclude={"enabled"}))


class FireSection(AnalyserSection):
    """Fire detector tuning; see :class:`video.analysers.fire.FireParams` for the rest."""

    flicker_min: float = Field(
        0.4,
        title="Flicker share",
        description="Share of large frame-to-frame luma steps that counts as flicker.",
        gt=0,
        le=1,
    )
    min_area: float = Field(
        0.002,
        title="Minimum area",
        description="Smallest fire region as a fraction of the frame.",
        gt=0,
        lt=1,
    )
    on_s: float = Field(
        1.0,
        title="Debounce on",
        description="Seconds fire must persist before it is reported.",
        ge=0,
        le=3600,
    )
    off_s: float = Field(
        2.0,
        title="Debounce off",
        description="Seconds without fire before it clears.",
        ge=0,
        le=3600,
    )

    def params(self) -> FireParams:
        return FireParams(**self.model_dump(exclude={"enabled"}))


class BlackSmokeSection(AnalyserSection):
    """Stack black smoke as a Ringelmann grade: needs the plume and a clear-sky box of this camera."""

    enabled: bool = Field(
        False, title="Enabled", description="Off unless configured: the boxes are the camera's own."
    )
    plume: BoxField | None = Field(
        None,
        title="Plume box",
        description="x, y, width, height of the region above the stack top.",
    )
    sky: BoxField | None = Field(
        None,
        title="Sky box",
        description="x, y, width, height of clear sky beside the plume (same rows).",
    )
    min_grade: int = Field(
        1,
        title="Minimum grade",
        description="Lowest Ringelmann grade reported (GB 13271: grade 1 is the limit).",
        ge=1,
        le=5,
    )
    window_s: float = Field(
        3.0,
        title="Smoothing",
        description="Seconds the grade is smoothed over (median).",
        gt=0,
        le=600,
    )

    @model_validator(mode="after")
    def _boxes_when_enabled(self) -> BlackSmokeSection:
        if self.enabled and (self.plume is None or self.sky is None):
            raise ValueError("an enabled black_smoke analyser needs both 'plume' and 'sky' boxes")
        return self

    def params(self) -> BlackSmokeParams:
        return BlackSmokeParams(min_grade=self.min_grade, window_s=self.window_s)


register_analyser("smoke", SmokeSection, lambda s, g: SmokeDetector(s.params(), zones=g.zones))
register_analyser("fire", FireSection, lambda s, g: FireDetector(s.params(), zones=g.zones))
register_analyser(
    "black_smoke", BlackSmokeSection, lambda s, g: BlackSmokeDetector(s.plume, s.sky, s.params())
)


class StoppedVehicleSection(AnalyserSection):
    """Stopped vehicles in no-stopping zones (every zone of the camera); see
    :class:`video.analysers.stopped.StoppedVehicleParams`."""

    enabled: bool = Field(
        False,
        title="Enabled",
        description="Off unless configured: needs the camera's no-stopping zones.",
    )
    threshold: int = Field(
        25,
        title="Change threshold",
        description="Gray-level difference counted as change.",
        ge=1,
        le=255,
    )
    min_fraction: float = Field(
        0.1,
        title="Zone share",
        description="Static share of a zone that counts as a stopped vehicle.",
        gt=0,
        le=1,
    )
    dwell_s: float = Field(
        10.0,
        title="Dwell",
        description="Seconds a vehicle must stay before it is reported.",
        ge=0,
        le=86400,
    )
    gap_s: float = Field(
        1.0,
        title="Gap tolerance",
        description="Seconds the condition may lapse without restarting the dwell.",
        ge=0,
        le=600,
    )

    def params(self) -> StoppedVehicleParams:
        return StoppedVehicleParams(**self.model_dump(exclude={"enabled"}))


register_analyser(
    "stopped_vehicle",
    StoppedVehicleSection,
    lambda s, g: StoppedVehicleDetector(g.width, g.height, g.zones, s.params()),
)


# --------------------------------------------------------------------------- intrusion, line counts

from video.analysers.intrusion import IntrusionDetector, IntrusionParams  # noqa: E402
from video.analysers.line_count import LineCounter, LineCountParams, check_line  # noqa: E402


class IntrusionSection(AnalyserSection):
    """People in the camera's zones (every zone; the whole frame without zones), optionally only in
    the dark; see :class:`video.analysers.intrusion.IntrusionParams`."""

    enabled: bool = Field(
        False,
        title="Enabled",
        description="Off unless configured: the zones say where nobody should be.",
    )
    threshold: int = Field(
        14,
        title="Change threshold",
        description="Colour difference counted as foreground.",
        ge=1,
        le=255,
    )
    min_height: float = Field(
        0.05,
        title="Minimum height",
        description="Smallest person height as a fraction of the frame height.",
        gt=0,
        lt=1,
    )
    max_height: float = Field(
        0.35,
        title="Maximum height",
        description="Largest person height as a fraction of the frame height.",
        gt=0,
        le=1,
    )
    min_aspect: float = Field(
        1.4,
        title="Minimum aspect",
        description="Smallest height/width of a standing person's blob.",
        gt=0,
        le=50,
    )
    max_aspect: float = Field(
        6.0,
        title="Maximum aspect",
        description="Largest height/width of a standing person's blob.",
        gt=0,
        le=50,
    )
    on_s: float = Field(
        1.0,
        title="Debounce on",
        description="Seconds a person must be seen before it is reported.",
        ge=0,
        le=600,
    )
    off_s: float = Field(
        2.0,
        title="Debounce off",
        description="Seconds without a person before it clears.",
        ge=0,
        le=600,
    )
    dark_only: bool = Field(
        False,
        title="Only in the dark",
        description="Report only when the frame is dark (night-time intrusion).",
    )
    dark_luma_max: float = Field(
        70.0,
        title="Dark level",
        description="Mean frame luma at or below which the frame counts as dark.",
        ge=0,
        le=255,
    )

    def params(self) -> IntrusionParams:
        """The analyser's own parameter object (its cross-field checks raise ConfigError)."""
        return IntrusionParams(**self.model_dump(exclude={"enabled"}))


class LineCountSection(AnalyserSection):
    """Vehicles counted across a line, per direction; see :class:`video.analysers.line_count.LineCountParams`."""

    enabled: bool = Field(
        False,
        title="Enabled",
        description="Off unless configured: the counting line is the camera's own.",
    )
    line: tuple[Point, Point] | None = Field(
        None,
        title="Counting line",
        description="Two (x, y) points in full-resolution pixels; forward is towards the normal (y1-y0, x0-x1): left to right for a line drawn top to bottom.",
    )
    name: str | None = Field(
        None,
        title="Line name",
        description="Reported as the zone of each crossing (e.g. northbound).",
        pattern=_ID,
    )
    threshold: int = Field(
        14,
        title="Change threshold",
        description="Colour difference counted as foreground.",
        ge=1,
        le=255,
    )
    min_area: float = Field(
        0.0015,
        title="Minimum area",
        description="Smallest vehicle blob as a fraction of the frame.",
        gt=0,
        lt=1,
    )
    max_aspect: float = Field(
        1.5,
        title="Maximum aspect",
        description="Largest height/width of a vehicle blob (taller ones, such as people, are not counted).",
        ge=0.1,
        le=50,
    )
    max_speed: float = Field(
        1.0,
        title="Maximum speed",
        description="Fastest plausible motion, in frame widths per second.",
        ge=0.01,
        le=100,
    )

    @model_validator(mode="after")
    def _line_when_enabled(self) -> LineCountSection:
        if self.enabled and self.line is None:
            raise ValueError("an enabled line_count analyser needs a 'line'")
        if self.line is not None:
            check_line(self.line)
        return self

    def params(self) -> LineCountParams:
        """The analyser's own parameter object."""
        return LineCountParams(**self.model_dump(exclude={"enabled", "line", "name"}))


register_analyser(
    "intrusion",
    IntrusionSection,
    lambda s, g: IntrusionDetector(g.width, g.height, g.zones, s.params()),
)
register_analyser(
    "line_count",
    LineCountSection,
    lambda s, g: LineCounter(g.width, g.height, s.line, s.params(), s.name),
)
