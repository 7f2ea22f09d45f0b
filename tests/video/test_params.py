"""One params model per analyser: the camera YAML and Python callers share its fields and bounds."""

from __future__ import annotations

import math
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel, ValidationError

from farsight.errors import ConfigError
from video.analysers import (
    BlackSmokeParams,
    FireParams,
    GlobalChangeParams,
    IntrusionParams,
    LineCountParams,
    MotionParams,
    SmokeParams,
    StoppedVehicleParams,
    TamperParams,
)
from video.analysers.params import AnalyserParams
from video.camera_config import parse_camera_config, registered_analysers

OWN_MODELS: dict[str, type[AnalyserParams]] = {
    "motion": MotionParams,
    "tamper": TamperParams,
    "smoke": SmokeParams,
    "fire": FireParams,
    "black_smoke": BlackSmokeParams,
    "stopped_vehicle": StoppedVehicleParams,
    "intrusion": IntrusionParams,
    "line_count": LineCountParams,
    "global_change": GlobalChangeParams,
}

# What an opt-in analyser needs besides its field to be enabled in a camera file.
NEEDS = {
    "black_smoke": {"plume": [100, 20, 60, 80], "sky": [200, 20, 60, 80]},
    "line_count": {"line": [[160, 90], [160, 180]]},
}


def bounds(model: type[BaseModel]) -> list[tuple[str, str, float]]:
    """(field, constraint, limit) of every numeric bound of ``model``."""
    out = []
    for name, info in model.model_fields.items():
        for m in info.metadata:
            for kind in ("ge", "gt", "le", "lt"):
                limit = getattr(m, kind, None)
                if isinstance(m, annotated_types.BaseMetadata) and limit is not None:
                    out.append((name, kind, float(limit)))
    return out


def outside(model: type[BaseModel], name: str, kind: str, limit: float) -> Any:
    """A value just beyond the bound (an int for int fields)."""
    is_int = model.model_fields[name].annotation is int
    step = 1 if is_int else max(1e-3, abs(limit) * 1e-3)
    v = {"ge": limit - step, "gt": limit, "le": limit + step, "lt": limit}[kind]
    return int(v) if is_int else v


def yaml_problems(name: str, body: dict[str, Any]) -> list[str]:
    """Key paths of the problems parse_camera_config reports for ``analysers.<name>: body``."""
    try:
        parse_camera_config({"analysers": {name: body}})
    except ConfigError as exc:
        return [p.path for p in exc.problems]
    return []


def python_problems(model: type[BaseModel], body: dict[str, Any]) -> list[str]:
    try:
        model(**body)
    except ConfigError as exc:
        return [p.path for p in exc.problems]
    return []


def test_the_registry_holds_each_analysers_own_model():
    reg = registered_analysers()
    for name, model in OWN_MODELS.items():
        assert reg[name].params_model is model, name
        assert issubclass(model, AnalyserParams)
        assert model.model_config.get("extra") == "forbid" and model.model_config.get("frozen")


@pytest.mark.parametrize("name", sorted(OWN_MODELS))
def test_every_field_has_title_description_and_numeric_bounds(name):
    model = OWN_MODELS[name]
    bounded = {field for field, _, _ in bounds(model)}
    for field, info in model.model_fields.items():
        assert info.title and info.description, f"{name}.{field}"
        if info.annotation in (int, float):
            assert field in bounded, f"{name}.{field} has no bounds"


def _cases() -> list[tuple[str, str, str, float]]:
    return [(n, f, k, lim) for n, m in sorted(OWN_MODELS.items()) for f, k, lim in bounds(m)]


@pytest.mark.parametrize("name, field, kind, limit", _cases())
def test_a_bound_holds_alike_in_the_yaml_and_in_python(name, field, kind, limit):
    model = OWN_MODELS[name]
    base = {"enabled": True, **NEEDS.get(name, {})}
    bad = outside(model, field, kind, limit)
    # Refused at run time, naming the field ...
    assert field in python_problems(model, {**base, field: bad})
    # ... and refused in the camera YAML, naming its key path.
    assert f"analysers.{name}.{field}" in yaml_problems(name, {**base, field: bad})
    # The bound itself (where inclusive) is accepted by both, unless a cross-field rule of the
    # model (min < max, slow < fast) refuses it in both.
    if kind in ("ge", "le"):
        edge = int(limit) if model.model_fields[field].annotation is int else limit
        if field == "blur_ksize" and edge % 2 == 0:
            edge += 1 if kind == "ge" else -1
        in_python = python_problems(model, {**base, field: edge})
        in_yaml = yaml_problems(name, {**base, field: edge})
        assert bool(in_python) == bool(in_yaml), (in_python, in_yaml)
        assert field not in in_python and f"analysers.{name}.{field}" not in in_yaml


def test_debounce_bounds_are_one_and_the_same():
    # The example: on_s up to 3600 in the YAML but 600 at run time. Now 3600 in both.
    for name in ("smoke", "fire", "intrusion", "tamper", "black_smoke"):
        model = OWN_MODELS[name]
        body = {"enabled": True, **NEEDS.get(name, {}), "on_s": 3600, "off_s": 3600}
        assert model(**body).on_s == 3600.0
        assert yaml_problems(name, body) == []
        assert python_problems(model, {**body, "on_s": 3601}) == ["on_s"]
        assert yaml_problems(name, {**body, "on_s": 3601}) == [f"analysers.{name}.on_s"]


def test_yaml_values_arrive_at_run_time_unchanged():
    cfg = parse_camera_config(
        {"analysers": {"smoke": {"persist_s": 5, "warmup_s": 1.5, "chroma_max": 40}}}
    )
    params = cfg.enabled_analysers()["smoke"]
    assert params == SmokeParams(persist_s=5, warmup_s=1.5, chroma_max=40)
    # Every field is settable from the YAML, not only the few the old sections exposed.
    assert set(SmokeParams.model_fields) >= {"warmup_s", "diff_min", "edge_threshold"}


@pytest.mark.parametrize(
    "name, body, path",
    [
        ("tamper", {"covered_dark_max": 200, "covered_bright_min": 100}, "analysers.tamper"),
        ("intrusion", {"bg_tau_s": 10.0, "fg_tau_s": 5.0}, "analysers.intrusion"),
        ("smoke", {"bg_tau_s": 100.0, "fg_tau_s": 10.0}, "analysers.smoke"),
        ("stopped_vehicle", {"slow_alpha": 0.3}, "analysers.stopped_vehicle"),
        ("line_count", {"min_area": 0.3, "max_area": 0.2}, "analysers.line_count"),
        ("motion", {"blur_ksize": 4}, "analysers.motion.blur_ksize"),
        ("black_smoke", {"plume": [-1, 0, 5, 5]}, "analysers.black_smoke.plume"),
        ("line_count", {"line": [[5, 5], [5, 5]]}, "analysers.line_count.line"),
        ("fire", {"sparkle": 1}, "analysers.fire.sparkle"),
    ],
)
def test_cross_field_and_shape_rules_hold_alike(name, body, path):
    assert path in yaml_problems(name, body)
    with pytest.raises(ConfigError) as exc:
        OWN_MODELS[name](**body)
    assert exc.value.source == OWN_MODELS[name].__name__
    field = path.removeprefix(f"analysers.{name}").lstrip(".")
    assert field in [p.path for p in exc.value.problems]


def test_models_are_frozen_and_nan_is_refused():
    p = FireParams()
    with pytest.raises(ValidationError, match="frozen"):
        p.r_min = 10.0
    assert python_problems(SmokeParams, {"min_area": math.nan}) == ["min_area"]
    assert python_problems(MotionParams, {"threshold": "lots"}) == ["threshold"]


def test_opt_in_analysers_are_off_by_default_and_need_their_geometry():
    assert [n for n, m in OWN_MODELS.items() if not m().enabled] == [
        "black_smoke",
        "stopped_vehicle",
        "intrusion",
        "line_count",
    ]
    assert python_problems(BlackSmokeParams, {"enabled": True}) == [""]
    assert yaml_problems("line_count", {"enabled": True}) == ["analysers.line_count"]
