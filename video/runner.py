"""``farsight video run``: live cameras analysed in a pool of processes, findings published over
MQTT.

Layout, from the frames out:

- **Worker processes** (``workers``, spawned, one OpenCV thread each) run cameras, one thread per
  camera (a camera thread mostly waits for its stream). Each camera thread opens its source,
  runs a :class:`~video.pipeline.CameraPipeline` and sends what a frame produced (detections,
  explicitly ended findings, finished clips, stream lost/restored) to the parent. Snapshots and
  clips are written by the worker straight into the evidence store under the data directory.
- **The parent** keeps one :class:`~video.episodes.EpisodeTracker` per camera, publishes start,
  keep-alive and cleared messages on ``fs/v1/{dept}/{site}/{camera}/detection`` at QoS 1, and
  ticks every tracker once a second so that keep-alives and clears go out even when a stream
  delivers nothing. A stream that is lost becomes a latched ``stream_lost`` finding; its
  restoration clears it. Keep-alives and clears are timed on the camera's own time
  (:class:`CameraClock`: its frames' timestamps, running on with the wall clock between frames),
  like the analysers, so a stream played faster than real time gives the same messages.
- **Hot reload**: the camera folder (one YAML file per camera) is polled; a changed file is
  validated first; a valid one restarts that camera with the new settings, an invalid one is
  logged with every key path and the camera keeps running on its last good settings. New files
  start cameras, removed files stop them (their open findings are cleared).
- A worker process that dies is started again with its cameras.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, TypeAlias

from farsight.errors import ConfigError, FarsightError
from farsight.logs import kv
from farsight.settings import BrokerSettings
from video.camera_config import CameraConfig, load_camera_config
from video.episodes import EpisodeTracker

log = logging.getLogger(__name__)

WorkerQueue: TypeAlias = "Queue[Any]"
"""A queue between the runner and a worker process: commands in, per-frame results out."""

TICK_S = 1.0
"""Longest interval between two ticks of the trackers and polls of the camera folder."""
PARENT_CHECK_S = 1.0
"""How often an idle worker checks that its parent is still there."""
WORKER_STOP_S = 15.0
"""How long stopping waits for a worker to stop its cameras before it is killed."""
CAMERA_SUFFIXES = (".yaml", ".yml")


def detection_topic(dept: str, site: str, camera: str) -> str:
    """Where a camera's findings are published."""
    return f"fs/v1/{dept}/{site}/{camera}/detection"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


@dataclass(slots=True)
class CameraClock:
    """A camera's time, in epoch seconds, as its frames tell it.

    Between frames (a lost stream, the quiet frames a worker does not report) it runs on with
    the wall clock; it never goes back, so every message of a camera is later than the one
    before it.
    """

    t: float | None = None
    """The camera's time when it was last read; None before its first frame."""
    at: float = 0.0
    """Monotonic wall seconds at which ``t`` was read."""

    def now(self, mono: float, fallback: float) -> float:
        """The camera's time at monotonic ``mono``; ``fallback`` (epoch) before any frame."""
        return fallback if self.t is None else self.t + max(0.0, mono - self.at)

    def frame(self, t: float, mono: float) -> float:
        """A frame measured at ``t`` arrived at monotonic ``mono``; returns the camera's time."""
        self.t = t if self.t is None else max(t, self.now(mono, t))
        self.at = mono
        return self.t


# --------------------------------------------------------------------------- worker side


def _camera_thread(
    name: str,
    config: CameraConfig,
    evidence_root: str | None,
    out: WorkerQueue,
    stop: threading.Event,
    sources: dict[str, Any],
) -> None:
    """Run one camera until ``stop`` is set; report each frame's results to ``out``."""
    from video.evidence import EvidenceStore
    from video.pipeline import CameraPipeline
    from video.sources import SourceEvent, open_source

    store = EvidenceStore(evidence_root) if evidence_root else None
    try:
        pipeline = CameraPipeline(config, store)
        source = open_source(
            config.source, config.rate_fps, camera_time=config.frame_time == "camera"
        )
    except FarsightError as exc:
        out.put(("error", name, str(exc)))
        return
    sources[name] = source
    frames = 0
    try:
        for item in source.frames():
            if stop.is_set():
                break
            if isinstance(item, SourceEvent):
                pipeline.reset()
                out.put(("source", name, item.kind, item.ts.isoformat(), item.detail))
                continue
            obs = pipeline.process(item)
            frames += 1
            if obs or pipeline.cleared or pipeline.finished_clips or frames % 25 == 0:
                rows = [o.as_dict() for o in obs]
                for r in rows:
                    r.pop("offset_s", None)  # a live stream has no meaningful offset
                out.put(
                    (
                        "frame",
                        name,
                        item.ts.isoformat(),
                        rows,
                        list(pipeline.cleared),
                        dict(pipeline.finished_clips),
                        frames,
                    )
                )
        else:
            if not stop.is_set():  # a finite source (a file) ran out
                out.put(("ended", name))
    except Exception as exc:  # a camera thread must never take its worker down
        log.exception("camera failed", extra=kv(camera=name))
        out.put(("error", name, f"{type(exc).__name__}: {exc}"))
    finally:
        sources.pop(name, None)
        source.close()


def _worker_main(inbox: WorkerQueue, out: WorkerQueue, evidence_root: str | None) -> None:
    """A worker process: start and stop camera threads as the parent asks; end with the parent.

    The parent stops its workers (a message, then a deadline), so a Ctrl-C, which a terminal
    sends to the whole process group, is ignored here; the parent started this process with
    SIGINT blocked, so none arrived before this choice. A parent that dies without stopping its
    workers (SIGKILL, a crash) is noticed within :data:`PARENT_CHECK_S`.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    import cv2

    cv2.setNumThreads(1)
    threads: dict[str, tuple[threading.Thread, threading.Event]] = {}
    sources: dict[str, Any] = {}

    def stop_camera(name: str) -> None:
        entry = threads.pop(name, None)
        if entry is None:
            return
        thread, stop = entry
        stop.set()
        src = sources.get(name)
        if src is not None:
            src.close()  # unblocks a thread waiting on its stream
        thread.join(timeout=10)

    parent = mp.parent_process()
    while True:
        try:
            msg = inbox.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                log.error("video worker's parent is gone; stopping")
                out.cancel_join_thread()  # nobody reads it now: exit without flushing it
                break
            continue
        if msg[0] == "exit":
            break
        if msg[0] == "stop":
            stop_camera(msg[1])
            out.put(("stopped", msg[1]))
        elif msg[0] == "start":
            _, name, config = msg
            stop_camera(name)
            stop = threading.Event()
            t = threading.Thread(
                target=_camera_thread,
                args=(name, config, evidence_root, out, stop, sources),
                name=f"camera-{name}",
                daemon=True,
            )
            threads[name] = (t, stop)
            t.start()
    for name in list(threads):
        stop_camera(name)


# --------------------------------------------------------------------------- parent side


@dataclass(slots=True)
class CameraState:
    """What the parent knows of one camera."""

    name: str
    config: CameraConfig
    dept: str
    worker: int
    mtime: float = 0.0
    status: str = "starting"  # starting | running | lost | ended | error | stopped
    frames: int = 0
    error: str = ""
    tracker: EpisodeTracker = field(default_factory=EpisodeTracker)
    clock: CameraClock = field(default_factory=CameraClock)

    def now(self) -> tuple[float, str]:
        """The camera's time now: epoch seconds (the tracker's clock) and ISO 8601."""
        t = self.clock.now(time.monotonic(), time.time())
        return t, _iso(t)


@dataclass(slots=True)
class RunnerStats:
    """Counters for metrics and tests."""

    published: int = 0
    detections: int = 0
    cleared: int = 0
    reloads: int = 0
    rejected_reloads: int = 0
    worker_restarts: int = 0


class VideoRunner:
    """Runs a folder of cameras (or a list of configs) and publishes their findings.

    Parameters
    ----------
    broker : BrokerSettings
        Where findings are published.
    departments : mapping of site id -> department code
        A camera of a site not in it is refused (its topic would be refused by ingest).
    cameras_dir : Path, optional
        Folder of camera YAML files, watched for changes.
    configs : list of CameraConfig, optional
        Fixed cameras (no file, no reload), e.g. the demo's simulated ones.
    evidence_root : Path, optional
        Evidence store root (``<data_dir>/evidence``); none stores no snapshots.
    workers, resend_s, clear_after_s : see :class:`farsight.settings.VideoSettings`.
    client_id : str
        MQTT client id.
    reload_poll_s : float
        How often the camera folder is polled for changes (at most :data:`TICK_S`).
    """

    def __init__(
        self,
        broker: BrokerSettings,
        departments: dict[str, str],
        *,
        cameras_dir: Path | None = None,
        configs: list[CameraConfig] | None = None,
        evidence_root: Path | None = None,
        workers: int = 1,
        resend_s: float = 5.0,
        clear_after_s: float = 3.0,
        client_id: str = "farsight-video",
        reload_poll_s: float = 1.0,
    ) -> None:
        if cameras_dir is None and not configs:
            raise ConfigError("video run needs a camera folder or camera configs")
        if not min(resend_s, clear_after_s, reload_poll_s) > 0:
            raise ConfigError(
                "resend_s, clear_after_s and reload_poll_s must be > 0, got "
                f"{resend_s}, {clear_after_s}, {reload_poll_s}"
            )
        if cameras_dir is not None and not Path(cameras_dir).is_dir():
            raise ConfigError(
                f"camera folder {str(cameras_dir)!r} does not exist; "
                "create it and put one CAMERA.yaml per camera in it"
            )
        self.broker = broker
        self.departments = dict(departments)
        self.cameras_dir = Path(cameras_dir) if cameras_dir is not None else None
        self.fixed = list(configs or [])
        self.evidence_root = str(evidence_root) if evidence_root is not None else None
        self.n_workers = workers
        self.resend_s = resend_s
        self.clear_after_s = clear_after_s
        self.client_id = client_id
        self.reload_poll_s = reload_poll_s
        # Trackers are ticked at least twice per keep-alive and clear interval (a keep-alive is
        # at most half an interval late) and the folder is polled as often as asked.
        self.tick_s = min(TICK_S, reload_poll_s, resend_s / 2, clear_after_s / 2)
        self.cameras: dict[str, CameraState] = {}
        self._refused: dict[str, tuple[float, str]] = {}  # file stem -> (mtime, why)
        self.stats = RunnerStats()
        self._ctx = mp.get_context("spawn")
        self._out: Any = None
        self._workers: list[tuple[BaseProcess, WorkerQueue]] = []  # (process, inbox)
        self._client: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Connect to the broker, start the workers and the cameras; returns at once."""
        from farsight.mqttclient import connect, make_client

        self._client = make_client(self.broker, self.client_id, persistent=False)
        connect(self._client, self.broker, persistent=False)  # starts the network loop too
        self._out = self._ctx.Queue()
        for i in range(self.n_workers):
            self._workers.append(self._spawn(i))
        for cfg in self.fixed:
            self._add(f"{cfg.site}.{cfg.camera}", cfg, 0.0)
        if self.cameras_dir is not None:
            self._scan()
        for target, name in ((self._pump, "video-pump"), (self._tick_loop, "video-tick")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop cameras and workers; clear every open finding; disconnect."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        for _, inbox in self._workers:
            inbox.put(("exit",))
        # Read what the workers still send while they stop their cameras: a worker exits only
        # once its queue's pipe is flushed, and a full pipe that nobody reads would hold it.
        deadline = time.monotonic() + WORKER_STOP_S
        while any(proc.is_alive() for proc, _ in self._workers) and time.monotonic() < deadline:
            try:
                self._handle(self._out.get(timeout=0.1))
            except queue.Empty:
                continue
            except (EOFError, OSError):
                break
            except Exception:  # one bad message must not keep the workers running
                log.exception("video message failed while stopping")
        for proc, _ in self._workers:
            if proc.is_alive():
                proc.kill()
            proc.join(timeout=5)
        with self._lock:
            for cam in self.cameras.values():
                self._publish(cam, cam.tracker.end_all(cam.now()[1]))
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()

    def _spawn(self, index: int) -> tuple[Any, Any]:
        inbox = self._ctx.Queue()
        proc = self._ctx.Process(
            target=_worker_main,
            args=(inbox, self._out, self.evidence_root),
            name=f"farsight-video-{index}",
            daemon=True,
        )
        # The child inherits the signal mask: a Ctrl-C while it imports OpenCV stays pending
        # until _worker_main has chosen to ignore it (multiprocessing's resource tracker is
        # started the same way).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return proc, inbox

    # -- cameras ----------------------------------------------------------------------

    def _least_loaded(self) -> int:
        load = [0] * self.n_workers
        for cam in self.cameras.values():
            load[cam.worker] += 1
        return min(range(self.n_workers), key=load.__getitem__)

    def _send_start(self, cam: CameraState) -> None:
        self._workers[cam.worker][1].put(("start", cam.name, cam.config))

    def _check(self, cfg: CameraConfig) -> str:
        dept = self.departments.get(cfg.site)
        if dept is None:
            raise ConfigError(
                f"site {cfg.site!r} is not in the site registry; fix `site` or register the site"
            )
        if not cfg.source:
            raise ConfigError("`source` is empty; set the camera's stream URL or file")
        return dept

    def _add(self, name: str, cfg: CameraConfig, mtime: float) -> None:
        dept = self._check(cfg)
        with self._lock:
            old = self.cameras.get(name)
            if old is not None:
                self._publish(old, old.tracker.end_all(old.now()[1]))
            worker = old.worker if old is not None else self._least_loaded()
            cam = CameraState(
                name,
                cfg,
                dept,
                worker,
                mtime,
                tracker=EpisodeTracker(self.resend_s, self.clear_after_s),
            )
            self.cameras[name] = cam
        self._send_start(cam)
        log.info(
            "camera started", extra=kv(camera=name, site=cfg.site, source=cfg.source, worker=worker)
        )

    def _remove(self, name: str) -> None:
        with self._lock:
            cam = self.cameras.pop(name, None)
            if cam is None:
                return
            self._publish(cam, cam.tracker.end_all(cam.now()[1]))
        self._workers[cam.worker][1].put(("stop", name))
        log.info("camera removed", extra=kv(camera=name))

    def _scan(self) -> None:
        """Start, restart or stop cameras after their files changed."""
        assert self.cameras_dir is not None
        seen: set[str] = set()
        for path in sorted(self.cameras_dir.iterdir()):
            if path.suffix.lower() not in CAMERA_SUFFIXES or not path.is_file():
                continue
            name = path.stem
            seen.add(name)
            try:
                mtime = path.stat().st_mtime_ns / 1e9
            except OSError:
                continue
            cam = self.cameras.get(name)
            if cam is not None and cam.mtime == mtime:
                continue
            if name in self._refused and self._refused[name][0] == mtime:
                continue
            try:
                cfg = load_camera_config(path)
                self._check(cfg)
            except ConfigError as exc:
                self._refused[name] = (mtime, str(exc))
                self.stats.rejected_reloads += cam is not None
                log.error(
                    "camera file refused; the camera keeps its last good settings"
                    if cam
                    else "camera file refused",
                    extra=kv(file=str(path), error=str(exc)),
                )
                continue
            self._refused.pop(name, None)
            if cam is not None and cam.config == cfg:
                cam.mtime = mtime  # touched, not changed
                continue
            if cam is not None:
                self.stats.reloads += 1
            self._add(name, cfg, mtime)
        for name in [n for n in self.cameras if n not in seen and not self._is_fixed(n)]:
            self._remove(name)
        for name in [n for n in self._refused if n not in seen]:
            self._refused.pop(name, None)

    def _is_fixed(self, name: str) -> bool:
        return any(f"{c.site}.{c.camera}" == name for c in self.fixed)

    # -- messages from workers ----------------------------------------------------------

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._out.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            try:
                self._handle(msg)
            except Exception:  # one bad message must not stop the publisher
                log.exception("video message failed", extra=kv(kind=msg[0] if msg else None))

    def _handle(self, msg: tuple) -> None:
        kind, name = msg[0], msg[1]
        with self._lock:
            cam = self.cameras.get(name)
            if cam is None:
                return
            if kind == "frame":
                _, _, ts, rows, cleared, clips, frames = msg
                cam.status, cam.frames = "running", frames
                for r in rows:
                    r["site"], r["camera"] = cam.config.site, cam.config.camera
                for k, sha in clips.items():
                    cam.tracker.add_evidence(k, sha)
                now = cam.clock.frame(datetime.fromisoformat(ts).timestamp(), time.monotonic())
                self._publish(cam, cam.tracker.update(now, ts, rows, [tuple(c) for c in cleared]))
            elif kind == "source":
                _, _, event, event_ts, detail = msg
                # The camera's time, not the worker's wall clock: a sped-up camera runs ahead.
                now = cam.clock.now(time.monotonic(), datetime.fromisoformat(event_ts).timestamp())
                ts = _iso(now)
                if event == "lost":
                    cam.status = "lost"
                    out = cam.tracker.end_all(ts)
                    lost = {
                        "kind": "stream_lost",
                        "site": cam.config.site,
                        "camera": cam.config.camera,
                        "confidence": 1.0,
                        "ts": ts,
                        "bbox": None,
                        "zone": None,
                        "evidence": [],
                        "detail": {"state": "active", "reason": str(detail)[:200]},
                    }
                    out += cam.tracker.update(now, ts, [lost])
                else:
                    cam.status = "running"
                    out = cam.tracker.update(now, ts, [], [("stream_lost", None)])
                self._publish(cam, out)
                log.warning("camera stream %s", event, extra=kv(camera=name, detail=detail))
            elif kind == "error":
                cam.status, cam.error = "error", msg[2]
                log.error("camera failed", extra=kv(camera=name, error=msg[2]))
            elif kind == "ended":
                cam.status = "ended"
                self._publish(cam, cam.tracker.end_all(cam.now()[1]))

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            with self._lock:
                for cam in self.cameras.values():
                    self._publish(cam, cam.tracker.tick(*cam.now()))
            self._supervise()
            if self.cameras_dir is not None:
                try:
                    self._scan()
                except OSError as exc:
                    log.error(
                        "camera folder unreadable",
                        extra=kv(folder=str(self.cameras_dir), error=exc),
                    )

    def _supervise(self) -> None:
        for i, (proc, _) in enumerate(self._workers):
            if proc.is_alive() or self._stop.is_set():
                continue
            log.error(
                "video worker died; starting it again", extra=kv(worker=i, exitcode=proc.exitcode)
            )
            self._workers[i] = self._spawn(i)
            self.stats.worker_restarts += 1
            for cam in list(self.cameras.values()):
                if cam.worker == i:
                    self._send_start(cam)

    def _publish(self, cam: CameraState, messages: list[dict[str, Any]]) -> None:
        topic = detection_topic(cam.dept, cam.config.site, cam.config.camera)
        for m in messages:
            self._client.publish(
                topic, json.dumps(m, ensure_ascii=False, separators=(",", ":")), qos=1
            )
            self.stats.published += 1
            if m.get("state") == "cleared":
                self.stats.cleared += 1
            else:
                self.stats.detections += 1

    @property
    def problems(self) -> dict[str, str]:
        """Camera file stem -> why its latest version was refused."""
        return {name: why for name, (_, why) in self._refused.items()}

    def status(self) -> list[dict[str, Any]]:
        """One row per camera: name, site, status, frames analysed, open findings, last error."""
        with self._lock:
            return [
                {
                    "camera": c.name,
                    "site": c.config.site,
                    "status": c.status,
                    "frames": c.frames,
                    "open": sorted(k for k, _ in c.tracker.active),
                    "error": c.error,
                }
                for c in self.cameras.values()
            ]
