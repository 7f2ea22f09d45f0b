"""Short MP4 clips around the start of a finding, stored as content-addressed evidence.

A snapshot shows one frame; an officer judging smoke or a covered lens wants to see it happen.
:class:`ClipRecorder` keeps the last ``pre_s`` seconds of analysed frames in a ring buffer; when a
kind starts it keeps collecting for ``post_s`` seconds more, then writes the frames as one MP4 at
the analysis rate (the clip shows what the analysers saw) into the :class:`EvidenceStore`.
Memory is bounded by the ring buffer: ``pre_s x rate`` frame references, plus the frames of open
clips.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from farsight.errors import StoreError
from video.evidence import EvidenceStore

MAX_CLIP_FRAMES = 3600  # two minutes at 30 fps: bounds a clip whatever the rate


@dataclass(slots=True)
class _OpenClip:
    kind: str
    until: float
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)


class ClipRecorder:
    """Ring buffer of recent frames and the clips being collected.

    Parameters
    ----------
    store : EvidenceStore
        Where finished clips go (``.mp4``).
    pre_s, post_s : float
        Seconds before and after the start kept in a clip.
    """

    def __init__(self, store: EvidenceStore, pre_s: float, post_s: float) -> None:
        if pre_s < 0 or post_s < 0 or pre_s + post_s <= 0:
            raise ValueError(
                f"clip lengths must be >= 0 and not both 0, got pre {pre_s}, post {post_s}"
            )
        self.store = store
        self.pre_s = pre_s
        self.post_s = post_s
        self._recent: deque[tuple[float, np.ndarray]] = deque()
        self._open: list[_OpenClip] = []
        self.written = 0

    def start(self, kind: str, t: float) -> None:
        """Begin a clip of ``kind`` at source time ``t`` (ignored while one of that kind is
        open)."""
        if any(c.kind == kind for c in self._open):
            return
        self._open.append(
            _OpenClip(kind, t + self.post_s, [f for f in self._recent if f[0] >= t - self.pre_s])
        )

    def push(self, t: float, image: np.ndarray) -> dict[str, str]:
        """Add an analysed frame; return ``{kind: sha256}`` of the clips it completes."""
        self._recent.append((t, image))
        while self._recent and self._recent[0][0] < t - self.pre_s:
            self._recent.popleft()
        done: dict[str, str] = {}
        still: list[_OpenClip] = []
        for clip in self._open:
            if not clip.frames or clip.frames[-1][1] is not image:
                clip.frames.append((t, image))
            if t >= clip.until or len(clip.frames) >= MAX_CLIP_FRAMES:
                done[clip.kind] = self._write(clip.frames)
            else:
                still.append(clip)
        self._open = still
        return done

    def _write(self, frames: list[tuple[float, np.ndarray]]) -> str:
        span = frames[-1][0] - frames[0][0]
        fps = (len(frames) - 1) / span if span > 0 and len(frames) > 1 else 1.0
        h, w = frames[0][1].shape[:2]
        fd, tmp = tempfile.mkstemp(suffix=".mp4")
        os.close(fd)
        try:
            writer = cv2.VideoWriter(
                tmp, cv2.VideoWriter.fourcc(*"mp4v"), max(0.5, min(60.0, fps)), (w, h)
            )
            if not writer.isOpened():
                raise StoreError("OpenCV could not open an MP4 writer (mp4v) for an evidence clip")
            try:
                for _, img in frames:
                    writer.write(img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h)))
            finally:
                writer.release()
            sha = self.store.put(Path(tmp).read_bytes(), ".mp4")
        finally:
            Path(tmp).unlink(missing_ok=True)
        self.written += 1
        return sha
