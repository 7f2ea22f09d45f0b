"""The gateway's heartbeat: buffer depth and age, losses, clock offset, CPU, memory, disk and
collector states, published retained on ``fs/v1/gw/{gateway}/status`` (the last will replaces
it with ``{"state": "offline"}`` when the gateway vanishes)."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.buffer import BufferStats
from farsight.errors import MissingExtraError

NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (RFC 5905)."""


def sntp_offset(server: str, timeout: float = 2.0) -> float | None:
    """Clock offset in seconds (server minus local) from one SNTP exchange (RFC 4330); ``None``
    on failure.

    offset = ((t2 - t1) + (t3 - t4)) / 2 with t1 sent, t2 received by the server, t3 sent by
    the server, t4 received here: the link's delay cancels when it is symmetric.
    """
    packet = b"\x23" + 47 * b"\0"  # LI 0, version 4, mode 3 (client)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            t1 = time.time()
            s.sendto(packet, (server, 123))
            data, _ = s.recvfrom(512)
            t4 = time.time()
    except OSError:
        return None
    if len(data) < 48:
        return None

    def ts(offset: int) -> float:
        sec, frac = struct.unpack("!II", data[offset : offset + 8])
        return sec - NTP_EPOCH_OFFSET + frac / 2**32

    t2, t3 = ts(32), ts(40)
    return ((t2 - t1) + (t3 - t4)) / 2


def require_psutil() -> None:
    """Fail at once, naming the extra to install, when psutil is missing (the heartbeat uses it).

    psutil is the ``edge`` extra: only a gateway needs it.
    """
    try:
        import psutil  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            "psutil", "edge", "the gateway's heartbeat (CPU, memory, disk)"
        ) from None


def system_stats(path: Path) -> dict[str, float]:
    """CPU, memory and disk use in percent (disk of the filesystem holding ``path``)."""
    import psutil  # the edge extra; EdgeService checks it at start (require_psutil)

    path.mkdir(parents=True, exist_ok=True)
    return {
        "cpu_pct": psutil.cpu_percent(interval=None),
        "mem_pct": psutil.virtual_memory().percent,
        "disk_pct": psutil.disk_usage(str(path)).percent,
    }


def heartbeat(
    gateway: str,
    version: int,
    buffer: BufferStats,
    collectors: Mapping[str, str],
    uplink: Mapping[str, Any],
    data_dir: Path,
    clock_offset_s: float | None,
    started: float,
    now: float | None = None,
) -> dict[str, Any]:
    """The heartbeat document."""
    now = time.time() if now is None else now
    oldest_age = None if buffer.oldest_ts_ms is None else max(0.0, now - buffer.oldest_ts_ms / 1000)
    return {
        "gateway": gateway,
        "state": "online",
        "ts": int(now * 1000),
        "config_version": version,
        "uptime_s": round(now - started, 1),
        "buffer": {
            "depth": buffer.depth,
            "bytes": buffer.bytes,
            "oldest_age_s": None if oldest_age is None else round(oldest_age, 3),
            "appended": buffer.appended,
            "acked": buffer.acked,
        },
        "loss": dict(buffer.loss),
        "clock_offset_s": None if clock_offset_s is None else round(clock_offset_s, 3),
        "system": system_stats(data_dir),
        "collectors": dict(collectors),
        "uplink": dict(uplink),
    }
