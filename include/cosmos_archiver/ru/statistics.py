"""What the budgets measure: the RU each request was charged, the archiver's own spend per second, and the upper
quantile of the controller's estimate errors."""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Sequence


class ChargeMeter:
    """Measured RU per request (EWMA of x-ms-request-charge) and own spend per wall-clock second."""

    def __init__(self, keep_s: int = 600) -> None:
        self.ewma: float | None = None
        self.per_second: dict[int, float] = {}
        self._keep_s = keep_s
        self._lock = threading.Lock()

    def record(self, wall: float, charged: float) -> None:
        with self._lock:
            self.ewma = charged if self.ewma is None else 0.8 * self.ewma + 0.2 * charged
            second = int(wall)
            self.per_second[second] = self.per_second.get(second, 0.0) + charged
            if len(self.per_second) > self._keep_s:
                for old in sorted(self.per_second)[: len(self.per_second) - self._keep_s]:
                    del self.per_second[old]

    def spent_between(self, start: float, end: float) -> float:
        with self._lock:
            return sum(v for s, v in self.per_second.items() if start <= s < end)



def upper_quantile(errors: Sequence[float], quantile: float) -> float:
    """The ``quantile`` (> 0.5) of a normal fitted to the upper half of ``errors``: their centre (the median, or 0
    if the median is negative) plus z x the spread of the errors above it. The empirical 99th percentile of a few
    dozen grains is their largest, noisy and, while the window fills, biased low; a two-sided fit would let a large
    miss on the safe side (the business far below its estimate, e.g. a spike that ended) widen the margin — and so
    would a median pulled below 0 by such misses, against which every small under-estimate looks like a wide
    spread."""
    centre = max(0.0, statistics.median(errors))
    upper_spread = math.sqrt(2 * statistics.fmean(max(0.0, e - centre) ** 2 for e in errors))
    return centre + statistics.NormalDist().inv_cdf(quantile) * upper_spread

