"""Gateway health on the hub: silent and backlogged gateways raise alerts and clear them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from farsight.db import Database
from farsight.settings import EdgeHubSettings
from ingest.edge_health import GatewayMonitor
from tests.factories import T0, registry


def _beat(depth: int, age: float | None, state: str = "online") -> bytes:
    return json.dumps(
        {
            "gateway": "gw-1",
            "state": state,
            "buffer": {"depth": depth, "oldest_age_s": age},
            "config_version": 3,
        }
    ).encode()


def _monitor(tmp_path: Path) -> GatewayMonitor:
    s = EdgeHubSettings(
        sites={"gw-1": "yc-stack-1"}, silent_after_s=60, backlog_age_s=300, backlog_beats=3
    )
    return GatewayMonitor(Database.of(tmp_path / "hub.db"), s, registry())


def test_a_growing_backlog_fires_once_and_resolves_when_it_drains(tmp_path: Path) -> None:
    m = _monitor(tmp_path)
    fired = []
    for i, depth in enumerate([10, 20, 30, 40, 50]):
        fired += m.observe("gw-1", "status", _beat(depth, 5.0), now=T0 + timedelta(seconds=i))[0]
    assert [(s.rule_id, s.status) for s in fired] == [("gateway-backlog", "firing")]
    s = fired[0]
    assert (s.site, s.device, s.department, dict(s.labels)) == (
        "yc-stack-1",
        "gw-1",
        "env",
        {"gateway": "gw-1"},
    )
    signals, row, _ = m.observe("gw-1", "status", _beat(0, None), now=T0 + timedelta(seconds=9))
    assert [(s.rule_id, s.status) for s in signals] == [("gateway-backlog", "resolved")]
    assert row["depth"] == 0 and row["config_version"] == 3


def test_an_old_backlog_fires_even_when_not_growing(tmp_path: Path) -> None:
    m = _monitor(tmp_path)
    signals, _, _ = m.observe("gw-1", "status", _beat(5, 301.0), now=T0)
    assert [(s.rule_id, s.status, s.value) for s in signals] == [
        ("gateway-backlog", "firing", 301.0)
    ]


def test_a_silent_gateway_and_its_last_will_fire_gateway_silent(tmp_path: Path) -> None:
    m = _monitor(tmp_path)
    m.observe("gw-1", "status", _beat(0, None), now=T0)
    assert m.check_silent(T0 + timedelta(seconds=59)) == []
    [s] = m.check_silent(T0 + timedelta(seconds=61))
    assert (s.rule_id, s.status, s.severity) == ("gateway-silent", "firing", "major")
    assert m.check_silent(T0 + timedelta(seconds=120)) == []  # once
    back, _, _ = m.observe("gw-1", "status", _beat(0, None), now=T0 + timedelta(seconds=130))
    assert [(x.rule_id, x.status) for x in back] == [("gateway-silent", "resolved")]
    will, row, _ = m.observe(
        "gw-1",
        "status",
        b'{"gateway": "gw-1", "state": "offline"}',
        now=T0 + timedelta(seconds=140),
    )
    assert [(x.rule_id, x.status) for x in will] == [("gateway-silent", "firing")] and row[
        "state"
    ] == "offline"


def test_status_rows_are_kept_and_an_unreadable_message_is_ignored(tmp_path: Path) -> None:
    m = _monitor(tmp_path)
    _, row, _ = m.observe("gw-1", "status", _beat(7, 1.5), now=T0)
    m.commit([row], [])
    assert m.status()[0]["depth"] == 7
    assert m.observe("gw-1", "status", b"\xff") == ([], None, None)
