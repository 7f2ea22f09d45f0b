"""Simulated cameras served over HTTP: MJPEG streams and JPEG snapshots, as IP cameras serve them.

Each camera plays a :class:`~simulators.camera.ClipSpec` in real time, looping: a producer thread
per camera renders the next frame when it is due, encodes it once as JPEG and hands it to every
client (as Frigate's and go2rtc's restreamers do, so ten viewers cost one encode). A camera's
clip starts with the first request for it (as if switched on for its first viewer), so its
scripted events come at their offsets from when an analyser first looks.

Every frame carries its capture time (``X-Timestamp``, epoch seconds, on each MJPEG part and on
a snapshot, as mjpg-streamer sends it): the clip's offset from its start. With ``speed`` above 1
the clips play faster than real time and the capture times run ahead of the wall clock at the
same rate, so a consumer that measures time on them (``frame_time: camera``) sees the scripted
timeline, compressed into less wall time.

Endpoints, for camera ``NAME``:

- ``GET /NAME.mjpg``: ``multipart/x-mixed-replace`` stream, one JPEG part per frame;
- ``GET /NAME.jpg``: the latest frame;
- ``GET /``: JSON list of cameras with their scene, size, rate and loop length.

:meth:`CameraServer.cut` takes a camera off the air (its clients are disconnected and new
requests get 503) until :meth:`CameraServer.restore`: the stream-lost path of tests and demos.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import cv2
import numpy as np

from simulators.camera import ClipSpec, EventSpec, render_clip, scene_layout

log = logging.getLogger(__name__)

BOUNDARY = "farsightframe"


class _Feed:
    """The latest JPEG of one camera and a condition to wait for the next."""

    def __init__(self, name: str, spec: ClipSpec, quality: int) -> None:
        self.name = name
        self.spec = spec
        self.quality = quality
        self.jpeg: bytes | None = None
        self.stamp = 0.0  # capture time of ``jpeg``, epoch seconds
        self.seq = 0
        self.on_air = True
        self.cond = threading.Condition()
        self.frames = 0
        self.requested = threading.Event()  # the clip starts with the first request

    def publish(self, image: np.ndarray, stamp: float) -> None:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return
        with self.cond:
            self.jpeg, self.stamp, self.seq = buf.tobytes(), stamp, self.seq + 1
            self.frames += 1
            self.cond.notify_all()

    def wait_next(self, after: int, timeout: float) -> tuple[int, bytes | None, float]:
        """The frame after number ``after`` (sequence, JPEG or None when off the air, capture
        time)."""
        with self.cond:
            self.cond.wait_for(lambda: self.seq > after or not self.on_air, timeout=timeout)
            return self.seq, (self.jpeg if self.on_air else None), self.stamp


class CameraServer:
    """Serve simulated cameras on ``host:port`` (port 0: a free one, see :attr:`port`).

    Parameters
    ----------
    cameras : mapping of name -> ClipSpec
        Camera names are URL path segments (letters, digits, ``-_.``).
    quality : int
        JPEG quality of the served frames.
    speed : float
        Clip seconds played per wall-clock second (1: real time); capture times follow the
        clip, so they run ahead of the wall clock when above 1.
    """

    def __init__(
        self,
        cameras: dict[str, ClipSpec],
        host: str = "127.0.0.1",
        port: int = 0,
        quality: int = 85,
        speed: float = 1.0,
    ) -> None:
        for name in cameras:
            if not name or not all(c.isalnum() or c in "-_." for c in name):
                raise ValueError(f"camera name {name!r} must be letters, digits, '-', '_' or '.'")
        if not 0 < speed <= 100:
            raise ValueError(f"speed must be in (0, 100], got {speed!r}")
        self.speed = speed
        self.feeds = {name: _Feed(name, spec, quality) for name, spec in cameras.items()}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        bound_host, self.port = self._httpd.server_address[:2]
        # An AF_INET server's address is text; typeshed allows bytes for other families.
        self.host = bound_host if isinstance(bound_host, str) else bound_host.decode()

    def url(self, name: str, kind: str = "mjpg") -> str:
        """``http://host:port/NAME.mjpg`` (or ``.jpg``)."""
        return f"http://{self.host}:{self.port}/{name}.{kind}"

    def start(self) -> Self:
        """Start rendering and serving in background threads; returns self."""
        for feed in self.feeds.values():
            t = threading.Thread(
                target=self._produce, args=(feed,), name=f"camsim-{feed.name}", daemon=True
            )
            t.start()
            self._threads.append(t)
        t = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="camsim-http",
            daemon=True,
        )
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop serving and rendering."""
        self._stop.set()
        for feed in self.feeds.values():
            with feed.cond:
                feed.cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cut(self, name: str) -> None:
        """Take camera ``name`` off the air: clients are dropped, requests get 503."""
        feed = self.feeds[name]
        with feed.cond:
            feed.on_air = False
            feed.cond.notify_all()

    def restore(self, name: str) -> None:
        """Put camera ``name`` back on the air."""
        feed = self.feeds[name]
        with feed.cond:
            feed.on_air = True
            feed.cond.notify_all()

    def _produce(self, feed: _Feed) -> None:
        spec = feed.spec
        while not feed.requested.wait(0.2):
            if self._stop.is_set():
                return
        start, t0 = time.monotonic(), time.time()
        loop = 0
        while not self._stop.is_set():
            for t, image in render_clip(spec):
                clip_t = loop * spec.seconds + t
                delay = start + clip_t / self.speed - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                if delay < -1.0:  # fell behind (a slow machine): skip rather than play late
                    continue
                feed.publish(image, t0 + clip_t)
            loop += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            # Each MJPEG part is several small writes: with Nagle on they wait for the client's
            # delayed ACK (40 ms), which a real camera's stream does not.
            disable_nagle_algorithm = True

            def log_message(
                self, fmt: str, *args: Any
            ) -> None:  # quiet: tests and the demo run many
                log.debug("camsim " + fmt, *args)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].lstrip("/")
                if path == "":
                    body = json.dumps(
                        [
                            {
                                "name": f.name,
                                "scene": f.spec.scene,
                                "width": f.spec.width,
                                "height": f.spec.height,
                                "fps": f.spec.fps,
                                "loop_s": f.spec.seconds,
                                "speed": server.speed,
                                "on_air": f.on_air,
                            }
                            for f in server.feeds.values()
                        ]
                    ).encode()
                    return self._send(200, "application/json", body)
                name, _, ext = path.rpartition(".")
                feed = server.feeds.get(name)
                if feed is None or ext not in ("mjpg", "jpg"):
                    return self._send(404, "text/plain", b"no such camera\n")
                feed.requested.set()
                if not feed.on_air:
                    return self._send(503, "text/plain", b"camera off the air\n")
                if ext == "jpg":
                    _, jpeg, stamp = feed.wait_next(0, timeout=5.0)
                    return (
                        self._send(200, "image/jpeg", jpeg, stamp)
                        if jpeg
                        else self._send(503, "text/plain", b"no frame yet\n")
                    )
                self._stream(feed)

            def _send(self, code: int, ctype: str, body: bytes, stamp: float | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if stamp is not None:
                    self.send_header("X-Timestamp", f"{stamp:.6f}")
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, feed: _Feed) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                seq = 0
                try:
                    while not server._stop.is_set():
                        seq, jpeg, stamp = feed.wait_next(seq, timeout=2.0)
                        if jpeg is None:
                            if not feed.on_air:
                                return  # cut: drop the client, as a camera that loses power does
                            continue
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(jpeg)}\r\nX-Timestamp: {stamp:.6f}\r\n"
                            "\r\n".encode()
                        )
                        self.wfile.write(jpeg)
                        self.wfile.write(b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return

        return Handler


# --------------------------------------------------------------------------- demo cameras


@dataclass(frozen=True, slots=True)
class SimulatedCamera:
    """A demo camera: the site it watches, the clip it plays, the analyser settings that fit it."""

    site: str
    camera: str
    spec: ClipSpec
    analysers: dict[str, Any]


def demo_cameras(
    sites: dict[str, str],
    width: int = 640,
    height: int = 360,
    fps: float = 2.0,
    cycle_s: float = 600.0,
    seed: int = 2026,
) -> list[SimulatedCamera]:
    """Simulated cameras for the demo registry's camera sites, each with a scripted loop.

    ``sites`` maps site id -> site kind (``construction`` or ``stack``) of the sites that have a
    camera. Construction sites: one shows smoke from 20 s to 200 s of each loop (open burning),
    the other stays quiet. Stacks: one puffs black smoke at Ringelmann 3 from 40 s to 220 s; the
    other's camera is covered from 260 s to 440 s (the 2-minute cover-up rule).
    """
    out: list[SimulatedCamera] = []
    n_construction = n_stack = 0
    for i, (site, kind) in enumerate(sorted(sites.items())):
        events: tuple[EventSpec, ...] = ()
        analysers: dict[str, Any] = {"tamper": {}, "smoke": {}, "fire": {}}
        if kind == "construction":
            scene = "construction"
            if n_construction == 0:
                events = (
                    EventSpec(
                        "smoke",
                        20.0,
                        200.0,
                        (width * 15 // 32, height // 3, width // 4, height * 7 // 18),
                    ),
                )
            n_construction += 1
        elif kind == "stack":
            scene = "stack"
            sx, sy = scene_layout("stack", width, height).need_stack_top()
            plume = (sx - width // 10, sy - height // 4, width // 5, height // 4)
            sky = (sx - 3 * width // 10, sy - height // 4, width // 7, height // 4)
            analysers = {
                "tamper": {},
                "fire": {},
                "black_smoke": {"enabled": True, "plume": plume, "sky": sky},
            }
            if n_stack == 0:
                events = (EventSpec("covered", 260.0, 440.0),)
            else:
                events = (EventSpec("black_smoke", 40.0, 220.0, plume, grade=3),)
            n_stack += 1
        else:
            continue
        spec = ClipSpec(scene, width, height, fps, cycle_s, seed + i, events=events)
        out.append(SimulatedCamera(site, "cam1", spec, analysers))
    return out
