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
