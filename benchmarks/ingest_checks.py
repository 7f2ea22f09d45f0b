"""CPU per message of ingest's pipeline with the door's checks on and off, in one process.

The end-to-end figure of ``benchmarks/ingest.py`` moves with whatever else runs on the machine;
this one does not involve a broker or the clock on the wall: it hands the same messages (those of
``benchmarks/ingest.py``: air-quality analysers, six metrics each) to
:meth:`ingest.pipeline.IngestPipeline.process` of a full :class:`app.roles.ingest.IngestService`
(SQLite store, rule engine with the default pack, alert pipeline), in batches of
``ingest.batch_max``, and counts the process's CPU time. Checks on and off alternate (off, on, on,
off, ...), each run into a fresh database; the medians are compared. Two figures:

* ``process()``: the whole pipeline, what the checks' cost is a share of;
* the door alone: :meth:`IngestPipeline.decode` and the measure-time judgement per message (no
  store, no rules), so what the checks themselves cost is visible beside the decoding they guard.

The last line is the figure: CPU per message with the checks on over off.

    .venv/bin/python benchmarks/ingest_checks.py [--devices 1000] [--per-device 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.roles.ingest import IngestService
from benchmarks.ingest import messages, registry_doc
from farsight.registry import Registry, parse_registry
from farsight.settings import Settings
from ingest.message import Message
from ingest.pipeline import IngestPipeline


@dataclass(frozen=True)
class Sample:
    """CPU microseconds per message of one run: the whole ``process()``, and the door alone."""

    process_us: float
    door_us: float


def service(data_dir: Path, registry: Registry, checks: bool) -> IngestService:
    """Ingest as ``farsight ingest`` builds it, never connected: only its pipeline is used."""
    settings = Settings.model_validate(
        {"data_dir": str(data_dir), "broker": {"embedded": "none", "allow_anonymous": True}}
    )
    return IngestService(settings, registry, checks=checks)


def door_us(pipeline: IngestPipeline, msgs: Sequence[Message]) -> float:
    """CPU microseconds per message of decoding and judging ``msgs`` (nothing stored)."""
    start = time.process_time()
    for m in msgs:
        readings = pipeline.decode(m)[0]
        pipeline._judge_times(m, readings)
    return (time.process_time() - start) / len(msgs) * 1e6


def measure(data_dir: Path, registry: Registry, msgs: Sequence[Message], checks: bool) -> Sample:
    svc = service(data_dir, registry, checks)
    try:
        size = svc.settings.ingest.batch_max
        door = door_us(svc.pipeline, msgs)
        start = time.process_time()
        for i in range(0, len(msgs), size):
            result = svc.pipeline.process(msgs[i : i + size])
            if result.rejected:
                raise SystemExit(f"checks {'on' if checks else 'off'}: {result.rejected} refused")
        cpu = time.process_time() - start
        stored = svc.readings.count()
    finally:
        svc.readings.close()
        svc.alert_pipeline.close()
        svc.rule_state.close()
    if stored != len(msgs) * 6:
        raise SystemExit(f"stored {stored} readings of {len(msgs) * 6}")
    return Sample(cpu / len(msgs) * 1e6, door)


def order(repeat: int) -> list[bool]:
    """Checks on or off per run: off, on, on, off, off, on, ... (each pair in turn reversed)."""
    pairs = [(False, True) if k % 2 == 0 else (True, False) for k in range(repeat)]
    return [on for pair in pairs for on in pair]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--per-device", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5, help="runs with checks on, and as many off")
    args = ap.parse_args()
    registry = parse_registry(registry_doc(args.devices))
    msgs = [Message(t, p) for t, p in messages(args.devices, args.per_device)]
    samples: dict[bool, list[Sample]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="farsight-bench-checks-") as tmp:
        for k, on in enumerate(order(max(1, args.repeat))):
            sample = measure(Path(tmp) / f"run-{k}", registry, msgs, on)
            samples[on].append(sample)
            print(
                f"run {k + 1}, checks {'on' if on else 'off'}: process() {sample.process_us:.0f} µs"
                f" per message, door {sample.door_us:.1f} µs",
                flush=True,
            )
    proc = {on: statistics.median(s.process_us for s in samples[on]) for on in samples}
    door = {on: statistics.median(s.door_us for s in samples[on]) for on in samples}
    print(
        f"door alone (decode and measure-time judgement): checks on {door[True]:.1f} µs per"
        f" message, off {door[False]:.1f} µs; the checks cost {door[True] - door[False]:.1f} µs"
    )
    print(
        f"ingest checks: IngestPipeline.process() CPU per message (median of {len(samples[True])}"
        f" interleaved runs each, {len(msgs)} messages of 6 metrics): checks on"
        f" {proc[True]:.0f} µs, off {proc[False]:.0f} µs, on/off {proc[True] / proc[False]:.3f}"
    )


if __name__ == "__main__":
    main()
