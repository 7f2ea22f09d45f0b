"""Parameter models of the video analysers: the shared bases and the fields they share.

Each analyser's params model (``MotionParams``, ``SmokeParams``, ...) is a pydantic model that
lives beside its analyser and serves both the camera YAML (``analysers.<name>``, validated by
:mod:`video.camera_config`) and Python callers, so it has one set of bounds. The models here
hold what several analysers share:

* :class:`AnalyserParams`: strict keys, frozen, the ``enabled`` switch of the camera YAML, and
  construction from Python that raises :class:`~farsight.errors.ConfigError` naming each field;
* :class:`Debounced`: ``on_s`` / ``off_s``;
* :class:`Downscaled`: ``analysis_height`` (smoke, fire, tamper);
* :class:`ChangeGuarded`: ``global_change``, the share of changed pixels that means the view
  itself changed;
* :class:`ForegroundParams`: ``resize_height``, ``blur_ksize`` and ``threshold`` of the
  background-difference analysers (motion, stopped vehicle, intrusion, line count);
* :class:`AdaptiveBackground`: ``bg_tau_s`` / ``fg_tau_s`` of a selectively updated background.

Where an analyser needs another default for a shared field it re-declares the field with the
same factory (``threshold: int = threshold_field(14)``), so title, description and bounds stay
in one place.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from farsight.errors import ConfigError
from farsight.settings import validation_problems


class AnalyserParams(BaseModel):
    """Base of every analyser's params model: strict keys, frozen, and ``enabled``.

    ``enabled`` is read by the camera config only (which analysers a camera runs); the
    analysers ignore it. Constructing a model in Python with a bad value raises
    :class:`~farsight.errors.ConfigError` naming each bad field; the camera YAML validates with
    ``model_validate`` and reports the same problems under ``analysers.<name>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    enabled: bool = Field(True, title="Enabled", description="Run this analyser on this camera.")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = validation_problems(exc, data)
            raise ConfigError(problems, source=type(self).__name__) from None


def opt_in_field(why: str) -> Any:
    """``enabled`` of an analyser that is off unless a camera configures it (``why``: because)."""
    return Field(False, title="Enabled", description=f"Off unless configured: {why}")


# --------------------------------------------------------------------------- debounce


def on_s_field(default: float) -> Any:
    """Seconds a condition must hold before it is reported."""
    return Field(
        default,
        title="Debounce on",
        description="Seconds a condition must hold before it is reported.",
        ge=0,
        le=3600,
    )


def off_s_field(default: float) -> Any:
    """Seconds a condition must be false before it clears."""
    return Field(
        default,
        title="Debounce off",
        description="Seconds a condition must be false before it clears.",
        ge=0,
        le=3600,
    )


class Debounced(AnalyserParams):
    """A condition reported after holding ``on_s`` and cleared after ``off_s`` without it."""

    on_s: float = on_s_field(1.0)
    off_s: float = off_s_field(2.0)


# --------------------------------------------------------------------------- analysis size


class Downscaled(AnalyserParams):
    """Analysers that downscale every frame to ``analysis_height`` (smoke, fire, tamper)."""

    analysis_height: int = Field(
        180,
        title="Analysis height",
        description="Height in pixels of the downscaled image every check runs on.",
        ge=32,
        le=1080,
    )


class ChangeGuarded(AnalyserParams):
    """Analysers that restart their background when most of the view changes at once."""

    global_change: float = Field(
        0.5,
        title="Global change",
        description=(
            "Changed share of the frame above which the view itself changed (lights, camera "
            "moved or covered): the background restarts and nothing is reported."
        ),
        gt=0,
        le=1,
    )


def blur_ksize_field(default: int) -> Any:
    """Odd Gaussian kernel size at analysis resolution (1 disables)."""
    return Field(
        default,
        title="Blur kernel",
        description="Odd Gaussian kernel size at analysis resolution (1 disables).",
        ge=1,
        le=31,
    )


def threshold_field(default: int) -> Any:
    """Difference counted as change (grey level, or the largest colour channel difference)."""
    return Field(
        default,
        title="Change threshold",
        description=(
            "Difference from the background counted as change: grey levels, or the largest "
            "per-channel difference for the colour models."
        ),
        ge=1,
        le=255,
    )


class ForegroundParams(ChangeGuarded):
    """Background-difference analysers: analysis height, blur and change threshold.

    Motion and stopped vehicle keep these defaults; intrusion and line count re-declare
    ``blur_ksize`` and ``threshold`` with their own.
    """

    resize_height: int = Field(
        180,
        title="Analysis height",
        description="Height in pixels frames are downscaled to; the width keeps the aspect ratio.",
        ge=16,
        le=2160,
    )
    blur_ksize: int = blur_ksize_field(5)
    threshold: int = threshold_field(25)

    @field_validator("blur_ksize")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("must be odd")
        return v


def bg_tau_field(default: float) -> Any:
    """Background time constant where nothing is foreground."""
    return Field(
        default,
        title="Background time constant",
        description="Seconds over which the background follows change where nothing is foreground.",
        ge=0.1,
        le=3600,
    )


def fg_tau_field(default: float) -> Any:
    """Background time constant under foreground (at least ``bg_tau_s``)."""
    return Field(
        default,
        title="Foreground time constant",
        description=(
            "Slower time constant of the background under foreground (at least bg_tau_s), so "
            "what stays a while is not learned at once."
        ),
        ge=0.1,
        le=36_000,
    )


class AdaptiveBackground(AnalyserParams):
    """A selectively updated background: fast (``bg_tau_s``) where nothing is foreground, slow
    (``fg_tau_s``) under it. Each analyser re-declares both with its own defaults."""

    bg_tau_s: float = bg_tau_field(10.0)
    fg_tau_s: float = fg_tau_field(600.0)

    @model_validator(mode="after")
    def _fg_slower(self) -> AdaptiveBackground:
        if self.fg_tau_s < self.bg_tau_s:
            raise ValueError(
                f"fg_tau_s ({self.fg_tau_s:g}) must be >= bg_tau_s ({self.bg_tau_s:g})"
            )
        return self


def ordered(low: str, a: float, high: str, b: float, *, strict: bool = True) -> None:
    """Raise ValueError unless ``a < b`` (``a <= b`` when not ``strict``): a cross-field check."""
    if not (a < b if strict else a <= b):
        raise ValueError(f"need {low} {'<' if strict else '<='} {high}, got {a!r}, {b!r}")
