"""Smoke tests of benchmarks/ingest.py and benchmarks/ingest_checks.py: the first runs at a tiny
size through the open, TLS and auth+ACL+TLS brokers and prints its figure last, with the secured
brokers' ratios and the checks-on/checks-off ratio on it; the second compares the pipeline's CPU
per message with the checks on and off."""

from __future__ import annotations

import re

import pytest

from tests.benchmark_runs import run_benchmark

LAST = re.compile(
    r"^ingest: (?P<rate>[\d,]+) readings/s end to end \((?P<msgs>[\d,]+) messages/s of 6 metrics,"
    r" qos1, mosquitto, MQTT 3\.1\.1\); bare paho (?P<bare>[\d,]+) messages/s;"
    r" ratio (?P<ratio>[\d.]+); to the open broker: TLS (?P<tls>[\d.]+),"
    r" auth\+ACL\+TLS (?P<auth>[\d.]+); checks on/off (?P<checks>[\d.]+)"
    r" \(ingest CPU per message on/off (?P<cpu>[\d.]+)\)$"
)

CHECKS_LAST = re.compile(
    r"^ingest checks: IngestPipeline\.process\(\) CPU per message \(median of 2 interleaved runs"
    r" each, 60 messages of 6 metrics\): checks on (?P<on>\d+) µs, off (?P<off>\d+) µs,"
    r" on/off (?P<ratio>[\d.]+)$"
)


def _run(script: str, repeat: int) -> list[str]:
    """``benchmarks/<script>`` at a tiny size (20 devices, 3 messages each): its output lines."""
    args = ["--devices", "20", "--per-device", "3", "--repeat", str(repeat)]
    return run_benchmark(script, *args, timeout=180)


@pytest.mark.slow
@pytest.mark.e2e
def test_ingest_benchmark_measures_the_secured_broker_and_prints_its_figure_last(
    mosquitto_path: str,
) -> None:
    # A broker that took anonymous clients or a device's publish on another device's topic would
    # have stopped the script before its run (run_benchmark asserts it exited 0).
    out = _run("ingest.py", repeat=1)
    assert "round 1, auth+ACL+TLS broker" in "\n".join(out)
    secured = [line for line in out if line.startswith("farsight ingest with auth+ACL+TLS:")]
    # Every reading was stored, none dead-lettered: each device's messages went through as it.
    assert secured and "0 dead letters" in secured[0], out
    m = LAST.match(out[-1])
    assert m, out[-1]
    for key in ("rate", "msgs", "bare"):
        assert float(m[key].replace(",", "")) > 0
    assert float(m["tls"]) > 0 and float(m["auth"]) > 0
    # The open broker ran with the door's checks off as well as on, in the same run.
    assert "round 1, open broker, checks off:" in "\n".join(out)
    assert float(m["checks"]) > 0 and float(m["cpu"]) > 0
    assert out[-2].startswith("checks on vs off (open broker, median of 1 interleaved runs each)")


@pytest.mark.slow
def test_the_checks_microbenchmark_compares_process_cpu_with_checks_on_and_off() -> None:
    # It exits non-zero if a run refused a message or stored fewer readings than sent
    # (run_benchmark asserts it exited 0).
    out = _run("ingest_checks.py", repeat=2)
    runs = [line.split(":")[0] for line in out if line.startswith("run ")]
    assert runs == [
        "run 1, checks off",
        "run 2, checks on",
        "run 3, checks on",
        "run 4, checks off",
    ]
    m = CHECKS_LAST.match(out[-1])
    assert m, out[-1]
    assert float(m["on"]) > 0 and float(m["off"]) > 0 and float(m["ratio"]) > 0
