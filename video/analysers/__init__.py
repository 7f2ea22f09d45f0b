"""Video analysers: per-camera state objects turning BGR frames into :class:`Finding` values."""

from video.analysers.base import Analyser, Debounce, Finding, Zone, rasterise_polygons
from video.analysers.motion import MotionDetector, MotionParams
from video.analysers.tamper import TamperDetector, TamperParams

__all__ = [
    "Analyser",
    "Debounce",
    "Finding",
    "MotionDetector",
    "MotionParams",
    "TamperDetector",
    "TamperParams",
    "Zone",
    "rasterise_polygons",
]

# Smoke, fire and stack black smoke (appended; see the modules for the methods).
from video.analysers.black_smoke import BlackSmokeDetector, BlackSmokeParams, ringelmann_grade
from video.analysers.fire import FireDetector, FireParams
from video.analysers.smoke import SmokeDetector, SmokeParams

__all__ += [
    "BlackSmokeDetector",
    "BlackSmokeParams",
    "FireDetector",
    "FireParams",
    "SmokeDetector",
    "SmokeParams",
    "ringelmann_grade",
]
from video.analysers.stopped import StoppedVehicleDetector, StoppedVehicleParams  # noqa: E402

__all__ += ["StoppedVehicleDetector", "StoppedVehicleParams"]
from video.analysers.intrusion import IntrusionDetector, IntrusionParams  # noqa: E402
from video.analysers.line_count import LineCounter, LineCountParams  # noqa: E402

__all__ += ["IntrusionDetector", "IntrusionParams", "LineCountParams", "LineCounter"]
