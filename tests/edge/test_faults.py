"""Fault tests of the edge gateway with real processes and real mosquitto brokers.

Each test runs a site broker, a central broker, the hub's ingest and ``farsight edge`` as a child
process, with simulated devices publishing to the site broker, then breaks something: the uplink
(central broker stopped for a while), the gateway (SIGKILL mid-forwarding), the central broker
(restarted), the buffer (a tiny size bound). Afterwards the hub must hold every reading the
devices sent exactly once, in order per device, or exactly the loss the gateway reported.
Outages are compressed to seconds; every wait is a poll with a deadline.
"""

from __future__ import annotations

import pytest

from simulators.gateway_site import SiteSimulator, SiteSpec
from tests.conftest import wait_until
from tests.edge.conftest import assert_exactly_once_in_order, gateway_config

pytestmark = pytest.mark.e2e


def wait_for_hub(hub, gw, expected: int, timeout: float = 60) -> None:
    try:
        wait_until(
            lambda: hub.count() == expected, timeout=timeout, what=f"{expected} readings at the hub"
        )
    except AssertionError as exc:
        order = hub.order_by_device()
        gaps = {d: sorted(set(range(max(v) + 1)) - set(v))[:20] for d, v in order.items()}
        raise AssertionError(
            f"{exc}; gaps {gaps}; max {[(d, max(v)) for d, v in order.items()]}; hub has"
            f" {hub.count()}, gateway buffer {gw.buffer()}, hub gateways {hub.gateways()}, "
            f"dead letters {[(d.reason, d.detail) for d in hub.dead_letters()][:5]}\n{gw.tail()}"
        ) from None


def _sim(site_broker, devices: int = 5, seed: int = 7) -> SiteSimulator:
    return SiteSimulator(site_broker.host, site_broker.port, SiteSpec(devices=devices), seed=seed)


def test_uplink_down_while_devices_keep_sending_then_restored(
    site_broker, central_broker, hub, start_gateway, status
) -> None:
    gw = start_gateway(gateway_config(site_broker, central_broker))
    wait_until(
        status.ready, timeout=30, what="the gateway online and subscribed to the site broker"
    )
    sim = _sim(site_broker)
    try:
        sim.start(rate=500)
        wait_until(
            lambda: hub.count() >= 200, timeout=30, what="readings flowing through the gateway"
        )
        central_broker.stop()  # the 4G link drops
        at_outage = sim.total_published
        wait_until(
            lambda: sim.total_published >= at_outage + 1500,
            timeout=30,
            what="devices sending during the outage",
        )
        wait_until(lambda: gw.buffer()["depth"] >= 1000, timeout=30, what="the gateway buffering")
        central_broker.start()  # restored
        wait_until(
            lambda: sim.total_published >= at_outage + 2500,
            timeout=30,
            what="more readings after the outage",
        )
        sim.stop()
        assert sim.wait_acked(30)
        sent = dict(sim.acked)
        wait_for_hub(hub, gw, sum(sent.values()))
        wait_until(lambda: gw.buffer()["depth"] == 0, timeout=30, what="the buffer drained")
        assert_exactly_once_in_order(hub, sent)
        g = hub.gateways()["gw-test"]
        assert g["backfilled"] >= 1000  # what waited out the outage arrived marked as late data
        assert g["lost"] == 0
        assert hub.dead_letters() == []
    finally:
        sim.close()


def test_gateway_killed_mid_forwarding_then_restarted(
    site_broker, central_broker, hub, start_gateway, status
) -> None:
    # Small batches, one in flight: the replay takes seconds, so the kill lands in the middle of it.
    config = gateway_config(site_broker, central_broker, uplink={"batch_max": 5, "inflight": 1})
    gw = start_gateway(config)
    wait_until(
        status.ready, timeout=30, what="the gateway online and subscribed to the site broker"
    )
    sim = _sim(site_broker, devices=20)
    try:
        # A backlog first (uplink down), so that the kill lands while the gateway is replaying it.
        central_broker.stop()
        sim.start(rate=4000, rounds=1500)
        # A deep backlog and an early kill: on a loaded machine this process can be descheduled
        # for seconds between seeing the replay start and the kill, and a shallow backlog was
        # once drained whole in that gap (nothing left to lose).
        wait_until(
            lambda: gw.buffer()["depth"] >= 20_000, timeout=60, what="a backlog of 20,000 readings"
        )
        peak = gw.buffer()["depth"]
        central_broker.start()
        wait_until(
            lambda: gw.buffer()["depth"] < peak - 100,
            timeout=60,
            interval=0.01,
            what="the replay under way",
        )
        gw.kill()  # SIGKILL mid-forwarding, devices still sending
        assert 0 < gw.buffer()["depth"]
        wait_until(
            lambda: status.last and status.last.get("state") == "offline",
            timeout=30,
            what="the last will: offline",
        )
        wait_until(
            lambda: any(a.rule_id == "gateway-silent" for a in hub.service.alerts.list()[0]),
            timeout=30,
            what="the hub's gateway-silent alert",
        )
        gw.start()  # same buffer file, same local session
        sim.stop()
        assert sim.wait_acked(30)
        sent = dict(sim.acked)
        wait_for_hub(hub, gw, sum(sent.values()), timeout=90)
        assert_exactly_once_in_order(hub, sent)
        assert hub.dead_letters() == []
        wait_until(
            lambda: status.last and status.last.get("state") == "online",
            timeout=30,
            what="online again",
        )
        wait_until(
            lambda: all(
                a.resolved_at is not None
                for a in hub.service.alerts.list()[0]
                if a.rule_id == "gateway-silent"
            ),
            timeout=30,
            what="gateway-silent resolved",
        )
    finally:
        sim.close()


def test_central_broker_restarted_while_forwarding(
    site_broker, central_broker, hub, start_gateway, status
) -> None:
    gw = start_gateway(gateway_config(site_broker, central_broker))
    wait_until(
        status.ready, timeout=30, what="the gateway online and subscribed to the site broker"
    )
    sim = _sim(site_broker, seed=11)
    try:
        sim.start(rate=1000)
        for i in range(2):
            want = 300 * (i + 1)
            wait_until(lambda n=want: hub.count() >= n, timeout=60, what="readings flowing")
            central_broker.stop()
            central_broker.start()
        wait_until(
            lambda: hub.count() >= 1000, timeout=60, what="readings flowing after the restarts"
        )
        sim.stop()
        assert sim.wait_acked(30)
        sent = dict(sim.acked)
        wait_for_hub(hub, gw, sum(sent.values()))
        assert_exactly_once_in_order(hub, sent)
        assert hub.dead_letters() == []
    finally:
        sim.close()


@pytest.mark.parametrize("policy", ["drop_oldest", "refuse"])
def test_tiny_buffer_fills_up_and_the_loss_is_exactly_what_was_reported(
    policy, site_broker, central_broker, hub, start_gateway, status
) -> None:
    config = gateway_config(
        site_broker, central_broker, buffer={"max_bytes": 16 * 1024, "policy": policy}
    )
    gw = start_gateway(config)
    wait_until(
        status.ready, timeout=30, what="the gateway online and subscribed to the site broker"
    )
    sim = _sim(site_broker, seed=13)
    try:
        central_broker.stop()
        sim.run(rounds=300, rate=3000)  # 1,500 readings of ~110 bytes: far beyond 16 KiB
        assert sim.wait_acked(30)
        sent = dict(sim.acked)
        total = sum(sent.values())
        wait_until(
            lambda: (
                gw.buffer()["depth"]
                + sum(gw.buffer()[k] for k in ("dropped", "refused", "expired"))
                == total
            ),
            timeout=30,
            what="every reading buffered or counted as lost",
        )
        at_gateway = gw.buffer()
        lost = at_gateway["dropped"] + at_gateway["refused"]
        assert lost > 1000
        assert (at_gateway["dropped"] > 0) == (policy == "drop_oldest")
        assert (at_gateway["refused"] > 0) == (policy == "refuse")
        central_broker.start()
        wait_for_hub(hub, gw, total - lost)
        assert_exactly_once_in_order(hub, sent, lost=lost)
        reported = hub.gateways()["gw-test"]
        assert reported["lost"] == lost  # the hub knows exactly what the gateway lost
        order = hub.order_by_device()
        if policy == "drop_oldest":
            assert all(max(v) == 299 for v in order.values())  # the newest survive
        else:
            assert all(min(v) == 0 for v in order.values())  # the oldest survive
        kind = "dropped" if policy == "drop_oldest" else "refused"
        wait_until(
            lambda: status.last and status.last.get("loss", {}).get(kind) == lost,
            timeout=30,
            what="the loss in the heartbeat",
        )
    finally:
        sim.close()
