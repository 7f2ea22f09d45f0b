"""Change-detection throughput: megapixels per second of the whole pipeline on a scene pair, against
the raw read of the same bands in the same run, and the pipeline's peak RSS.

The pair (default 10980 x 10980, 4 bands, 512-pixel tiles, deflate: a Sentinel-2 tile's 10 m
bands) is simulated once and cached under ``--dir``. Two child processes then run one after the
other, so that each one's peak RSS is its own:

* ``read``: the raw read, every band the pipeline uses read as stored (DN) from both files, block
  by block with the same block size and threads, nothing else;
* ``pipeline``: ``detect_pair`` end to end (calibration, masks, normalisation, detection,
  morphology, sieve, vectorising, measuring).

    .venv/bin/python benchmarks/rs_throughput.py [--size 10980] [--workers 1] [--block 1024]

The last line printed is the figure; the goal is the pipeline within 3x the raw read and
under 1.5 GB of RSS. The default is one worker: on the 2-vCPU development machine (shared with
other jobs) a second thread doubles the CPU time per pixel, these elementwise passes being bound
by memory bandwidth, so it does not shorten the run; ``--workers N`` measures N threads.
"""

from __future__ import annotations

import os
import sys

# benchmarks/queue.py shares its name with the standard library's queue module: this folder must
# not be first on the import path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _child(mode: str, before: str, after: str, workers: int, block: int) -> dict:
    import logging

    from remote_sensing.cli import tune_process
    from remote_sensing.io import open_scene, reading_env
    from remote_sensing.pipeline import DetectOptions, detect_pair
    from remote_sensing.windowed import block_size, blocks, run_blocks

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    tune_process()  # as `farsight rs detect` does
    t0 = time.perf_counter()
    c0 = time.process_time()
    opts = DetectOptions(workers=workers, block=block)
    if mode == "read":
        # The raw read: every band the pipeline uses, as stored (DN), block by block over each
        # file's own grid, with the same block size and threads; no scaling, masks or warping.
        import threading

        import rasterio

        pixels = 0
        for path in (before, after):
            scene = open_scene(path)
            local = threading.local()

            def work(blk, scene=scene, local=local):
                src = getattr(local, "src", None)
                if src is None:
                    src = local.src = rasterio.open(scene.path)
                return src.read(list(scene.indexes), window=blk.core).shape

            size = block_size(block, scene.block_shape)
            with reading_env():  # the pipeline's GDAL settings
                for _ in run_blocks(work, blocks(scene.width, scene.height, size, 0), workers):
                    pass
            pixels = max(pixels, scene.width * scene.height)

        class _G:
            width, height = scene.width, scene.height

        grid = _G
        regions = 0
    else:
        result = detect_pair(before, after, opts)
        grid = result.grid
        regions = len(result.regions)
    seconds = time.perf_counter() - t0
    return {
        "mode": mode,
        "seconds": seconds,
        "cpu_s": time.process_time() - c0,
        "pixels": grid.width * grid.height,
        "regions": regions,
        "rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    # VmHWM is this process's own high-water mark; ru_maxrss survives exec on Linux and would
    # report the parent's peak (the simulator's) instead.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--size",
        type=int,
        default=10980,
        help="scene size in pixels (default 10980, a Sentinel-2 tile)",
    )
    ap.add_argument("--bands", type=int, default=4, choices=(4, 6))
    ap.add_argument(
        "--workers", type=int, default=1, help="threads (default 1: see the module notes)"
    )
    ap.add_argument("--block", type=int, default=1024, help="block size (default 1024)")
    ap.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "farsight-rs-bench",
        help="cache of simulated pairs",
    )
    ap.add_argument("--child", choices=("read", "pipeline"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--before", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--after", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.before, args.after, args.workers, args.block)))
        return 0

    from simulators.scenes import SceneSpec, write_pair

    folder = args.dir / f"{args.size}x{args.bands}"
    before, after = folder / "before.tif", folder / "after.tif"
    if not (before.exists() and after.exists() and (folder / "truth.geojson").exists()):
        t = time.perf_counter()
        per_kind = max(1, args.size * args.size // 6_000_000)
        write_pair(
            SceneSpec(
                seed=7,
                width=args.size,
                height=args.size,
                bands=args.bands,
                tile=512,
                changes_per_kind=per_kind,
                cloud_cover=(0.02, 0.05),
            ),
            folder,
        )
        print(
            f"simulated {args.size}x{args.size} {args.bands}-band pair in"
            f" {time.perf_counter() - t:.0f} s under {folder}",
            flush=True,
        )
    results = {}
    for mode in ("read", "pipeline"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--before",
            str(before),
            "--after",
            str(after),
            "--workers",
            str(args.workers),
            "--block",
            str(args.block),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        for line in out.stderr.splitlines():
            if line.startswith("rs detect"):
                print(line, flush=True)
        r = results[mode]
        print(
            f"{mode:8s}: {r['seconds']:.1f} s wall, {r['cpu_s']:.1f} s CPU,"
            f" {r['pixels'] / 1e6 / r['seconds']:.1f} Mpx/s, peak RSS {r['rss_mb']:.0f} MB"
            + (f", {r['regions']} regions" if mode == "pipeline" else ""),
            flush=True,
        )
    read, pipe = results["read"], results["pipeline"]
    mpx = pipe["pixels"] / 1e6
    ratio = pipe["seconds"] / read["seconds"]
    # On a shared machine wall time depends on the neighbours; CPU time shows the work itself.
    print(
        f"CPU time ratio (pipeline/read): {pipe['cpu_s'] / read['cpu_s']:.2f}x; load average"
        f" {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"rs throughput: {mpx / pipe['seconds']:.1f} Mpx/s pipeline vs {mpx / read['seconds']:.1f}"
        f" Mpx/s raw read ({ratio:.2f}x the read time) on a {args.size}x{args.size}"
        f" {args.bands}-band pair, {args.workers} workers; peak RSS {pipe['rss_mb']:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
