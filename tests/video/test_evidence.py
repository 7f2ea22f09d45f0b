"""EvidenceStore: content addressing, idempotence, sharding; snapshot: valid annotated JPEGs."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from farsight.errors import NotFoundError
from tests.video import scene
from video.evidence import EvidenceStore, annotate, snapshot


def test_put_names_file_by_sha256_under_two_char_shard(tmp_path):
    store = EvidenceStore.for_data_dir(tmp_path)
    data = b"hello evidence"
    sha = store.put(data, ".jpg")
    assert sha == hashlib.sha256(data).hexdigest()
    p = store.path(sha)
    assert p == tmp_path / "evidence" / sha[:2] / f"{sha}.jpg"
    assert p.read_bytes() == data
    assert sha in store


def test_put_is_idempotent_and_leaves_no_temp_files(tmp_path):
    store = EvidenceStore(tmp_path)
    a = store.put(b"x" * 1000)
    mtime = store.path(a).stat().st_mtime_ns
    assert store.put(b"x" * 1000) == a
    assert store.path(a).stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{a}.jpg"]


def test_path_of_unknown_or_malformed_digest(tmp_path):
    store = EvidenceStore(tmp_path)
    with pytest.raises(NotFoundError):
        store.path("0" * 64)
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")
    assert "nope" not in store


@pytest.mark.parametrize("suffix", ["jpg", ".JPG", "./x", ".toolongsuffix"])
def test_put_rejects_bad_suffix(tmp_path, suffix):
    with pytest.raises(ValueError):
        EvidenceStore(tmp_path).put(b"x", suffix)


def test_snapshot_returns_decodable_jpegs_and_draws_the_box():
    frame = scene(3, 320, 180)
    before = frame.copy()
    annotated, raw = snapshot(frame, (100, 60, 80, 50), "motion 0.90 gate")
    assert np.array_equal(frame, before)  # input untouched
    for data in (annotated, raw):
        assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    a = cv2.imdecode(np.frombuffer(annotated, np.uint8), cv2.IMREAD_COLOR)
    r = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    assert a.shape == r.shape == frame.shape
    # The raw JPEG is close to the frame; the annotated one differs along the box edge.
    assert np.abs(r.astype(int) - frame.astype(int)).mean() < 4
    edge = (slice(60, 110), 100)
    assert np.abs(a[edge].astype(int) - r[edge].astype(int)).mean() > 30
    inside = (slice(80, 100), slice(130, 170))
    assert np.abs(a[inside].astype(int) - r[inside].astype(int)).mean() < 4


def test_whole_frame_snapshot_has_label_only():
    frame = np.full((180, 320, 3), 100, np.uint8)
    img = annotate(frame, None, "camera_covered 0.95")
    changed = np.any(img != frame, axis=2)
    ys, _xs = np.nonzero(changed)
    assert changed.any() and ys.max() < 40  # a label strip at the top, no box elsewhere


def test_snapshot_rejects_non_bgr():
    with pytest.raises(ValueError):
        snapshot(np.zeros((10, 10), np.uint8), None, "x")
