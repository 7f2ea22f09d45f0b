"""Against a real mosquitto running on the generated password and ACL files: nobody connects
without credentials, and each identity says and reads only what is its own.

Negative results are waited for by their positive twin: a message a client may publish, sent
after the one it may not on the same connection, reaches ingest's subscription in order, so once
it arrived the refused one would have arrived before it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from farsight.broker import MosquittoBroker
from farsight.credentials import INGEST, VIDEO
from tests.security.conftest import Peer, Trust, make_trust, wait_for

pytestmark = pytest.mark.e2e

AIR = "env/s-air/aq1"
OTHER = "env/s-other/aq1"
STACK = "env/s-stack/cems1"
CAMERA = "env/s-stack/cam1"
GW_A, GW_B = "gw/gw-a", "gw/gw-b"

Peers = Callable[..., Peer]


def ingest(peers: Peers, topic: str = "fs/v1/#") -> Peer:
    peer = peers(INGEST).connected()
    assert not peer.subscribe(topic).is_failure
    return peer


# -- who may connect ------------------------------------------------------------------------------


def test_an_anonymous_client_is_refused(peers: Peers) -> None:
    rc = peers(None).connack()
    assert rc.is_failure and rc.getName() == "Not authorized"


@pytest.mark.parametrize("who", [AIR, INGEST, "someone-else"])
def test_a_wrong_password_is_refused(peers: Peers, who: str) -> None:
    rc = peers(who, password="not-the-password").connack()
    assert rc.is_failure


def test_every_identity_connects_with_its_own_secret(peers: Peers, trust: Trust) -> None:
    # The hashes are made in Python: mosquitto reading them as its own is the format check.
    for name in trust.secrets:
        peer = peers(name)
        assert not peer.connack().is_failure, name
        peer.close()


# -- what a device may do -------------------------------------------------------------------------


def test_a_device_cannot_publish_for_another_site(peers: Peers) -> None:
    hub = ingest(peers)
    device = peers(AIR).connected()
    forged = "fs/v1/env/s-other/aq1/reading"
    own = "fs/v1/env/s-air/aq1/reading"
    assert device.publish(forged, b'{"forged": 99.9}').getName() == "Not authorized"
    assert not device.publish(own, b'{"own": 1}').is_failure
    wait_for(lambda: hub.received(own), "the device's own reading at ingest")
    assert hub.received(forged) == []
    # Nor for a device of its own site it is not, nor in another department's name.
    for topic in ("fs/v1/env/s-air/aq2/reading", "fs/v1/transport/s-air/aq1/reading"):
        assert device.publish(topic, b"x").getName() == "Not authorized"


def test_a_device_reads_nothing_not_even_with_a_wildcard(peers: Peers) -> None:
    hub = ingest(peers)
    spy = peers(AIR).connected()
    # mosquitto 2.0 grants any SUBSCRIBE under an acl_file (it checks subscriptions only in
    # plugins) and filters on delivery: the test accepts a refusal, and asserts that nothing
    # reaches the spy either way.
    codes = [spy.subscribe("#"), spy.subscribe("fs/v1/env/s-other/aq1/reading")]
    codes.append(spy.subscribe("fs/v1/gw/+/config"))
    other = peers(OTHER).connected()
    topic = "fs/v1/env/s-other/aq1/reading"
    assert not other.publish(topic, b'{"n": 1}').is_failure
    wait_for(lambda: hub.received(topic), "the other device's reading at ingest")
    # The spy's own subscription is answered on the same connection after anything the broker
    # routed to it before: a round trip through its own client.
    assert not spy.publish("fs/v1/env/s-air/aq1/reading", b"{}").is_failure
    assert spy.messages == [], (codes, spy.messages)


def test_a_device_cannot_write_a_gateways_retained_config(peers: Peers) -> None:
    topic = "fs/v1/gw/gw-a/config"
    hub = peers(INGEST).connected()
    assert not hub.publish(topic, b'{"version": 1}', retain=True).is_failure
    device = peers(AIR).connected()
    assert device.publish(topic, b'{"version": 99}', retain=True).getName() == "Not authorized"
    gateway = peers(GW_A).connected()
    assert not gateway.subscribe(topic).is_failure
    wait_for(lambda: gateway.received(topic), "the retained config at the gateway")
    assert gateway.received(topic) == [b'{"version": 1}']


# -- what a gateway may do ------------------------------------------------------------------------


def test_a_gateway_publishes_only_its_own_topics(peers: Peers) -> None:
    hub = ingest(peers)
    gateway = peers(GW_A).connected()
    for topic in (
        "fs/v1/gw/gw-b/batch",
        "fs/v1/gw/gw-b/status",
        "fs/v1/gw/gw-b/config/ack",
        "fs/v1/gw/gw-a/config",  # its configuration comes from the hub only
        "fs/v1/env/s-air/aq1/reading",  # a device's topic, even at its own site
    ):
        assert gateway.publish(topic, b"x").getName() == "Not authorized", topic
    for topic in ("fs/v1/gw/gw-a/status", "fs/v1/gw/gw-a/config/ack", "fs/v1/gw/gw-a/batch"):
        assert not gateway.publish(topic, b"{}").is_failure, topic
    wait_for(lambda: hub.received("fs/v1/gw/gw-a/batch"), "the gateway's batch at ingest")
    assert set(hub.live()) == {
        "fs/v1/gw/gw-a/status",
        "fs/v1/gw/gw-a/config/ack",
        "fs/v1/gw/gw-a/batch",
    }


def test_a_gateway_reads_only_its_own_config(peers: Peers) -> None:
    hub = peers(INGEST).connected()
    for gw in ("gw-a", "gw-b"):
        assert not hub.publish(f"fs/v1/gw/{gw}/config", gw.encode(), retain=True).is_failure
    gateway = peers(GW_A).connected()
    gateway.subscribe("fs/v1/gw/+/config")
    wait_for(lambda: gateway.received("fs/v1/gw/gw-a/config"), "its own retained config")
    assert gateway.received("fs/v1/gw/gw-b/config") == []


# -- the services ---------------------------------------------------------------------------------


def test_video_publishes_detections_of_the_registrys_cameras_only(peers: Peers) -> None:
    hub = ingest(peers)
    video = peers(VIDEO).connected()
    for topic in ("fs/v1/env/s-air/aq1/detection", "fs/v1/env/s-stack/cam1/reading"):
        assert video.publish(topic, b"{}").getName() == "Not authorized", topic
    own = "fs/v1/env/s-stack/cam1/detection"
    assert not video.publish(own, b"{}").is_failure
    wait_for(lambda: hub.received(own), "the detection at ingest")
    assert hub.live() == [own]


def test_the_hub_identity_may_do_nothing(peers: Peers) -> None:
    hub = peers("farsight-hub").connected()
    assert hub.publish("fs/v1/gw/gw-a/config", b"x").getName() == "Not authorized"


def test_nobody_else_takes_ingests_client_id_or_its_session(peers: Peers) -> None:
    """use_username_as_clientid: a client id is its user name, whatever the client sends, so
    a device connecting as 'farsight-ingest' neither throws ingest off nor gets its queue."""
    first = peers(INGEST, client_id=INGEST, clean_start=False, session_expiry_s=600).connected()
    assert not first.subscribe("fs/v1/#").is_failure
    first.close()  # ingest away: the broker queues for its persistent session
    device = peers(AIR).connected()
    queued = "fs/v1/env/s-air/aq1/reading"
    assert not device.publish(queued, b'{"queued": 1}').is_failure
    impostor = peers(OTHER, client_id=INGEST, clean_start=False, session_expiry_s=600).connected()
    back = peers(INGEST, client_id=INGEST, clean_start=False, session_expiry_s=600).connected()
    wait_for(lambda: back.received(queued), "ingest's queued message after it came back")
    # Both are on line at once: neither connection threw the other off.
    impostor.subscribe("fs/v1/#")
    after = "fs/v1/env/s-air/aq1/status"
    assert not device.publish(after, b"online").is_failure
    wait_for(lambda: back.received(after), "a message after both connected")
    assert back.disconnects == [] and impostor.disconnects == []
    assert impostor.messages == []


# -- changes pushed to a running broker ------------------------------------------------------------


def test_rotated_credentials_take_effect_after_sync_and_sighup(
    mosquitto_path: str, tmp_path_factory: pytest.TempPathFactory, peers: Peers
) -> None:
    trust = make_trust(tmp_path_factory.mktemp("rotate"))
    broker = MosquittoBroker(data_dir=tmp_path_factory.mktemp("rotate-broker"), auth=trust.auth)
    try:
        old = trust.secrets[AIR].password
        holder = peers(AIR, broker=broker, password=old).connected()
        bystander = peers(OTHER, broker=broker, password=trust.secrets[OTHER].password).connected()
        new = trust.store.rotate(AIR, trust.registry).password
        # The broker reads nothing before the sync and the signal: the old password still works.
        assert not peers(AIR, broker=broker, password=old).connack().is_failure
        trust.sync()
        broker.reload()
        wait_for(
            lambda: peers(AIR, broker=broker, password=old).connack().is_failure,
            "the old password refused after SIGHUP",
        )
        assert not peers(AIR, broker=broker, password=new).connack().is_failure
        # mosquitto checks the clients on line again on reload: the connection made with the old
        # password is closed, and its client's reconnects are refused; others are untouched.
        wait_for(lambda: holder.disconnects, "the old password's connection closed")
        wait_for(lambda: len(holder.connacks) > 1, "the holder's reconnect answered")
        assert all(rc.is_failure for rc in holder.connacks[1:])
        assert bystander.disconnects == []

        # A revoked identity leaves both files at the next sync: refused, and thrown off.
        online = peers(AIR, broker=broker, password=new).connected()
        trust.store.revoke(AIR)
        trust.sync()
        broker.reload()
        wait_for(
            lambda: peers(AIR, broker=broker, password=new).connack().is_failure,
            "the revoked identity refused after SIGHUP",
        )
        wait_for(lambda: online.disconnects, "the revoked identity's connection closed")
        assert bystander.disconnects == []
    finally:
        broker.close()
