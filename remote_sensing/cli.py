"""``farsight rs detect`` and ``rs watch``: satellite change detection from the command line.

``rs detect BEFORE AFTER --out changes.geojson`` writes every change (or, with ``--zones``, the
changes touching a zone, unless ``--all``) as an RFC 7946 FeatureCollection, with quicklook PNGs
per change under ``--evidence`` and, with ``--quicklook``, before, after and mask PNGs of the
whole pair beside it. Each date may have its own ``--sensor`` (``landsat8,sentinel2``); the
bands both dates have are paired by wavelength where the instruments are known (from
``--sensor`` or the product metadata file beside the scene), and the output says which band
each role came from. ``rs watch DIR`` processes scenes as they arrive: each subfolder of ``DIR``
is an area of interest (or ``DIR`` itself when it holds the scenes); every new scene is paired
with the AOI's first (reference) scene, changes become revisit tracks (``possible``, then
``confirmed`` or ``expired`` by the confirmation policy: ``--confirm``, else the settings'
``remote_sensing.confirmation``), and each state change is appended to ``events.jsonl`` as a
ChangeRegion event.

:func:`add_rs_parser` adds the commands to the main CLI.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from farsight.errors import ConfigError, ConfigProblem, FarsightError
from farsight.types import ChangeEvent
from remote_sensing.bands import PairMatch
from remote_sensing.detect import DETECTORS
from remote_sensing.events import change_event
from remote_sensing.footprint import observer
from remote_sensing.io import (
    SENSOR_NAMES,
    match_scenes,
    open_scene,
    read_geojson,
    read_state,
    reading_env,
)
from remote_sensing.normalise import DEGRADED_CONFIDENCE, MIN_PIF_PIXELS
from remote_sensing.output import feature_collection, quicklook_writer, write_geojson, write_json
from remote_sensing.pair_quicklook import MAX_SIDE, write_quicklooks
from remote_sensing.pipeline import DetectOptions, PairResult, Region, detect_pair, in_zones
from remote_sensing.revisits import (
    DEFAULT_POLICY,
    ConfirmationPolicy,
    StateChange,
    from_json,
    parse_policy,
    to_json,
    update,
)
from remote_sensing.windowed import EXECUTORS
from remote_sensing.zones import Zone, parse_zones

log = logging.getLogger(__name__)

SCENE_SUFFIXES = (".tif", ".tiff")


def _bands(text: str | None) -> tuple[str, ...] | None:
    return tuple(b.strip() for b in text.split(",")) if text else None


def _scale(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        if len(parts) > 2:
            raise ValueError
        return float(parts[0]), float(parts[1]) if len(parts) == 2 else 0.0
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a scale, or scale,offset (e.g. 0.0001 or 0.0001,-0.1)"
        ) from None


def _sensors(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    unknown = [n for n in names if n not in SENSOR_NAMES]
    if unknown or not 1 <= len(names) <= 2:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give one sensor for both dates or BEFORE,AFTER; known:"
            f" {', '.join(SENSOR_NAMES)}"
        )
    return names


def _add_detect_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--zones",
        type=Path,
        default=None,
        metavar="ZONES.geojson",
        help="zones of interest (lon/lat polygons with id, name, kind)",
    )
    p.add_argument(
        "--all", action="store_true", help="with --zones, write changes outside every zone too"
    )
    p.add_argument(
        "--mmu-ha",
        type=float,
        default=0.25,
        metavar="H",
        help="minimum mapping unit in hectares (default 0.25)",
    )
    p.add_argument("--method", choices=DETECTORS, default="index", help="detector (default index)")
    p.add_argument(
        "--threshold",
        choices=("otsu", "em"),
        default="otsu",
        help="automatic CVA threshold (default otsu)",
    )
    p.add_argument(
        "--min-change",
        type=float,
        default=0.015,
        metavar="R",
        help="cva/imad: smallest change reported, as the root-mean-square reflectance difference"
        " per band (default 0.015; it also rises with the pair's own noise; 0 turns it off)",
    )
    p.add_argument(
        "--pif",
        choices=("residual", "imad"),
        default="residual",
        help="how pseudo-invariant pixels are chosen for the normalisation: iterated robust"
        " regression residuals, or iMAD no-change probability (default residual)",
    )
    p.add_argument(
        "--min-pif-pixels",
        type=int,
        default=MIN_PIF_PIXELS,
        metavar="N",
        help="pseudo-invariant pixels the linear normalisation needs; with fewer the after date"
        f" is histogram-matched instead, at lower confidence (default {MIN_PIF_PIXELS})",
    )
    p.add_argument(
        "--sensor",
        type=_sensors,
        default=None,
        metavar="S[,S_AFTER]",
        help="band order preset when bands are not described, or the instrument when bands are"
        " named by number (B2, B02): roles by wavelength; BEFORE,AFTER for two sensors, e.g."
        " landsat8,sentinel2 (default: the product metadata file beside the scene)",
    )
    p.add_argument(
        "--bands",
        default=None,
        metavar="ROLES",
        help="band roles in file order, e.g. blue,green,red,nir,swir1,swir2 ('-' to skip a band)",
    )
    p.add_argument(
        "--scale",
        type=_scale,
        default=None,
        metavar="S[,OFFSET]",
        help="reflectance = value * S + OFFSET for every band (default: the file's scale and"
        " offset, else guessed from the data type and range)",
    )
    p.add_argument(
        "--workers", type=int, default=1, metavar="N", help="threads for blocks (default 1)"
    )
    p.add_argument(
        "--executor", choices=EXECUTORS, default="threads", help="block executor (default threads)"
    )
    p.add_argument(
        "--block",
        type=int,
        default=1024,
        metavar="PX",
        help="block size, rounded up to whole tiles (default 1024)",
    )
    p.add_argument(
        "--evidence",
        type=Path,
        default=None,
        metavar="DIR",
        help="store quicklook PNGs here, content-addressed",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (there is none anyway when stderr is not a terminal)",
    )


QueueOpener = Callable[
    [Path | None, str, Path | None],
    tuple[Path, Callable[[ChangeEvent], None], Callable[[], None]],
]
"""``(config, department, evidence) -> (evidence root, on_change, close)``: where ``rs watch
--queue`` sends change events (the rule engine and the risk queue, wired by the composition
root)."""


def add_rs_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    open_queue: QueueOpener | None = None,
) -> None:
    """Add ``rs detect`` and ``rs watch`` to the main CLI; ``rs watch --queue`` is offered when
    ``open_queue`` is given."""
    p = sub.add_parser("rs", help="satellite change detection: scene pairs to change polygons")
    actions = p.add_subparsers(dest="rs_command", metavar="ACTION", required=True)

    d = actions.add_parser("detect", help="detect changes between two scenes; write GeoJSON")
    d.add_argument("before", type=Path, metavar="BEFORE", help="earlier scene (GeoTIFF/COG)")
    d.add_argument("after", type=Path, metavar="AFTER", help="later scene (GeoTIFF/COG)")
    d.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="changes.geojson",
        help="output FeatureCollection",
    )
    d.add_argument(
        "--quicklook",
        action="store_true",
        help="also write OUT-STEM_before.png, _after.png and _mask.png beside the GeoJSON: the"
        f" whole pair in true colour, long side at most {MAX_SIDE} px, both dates on one stretch"
        " after the normalisation the detection used; the mask paints each change written over"
        " the dimmed after image: new construction red, vegetation loss orange, bare soil"
        " magenta, water gain blue, water loss cyan, unclassified white",
    )
    _add_detect_options(d)
    d.set_defaults(func=_cmd_detect)

    w = actions.add_parser("watch", help="process new scenes per area of interest as they arrive")
    w.add_argument(
        "dir",
        type=Path,
        metavar="DIR",
        help="folder of scenes, or of one subfolder of scenes per AOI",
    )
    w.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        metavar="OUT",
        help="results, state and events (default DIR/_rs)",
    )
    w.add_argument("--once", action="store_true", help="process what is there and exit")
    w.add_argument(
        "--confirm",
        default=None,
        metavar="POLICY",
        help="when a change is confirmed: first_later (its first sighting in a later scene), or"
        " KofN (e.g. 2of4: K of the next N later scenes that observed its area must see it;"
        " after N such scenes without K sightings it expires). Default: the settings'"
        f" remote_sensing.confirmation, built in {DEFAULT_POLICY.describe()}",
    )
    w.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds between scans (default 60)",
    )
    if open_queue is not None:
        w.add_argument(
            "--queue",
            action="store_true",
            help="raise each state change as an alert in the risk queue (the database of"
            " --config), quicklooks into its evidence store",
        )
        w.add_argument(
            "--department",
            default="env",
            metavar="D",
            help="department of the alerts with --queue (default env)",
        )
    _add_detect_options(w)
    w.set_defaults(func=_cmd_watch, open_queue=open_queue)
    if open_queue is None:
        # Parser-level defaults override the arguments' own: set only where there are none.
        w.set_defaults(queue=False, department="")


def _options(args: argparse.Namespace, both: bool = False) -> DetectOptions:
    sensors: tuple[str | None, ...] = args.sensor or (None,)
    if len(sensors) > 1 and not both:
        raise ConfigError(
            [ConfigProblem("--sensor", list(sensors), "rs watch takes one sensor for every scene")],
            "rs watch",
        )
    return DetectOptions(
        method=args.method,
        threshold=args.threshold,
        mmu_ha=args.mmu_ha,
        workers=args.workers,
        executor=args.executor,
        block=args.block,
        sensor=sensors[0],
        bands=_bands(args.bands),
        scale=args.scale,
        min_change=args.min_change,
        pif_weights=args.pif,
        min_pif_pixels=args.min_pif_pixels,
    )


def _zones(path: Path | None) -> tuple[Zone, ...]:
    return parse_zones(read_geojson(path), str(path)) if path else ()


PROGRESS_MIN_BLOCKS = 8
"""Runs of fewer blocks than this finish too quickly for a bar to tell anything."""


@contextmanager
def _progress(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a tqdm bar of blocks on stderr.

    tqdm leaves the bar out when stderr is not a terminal (a log file, a pipe, a service), as
    does ``--no-progress``; the bar is closed when the run ends, failed or not.
    """
    bar: tqdm[Any] | None = None

    def show(done: int, total: int) -> None:
        nonlocal bar
        if not enabled or total < PROGRESS_MIN_BLOCKS:
            return
        if bar is None:
            # disable=None: tqdm's own test, off when the stream is not a TTY.
            bar = tqdm(total=total, desc=label, unit="block", file=sys.stderr, disable=None)
        bar.update(done - bar.n)

    try:
        yield show
    finally:
        if bar is not None:
            bar.close()


def _check_inputs(*paths: Path) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(
            [
                ConfigProblem("scene", str(p), "file not found; give a GeoTIFF or COG path")
                for p in missing
            ],
            "rs detect",
        )


def tune_process() -> None:
    """Keep freed block buffers in the process heap, and OpenCV to one thread per caller.

    Every block allocates the same few dozen arrays of a few MB; glibc serves each from a fresh
    mmap and unmaps it on free, so every block pays its page faults again (a third of the CPU
    time in profiles). Raising the mmap and trim thresholds, with one arena for all threads,
    makes the heap reuse them (a no-op where glibc is not the C library). Blocks already run in
    parallel: OpenCV's own thread pool on top only oversubscribes the cores.
    """
    import ctypes
    import ctypes.util

    import cv2

    cv2.setNumThreads(1)
    name = ctypes.util.find_library("c")
    if not name or sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
        libc.mallopt(m_mmap_threshold, 256 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 512 * 1024 * 1024)
        # Worker threads would get arenas of their own, capped at 64 MB and returned to the OS
        # as they shrink: one arena keeps every thread's buffers reusable (few, large allocations,
        # so its lock is uncontended).
        libc.mallopt(m_arena_max, 1)
    except (OSError, AttributeError):
        pass


def _cmd_detect(args: argparse.Namespace) -> int:
    _check_inputs(args.before, args.after)
    tune_process()
    opts = _options(args, both=True)
    zones = _zones(args.zones)
    ql = quicklook_writer(args.evidence) if args.evidence else None
    sensors = args.sensor or (None,)
    with reading_env():
        # Each date with its own sensor; then only the roles both dates have, by wavelength.
        sb = open_scene(args.before, sensors[0], opts.bands, opts.scale)
        sa = open_scene(args.after, sensors[-1], opts.bands, opts.scale)
    sb, sa, match = match_scenes(sb, sa)
    with _progress("rs detect", not args.no_progress) as progress:
        result = detect_pair(sb, sa, opts, zones=zones, quicklook=ql, progress=progress)
    chosen = result.regions if not zones or args.all else in_zones(result.regions)
    fc = feature_collection(result, chosen)
    fc["properties"]["band_match"] = band_match_properties(match)
    fc["properties"]["metadata"] = {
        "before": str(sb.sidecar) if sb.sidecar else None,
        "after": str(sa.sidecar) if sa.sidecar else None,
    }
    write_geojson(args.out, fc)
    grid = f"{result.grid.width}x{result.grid.height}"
    print(
        f"{len(chosen)} changes written to {args.out} ({len(result.regions)} detected; grid {grid})"
    )
    print(summary_line(result, chosen))
    print(radiometry_line(result))
    for line in match.lines():
        print(line)
    if args.quicklook:
        paths = write_quicklooks(result, chosen, args.out)
        print("quicklook: " + ", ".join(str(p) for p in paths))
    norm = result.calibration.normalisation
    if norm.degraded:
        print(
            f"normalisation: {norm.describe()}: too few pseudo-invariant pixels, the after date"
            f" was histogram-matched to the before date; confidences x{DEGRADED_CONFIDENCE}"
        )
    if "nir" not in result.before.roles or "nir" not in result.after.roles:
        print(
            "bands: no nir on both dates: vegetation and water changes cannot be told;"
            f" kinds possible: {', '.join(result.kinds_possible)}"
        )
    return 0


def summary_line(result: PairResult, chosen: Sequence[Region]) -> str:
    """``summary: 3 changes (new_construction 2, vegetation_loss 1), 1.84 ha; 4.1 % of the
    compared pixels masked (...); radiometry reflectance``: what a user who is not running the
    platform reads first (the radiometry line below says how each date's kind was decided)."""
    kinds = Counter(r.kind for r in chosen)
    by_kind = ", ".join(
        f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    area_ha = sum(r.area_m2 for r in chosen) / 10_000
    masked = 100 * result.calibration.masked_fraction
    head = f"{len(chosen)} change{'' if len(chosen) == 1 else 's'}"
    if by_kind:
        head += f" ({by_kind})"
    kinds_of = {
        s.radiometry.kind if s.radiometry else "unknown" for s in (result.before, result.after)
    }
    guessed = any(
        s.radiometry is not None and s.radiometry.relative for s in (result.before, result.after)
    )
    radiometry = "/".join(sorted(kinds_of)) + (" (guessed)" if guessed else "")
    return (
        f"summary: {head}, {area_ha:.2f} ha; {masked:.1f} % of the compared pixels masked"
        f" (cloud, shadow, saturation); radiometry {radiometry}"
    )


def band_match_properties(match: PairMatch) -> dict[str, Any]:
    """How the two dates' bands were paired: by wavelength or by name, the band each role came
    from on each date, and the roles dropped with why."""
    return {
        "by_wavelength": match.by_wavelength,
        "roles": {
            r: {"before": b.describe(), "after": a.describe()}
            for r, b, a in zip(match.roles, match.before, match.after)
        },
        "dropped": dict(match.dropped),
    }


def radiometry_line(result: PairResult) -> str:
    """``radiometry: before dn-8bit (guessed from range); after ...``: what the numbers were
    taken to be, so a user can tell a wrong guess and pass ``--scale`` or ``--sensor``."""
    parts = [
        f"{name} {s.radiometry.describe() if s.radiometry else 'unknown'}"
        for name, s in (("before", result.before), ("after", result.after))
    ]
    return "radiometry: " + "; ".join(parts)


def _is_scene(p: Path) -> bool:
    # Simulator truth masks sit beside the scenes; they are not scenes.
    return p.is_file() and p.suffix.lower() in SCENE_SUFFIXES and not p.stem.endswith("_clouds")


def _scenes_by_aoi(root: Path) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise ConfigError(
            [ConfigProblem("DIR", str(root), "not a folder; give the folder scenes arrive in")],
            "rs watch",
        )
    out: dict[str, list[Path]] = {}
    direct = sorted(p for p in root.iterdir() if _is_scene(p))
    if direct:
        out[root.name] = direct
    for sub in sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    ):
        files = sorted(p for p in sub.iterdir() if _is_scene(p))
        if files:
            out[sub.name] = files
    return out


def event_json(change: StateChange, result: PairResult) -> dict[str, Any]:
    """One revisit state change as a JSON ChangeRegion event for the rule engine and the queue."""
    cr = change.region.to_change_region(change.track.aoi, result.before_time, result.after_time)
    return {
        "type": "change_region",
        "state": change.track.state,
        "previous": change.previous,
        "track": change.track.id,
        "sightings": change.track.sightings,
        "ts": change.ts.isoformat(),
        "change": {
            "aoi": cr.aoi,
            "kind": cr.kind,
            "geometry": cr.geometry,
            "area_m2": cr.area_m2,
            "centroid": asdict(cr.centroid),
            "confidence": cr.confidence,
            "before": cr.before.isoformat(),
            "after": cr.after.isoformat(),
            "evidence": list(cr.evidence),
        },
        "zones": [asdict(z) for z in change.region.zones],
    }


def watch_once(
    root: Path,
    out_dir: Path,
    opts: DetectOptions,
    zones: tuple[Zone, ...] = (),
    all_changes: bool = False,
    evidence: Path | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    on_change: Callable[[ChangeEvent], None] | None = None,
    department: str = "",
    show_progress: bool = False,
    policy: ConfirmationPolicy = DEFAULT_POLICY,
) -> list[dict[str, Any]]:
    """Process every scene not yet processed under ``root``; return the events emitted.

    ``policy`` says when a track is confirmed or expires; a later scene counts as a look at a
    track only where the pair observed its area (data on both dates, no cloud or shadow).

    ``on_event`` receives each event's JSON; ``on_change`` its
    :class:`~farsight.types.ChangeEvent` (for the rule engine's ``change_region`` rules);
    ``show_progress`` draws a bar per scene pair on stderr when it is a terminal (the CLI's
    choice; library callers such as the demo stay quiet).

    State (tracks and the scenes done per AOI) lives in ``out_dir/rs-state.json``; events are
    appended to ``out_dir/events.jsonl``. A scene that cannot be read is logged and skipped, not
    retried forever: it is recorded as done with its error.
    """
    state_path = out_dir / "rs-state.json"
    doc = read_state(state_path)
    tracks = from_json(doc)
    done: dict[str, dict[str, Any]] = doc.get("scenes", {})
    events: list[dict[str, Any]] = []
    ql = quicklook_writer(evidence or out_dir / "evidence")
    for aoi, files in _scenes_by_aoi(root).items():
        seen = done.setdefault(aoi, {})
        dated = []
        for f in files:
            try:
                s = open_scene(f, opts.sensor, opts.bands, opts.scale)
            except FarsightError as exc:
                if f.name not in seen:
                    log.warning("rs watch skip aoi=%s scene=%s error=%s", aoi, f.name, exc)
                    seen[f.name] = {"error": str(exc)}
                continue
            dated.append((s.acquired.isoformat() if s.acquired else f.name, f, s))
        dated.sort(key=lambda x: x[0])
        # Every later scene is compared with the AOI's first (reference) scene, so a lasting
        # change is seen again in each later scene and its track gets confirmed.
        for _, f, scene in dated[1:]:
            prev = dated[0][2]
            if f.name in seen:
                continue
            try:
                with _progress(f"rs watch {aoi}/{f.name}", show_progress) as progress:
                    result = detect_pair(
                        prev, scene, opts, zones=zones, quicklook=ql, progress=progress
                    )
            except FarsightError as exc:
                log.warning("rs watch failed aoi=%s scene=%s error=%s", aoi, f.name, exc)
                seen[f.name] = {"error": str(exc)}
                continue
            chosen = result.regions if not zones or all_changes else in_zones(result.regions)
            tracks, changes = update(
                tracks, chosen, aoi, result.after_time, policy, observed=observer(result, opts)
            )
            states = {c.region.id: c.track.state for c in changes}
            write_geojson(
                out_dir / aoi / f"{f.stem}.geojson", feature_collection(result, chosen, states)
            )
            new_events = [event_json(c, result) for c in changes]
            if new_events:
                (out_dir).mkdir(parents=True, exist_ok=True)
                with open(out_dir / "events.jsonl", "a", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in new_events)
            for c, e in zip(changes, new_events):
                if on_event:
                    on_event(e)
                if on_change:
                    on_change(change_event(c, result.before_time, result.after_time, department))
            events += new_events
            seen[f.name] = {
                "before": prev.path.name,
                "regions": len(chosen),
                "events": len(new_events),
            }
            log.info(
                "rs watch aoi=%s scene=%s regions=%d events=%d",
                aoi,
                f.name,
                len(chosen),
                len(new_events),
            )
        if dated and dated[0][1].name not in seen:
            seen[dated[0][1].name] = {"first": True}
        write_json(state_path, {**to_json(tracks), "scenes": done})
    write_json(state_path, {**to_json(tracks), "scenes": done})
    return events


def watch_policy(confirm: str | None, config: Path | None) -> ConfirmationPolicy:
    """The confirmation policy of ``rs watch``: ``--confirm`` when given, else the settings'
    ``remote_sensing.confirmation`` (of ``--config`` and ``FARSIGHT__*`` variables)."""
    if confirm:
        return parse_policy(confirm)
    from farsight.settings import load_settings

    c = load_settings(config).remote_sensing.confirmation
    return ConfirmationPolicy(c.rule, c.k, c.n)


def _cmd_watch(args: argparse.Namespace) -> int:
    tune_process()
    opts = _options(args)
    policy = watch_policy(args.confirm, getattr(args, "config", None))
    zones = _zones(args.zones)
    out_dir = args.out_dir or args.dir / "_rs"
    evidence, on_change, close = args.evidence, None, None
    if args.queue:
        evidence, on_change, close = args.open_queue(
            getattr(args, "config", None), args.department, args.evidence
        )
    try:
        while True:
            events = watch_once(
                args.dir,
                out_dir,
                opts,
                zones,
                args.all,
                evidence,
                on_change=on_change,
                department=args.department,
                show_progress=not args.no_progress,
                policy=policy,
            )
            print(
                f"rs watch: {len(events)} events; state in {out_dir / 'rs-state.json'}", flush=True
            )
            if args.once:
                return 0
            time.sleep(args.interval)
    finally:
        if close is not None:
            close()
