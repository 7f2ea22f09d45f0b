"""Camera frame sources: OpenCV captures (files, RTSP), MJPEG over HTTP and JPEG snapshots.

Every source implements :class:`FrameSource`: ``frames()`` yields :class:`Frame` objects, and
for live sources :class:`SourceEvent` markers (``lost`` / ``restored``) when the link drops and
comes back. Flaky links never raise out of ``frames()``: they become a ``lost`` event and a
reconnect with exponential backoff and jitter. Only the frames the analysis rate needs are
decoded: skipped capture frames are ``grab()``-ed but not ``retrieve()``-d, skipped MJPEG parts
are never passed to the JPEG decoder.

Time: by default a live frame is stamped when it arrives (``clock.now()``) and its offset is
monotonic time since the source opened. An HTTP source opened with ``camera_time=True`` stamps
each frame with the capture time the camera sends (the ``X-Timestamp`` header, epoch seconds, of
an MJPEG part or a snapshot response, as mjpg-streamer and the simulated cameras send it), and
measures offsets and the analysis rate on those stamps: a stream played faster than real time
then gives the analysers the same timeline as one played live.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, TypedDict, Unpack
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np

from farsight.clock import Clock, SystemClock
from farsight.errors import VideoSourceError
from farsight.logs import kv

log = logging.getLogger(__name__)

EventKind = Literal["lost", "restored"]

# JPEG start/end of image markers (ITU-T T.81, Annex B.1.1.3).
_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: BGR uint8 image, UTC timestamp, offset from source start, source index.

    ``index`` counts frames in the source sequence, skipped ones included, so gaps show the
    decimation (every 5th frame of a file gives 0, 5, 10, ...).
    """

    image: np.ndarray
    ts: datetime
    offset_s: float
    index: int

    def __post_init__(self) -> None:
        if not isinstance(self.image, np.ndarray) or self.image.dtype != np.uint8:
            raise ValueError("Frame.image must be a uint8 numpy array")
        if self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"Frame.image must be HxWx3 BGR, got shape {self.image.shape}")
        if self.ts.tzinfo is None:
            raise ValueError("Frame.ts must be timezone-aware (UTC)")
        if self.offset_s < 0:
            raise ValueError(f"Frame.offset_s must be >= 0, got {self.offset_s}")
        if self.index < 0:
            raise ValueError(f"Frame.index must be >= 0, got {self.index}")


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """A change in link state: ``lost`` when the stream goes away, ``restored`` when frames flow
    again."""

    kind: EventKind
    ts: datetime
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("lost", "restored"):
            raise ValueError(f"SourceEvent.kind must be 'lost' or 'restored', got {self.kind!r}")
        if self.ts.tzinfo is None:
            raise ValueError("SourceEvent.ts must be timezone-aware (UTC)")


class FrameSource(Protocol):
    """Anything that yields frames (and link events) until closed or exhausted."""

    def frames(self) -> Iterator[Frame | SourceEvent]: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class SourceStats:
    """Counters for one source (read them for metrics; written only by the iterating thread)."""

    received: int = 0  # frames/parts seen on the wire or grabbed
    decoded: int = 0  # frames passed to the decoder (retrieve / imdecode)
    skipped: int = 0  # frames dropped by the rate limiter without decoding
    corrupt: int = 0  # parts that failed to decode
    connects: int = 0  # successful connections (HTTP sources)
    failures: int = 0  # failed connection attempts or dropped streams


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with multiplicative jitter:
    ``min(max_s, initial_s*factor**n) * (1±jitter)``."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s:
            raise ValueError("Backoff needs 0 < initial_s <= max_s")
        if self.factor < 1:
            raise ValueError("Backoff.factor must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("Backoff.jitter must be in [0, 1)")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        base = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        return base * (1.0 + self.rng.uniform(-self.jitter, self.jitter))


def _check_rate(rate_fps: float | None) -> None:
    if rate_fps is not None and not rate_fps > 0:
        raise VideoSourceError(f"rate_fps must be > 0 or None, got {rate_fps!r}")


def _decode_jpeg(data: bytes) -> np.ndarray | None:
    """Decode JPEG bytes to BGR uint8, or None if they are not a decodable image."""
    if not data.startswith(_SOI):
        return None
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if img is None or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        return None
    return img


def _header_time(value: bytes | str | None) -> float | None:
    """An ``X-Timestamp`` value (epoch seconds, ``1700000000.123456``) or None if unusable."""
    if value is None:
        return None
    try:
        t = float(value)
    except ValueError:
        return None
    return t if t > 0 and t != float("inf") else None


class _RateGate:
    """Keep at most ``rate_fps`` frames per second of the caller's time (None keeps all)."""

    def __init__(self, rate_fps: float | None) -> None:
        self._period = None if rate_fps is None else 1.0 / rate_fps
        self._next = float("-inf")

    def due(self, now: float) -> bool:
        # A frame on its slot to within rounding (capture times of a camera at an exact
        # multiple of the rate) is on time, not a period late.
        return self._period is None or now >= self._next - self._period * 1e-3

    def kept(self, now: float) -> None:
        if self._period is None:
            return
        # Keep the schedule (no drift) unless we fell behind by more than a period.
        nxt = self._next + self._period
        self._next = nxt if nxt > now else now + self._period


# --------------------------------------------------------------------------- OpenCV capture


class CaptureSource:
    """Frames from ``cv2.VideoCapture``: a video file, or a live RTSP/HTTP URL.

    Finite sources (frame count known, e.g. a file) are decimated by frame count: with file fps
    ``f`` and ``rate_fps`` ``r`` every ``k = round(f / r)``-th frame is retrieved, the others are
    only grabbed; ``offset_s = index / f`` (``CAP_PROP_POS_MSEC`` if fps is unknown) and
    ``ts = clock.now() at open + offset``; end of file ends the iterator. Live sources are
    decimated by wall time, stamped with ``clock.now()`` and reopened with backoff on failure.
    """

    def __init__(
        self,
        url_or_path: str,
        rate_fps: float | None = None,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_rate(rate_fps)
        target = url_or_path.removeprefix("file://")
        scheme = urlsplit(target).scheme
        self._is_path = len(scheme) <= 1  # no scheme, or a Windows drive letter
        if self._is_path and not os.path.isfile(target):
            raise VideoSourceError(f"video file not found: {target}")
        self.target = target
        self.rate_fps = rate_fps
        self.stats = SourceStats()
        self._clock = clock or SystemClock()
        self._backoff = backoff or Backoff()
        self._monotonic = monotonic
        self._stop = threading.Event()

    def close(self) -> None:
        """Stop iteration at the next frame boundary (thread-safe)."""
        self._stop.set()

    stop = close

    def _open(self) -> cv2.VideoCapture | None:
        try:
            cap = cv2.VideoCapture(self.target)
        except cv2.error as exc:
            log.warning("capture open failed", extra=kv(source=self.target, error=exc))
            return None
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def frames(self) -> Iterator[Frame | SourceEvent]:
        cap = self._open()
        if cap is None and self._is_path:
            raise VideoSourceError(f"cannot open video file: {self.target}")
        # Local files always end at EOF (some containers report no frame count); URLs only if
        # bounded.
        if cap is not None and (self._is_path or cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0):
            try:
                yield from self._finite(cap)
            finally:
                cap.release()
            return
        yield from self._live(cap)

    def _finite(self, cap: cv2.VideoCapture) -> Iterator[Frame]:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        k = 1
        if self.rate_fps is not None and fps > 0:
            k = max(1, round(fps / self.rate_fps))
        t0 = self._clock.now()
        index = -1
        while not self._stop.is_set():
            if not cap.grab():
                return  # end of file
            index += 1
            self.stats.received += 1
            if index % k:
                self.stats.skipped += 1
                continue
            ok, img = cap.retrieve()
            self.stats.decoded += 1
            if not ok or img is None:
                self.stats.corrupt += 1
                continue
            offset = index / fps if fps > 0 else max(0.0, cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
            yield Frame(_as_bgr(img), t0 + timedelta(seconds=offset), offset, index)

    def _live(self, cap: cv2.VideoCapture | None) -> Iterator[Frame | SourceEvent]:
        start = self._monotonic()
        gate = _RateGate(self.rate_fps)
        index = -1
        lost = False
        attempt = 0
        try:
            while not self._stop.is_set():
                if cap is None:
                    detail = "open failed"
                else:
                    ok = cap.grab()
                    if ok:
                        index += 1
                        self.stats.received += 1
                        if not gate.due(self._monotonic()):
                            self.stats.skipped += 1
                            continue
                        ok, img = cap.retrieve()
                        self.stats.decoded += 1
                        if not ok or img is None:
                            self.stats.corrupt += 1
                            continue
                        gate.kept(self._monotonic())
                        if lost:
                            lost = False
                            yield SourceEvent("restored", self._clock.now(), self.target)
                        attempt = 0
                        yield Frame(
                            _as_bgr(img), self._clock.now(), self._monotonic() - start, index
                        )
                        continue
                    detail = "stream ended"
                    cap.release()
                    cap = None
                self.stats.failures += 1
                if not lost:
                    lost = True
                    log.warning("stream lost", extra=kv(source=self.target, detail=detail))
                    yield SourceEvent("lost", self._clock.now(), detail)
                if self._stop.wait(self._backoff.delay(attempt)):
                    return
                attempt += 1
                cap = self._open()
        finally:
            if cap is not None:
                cap.release()


def _as_bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img, dtype=np.uint8)


# --------------------------------------------------------------------------- HTTP sources


class _StreamLost(Exception):
    """Internal: the HTTP stream went away; the message is the detail for the ``lost`` event."""


@dataclass(frozen=True, slots=True)
class Part:
    """One multipart body and the capture time its ``X-Timestamp`` header gave (None: none)."""

    body: bytes
    timestamp: float | None = None


class MultipartParser:
    """Incremental splitter for ``multipart/x-mixed-replace`` bodies (RFC 2046 §5.1.1).

    With a ``boundary`` parts are cut at the delimiter (using ``Content-Length`` when the part
    has one); with ``boundary=None`` JPEGs are cut at SOI/EOI markers instead. Parts larger than
    ``max_part_bytes`` are dropped and counted in ``oversized``.
    """

    def __init__(self, boundary: str | None, max_part_bytes: int = 16 * 1024 * 1024) -> None:
        self._delim = None
        if boundary:
            # Some cameras put the leading dashes in the header parameter already.
            self._delim = (boundary if boundary.startswith("--") else "--" + boundary).encode(
                "latin-1"
            )
        self._max = max_part_bytes
        self._buf = bytearray()
        self._state = "seek"  # seek -> headers -> body
        self._length: int | None = None
        self._timestamp: float | None = None
        self.oversized = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Bodies of the parts that ``data`` completed."""
        return [p.body for p in self.feed_parts(data)]

    def feed_parts(self, data: bytes) -> list[Part]:
        """Parts (body and header timestamp) that ``data`` completed."""
        self._buf += data
        out: list[Part] = []
        if self._delim is None:
            self._feed_markers(out)
        else:
            self._feed_boundary(out)
        if len(self._buf) > self._max:
            self.oversized += 1
            self._buf.clear()
            self._state = "seek"
        return out

    def _feed_markers(self, out: list[Part]) -> None:
        while True:
            soi = self._buf.find(_SOI)
            if soi < 0:
                # keep a trailing 0xFF that may start the next SOI
                del self._buf[: max(0, len(self._buf) - 1)]
                return
            eoi = self._buf.find(_EOI, soi + 2)
            if eoi < 0:
                del self._buf[:soi]
                return
            out.append(Part(bytes(self._buf[soi : eoi + 2])))
            del self._buf[: eoi + 2]

    def _feed_boundary(self, out: list[Part]) -> None:
        assert self._delim is not None
        while True:
            if self._state == "seek":
                pos = self._buf.find(self._delim)
                if pos < 0:
                    del self._buf[: max(0, len(self._buf) - len(self._delim))]
                    return
                eol = self._buf.find(b"\n", pos)
                if eol < 0:
                    del self._buf[:pos]
                    return
                del self._buf[: eol + 1]
                self._state = "headers"
            elif self._state == "headers":
                end, sep = self._buf.find(b"\r\n\r\n"), 4
                lf = self._buf.find(b"\n\n")
                if lf >= 0 and (end < 0 or lf < end):
                    end, sep = lf, 2
                if self._buf.startswith(b"\r\n"):  # part with no headers
                    end, sep = 0, 2
                if end < 0:
                    return
                self._length = self._timestamp = None
                for line in bytes(self._buf[:end]).split(b"\n"):
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        try:
                            self._length = int(value.strip())
                        except ValueError:
                            self._length = None
                    elif name == b"x-timestamp":
                        self._timestamp = _header_time(value.strip())
                del self._buf[: end + sep]
                self._state = "body"
            else:
                if self._length is not None and self._length >= 0:
                    if len(self._buf) < self._length:
                        return
                    out.append(Part(bytes(self._buf[: self._length]), self._timestamp))
                    del self._buf[: self._length]
                else:
                    pos = self._buf.find(self._delim)
                    if pos < 0:
                        return
                    body = bytes(self._buf[:pos])
                    if body.endswith(b"\r\n"):
                        body = body[:-2]
                    elif body.endswith(b"\n"):
                        body = body[:-1]
                    out.append(Part(body, self._timestamp))
                    del self._buf[:pos]
                self._state = "seek"


def _boundary_of(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"') or None
    return None


class _HttpSource:
    """Shared connect / lost / restored / backoff loop for the HTTP sources."""

    def __init__(
        self,
        url: str,
        rate_fps: float | None,
        timeout_s: float,
        backoff: Backoff | None,
        clock: Clock | None,
        monotonic: Callable[[], float],
        headers: dict[str, str] | None,
        camera_time: bool = False,
    ) -> None:
        _check_rate(rate_fps)
        if urlsplit(url).scheme not in ("http", "https"):
            raise VideoSourceError(f"{type(self).__name__} needs an http(s) URL, got {url!r}")
        if not timeout_s > 0:
            raise VideoSourceError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.url = url
        self.rate_fps = rate_fps
        self.timeout_s = timeout_s
        self.stats = SourceStats()
        self._backoff = backoff or Backoff()
        self._clock = clock or SystemClock()
        self._monotonic = monotonic
        self._headers = dict(headers or {})
        self._stop = threading.Event()
        self._sock_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._start = monotonic()
        self._index = -1
        self.camera_time = camera_time
        self._first_stamp: float | None = None  # the first camera stamp: offset 0
        self._last_offset = 0.0

    def close(self) -> None:
        """End iteration promptly (thread-safe): wakes backoff waits and blocked socket reads."""
        self._stop.set()
        with self._sock_lock:
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in another thread
            except OSError:
                pass

    stop = close

    def _track_socket(self, response: httpx.Response | None) -> None:
        sock = None
        if response is not None:
            stream = response.extensions.get("network_stream")
            try:
                sock = stream.get_extra_info("socket") if stream is not None else None
            except Exception:  # noqa: BLE001 - best effort: only used to make close() prompt
                sock = None
        with self._sock_lock:
            self._sock = sock
        if sock is not None and self._stop.is_set():
            self.close()

    def _time(self, stamp: float | None) -> float:
        """The time a frame is measured on: the camera's stamp (or, without one, the arrival
        time) with ``camera_time``, else monotonic time."""
        if not self.camera_time:
            return self._monotonic()
        return stamp if stamp is not None else self._clock.now().timestamp()

    def _frame(self, img: np.ndarray, t: float) -> Frame:
        """A frame: with ``camera_time`` measured at ``t`` (from :meth:`_time`), else stamped
        now that it is decoded (as before the camera-time option existed)."""
        if not self.camera_time:  # arrival: the time it is ready, decoded
            offset = max(0.0, self._monotonic() - self._start)
            return Frame(img, self._clock.now(), offset, self._index)
        if self._first_stamp is None:
            self._first_stamp = t
        # A camera clock stepped back must not move the analysers' time back.
        self._last_offset = max(self._last_offset, t - self._first_stamp)
        ts = datetime.fromtimestamp(self._first_stamp + self._last_offset, UTC)
        return Frame(img, ts, self._last_offset, self._index)

    def _session(self, client: httpx.Client) -> Iterator[Frame]:
        raise NotImplementedError

    def frames(self) -> Iterator[Frame | SourceEvent]:
        lost = False
        attempt = 0
        self._start = self._monotonic()
        with httpx.Client(timeout=httpx.Timeout(self.timeout_s), follow_redirects=True) as client:
            while not self._stop.is_set():
                try:
                    for frame in self._session(client):
                        if lost:
                            lost = False
                            log.info("stream restored", extra=kv(source=self.url))
                            yield SourceEvent("restored", self._clock.now(), self.url)
                        attempt = 0
                        yield frame
                        if self._stop.is_set():
                            return
                    detail = "stream ended"
                except _StreamLost as exc:
                    detail = str(exc)
                except httpx.HTTPError as exc:  # converted here, never raised to the caller
                    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                except OSError as exc:
                    detail = f"{type(exc).__name__}: {exc}"
                finally:
                    self._track_socket(None)
                if self._stop.is_set():
                    return
                self.stats.failures += 1
                if not lost:
                    lost = True
                    log.warning("stream lost", extra=kv(source=self.url, detail=detail))
                    yield SourceEvent("lost", self._clock.now(), detail)
                delay = self._backoff.delay(attempt)
                attempt += 1
                log.debug(
                    "reconnect wait",
                    extra=kv(source=self.url, attempt=attempt, delay_s=round(delay, 3)),
                )
                if self._stop.wait(delay):
                    return


class MjpegSource(_HttpSource):
    """MJPEG (``multipart/x-mixed-replace``) over HTTP, decoding only parts the rate keeps.

    Parts are split by the Content-Type boundary, or by JPEG SOI/EOI markers if the header has
    none. A part that fails to decode is counted in ``stats.corrupt`` and skipped.
    """

    def __init__(
        self,
        url: str,
        rate_fps: float | None = None,
        timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        headers: dict[str, str] | None = None,
        max_part_bytes: int = 16 * 1024 * 1024,
        camera_time: bool = False,
    ) -> None:
        super().__init__(url, rate_fps, timeout_s, backoff, clock, monotonic, headers, camera_time)
        self._max_part = max_part_bytes
        self._gate = _RateGate(rate_fps)

    def _session(self, client: httpx.Client) -> Iterator[Frame]:
        with client.stream("GET", self.url, headers=self._headers) as resp:
            self._track_socket(resp)
            if resp.status_code >= 400:
                raise _StreamLost(f"HTTP {resp.status_code}")
            self.stats.connects += 1
            ctype = resp.headers.get("content-type", "")
            parser = MultipartParser(_boundary_of(ctype), self._max_part)
            for chunk in resp.iter_raw():
                parts = parser.feed_parts(chunk)
                if parser.oversized:
                    self.stats.corrupt += parser.oversized
                    parser.oversized = 0
                for part in parts:
                    self._index += 1
                    self.stats.received += 1
                    t = self._time(part.timestamp)
                    if not self._gate.due(t):
                        self.stats.skipped += 1
                        continue
                    self.stats.decoded += 1
                    img = _decode_jpeg(part.body)
                    if img is None:
                        self.stats.corrupt += 1
                        log.debug(
                            "corrupt part",
                            extra=kv(source=self.url, index=self._index, size=len(part.body)),
                        )
                        continue
                    self._gate.kept(t if self.camera_time else self._monotonic())
                    yield self._frame(img, t)
                if self._stop.is_set():
                    return
        raise _StreamLost("stream ended")


class SnapshotSource(_HttpSource):
    """Polls a JPEG snapshot URL every ``interval_s``; a bad or corrupt response never raises."""

    def __init__(
        self,
        url: str,
        interval_s: float = 1.0,
        timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        headers: dict[str, str] | None = None,
        camera_time: bool = False,
    ) -> None:
        if not interval_s > 0:
            raise VideoSourceError(f"interval_s must be > 0, got {interval_s!r}")
        super().__init__(
            url, 1.0 / interval_s, timeout_s, backoff, clock, monotonic, headers, camera_time
        )
        self.interval_s = interval_s
        self._next = float("-inf")

    def _session(self, client: httpx.Client) -> Iterator[Frame]:
        while not self._stop.is_set():
            wait = self._next - self._monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            now = self._monotonic()
            nxt = self._next + self.interval_s  # keep the schedule unless a period behind
            self._next = nxt if nxt > now else now + self.interval_s
            resp = client.get(self.url, headers=self._headers)
            if resp.status_code >= 400:
                raise _StreamLost(f"HTTP {resp.status_code}")
            self.stats.connects += 1
            self._index += 1
            self.stats.received += 1
            self.stats.decoded += 1
            t = self._time(_header_time(resp.headers.get("x-timestamp")))
            img = _decode_jpeg(resp.content)
            if img is None:
                self.stats.corrupt += 1
                log.debug("corrupt snapshot", extra=kv(source=self.url, index=self._index))
                continue
            yield self._frame(img, t)


# --------------------------------------------------------------------------- factory

KNOWN_SCHEMES = (
    "file",
    "rtsp",
    "rtsps",
    "http",
    "https",
    "mjpeg+http",
    "mjpeg+https",
    "snapshot+http",
    "snapshot+https",
)


class SourceOptions(TypedDict, total=False):
    """Keyword arguments every source class takes, so :func:`open_source` can pass them on
    whichever class the spec picks."""

    clock: Clock | None
    backoff: Backoff | None
    monotonic: Callable[[], float]


def open_source(
    spec: str,
    rate_fps: float | None = None,
    *,
    camera_time: bool = False,
    **options: Unpack[SourceOptions],
) -> FrameSource:
    """Pick a source from a spec.

    ``mjpeg+http(s)://`` or an http(s) path ending ``.mjpg``/``.mjpeg`` -> :class:`MjpegSource`;
    ``snapshot+http(s)://`` -> :class:`SnapshotSource` (interval ``1/rate_fps``, default 1 s);
    a path, ``file://``, ``rtsp(s)://`` or any other http(s) URL -> :class:`CaptureSource`.
    ``options`` go to the chosen class; construct a class directly for the options only it
    takes (``headers``, ``timeout_s``). ``camera_time`` stamps frames with the capture time an
    MJPEG or snapshot camera sends; a file's frames are stamped by their position anyway.

    Raises
    ------
    VideoSourceError
        Unknown scheme (the message lists the known ones), missing file, bad rate, or
        ``camera_time`` for a stream OpenCV reads (RTSP), which gives no capture time.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise VideoSourceError("empty video source spec")
    spec = spec.strip()
    scheme = urlsplit(spec).scheme.lower()
    if len(scheme) <= 1 or scheme == "file":  # plain path (or a Windows drive letter)
        return CaptureSource(spec, rate_fps, **options)
    if scheme not in KNOWN_SCHEMES:
        raise VideoSourceError(
            f"unknown video source scheme {scheme!r} in {spec!r}; known: {', '.join(KNOWN_SCHEMES)}"
        )
    if scheme.startswith("mjpeg+"):
        return MjpegSource(spec[len("mjpeg+") :], rate_fps, camera_time=camera_time, **options)
    if scheme.startswith("snapshot+"):
        interval = 1.0 / rate_fps if rate_fps else 1.0
        _check_rate(rate_fps)
        return SnapshotSource(
            spec[len("snapshot+") :], interval, camera_time=camera_time, **options
        )
    if scheme in ("http", "https") and urlsplit(spec).path.lower().endswith((".mjpg", ".mjpeg")):
        return MjpegSource(spec, rate_fps, camera_time=camera_time, **options)
    if camera_time:
        raise VideoSourceError(
            f"camera frame time needs an MJPEG or snapshot source (mjpeg+http://, "
            f"snapshot+http://, or a .mjpg URL); {spec!r} is read by OpenCV, which gives none"
        )
    return CaptureSource(spec, rate_fps, **options)
