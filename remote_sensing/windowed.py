"""Block processing: windows aligned to the file's tiles, with an overlap for neighbourhoods.

:func:`blocks` cuts a grid into core windows whose size is a multiple of the tile size (so each
read touches whole tiles, once) and pads each with ``overlap`` pixels, so that morphology and
mask dilation near a core's edge see the same neighbours as on the whole array. :func:`run_blocks`
maps a function over blocks with threads (GDAL and OpenCV release the GIL while they decode and
filter) or on a Dask cluster, and yields results as they complete; peak memory is about
``workers`` blocks whatever the scene size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from rasterio.windows import Window

from farsight.errors import ConfigError, ConfigProblem, MissingExtraError

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS: tuple[str, ...] = ("threads", "dask")
"""Executors :func:`run_blocks` knows."""


@dataclass(frozen=True, slots=True)
class Block:
    """A core window of the grid and the padded window read to compute it."""

    core: Window
    padded: Window

    @property
    def inner(self) -> tuple[slice, slice]:
        """The core's (rows, cols) slices inside an array of the padded window."""
        r0 = int(self.core.row_off - self.padded.row_off)
        c0 = int(self.core.col_off - self.padded.col_off)
        return slice(r0, r0 + int(self.core.height)), slice(c0, c0 + int(self.core.width))


def block_size(requested: int, tile: tuple[int, int]) -> int:
    """``requested`` rounded up to a multiple of the tile size (square blocks)."""
    t = max(1, max(tile))
    return max(t, math.ceil(requested / t) * t)


def blocks(
    width: int, height: int, size: int, overlap: int, phase: tuple[int, int] = (0, 0)
) -> list[Block]:
    """Blocks of ``size`` x ``size`` pixels covering a ``width`` x ``height`` grid, row by row.

    ``phase`` (columns, rows) shifts the block boundaries: the first boundary falls at
    ``phase % size``, so that blocks line up with the tiles of a file whose pixel (0, 0) sits
    at grid pixel ``-offset`` (pass ``phase = -offset``); the first row and column of blocks
    are then narrower.

    Raises
    ------
    ValueError
        If ``size`` is not positive or ``overlap`` is negative.
    """
    if size < 1 or overlap < 0:
        raise ValueError(f"block size {size} must be positive and overlap {overlap} not negative")
    pc, pr = phase[0] % size, phase[1] % size
    rows = ([0] if pr else []) + list(range(pr, height, size))
    cols = ([0] if pc else []) + list(range(pc, width, size))
    out = []
    for i, r0 in enumerate(rows):
        r1 = rows[i + 1] if i + 1 < len(rows) else height
        for j, c0 in enumerate(cols):
            c1 = cols[j + 1] if j + 1 < len(cols) else width
            h, w = r1 - r0, c1 - c0
            pr0, pc0 = max(0, r0 - overlap), max(0, c0 - overlap)
            pr1, pc1 = min(height, r0 + h + overlap), min(width, c0 + w + overlap)
            out.append(Block(Window(c0, r0, w, h), Window(pc0, pr0, pc1 - pc0, pr1 - pr0)))
    return out


def run_blocks(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = 1,
    executor: str = "threads",
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[T, R]]:
    """Apply ``fn`` to every item, yielding ``(item, result)`` as results complete.

    At most ``2 * workers`` items are in flight, so memory stays bounded however many blocks
    there are. ``executor="dask"`` submits to the current ``dask.distributed`` client (or a
    local one) instead.

    Raises
    ------
    ConfigError
        If the executor is unknown or ``workers`` < 1.
    MissingExtraError
        If Dask is asked for but not installed (the ``distributed`` extra).
    """
    items = list(items)
    total = len(items)
    if workers < 1:
        raise ConfigError([ConfigProblem("--workers", workers, "must be at least 1")])
    if executor not in EXECUTORS:
        raise ConfigError(
            [
                ConfigProblem(
                    "--executor", executor, f"unknown executor; known: {', '.join(EXECUTORS)}"
                )
            ]
        )
    done = 0
    if executor == "dask":
        yield from _run_dask(fn, items, workers, progress)
        return
    if workers == 1:
        for it in items:
            r = fn(it)
            done += 1
            if progress:
                progress(done, total)
            yield it, r
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rs-block") as pool:
        pending: dict[Any, T] = {}
        queue = iter(items)
        for it in queue:
            pending[pool.submit(fn, it)] = it
            if len(pending) >= 2 * workers:
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                it = pending.pop(f)
                done += 1
                if progress:
                    progress(done, total)
                yield it, f.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(fn, nxt)] = nxt


def _run_dask(
    fn: Callable[[T], R], items: list[T], workers: int, progress: Callable[[int, int], None] | None
) -> Iterator[tuple[T, R]]:
    try:
        from dask.distributed import Client, as_completed, get_client
    except ImportError:
        raise MissingExtraError(
            "dask[distributed]",
            "distributed",
            "--executor dask",
            instead="or use --executor threads",
        ) from None
    try:
        client = get_client()
        own = False
    except ValueError:
        client = Client(processes=False, n_workers=1, threads_per_worker=workers)
        own = True
    try:
        futures = {client.submit(fn, it, pure=False): it for it in items}
        for n, f in enumerate(as_completed(futures), start=1):
            if progress:
                progress(n, len(items))
            yield futures[f], f.result()
    finally:
        if own:
            client.close()
