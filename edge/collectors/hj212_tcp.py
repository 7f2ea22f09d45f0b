"""Collector for HJ 212-2017 data loggers that connect to the gateway over TCP and push frames.

Each connection is read as a byte stream and split into frames (``##`` ... CRLF). Every frame is
buffered as it came, on the topic of its logger (by MN), for the hub's HJ 212 codec to decode:
the gateway keeps even a corrupt frame, which the hub dead-letters with its reason.

When a well-formed frame asks for a response (Flag bit A, the lowest bit: HJ 212-2017, 6.3.3
"Flag=V5V4V3V2V1V0DA, A: 1 response required"), the gateway answers once the frame is durable:
a data upload gets the data response CN=9014 and a notification (CN=2081, logger restart) the
notification response CN=9013, each echoing the request's QN with ST=91 (system interaction).
A frame that is corrupt, unroutable or refused by a full buffer gets no response, so the logger
sends it again from its own store.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from dataclasses import dataclass

from edge.buffer import Buffer
from edge.config import Hj212TcpSettings
from edge.errors import EdgeError
from farsight.hj212 import crc16, is_whole_frame, split_stream, wrap
from farsight.logs import kv

log = logging.getLogger("farsight.edge.hj212_tcp")

ST_SYSTEM = "91"
CN_DATA_RESPONSE = "9014"
CN_NOTICE_RESPONSE = "9013"
NOTICE_CNS = frozenset({"2081"})
MAX_FRAME = 10 * 1024
MAX_STREAM_BUFFER = 64 * 1024


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The header fields of a well-formed frame."""

    qn: str | None
    st: str | None
    cn: str | None
    pw: str | None
    mn: str | None
    flag: int

    @property
    def wants_response(self) -> bool:
        return bool(self.flag & 1)


def parse_header(frame: bytes) -> FrameHeader | None:
    """Header of a frame whose length and CRC check out; ``None`` for a corrupt frame."""
    body = frame.rstrip(b"\r\n")
    if not body.startswith(b"##") or len(body) < 10 or not body[2:6].isdigit():
        return None
    length, rest = int(body[2:6]), body[6:]
    segment, crc = rest[:-4], rest[-4:]
    if len(segment) != length:
        return None
    try:
        if int(crc, 16) != crc16(segment):
            return None
    except ValueError:
        return None
    try:
        text = segment.decode("ascii")
    except UnicodeDecodeError:
        return None
    head = text.split("CP=&&", 1)[0]
    fields: dict[str, str] = {}
    for part in head.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            fields[k.strip()] = v.strip()
    try:
        flag = int(fields.get("Flag", "0"))
    except ValueError:
        flag = 0
    return FrameHeader(
        fields.get("QN"),
        fields.get("ST"),
        fields.get("CN"),
        fields.get("PW"),
        fields.get("MN"),
        flag,
    )


def response_frame(header: FrameHeader) -> bytes:
    """The response HJ 212-2017 requires for a frame with Flag bit A set (CN 9014 or 9013)."""
    cn = CN_NOTICE_RESPONSE if header.cn in NOTICE_CNS else CN_DATA_RESPONSE
    parts = []
    if header.qn:
        parts.append(f"QN={header.qn}")
    parts += [
        f"ST={ST_SYSTEM}",
        f"CN={cn}",
        f"PW={header.pw or ''}",
        f"MN={header.mn or ''}",
        "Flag=4",
        "CP=&&&&",
    ]
    return wrap(";".join(parts))


class Hj212TcpCollector:
    """A threaded TCP server: one thread per connected data logger."""

    name = "hj212_tcp"

    def __init__(self, gateway: str, settings: Hj212TcpSettings, buffer: Buffer) -> None:
        self.gateway = gateway
        self.settings = settings
        self.buffer = buffer
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.port = settings.port
        self.frames = 0
        self.responses = 0
        self.corrupt = 0
        self.unrouted = 0
        self._state = "stopped"

    @property
    def state(self) -> str:
        return self._state

    @property
    def connections(self) -> int:
        return len(self._conns)

    def topic_for(self, mn: str | None) -> str | None:
        """The topic a logger's frames go to, or ``None`` when its MN is unknown and no default
        site is set."""
        s = self.settings
        if mn and mn in s.devices:
            d = s.devices[mn]
            return f"fs/v1/{d.dept}/{d.site}/{d.device}/hj212"
        if s.default_site and mn and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", mn):
            return f"fs/v1/{s.default_dept}/{s.default_site}/{mn}/hj212"
        return None

    def start(self) -> None:
        try:
            sock = socket.create_server((self.settings.host, self.settings.port), reuse_port=False)
        except OSError as exc:
            raise EdgeError(
                f"cannot listen for HJ 212 loggers on {self.settings.host}:{self.settings.port}:"
                f" {exc.strerror}"
            ) from None
        sock.settimeout(0.5)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, name="edge-hj212-accept", daemon=True)
        self._thread.start()
        self._state = "listening"
        log.info("listening for HJ 212 loggers", extra=kv(gateway=self.gateway, port=self.port))

    def stop(self) -> None:
        self._stop.set()
        self._state = "stopped"
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            for c in list(self._conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if len(self._conns) >= self.settings.max_connections:
                    log.warning(
                        "too many loggers; connection refused",
                        extra=kv(peer=addr, max=self.settings.max_connections),
                    )
                    conn.close()
                    continue
                self._conns.add(conn)
            threading.Thread(
                target=self._serve, args=(conn, addr), name=f"edge-hj212-{addr[1]}", daemon=True
            ).start()

    def _serve(self, conn: socket.socket, addr: tuple) -> None:
        conn.settimeout(self.settings.idle_timeout_s)
        pending = b""
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    log.info("idle logger disconnected", extra=kv(peer=addr))
                    self._last_frame(pending)
                    return
                if not chunk:
                    # Loggers that end frames without CRLF and hang up leave the last one here.
                    self._last_frame(pending)
                    return
                frames, pending = split_stream(pending + chunk)
                if len(pending) > MAX_STREAM_BUFFER:
                    # No CRLF in 64 KiB: not HJ 212; drop the garbage and resynchronise on '##'.
                    log.warning("line noise dropped", extra=kv(peer=addr, bytes=len(pending)))
                    pending = b""
                for frame in frames:
                    reply = self.handle(frame)
                    if reply:
                        conn.sendall(reply)
                        self.responses += 1
        except OSError as exc:
            log.info("logger connection closed", extra=kv(peer=addr, error=exc))
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _last_frame(self, pending: bytes) -> None:
        if is_whole_frame(pending):
            self.handle(pending)  # the logger is gone: no response can reach it

    def handle(self, frame: bytes) -> bytes | None:
        """Buffer one frame; return the response to send, if the frame asks for one."""
        self.frames += 1
        if len(frame) > MAX_FRAME:
            self.corrupt += 1
            return None
        header = parse_header(frame)
        if header is None:
            self.corrupt += 1
        topic = self.topic_for(header.mn if header else _sniff_mn(frame))
        if topic is None:
            self.unrouted += 1
            log.warning(
                "frame from an unknown MN dropped; list it under collectors.hj212_tcp.devices",
                extra=kv(gateway=self.gateway, mn=header.mn if header else None),
            )
            return None
        stored = self.buffer.append([(topic, frame)])[0]
        if header is None or not stored or not header.wants_response:
            return None
        return response_frame(header)


def _sniff_mn(frame: bytes) -> str | None:
    """The MN of a corrupt frame, if it can be read, so the hub files its dead letter correctly."""
    m = re.search(rb"MN=([A-Za-z0-9_.-]{1,64})", frame)
    return m.group(1).decode("ascii") if m else None
