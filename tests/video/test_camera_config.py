"""Camera YAML: defaults, key paths in errors, and the analyser registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from farsight.errors import ConfigError
from video.analysers import MotionDetector, MotionParams, TamperDetector, TamperParams
from video.analysers.params import AnalyserParams
from video.camera_config import (
    CameraConfig,
    FrameGeometry,
    load_camera_config,
    parse_camera_config,
    register_analyser,
    registered_analysers,
)

GOOD = """
camera: cam-01
site: site-001
source: rtsp://10.0.0.5/stream1
rate_fps: 4
zones:
  - name: gate
    points: [[0, 100], [160, 100], [160, 180], [0, 180]]
masks:
  - points: [[0, 0], [320, 0], [320, 20]]
evidence: {snapshot_interval_s: 30}
analysers:
  motion: {threshold: 30}
  tamper:
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cam.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def paths(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [p.path for p in exc.value.problems]


def test_good_file_loads_with_typed_sections(tmp_path):
    cfg = load_camera_config(write(tmp_path, GOOD))
    assert (cfg.camera, cfg.site, cfg.rate_fps) == ("cam-01", "site-001", 4.0)
    assert cfg.zone_objects()[0].name == "gate"
    assert len(cfg.mask_polygons()) == 1
    enabled = cfg.enabled_analysers()
    assert list(enabled) == ["motion", "tamper"]
    assert isinstance(enabled["motion"], MotionParams) and enabled["motion"].threshold == 30
    assert enabled["tamper"] == TamperParams()
    assert cfg.evidence.snapshot_interval_s == 30


def test_empty_file_runs_every_registered_analyser_with_defaults(tmp_path):
    cfg = load_camera_config(write(tmp_path, ""))
    # All but those that need the camera's own boxes, zones or line.
    off = {"black_smoke", "stopped_vehicle", "intrusion", "line_count"}
    assert set(cfg.enabled_analysers()) == set(registered_analysers()) - off
    assert {"motion", "tamper", "smoke", "fire", "black_smoke", "stopped_vehicle"} <= set(
        registered_analysers()
    )
    assert CameraConfig().enabled_analysers()["motion"] == MotionParams()


def test_black_smoke_needs_its_boxes_and_then_runs(tmp_path):
    with pytest.raises(ConfigError, match="analysers.black_smoke.*plume"):
        load_camera_config(write(tmp_path, "analysers: {black_smoke: {enabled: true}}"))
    cfg = load_camera_config(
        write(
            tmp_path,
            "analysers: {black_smoke: {enabled: true, plume: [100, 20, 60, 80],"
            " sky: [200, 20, 60, 80]}}",
        )
    )
    assert list(cfg.enabled_analysers()) == ["black_smoke"]


def test_disabled_analyser_is_not_run(tmp_path):
    cfg = load_camera_config(write(tmp_path, "analysers: {motion: {enabled: false}, tamper: {}}"))
    assert list(cfg.enabled_analysers()) == ["tamper"]


@pytest.mark.parametrize(
    "text, path",
    [
        ("zones: [{name: a, points: [[0, 0], [1, 1]]}]", "zones.0.points"),
        ("zones: [{name: a, points: [[0, 0], [1, 1], [2, 'x']]}]", "zones.0.points.2.1"),
        (
            (
                "zones: [{name: a, points: [[0, 0], [9, 0], [9, 9]]},"
                " {name: a, points: [[0, 0], [9, 0], [9, 9]]}]"
            ),
            "zones",
        ),
        ("masks: [{pts: [[0, 0], [9, 0], [9, 9]]}]", "masks.0.pts"),
        ("rate_fps: 0", "rate_fps"),
        ("camera: 'bad id'", "camera"),
        ("colour: red", "colour"),
        ("analysers: {motion: {threshold: 0}}", "analysers.motion.threshold"),
        ("analysers: {motion: {blur_ksize: 4}}", "analysers.motion.blur_ksize"),
        ("analysers: {tamper: {on_s: -1}}", "analysers.tamper.on_s"),
        (
            "analysers: {tamper: {covered_dark_max: 200, covered_bright_min: 100}}",
            "analysers.tamper",
        ),
        ("analysers: {tamper: {bogus: 1}}", "analysers.tamper.bogus"),
        ("analysers: {sparkles: {}}", "analysers.sparkles"),
        ("analysers: [motion]", "analysers"),
    ],
)
def test_errors_name_the_key_path(tmp_path, text, path):
    with pytest.raises(ConfigError) as exc:
        load_camera_config(write(tmp_path, text))
    assert path in paths(exc), str(exc.value)
    assert str(tmp_path / "cam.yaml") in str(exc.value)


def test_every_problem_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_camera_config(
            write(tmp_path, "rate_fps: -1\nzones: [{name: a, points: []}]\nanalysers: {nope: {}}")
        )
    assert {"rate_fps", "zones.0.points", "analysers.nope"} <= set(paths(exc))


def test_unknown_analyser_lists_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="known: motion, tamper"):
        load_camera_config(write(tmp_path, "analysers: {sparkles: {}}"))


def test_yaml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_camera_config(write(tmp_path, "zones: [unclosed"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_camera_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        parse_camera_config(["not", "a", "mapping"])


def test_every_field_has_title_and_description():
    for model in (CameraConfig, MotionParams, TamperParams):
        for name, f in model.model_fields.items():
            assert f.title and f.description, f"{model.__name__}.{name}"


def test_builtin_factories_build_the_analysers():
    reg = registered_analysers()
    g = FrameGeometry(320, 180)
    assert isinstance(reg["motion"].factory(MotionParams(), g), MotionDetector)
    assert isinstance(reg["tamper"].factory(TamperParams(), g), TamperDetector)


def test_register_analyser_adds_a_section_in_one_line(tmp_path):
    class GlowParams(AnalyserParams):
        gain: float = 1.0

    class Glow:
        def __init__(self, gain: float) -> None:
            self.gain = gain

        def update(self, frame, ts):
            return []

    register_analyser("glow_test", GlowParams, lambda s, g: Glow(s.gain))
    try:
        cfg = load_camera_config(write(tmp_path, "analysers: {glow_test: {gain: 2}}"))
        assert cfg.enabled_analysers()["glow_test"].gain == 2
        with pytest.raises(ConfigError, match="already registered"):
            register_analyser("glow_test", GlowParams, lambda s, g: Glow(s.gain))
    finally:
        from video import camera_config

        camera_config._ANALYSERS.pop("glow_test", None)


@pytest.mark.parametrize(
    "name, model", [("Bad-Name", AnalyserParams), ("ok_name", dict), ("", AnalyserParams)]
)
def test_register_analyser_rejects_bad_arguments(name, model):
    with pytest.raises(ConfigError):
        # dict is not a BaseModel subclass: a wrong type on purpose.
        register_analyser(name, model, lambda s, g: None)  # type: ignore[arg-type]
    assert issubclass(AnalyserParams, BaseModel)


def test_intrusion_and_line_count_sections(tmp_path):
    from video.analysers import IntrusionDetector, LineCounter

    # Every field of the new sections carries a title and a description (Style 3).
    for name in ("intrusion", "line_count"):
        for field_name, f in registered_analysers()[name].params_model.model_fields.items():
            assert f.title and f.description, f"{name}.{field_name}"
    with pytest.raises(ConfigError) as exc:
        load_camera_config(write(tmp_path, "analysers: {line_count: {enabled: true}}"))
    assert any(p.startswith("analysers.line_count") for p in paths(exc))
    with pytest.raises(ConfigError):
        load_camera_config(
            write(tmp_path, "analysers: {line_count: {enabled: true, line: [[5, 5], [5, 5]]}}")
        )
    with pytest.raises(ConfigError) as exc:
        load_camera_config(
            write(
                tmp_path,
                "analysers: {intrusion: {enabled: true, min_height: 0.3, max_height: 0.2}}",
            )
        )
    assert any(p.startswith("analysers.intrusion") for p in paths(exc))
    cfg = load_camera_config(
        write(
            tmp_path,
            """
zones:
  - name: yard
    points: [[0, 100], [160, 100], [160, 180], [0, 180]]
analysers:
  intrusion: {enabled: true, dark_only: true}
  line_count: {enabled: true, line: [[160, 90], [160, 180]], name: northbound}
""",
        )
    )
    assert list(cfg.enabled_analysers()) == ["intrusion", "line_count"]
    reg = registered_analysers()
    g = FrameGeometry(320, 180, cfg.zone_objects())
    sections = cfg.enabled_analysers()
    intrusion = reg["intrusion"].factory(sections["intrusion"], g)
    counter = reg["line_count"].factory(sections["line_count"], g)
    assert (
        isinstance(intrusion, IntrusionDetector)
        and intrusion.params.dark_only
        and intrusion.zones[0].name == "yard"
    )
    assert (
        isinstance(counter, LineCounter)
        and counter.name == "northbound"
        and counter.line == ((160.0, 90.0), (160.0, 180.0))
    )
