"""Site inputs of the gateway: each collector hands messages to the buffer and acknowledges its
source only once they are durable."""

from __future__ import annotations

from typing import Protocol


class Collector(Protocol):
    """What the service needs of a collector."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def state(self) -> str: ...
