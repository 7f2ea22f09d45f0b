"""The analysers' pure steps on small hand-made arrays."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest

from video.analysers import FireParams, IntrusionParams, LineCountParams, TamperParams
from video.analysers.black_smoke import boxes_luma, grade_confidence, ringelmann_grade
from video.analysers.fire import fire_mask, flicker_fraction, large_regions
from video.analysers.foreground import (
    Blob,
    analysis_size,
    blend_background,
    connected_blobs,
    ema_weight,
    foreground_mask,
    to_full_box,
)
from video.analysers.intrusion import feet, shape_confidence, stands_in, walked
from video.analysers.line_count import Track, associate, follow_track, vehicle_like
from video.analysers.smoke import colour_changes, grey_veil, leaky_count, lens_softened
from video.analysers.stopped import dwell_step, largest_blob, static_foreground
from video.analysers.tamper import grid_tiles, is_covered, running_mean, tiles_moved
from video.analysers.zone_gate import covered_share, mask_bbox

K3 = np.ones((3, 3), np.uint8)
K2 = np.ones((2, 2), np.uint8)


def grey(h: int, w: int, level: int) -> np.ndarray:
    return np.full((h, w, 3), level, np.uint8)


# --------------------------------------------------------------------------- foreground


def test_foreground_mask_keeps_a_block_grown_by_one_and_drops_a_speck():
    bg = grey(12, 12, 100).astype(np.float32)
    img = grey(12, 12, 100)
    img[3:7, 3:7] = (100, 100, 140)  # a 4x4 block differing in red only
    img[10, 10] = (160, 100, 100)  # one pixel: the opening removes it
    fg = foreground_mask(img, bg, 14, 0.5, K3, K3)  # line count's kernels
    assert fg is not None and fg.dtype == np.uint8
    ys, xs = np.nonzero(fg)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (2, 7, 2, 7)  # dilated once
    assert fg[10, 10] == 0
    # Below the threshold: nothing.
    quiet = foreground_mask(img, bg, 100, 0.5, K2, K3)
    assert quiet is not None and not quiet.any()


def test_foreground_mask_gives_none_when_the_view_changed():
    bg = grey(8, 8, 100).astype(np.float32)
    assert foreground_mask(grey(8, 8, 180), bg, 14, 0.5, K2, K3) is None
    assert foreground_mask(grey(8, 8, 180), bg, 14, 1.0, K2, K3) is not None


def test_blend_background_is_slow_under_foreground():
    bg = np.zeros((2, 2, 3), np.float32)
    img = np.full((2, 2, 3), 100, np.uint8)
    fg = np.array([[True, False], [False, False]])
    out = blend_background(bg, img, fg, dt=1.0, bg_tau_s=1.0, fg_tau_s=100.0)
    assert out.dtype == np.float32 and not bg.any()  # the input is not modified
    assert out[0, 0, 0] == pytest.approx(100 * (1 - math.exp(-0.01)), rel=1e-5)
    assert out[1, 1, 0] == pytest.approx(100 * (1 - math.exp(-1.0)), rel=1e-5)
    assert ema_weight(0.0, 5.0) == 0.0 and ema_weight(1e6, 5.0) == pytest.approx(1.0)


def test_connected_blobs_boxes_areas_and_centroids():
    m = np.zeros((10, 10), np.uint8)
    m[1:3, 1:4] = 1  # 2 rows x 3 cols
    m[6:9, 7:8] = 1  # 3 rows x 1 col
    a, b = connected_blobs(m)
    assert (a.x, a.y, a.w, a.h, a.area) == (1, 1, 3, 2, 6)
    assert (a.cx, a.cy) == pytest.approx((2.0, 1.5))
    assert (b.x, b.y, b.w, b.h, b.area) == (7, 6, 1, 3, 3)
    assert connected_blobs(np.zeros((4, 4), np.uint8)) == []


def test_to_full_box_grows_to_whole_pixels_and_clips():
    assert to_full_box((1, 1, 2, 2), 0.25, 0.25, 100, 100) == (4, 4, 8, 8)
    assert to_full_box((0, 0, 3, 3), 0.3, 0.3, 9, 9) == (0, 0, 9, 9)  # ceil(10) clipped to 9
    assert analysis_size(1280, 720, 180) == (320, 180)
    assert analysis_size(320, 100, 180) == (320, 100)  # never upscaled


# --------------------------------------------------------------------------- smoke


def test_grey_veil_is_a_candidate_a_coloured_change_is_not():
    bg = np.zeros((1, 3, 3), np.float32)
    bg[..., 0] = 80.0
    bg[..., 1:] = 128.0 + 10.0  # a slightly coloured background
    ycc = bg.copy()
    ycc[0, 0] = (120.0, 132.0, 132.0)  # brighter and greyer: smoke
    ycc[0, 1] = (120.0, 180.0, 128.0)  # brighter and redder: not smoke
    d_luma, changed = colour_changes(ycc, bg, 8.0)
    assert changed.tolist() == [[True, True, False]]
    veil = grey_veil(ycc, bg, d_luma, 8.0, 60.0, 3.0)
    assert veil.tolist() == [[True, False, False]]


def test_leaky_count_grows_decays_and_is_capped():
    count = np.array([0.0, 1.0, 2.9], np.float32)
    cand = np.array([True, False, True])
    out = leaky_count(count, cand, dt=0.5, decay=2.0, cap=3.0)
    assert out.dtype == np.float32
    assert out.tolist() == pytest.approx([0.5, 0.0, 3.0])
    assert count.tolist() == pytest.approx([0.0, 1.0, 2.9])  # not modified


def test_lens_softened_needs_most_strong_edges_gone():
    bg_edges = np.array([100.0, 100.0, 100.0, 0.0], np.float32)
    assert lens_softened(bg_edges, np.array([10.0, 10.0, 10.0, 0.0], np.float32), 80.0)
    assert not lens_softened(bg_edges, np.array([10.0, 90.0, 90.0, 0.0], np.float32), 80.0)
    assert not lens_softened(np.zeros(4, np.float32), np.zeros(4, np.float32), 80.0)


def test_zone_gate_steps():
    m = np.zeros((4, 8), bool)
    m[1:3, 2:4] = True
    assert mask_bbox(m, 0.5) == (4, 2, 4, 4)
    zone = np.zeros((4, 8), bool)
    zone[:, :3] = True
    inside, n, share = covered_share(m, zone)
    assert n == 2 and share == pytest.approx(2 / 12) and not inside[:, 3:].any()
    assert covered_share(m, None)[1:] == (4, 4 / 32)


# --------------------------------------------------------------------------- fire


def test_flicker_fraction_and_fire_mask():
    lumas = np.zeros((5, 6, 6), np.int16)
    lumas[1::2, :, :3] = 50  # the left half alternates 0, 50, 0, ...: every step flickers
    flicker = flicker_fraction(lumas, 12.0)
    assert flicker[:, :3].min() == 1.0 and flicker[:, 3:].max() == 0.0
    colours = np.ones((5, 6, 6), bool)
    mask, _ = fire_mask(lumas, colours, np.ones((6, 6), bool), FireParams(), K3)
    assert mask[:, :3].all() and not mask[:, 3:].any()
    # Not flame-coloured now: no fire whatever the flicker.
    assert not fire_mask(lumas, colours, np.zeros((6, 6), bool), FireParams(), K3)[0].any()


def test_large_regions_drops_small_and_thin_ones():
    m = np.zeros((20, 20), bool)
    m[2:6, 2:6] = True  # 16 px
    m[10:13, 10:13] = True  # 9 px
    m[15, :] = True  # a one-pixel line: the opening removes it
    assert large_regions(m, 10 / 400, K3).sum() == 16
    assert large_regions(m, 0.0, K3).sum() == 25


# --------------------------------------------------------------------------- black smoke


def test_ringelmann_grade_confidence_and_box_luma():
    assert [ringelmann_grade(o) for o in (0.0, 0.09, 0.11, 0.5, 1.0)] == [0, 0, 1, 2, 5]
    assert grade_confidence(0.4) == pytest.approx(1.0)  # 5 * 0.4 = 2.0, far from x.5
    assert grade_confidence(0.5) == pytest.approx(0.5)  # 2.5: a coin toss
    frame = np.zeros((10, 10, 3), np.uint8)
    frame[...] = (0, 0, 255)
    luma = boxes_luma(frame, ((2, 2, 2, 2), (5, 1, 2, 2)))
    assert luma.shape == (4, 7)
    assert luma[0, 0] == 0 and luma[1, 2] == 76  # red's luma, only inside the union box


# --------------------------------------------------------------------------- tamper


def test_is_covered_needs_a_contrast_drop_for_dark_frames():
    p = TamperParams()
    assert is_covered(mean=20.0, std=2.0, std_baseline=None, p=p)  # uniform at any level
    assert is_covered(mean=20.0, std=5.0, std_baseline=30.0, p=p)  # dark, contrast fell
    assert not is_covered(mean=20.0, std=5.0, std_baseline=8.0, p=p)  # a night view as usual
    assert not is_covered(mean=120.0, std=5.0, std_baseline=30.0, p=p)  # mid-grey: not covered
    assert running_mean(None, 4.0, 1) == 4.0 and running_mean(4.0, 8.0, 2) == 6.0


def test_tiles_decide_a_move_by_two_thirds():
    assert len(grid_tiles((9, 12))) == 9
    assert grid_tiles((9, 12))[4] == (slice(3, 6), slice(4, 8))
    informative = [True] * 6 + [False] * 3
    assert tiles_moved([True] * 5 + [False] * 4, informative) == (False, 5)
    assert tiles_moved([True] * 4 + [False] * 5, informative) == (True, 4)
    assert tiles_moved([True] * 9, [True, True] + [False] * 7) is None


# --------------------------------------------------------------------------- stopped vehicle


def test_static_foreground_and_dwell_clock():
    slow = np.zeros((8, 8), np.uint8)
    slow[2:6, 2:6] = 255  # differs from the empty road
    fast = np.zeros((8, 8), np.uint8)  # ... but no longer from the last seconds
    static = static_foreground(slow, fast, K3)
    assert static[2:6, 2:6].all() and largest_blob(static) == (1, 1, 6, 6)  # dilated once
    assert not static_foreground(slow, slow, K3).any()  # still moving: differs from both
    assert largest_blob(np.zeros((4, 4), np.uint8)) is None
    since, seen = dwell_step(None, None, True, 10.0, gap_s=1.0)
    assert (since, seen) == (10.0, 10.0)
    assert dwell_step(since, seen, False, 10.5, gap_s=1.0) == (10.0, 10.0)  # within the gap
    assert dwell_step(since, seen, True, 11.0, gap_s=1.0) == (10.0, 11.0)
    assert dwell_step(10.0, 11.0, False, 12.5, gap_s=1.0) == (None, None)  # lapsed


# --------------------------------------------------------------------------- intrusion


def test_feet_zone_walk_and_confidence():
    b = Blob(4, 2, 4, 10, 30)
    assert feet(b, (20, 20)) == (6, 10)
    zone = np.zeros((20, 20), bool)
    zone[10:, :] = True
    assert stands_in(b, zone, (20, 20)) and stands_in(b, None, (20, 20))
    assert not stands_in(Blob(4, 0, 4, 5, 10), zone, (20, 20))
    trail = collections.deque([(0.0, 5.0, 10.0, 10.0), (1.0, 5.0, 11.0, 10.0)])
    assert not walked(trail)  # one pixel: less than a fifth of the height
    trail.append((2.0, 5.0, 12.5, 10.0))
    assert walked(trail)
    p = IntrusionParams()
    best = math.sqrt(p.min_aspect * p.max_aspect)  # the middle of the band, in log terms
    assert shape_confidence(Blob(0, 0, 10, round(10 * best), 1), p) == pytest.approx(1.0, abs=0.02)
    assert shape_confidence(Blob(0, 0, 10, 14, 1), p) == 0.5


# --------------------------------------------------------------------------- line count


def test_vehicle_like_and_greedy_association():
    p = LineCountParams()
    assert vehicle_like(Blob(0, 0, 20, 10, 150), 10_000, p)
    assert not vehicle_like(Blob(0, 0, 10, 20, 150), 10_000, p)  # taller than wide: a person
    assert not vehicle_like(Blob(0, 0, 3, 3, 9), 10_000, p)  # too small
    tracks = [Track(0, 10.0, 10.0, 0.0, vx=10.0, hits=3), Track(1, 50.0, 10.0, 0.0, hits=1)]
    blobs = [Blob(0, 0, 1, 1, 1, 49.0, 10.0), Blob(0, 0, 1, 1, 1, 20.5, 10.0)]
    # Track 0 is predicted at x=20 one second later (0.5 px off), track 1 has no velocity yet
    # (1 px off): closest pair first, each track and blob once.
    assert associate(tracks, blobs, 1.0, frame_w=100, max_speed=1.0) == [(0, 1), (1, 0)]
    one_blob = [Blob(0, 0, 1, 1, 1, 21.0, 10.0)]  # both tracks could take it: the closer does
    assert associate(tracks, one_blob, 1.0, frame_w=100, max_speed=1.0) == [(0, 0)]
    far = [Blob(0, 0, 1, 1, 1, 90.0, 10.0)]
    assert associate(tracks[:1], far, 1.0, frame_w=100, max_speed=1.0) == []


def test_follow_track_smooths_velocity_and_keeps_identity():
    t = Track(7, 10.0, 10.0, 0.0, vx=4.0, vy=0.0, hits=2, counted=True)
    moved = follow_track(t, Blob(18, 9, 4, 2, 8, 20.0, 10.0), 1.0)
    assert (moved.id, moved.hits, moved.counted, moved.bbox) == (7, 3, True, (18, 9, 4, 2))
    assert (moved.x, moved.vx, moved.vy) == (20.0, 7.0, 0.0)
    assert t.x == 10.0  # a new value, the old one unchanged
