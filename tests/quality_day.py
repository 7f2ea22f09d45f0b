"""A simulated day with known gaps and flags, and its ground truth counted from the scenario.

Two sites of department env: a shift-operated stack (its CEMS reports HJ 212 flag F, stopped,
from 22:00 to 06:00 Beijing time on every analyser value but ``running``) and an air-quality
station. The scenario silences the stack's CEMS for 95 minutes across three hours and the air
station twice: 20 minutes (its hour keeps 40 valid minutes: invalid under HJ 75) and 10 minutes
(50 left: still valid). The truth is counted from the scenario's injections and the device model's
own plant state, minute by minute, never from the code under test.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from farsight.clock import BEIJING
from farsight.credit import make_credit_code
from farsight.registry import Registry, parse_registry
from farsight.types import Reading
from ingest.message import Message
from ingest.pipeline import IngestPipeline
from ingest.store import ReadingStore
from simulators.devices import CemsModel, make_model
from simulators.publisher import Simulator
from simulators.scenarios import Injection, Scenario

DAY = datetime(2026, 11, 24, tzinfo=BEIJING)
"""The simulated day: Beijing midnight to midnight."""
ENTITY = make_credit_code("91420500MA4K3C4D5")
CEMS_METRICS = ["so2", "nox", "particulate", "o2", "flue_flow", "flue_temp", "running"]
AQ_METRICS = ["pm25", "pm10", "so2", "no2", "o3", "co"]
DELAY_S = 2.0
"""Receive time minus measure time of every reading but the late ones."""
LATE_MINUTES = {(7, 0): 420.0, (7, 1): 30.0}
"""(hour, minute) -> delay in seconds of the air station's readings then (late data)."""

REGISTRY_DOC: dict[str, Any] = {
    "sites": [
        {
            "id": "qd-stack",
            "name": "Shift foundry stack",
            "department": "env",
            "entity_id": ENTITY,
            "location": {"lon": 111.3, "lat": 30.7},
            "kind": "stack",
            "tags": ["foundry", "shift_operation"],
            "limits": {"so2": 100, "nox": 100, "particulate": 20},
            "devices": [
                {
                    "id": "cems1",
                    "kind": "cems",
                    "protocol": "hj212",
                    "mn": "42050631009901",
                    "metrics": CEMS_METRICS,
                    "cadence_s": 60,
                },
                {"id": "cam1", "kind": "camera", "metrics": ["video_smoke"], "cadence_s": 60},
            ],
        },
        {
            "id": "qd-air",
            "name": "Air station",
            "department": "env",
            "entity_id": ENTITY,
            "location": {"lon": 111.29, "lat": 30.69},
            "kind": "air_quality",
            "devices": [
                {"id": "aq1", "kind": "air_quality", "metrics": AQ_METRICS, "cadence_s": 60}
            ],
        },
        {
            "id": "qd-wim",
            "name": "Weigh station",
            "department": "transport",
            "entity_id": ENTITY,
            "location": {"lon": 111.2, "lat": 30.6},
            "devices": [{"id": "wim1", "kind": "wim", "metrics": ["gross_weight"]}],
        },
    ]
}

SCENARIO = Scenario(
    name="quality-day",
    description="Gaps of known length at a shift stack and an air station.",
    injections=(
        Injection(
            "silence", "qd-stack", "cems1", timedelta(hours=5, minutes=30), timedelta(minutes=95)
        ),
        Injection(
            "silence", "qd-air", "aq1", timedelta(hours=13, minutes=10), timedelta(minutes=20)
        ),
        Injection("silence", "qd-air", "aq1", timedelta(hours=16), timedelta(minutes=10)),
    ),
)


STACK_STOPPED = (timedelta(hours=-2), timedelta(hours=3, minutes=30))
"""A declared stoppage of the stack's CEMS: 22:00 the evening before to 03:30 (Beijing). Its
plant stops 22:00 to 06:00 every night, flagging F; from 03:30 to 06:00 the F data is
undeclared."""


def make_registry(declared: bool = False) -> Registry:
    """The day's registry; with ``declared``, the stack's CEMS has :data:`STACK_STOPPED`."""
    doc = copy.deepcopy(REGISTRY_DOC)
    if declared:
        doc["sites"][0]["stoppages"] = [
            {
                "start": (DAY + STACK_STOPPED[0]).isoformat(),
                "end": (DAY + STACK_STOPPED[1]).isoformat(),
                "reason": "night shift off, declared to the department",
                "devices": ["cems1"],
            }
        ]
    return parse_registry(doc, ("env", "transport"), source="tests quality day")


def simulate(store: ReadingStore, registry: Registry, scenario: Scenario = SCENARIO) -> int:
    """Play the day through ingest's decoders into ``store``; returns the readings stored.

    Receive times are the measure time plus :data:`DELAY_S` (plus :data:`LATE_MINUTES` at the
    air station), so timeliness is known too.
    """
    sim = Simulator(registry, scenario, seed=7, sites=["qd-stack", "qd-air"], start=DAY)
    pipe = IngestPipeline(registry, store)
    stored = 0
    for k in range(24 * 60):
        t = sim.round_time(k)
        local = t.astimezone(BEIJING)
        by_delay: dict[float, list[Reading]] = defaultdict(list)
        for topic, payload in sim.messages(t):
            readings, _irregular, _attrs, _refused = pipe.decode(Message(topic, payload))
            for r in readings:
                delay = DELAY_S
                if r.site == "qd-air":
                    delay = LATE_MINUTES.get((local.hour, local.minute), DELAY_S)
                by_delay[delay].append(r)
        for delay, readings in by_delay.items():
            stored += sum(store.write_batch(readings, received=t + timedelta(seconds=delay)))
    return stored


@dataclass(frozen=True)
class Truth:
    """Counts of one device over the day, per hour: expected, received, valid values and
    valid hourly values (metrics with 45 valid minutes)."""

    expected: list[int]
    received: list[int]
    valid: list[int]
    hourly_valid: list[int]
    daily_valid: int
    late: list[int]


def truth(
    registry: Registry,
    site_id: str,
    device_id: str,
    scenario: Scenario = SCENARIO,
    declared: Sequence[tuple[timedelta, timedelta]] = (),
) -> Truth:
    """The device's counts from the scenario's silences and the model's plant state; minutes
    in a ``declared`` stoppage (offsets from :data:`DAY`) are neither owed nor counted."""
    site = registry.get(site_id)
    assert site is not None
    device = site.device(device_id)
    assert device is not None
    model = make_model(site, device, seed=7)
    silences = [
        (i.start, i.end)
        for i in scenario.injections
        if i.kind == "silence" and i.site == site_id and i.device == device_id
    ]
    expected, received, valid, hourly_valid, late = ([0] * 24 for _ in range(5))
    valid_hours: dict[str, int] = defaultdict(int)
    for hour in range(24):
        valid_minutes: dict[str, int] = defaultdict(int)
        for minute in range(60):
            offset = timedelta(hours=hour, minutes=minute)
            t = DAY + offset
            silent = any(a <= offset < b for a, b in silences)
            if any(a <= offset < b for a, b in declared):
                continue
            for metric in device.metrics:
                expected[hour] += 1
                if silent:
                    continue
                received[hour] += 1
                if site_id == "qd-air" and LATE_MINUTES.get((hour, minute), 0) > 300:
                    late[hour] += 1
                stopped = isinstance(model, CemsModel) and not model.running_at(t)
                if metric == "running" or not stopped:
                    valid[hour] += 1
                    valid_minutes[metric] += 1
        for metric in device.metrics:
            if valid_minutes[metric] >= 45:
                hourly_valid[hour] += 1
                valid_hours[metric] += 1
    daily_valid = sum(1 for m in device.metrics if valid_hours[m] >= 20)
    return Truth(expected, received, valid, hourly_valid, daily_valid, late)
