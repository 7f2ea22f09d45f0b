"""Frame sources against real things: an MP4 written with cv2.VideoWriter and a local HTTP
camera."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from farsight.errors import FarsightError, VideoSourceError
from video.sources import (
    Backoff,
    CaptureSource,
    Frame,
    MjpegSource,
    MultipartParser,
    SnapshotSource,
    SourceEvent,
    open_source,
)

W, H = 160, 120
BITS = 8
STAMP_BASE = 1_800_000_000.0  # a camera's capture times, far from the test's wall clock


def wait_until(
    cond: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def level_image(i: int) -> np.ndarray:
    """Frame ``i`` carries its index as 8 black/white vertical bands (bit 0 leftmost); survives
    lossy codecs."""
    img = np.zeros((H, W, 3), dtype=np.uint8)
    band = W // BITS
    for b in range(BITS):
        if (i >> b) & 1:
            img[:, b * band : (b + 1) * band] = 255
    return img


def index_of(img: np.ndarray) -> int:
    band = W // BITS
    return sum(
        1 << b for b in range(BITS) if img[:, b * band + 4 : (b + 1) * band - 4].mean() > 128
    )


def jpeg(i: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", level_image(i), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


# --------------------------------------------------------------------------- MP4 file


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (W, H))
    assert writer.isOpened()
    for i in range(50):
        writer.write(level_image(i))
    writer.release()
    assert path.stat().st_size > 0
    return path


def test_file_at_2fps_keeps_every_5th_frame_with_offsets(mp4: Path) -> None:
    src = CaptureSource(str(mp4), rate_fps=2.0)
    frames = list(src.frames())
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.index for f in frames] == list(range(0, 50, 5))
    assert [index_of(f.image) for f in frames] == list(range(0, 50, 5))
    assert [f.offset_s for f in frames] == pytest.approx([i / 10 for i in range(0, 50, 5)])
    assert frames[0].image.shape == (H, W, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].ts.tzinfo is not None
    assert frames[-1].ts - frames[0].ts == timedelta(seconds=4.5)
    # skipped frames were grabbed, never retrieved
    assert (src.stats.received, src.stats.decoded, src.stats.skipped) == (50, 10, 40)


def test_file_without_rate_yields_every_frame(mp4: Path) -> None:
    frames = list(open_source(str(mp4), None).frames())
    assert [f.index for f in frames] == list(range(50))
    assert [index_of(f.image) for f in frames] == list(range(50))


def test_file_close_stops_iteration(mp4: Path) -> None:
    src = CaptureSource(str(mp4))
    it = src.frames()
    first = next(it)
    src.close()
    assert isinstance(first, Frame)
    assert list(it) == []


def test_missing_file_and_bad_rate_raise(tmp_path: Path) -> None:
    with pytest.raises(VideoSourceError, match="not found"):
        CaptureSource(str(tmp_path / "nope.mp4"))
    with pytest.raises(VideoSourceError, match="rate_fps"):
        CaptureSource(str(tmp_path), rate_fps=0)
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video")
    with pytest.raises(VideoSourceError, match="cannot open"):
        list(CaptureSource(str(bogus)).frames())


# --------------------------------------------------------------------------- HTTP camera


class Camera:
    """A real HTTP camera on 127.0.0.1: /stream.mjpg (MJPEG), /nolen.mjpg, /markers,
    /snapshot.jpg."""

    def __init__(
        self, port: int = 0, fps: float = 20.0, corrupt: frozenset[int] = frozenset()
    ) -> None:
        self.port = port
        self.fps = fps
        self.corrupt = corrupt
        self.snapshots = 0
        self.fail_snapshots = False
        self.stamp_step: float | None = None  # X-Timestamp of part i: STAMP_BASE + i * step
        self._stopping = threading.Event()
        self._handlers: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Camera:
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                cam._handlers.append(threading.current_thread())
                if self.path.startswith("/snapshot"):
                    if cam.fail_snapshots:
                        self.send_error(503)
                        return
                    body = jpeg(cam.snapshots)
                    cam.snapshots += 1
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if self.path.startswith("/error"):
                    self.send_error(503)
                    return
                markers = self.path.startswith("/markers")
                with_len = not self.path.startswith("/nolen")
                self.send_response(200)
                ctype = (
                    "multipart/x-mixed-replace"
                    if markers
                    else 'multipart/x-mixed-replace; boundary="frame"'
                )
                self.send_header("Content-Type", ctype)
                self.end_headers()
                i = 0
                try:
                    while not cam._stopping.is_set():
                        body = (
                            b"\xff\xd8 garbage, not a jpeg \xff\xd9"
                            if i in cam.corrupt
                            else jpeg(i)
                        )
                        if markers:
                            part = body
                        else:
                            head = b"--frame\r\nContent-Type: image/jpeg\r\n"
                            if with_len:
                                head += b"Content-Length: %d\r\n" % len(body)
                            if cam.stamp_step is not None:
                                stamp = STAMP_BASE + i * cam.stamp_step
                                head += b"X-Timestamp: %.6f\r\n" % stamp
                            part = head + b"\r\n" + body + b"\r\n"
                        self.wfile.write(part)
                        self.wfile.flush()
                        i += 1
                        cam._stopping.wait(1.0 / cam.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
        for t in self._handlers:
            t.join(5)
            assert not t.is_alive()
        self._handlers.clear()


@pytest.fixture
def camera() -> Iterator[Camera]:
    cam = Camera().start()
    yield cam
    cam.stop()


class Consumer:
    """Iterates a source in a thread, collecting everything it yields."""

    def __init__(self, source) -> None:
        self.source = source
        self.items: list[Frame | SourceEvent] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.source.frames():
                self.items.append(item)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test
            self.error = exc

    def frames(self) -> list[Frame]:
        return [x for x in list(self.items) if isinstance(x, Frame)]

    def events(self) -> list[SourceEvent]:
        return [x for x in list(self.items) if isinstance(x, SourceEvent)]

    def stop(self, within: float = 2.0) -> float:
        t0 = time.monotonic()
        self.source.close()
        self.thread.join(within + 3)
        assert not self.thread.is_alive(), "frames() did not end after close()"
        assert self.error is None, self.error
        return time.monotonic() - t0


FAST = Backoff(initial_s=0.05, max_s=0.2, jitter=0.1)


@pytest.mark.parametrize("path", ["/stream.mjpg", "/nolen.mjpg", "/markers"])
def test_mjpeg_frames_decode_with_increasing_timestamps(camera: Camera, path: str) -> None:
    c = Consumer(MjpegSource(camera.url + path, rate_fps=None, timeout_s=5, backoff=FAST))
    try:
        wait_until(lambda: len(c.frames()) >= 8, what="8 frames")
    finally:
        c.stop()
    frames = c.frames()
    assert [index_of(f.image) for f in frames[:8]] == list(range(8))
    assert [f.index for f in frames[:8]] == list(range(8))
    ts = [f.ts for f in frames]
    assert all(a < b for a, b in itertools.pairwise(ts))
    assert all(t.utcoffset() == UTC.utcoffset(None) for t in ts)
    assert c.events() == []


def test_mjpeg_rate_limit_decodes_only_kept_parts(camera: Camera) -> None:
    src = MjpegSource(camera.url + "/stream.mjpg", rate_fps=5.0, timeout_s=5, backoff=FAST)
    c = Consumer(src)
    try:
        wait_until(lambda: len(c.frames()) >= 8, what="8 frames")
    finally:
        c.stop()
    frames = c.frames()[:8]
    span = (frames[-1].ts - frames[0].ts).total_seconds()
    rate = (len(frames) - 1) / span
    assert 3.5 < rate < 6.5, rate  # camera sends 20 fps
    gaps = [b.index - a.index for a, b in itertools.pairwise(frames)]
    assert all(g >= 2 for g in gaps), gaps
    assert src.stats.decoded == len(c.frames()) + src.stats.corrupt
    assert src.stats.skipped > 2 * src.stats.decoded


def test_mjpeg_corrupt_part_is_skipped_and_counted() -> None:
    cam = Camera(corrupt=frozenset({2, 5})).start()
    try:
        src = MjpegSource(cam.url + "/stream.mjpg", timeout_s=5, backoff=FAST)
        c = Consumer(src)
        try:
            wait_until(lambda: len(c.frames()) >= 6, what="6 frames")
        finally:
            c.stop()
    finally:
        cam.stop()
    assert [index_of(f.image) for f in c.frames()[:6]] == [0, 1, 3, 4, 6, 7]
    assert src.stats.corrupt == 2
    assert c.events() == []


def test_mjpeg_lost_once_then_restored_on_same_port() -> None:
    cam = Camera(fps=20).start()
    src = MjpegSource(cam.url + "/stream.mjpg", timeout_s=2, backoff=FAST)
    c = Consumer(src)
    try:
        wait_until(lambda: len(c.frames()) >= 3, what="first frames")
        cam.stop()
        wait_until(lambda: [e.kind for e in c.events()] == ["lost"], what="lost event")
        failures = src.stats.failures
        wait_until(lambda: src.stats.failures >= failures + 3, what="reconnect attempts")  # refused
        n_before = len(c.frames())
        cam.start()  # same port
        wait_until(lambda: len(c.frames()) >= n_before + 5, what="frames after restart")
    finally:
        c.stop()
        cam.stop()
    kinds = [x.kind if isinstance(x, SourceEvent) else "frame" for x in c.items]
    assert [k for k in kinds if k != "frame"] == ["lost", "restored"]
    lost_at, restored_at = kinds.index("lost"), kinds.index("restored")
    assert kinds[restored_at + 1] == "frame"
    assert all(k == "frame" for k in kinds[:lost_at])
    lost = c.events()[0]
    assert lost.detail and lost.ts.tzinfo is not None


def test_mjpeg_http_5xx_is_lost_not_raised(camera: Camera) -> None:
    c = Consumer(MjpegSource(camera.url + "/error", timeout_s=2, backoff=FAST))
    try:
        wait_until(lambda: c.events(), what="lost event")
        wait_until(lambda: c.source.stats.failures >= 3, what="retries")
    finally:
        c.stop()
    assert [(e.kind, e.detail) for e in c.events()] == [("lost", "HTTP 503")]


def test_close_ends_a_blocked_read_quickly() -> None:
    cam = Camera(fps=0.1).start()  # next part would come in 10 s
    try:
        c = Consumer(MjpegSource(cam.url + "/stream.mjpg", timeout_s=30, backoff=FAST))
        wait_until(lambda: len(c.frames()) == 1, what="first frame")
        time.sleep(0.05)  # let the consumer block in recv() (not waiting on anything)
        assert c.stop() < 1.0
        assert c.events() == []
    finally:
        cam.stop()


def test_close_during_backoff_is_quick() -> None:
    cam = Camera().start()
    url = cam.url
    cam.stop()  # nothing listens: connection refused
    src = MjpegSource(url + "/stream.mjpg", timeout_s=2, backoff=Backoff(initial_s=20, max_s=20))
    c = Consumer(src)
    wait_until(lambda: c.events(), what="lost event")
    assert c.stop() < 1.0
    assert [e.kind for e in c.events()] == ["lost"]


def test_snapshot_polls_at_interval_and_recovers(camera: Camera) -> None:
    src = SnapshotSource(camera.url + "/snapshot.jpg", interval_s=0.1, timeout_s=2, backoff=FAST)
    c = Consumer(src)
    try:
        wait_until(lambda: len(c.frames()) >= 4, what="4 snapshots")
        camera.fail_snapshots = True
        wait_until(lambda: c.events(), what="lost")
        wait_until(lambda: src.stats.failures >= 3, what="retries")
        camera.fail_snapshots = False
        wait_until(lambda: len(c.events()) == 2 and len(c.frames()) >= 6, what="restored")
    finally:
        c.stop()
    frames = c.frames()
    assert [index_of(f.image) for f in frames[:4]] == [0, 1, 2, 3]
    ts = [f.ts for f in frames]
    assert all(a < b for a, b in itertools.pairwise(ts))
    # polls are scheduled every 0.1 s without drift; stamps are taken when each response arrives
    span = (ts[3] - ts[0]).total_seconds()
    assert 0.25 <= span < 1.0, span
    assert [(e.kind, e.detail) for e in c.events()][:1] == [("lost", "HTTP 503")]
    assert [e.kind for e in c.events()] == ["lost", "restored"]


# --------------------------------------------------------------------------- factory and parser


def test_open_source_picks_class(mp4: Path) -> None:
    assert isinstance(open_source("mjpeg+http://cam.local/video", 2), MjpegSource)
    assert open_source("mjpeg+http://cam.local/video", 2).url == "http://cam.local/video"
    assert isinstance(open_source("http://cam.local/video.mjpg", 2), MjpegSource)
    snap = open_source("snapshot+https://cam.local/snap.jpg", 0.5)
    assert isinstance(snap, SnapshotSource) and snap.interval_s == pytest.approx(2.0)
    assert isinstance(open_source(str(mp4), 2), CaptureSource)
    assert isinstance(open_source("file://" + str(mp4), 2), CaptureSource)
    assert isinstance(open_source("rtsp://cam.local/stream1", 2), CaptureSource)


def test_open_source_unknown_scheme_lists_known() -> None:
    with pytest.raises(VideoSourceError) as info:
        open_source("ftp://cam.local/x", 1)
    assert (
        "ftp" in str(info.value) and "rtsp" in str(info.value) and "mjpeg+http" in str(info.value)
    )
    assert isinstance(info.value, FarsightError)
    with pytest.raises(VideoSourceError):
        open_source("", 1)


def test_parser_handles_parts_split_across_chunks() -> None:
    body = [jpeg(i) for i in range(3)]
    stream = (
        b"".join(b"--b\r\nContent-Type: image/jpeg\r\n\r\n" + p + b"\r\n" for p in body)
        + b"--b--\r\n"
    )
    parser = MultipartParser("b")
    out: list[bytes] = []
    for k in range(0, len(stream), 7):
        out += parser.feed(stream[k : k + 7])
    assert out == body


def test_parser_reads_part_capture_times() -> None:
    body = [jpeg(i) for i in range(3)]
    stamps = [b"X-Timestamp: 1700000000.250000\r\n", b"x-timestamp: soon\r\n", b""]
    stream = b"".join(
        b"--b\r\nContent-Type: image/jpeg\r\n" + h + b"\r\n" + p + b"\r\n"
        for h, p in zip(stamps, body, strict=True)
    )
    parts = MultipartParser("b").feed_parts(stream + b"--b--\r\n")
    assert [p.body for p in parts] == body
    assert [p.timestamp for p in parts] == [1700000000.25, None, None]


def test_mjpeg_camera_time_stamps_frames_and_rates_on_capture_times(camera: Camera) -> None:
    """A camera that plays twice as fast as real time (parts 0.1 s apart in its time, 0.05 s
    apart on the wire): frames carry its capture times and the 5 fps rate keeps every second
    part, whatever the wall clock says."""
    camera.stamp_step = 0.1
    src = MjpegSource(
        camera.url + "/stream.mjpg", rate_fps=5.0, timeout_s=5, backoff=FAST, camera_time=True
    )
    c = Consumer(src)
    try:
        wait_until(lambda: len(c.frames()) >= 6, what="6 frames")
    finally:
        c.stop()
    frames = c.frames()[:6]
    first = frames[0].index
    assert [f.index - first for f in frames] == [0, 2, 4, 6, 8, 10]
    assert [f.ts.timestamp() for f in frames] == pytest.approx(
        [STAMP_BASE + f.index * 0.1 for f in frames], abs=1e-5
    )
    assert [f.offset_s for f in frames] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_camera_time_refused_for_a_stream_opencv_reads() -> None:
    with pytest.raises(VideoSourceError, match="camera frame time"):
        open_source("rtsp://127.0.0.1:9/live", 5.0, camera_time=True)


def test_capture_live_url_rate_limits_and_reconnects() -> None:
    """OpenCV's FFmpeg backend reading the MJPEG camera: a live (unbounded) capture."""
    cam = Camera(fps=20).start()
    src = CaptureSource(cam.url + "/stream.mjpg", rate_fps=5.0, backoff=FAST)
    c = Consumer(src)
    try:
        wait_until(lambda: len(c.frames()) >= 5, what="live frames")
        cam.stop()
        wait_until(lambda: [e.kind for e in c.events()] == ["lost"], what="lost event")
        failures = src.stats.failures
        wait_until(lambda: src.stats.failures >= failures + 2, what="reopen attempts")
        n_before = len(c.frames())
        cam.start()
        wait_until(lambda: len(c.frames()) >= n_before + 3, what="frames after restart")
    finally:
        c.stop()
        cam.stop()
    frames = c.frames()[:5]
    rate = (len(frames) - 1) / (frames[-1].ts - frames[0].ts).total_seconds()
    assert 3.5 < rate < 6.5, rate
    assert src.stats.skipped > src.stats.decoded  # skipped frames grabbed, not retrieved
    assert [e.kind for e in c.events()] == ["lost", "restored"]


def test_parser_drops_oversized_part_and_recovers() -> None:
    parser = MultipartParser("b", max_part_bytes=4096)
    big = b"--b\r\nContent-Type: image/jpeg\r\n\r\n" + b"\x00" * 10_000
    assert parser.feed(big) == []
    assert parser.oversized == 1
    good = jpeg(3)
    out = parser.feed(b"\r\n--b\r\nContent-Length: %d\r\n\r\n" % len(good) + good + b"\r\n--b")
    assert out == [good]
