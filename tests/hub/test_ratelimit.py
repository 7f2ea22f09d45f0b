"""The failed-authentication limiter on its own: window, lockout, its end, and bounded memory."""

from __future__ import annotations

from typing import Any

import pytest

from hub.ratelimit import FailureLimiter, LimitPolicy


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_failures_within_the_window_lock_the_key_until_the_lockout_ends() -> None:
    clock = FakeClock()
    lim = FailureLimiter(LimitPolicy(failures=3, window_s=60, lockout_s=120), clock)
    key = ("addr", "10.0.0.1")
    assert [lim.fail(key) for _ in range(2)] == [None, None]
    assert lim.retry_after(key) is None
    assert lim.fail(key) == 120  # the third locks
    clock.t += 30
    assert lim.retry_after(key) == 90
    assert lim.fail(key) == 90  # failing while locked does not extend the lockout
    assert lim.retry_after(("addr", "10.0.0.2")) is None  # other keys are not affected
    clock.t += 90
    assert lim.retry_after(key) is None
    assert lim.fail(key) is None  # counting starts again
    assert lim.lockouts_total == 1


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = FakeClock()
    lim = FailureLimiter(LimitPolicy(failures=3, window_s=60, lockout_s=120), clock)
    key = ("user", "alice")
    for _ in range(10):
        assert lim.fail(key) is None
        clock.t += 31  # never three within a minute
    assert lim.retry_after(key) is None


def test_memory_stays_bounded_and_forgets_the_oldest_first() -> None:
    clock = FakeClock()
    lim = FailureLimiter(LimitPolicy(failures=2, window_s=60, lockout_s=60, tracked_max=100), clock)
    lim.fail(("addr", "first"))
    lim.fail(("addr", "first"))
    assert lim.retry_after(("addr", "first")) == 60
    for i in range(1000):
        lim.fail(("addr", f"10.0.{i // 256}.{i % 256}"))
        assert len(lim) <= 100
    assert lim.retry_after(("addr", "first")) is None  # pushed out by newer failures
    assert lim.retry_after(("addr", "10.0.3.231")) is None  # one failure, not locked


@pytest.mark.parametrize(
    "kwargs", [{"failures": 0}, {"window_s": 0}, {"lockout_s": -1}, {"tracked_max": 0}]
)
def test_the_policy_refuses_limits_that_are_not_positive(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="positive"):
        LimitPolicy(**kwargs)
