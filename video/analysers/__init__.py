"""Video analysers: per-camera state objects turning BGR frames into :class:`Finding` values.

Each analyser module holds its params model (pydantic, shared by the camera YAML and Python
callers; the shared bases are in :mod:`video.analysers.params`), the pure steps of its method
and the small state object that runs them frame by frame.
"""

from video.analysers.base import Analyser, Debounce, Finding, Zone, rasterise_polygons
from video.analysers.black_smoke import BlackSmokeDetector, BlackSmokeParams, ringelmann_grade
from video.analysers.fire import FireDetector, FireParams
from video.analysers.global_change import GlobalChangeDetector, GlobalChangeParams
from video.analysers.intrusion import IntrusionDetector, IntrusionParams
from video.analysers.line_count import LineCounter, LineCountParams
from video.analysers.motion import MotionDetector, MotionParams
from video.analysers.params import AnalyserParams
from video.analysers.smoke import SmokeDetector, SmokeParams
from video.analysers.stopped import StoppedVehicleDetector, StoppedVehicleParams
from video.analysers.tamper import TamperDetector, TamperParams

__all__ = [
    "Analyser",
    "AnalyserParams",
    "BlackSmokeDetector",
    "BlackSmokeParams",
    "Debounce",
    "Finding",
    "FireDetector",
    "FireParams",
    "GlobalChangeDetector",
    "GlobalChangeParams",
    "IntrusionDetector",
    "IntrusionParams",
    "LineCountParams",
    "LineCounter",
    "MotionDetector",
    "MotionParams",
    "SmokeDetector",
    "SmokeParams",
    "StoppedVehicleDetector",
    "StoppedVehicleParams",
    "TamperDetector",
    "TamperParams",
    "Zone",
    "rasterise_polygons",
    "ringelmann_grade",
]
