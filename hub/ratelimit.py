"""Failed authentication, counted per client address and per user, with a lockout window.

After ``failures`` failed attempts within ``window_s`` seconds a key is locked for
``lockout_s`` seconds: every authentication under it is answered 429 with ``Retry-After``,
valid credentials included (otherwise a guesser would learn when a guess is right). Missing
credentials are not failures; only a credential presented and refused is.

The counts live in this process's memory (one hub process serves the API; a restart forgets
them, which only ends lockouts early). At most ``tracked_max`` keys are kept: when more fail,
the key that failed longest ago is forgotten first, so memory is bounded whatever an attacker
sends. An attacker spraying from more addresses than that can push an early one out, which
ends its lockout early; the per-user keys and the logs still show the attack.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """How many failures, over what window, lock a key for how long; how many keys are kept."""

    failures: int = 10
    window_s: float = 300.0
    lockout_s: float = 300.0
    tracked_max: int = 10_000

    def __post_init__(self) -> None:
        if self.failures < 1 or self.window_s <= 0 or self.lockout_s <= 0 or self.tracked_max < 1:
            raise ValueError(f"every limit must be positive: {self}")


@dataclass(slots=True)
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class FailureLimiter:
    """Failure counts and lockouts by key (``("addr", ip)``, ``("user", name)``); thread-safe,
    as FastAPI runs plain ``def`` dependencies in a thread pool."""

    def __init__(self, policy: LimitPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.lockouts_total = 0

    def __len__(self) -> int:
        return len(self._entries)

    def retry_after(self, key: tuple[str, str]) -> int | None:
        """Whole seconds until ``key``'s lockout ends; ``None`` when it is not locked."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.locked_until <= now:
                return None
            return max(1, math.ceil(entry.locked_until - now))

    def fail(self, key: tuple[str, str]) -> int | None:
        """Count a failure of ``key``; the seconds of its lockout when this one locked it (or it
        was locked already), else ``None``."""
        p = self.policy
        now = self._clock()
        with self._lock:
            entry = self._entries.pop(key, None) or _Entry()
            self._entries[key] = entry  # most recently failed last: evicted last
            while len(self._entries) > p.tracked_max:
                self._entries.popitem(last=False)
            if entry.locked_until > now:
                return max(1, math.ceil(entry.locked_until - now))
            window = entry.failures
            window.append(now)
            while window and window[0] <= now - p.window_s:
                window.popleft()
            if len(window) < p.failures:
                return None
            window.clear()
            entry.locked_until = now + p.lockout_s
            self.lockouts_total += 1
            return max(1, math.ceil(p.lockout_s))
