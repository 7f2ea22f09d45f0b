"""Block processing: blocks tile the grid; a windowed run equals a whole-array run."""

from __future__ import annotations

import numpy as np
import pytest

from farsight.errors import ConfigError
from remote_sensing.pipeline import DetectOptions, detect_pair
from remote_sensing.windowed import block_size, blocks, run_blocks


def test_blocks_cover_the_grid_once_and_pad_inside_it():
    seen = np.zeros((250, 330), int)
    for b in blocks(330, 250, 64, 16):
        seen[
            int(b.core.row_off) : int(b.core.row_off + b.core.height),
            int(b.core.col_off) : int(b.core.col_off + b.core.width),
        ] += 1
        assert b.padded.col_off >= 0 and b.padded.col_off + b.padded.width <= 330
        rows, cols = b.inner
        assert rows.stop - rows.start == b.core.height and cols.stop - cols.start == b.core.width
    assert (seen == 1).all()
    assert block_size(1000, (256, 256)) == 1024 and block_size(100, (256, 256)) == 256


def test_windowed_run_equals_whole_array_run(pair6):
    whole = detect_pair(pair6.before, pair6.after, DetectOptions(block=4096), keep_codes=True)
    windowed = detect_pair(
        pair6.before, pair6.after, DetectOptions(block=64, overlap=32, workers=2), keep_codes=True
    )
    assert np.array_equal(whole.codes > 0, windowed.codes > 0)
    assert [(r.kind, r.area_m2, r.confidence) for r in whole.regions] == [
        (r.kind, r.area_m2, r.confidence) for r in windowed.regions
    ]
    assert len(whole.regions) >= 4


def test_threads_yield_every_block_once():
    out = dict(run_blocks(lambda x: x * x, range(20), workers=3))
    assert out == {i: i * i for i in range(20)}
    with pytest.raises(ConfigError, match="unknown executor"):
        list(run_blocks(lambda x: x, [1], executor="spark"))


def test_dask_executor_gives_the_same_result(pair6):
    pytest.importorskip("distributed")
    threads = detect_pair(pair6.before, pair6.after, DetectOptions(block=128), keep_codes=True)
    dask = detect_pair(
        pair6.before,
        pair6.after,
        DetectOptions(block=128, executor="dask", workers=2),
        keep_codes=True,
    )
    assert np.array_equal(threads.codes, dask.codes)


def test_phase_puts_block_edges_on_file_tiles():
    bl = blocks(1000, 700, 256, 8, phase=(-12, -40))  # file pixel (0, 0) at grid (12, 40)
    edges = sorted({int(b.core.col_off) for b in bl})
    assert edges == [0, 244, 500, 756]  # file columns 256, 512, 768 are block edges
    assert sum(int(b.core.width * b.core.height) for b in bl) == 1000 * 700


def test_change_windows_hold_each_region_once():
    from remote_sensing.pipeline import change_windows

    codes = np.zeros((300, 250), np.uint8)
    codes[10:20, 10:200] = 1  # long region across cells
    codes[100:103, 240:250] = 2  # in the ragged last column
    codes[290:300, 0:5] = 3  # in the ragged last row
    codes[60:70, 60:70] = 1  # 8-connected cluster neighbour of nothing
    seen = np.zeros(codes.shape, int)
    for win, own in change_windows(codes, cell=32):
        r0, c0 = int(win.row_off), int(win.col_off)
        seen[r0 : r0 + int(win.height), c0 : c0 + int(win.width)] += own & (
            codes[r0 : r0 + int(win.height), c0 : c0 + int(win.width)] > 0
        )
    assert np.array_equal(seen, (codes > 0).astype(int))
