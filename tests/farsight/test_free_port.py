"""Free ports for servers are taken below the OS's ephemeral range, where outgoing connections
cannot take them between our check and the server's bind."""

from __future__ import annotations

import random
import socket

import pytest

from farsight.broker import _ephemeral_low, free_port


def test_free_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    low = _ephemeral_low()
    ports = {free_port() for _ in range(20)}
    assert len(ports) > 1  # picked at random, not the same each time
    for port in ports:
        if low > 11024:
            assert 10000 <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free: binding it works


class _Replay(random.Random):
    """Hands out the given ports in order (a seam for the port picker's randomness)."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__(0)
        self.ports = ports

    def randrange(self, *_args: object, **_kw: object) -> int:
        return self.ports.pop(0)


def test_a_taken_port_is_skipped() -> None:
    if _ephemeral_low() <= 11024:
        pytest.fail("this machine's ephemeral range starts too low for the test's premise")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        other = free_port()
        assert free_port(_Replay([busy, other])) == other
