"""An RU-per-second token bucket shared by parallel readers: the one place the archiver waits for budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """RU-per-second token bucket; thread-safe. ``take`` may drive the balance negative (a request larger than
    the capacity still goes through, and later callers wait off the debt). Waits are sliced so that a rate change
    (e.g. a back-off) takes effect within ``slice_s``."""

    def __init__(
        self,
        rate: float,
        capacity_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        slice_s: float = 0.05,
    ) -> None:
        self._rate = max(0.0, rate)
        self._capacity_s = capacity_s
        self._clock = clock
        self._sleep = sleep
        self._slice_s = slice_s
        self._tokens = 0.0
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        capacity = self._rate * self._capacity_s
        self._tokens = (
            min(capacity, self._tokens + (now - self._stamp) * self._rate) if capacity else min(self._tokens, 0.0)
        )
        self._stamp = now

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float, *, drain: bool = False) -> None:
        with self._lock:
            self._refill(self._clock())
            self._rate = max(0.0, rate)
            if drain:
                self._tokens = min(self._tokens, 0.0)

    def adjust(self, delta: float) -> None:
        """Book a correction (actual - reserved) without waiting."""
        with self._lock:
            self._refill(self._clock())
            self._tokens -= delta

    def take(self, amount: float, on_wait: Callable[[], None] | None = None) -> float:
        """Block until the balance is non-negative, then take ``amount``; return seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                if self._tokens >= 0:
                    self._tokens -= amount
                    return waited
                wait = -self._tokens / self._rate if self._rate > 0 else self._slice_s
            wait = min(max(wait, 0.001), self._slice_s)  # >= 1 ms: no busy spin on rounding dust
            self._sleep(wait)
            waited += wait
            if on_wait is not None:
                on_wait()

