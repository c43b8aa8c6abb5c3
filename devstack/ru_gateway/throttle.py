"""Provisioned-throughput enforcement over one-second windows, like Cosmos DB's per-second RU budget.

API: ``Throttle(settings_getter, clock=time.time)``; ``admit(estimate_ru, priority, bucket) -> Admission``;
``settle(delta_ru, bucket)`` once the real charge is known.

Model (documented choice): a request is admitted if the RU already used in the current second plus its *estimate*
fit the limit for its priority (High/unmarked: 100 %, Low: ``low_priority_fraction``) and, if it names a configured
throughput bucket, that bucket's share; the estimate is reserved at admission. When the backend has answered, the
difference between the real charge and the estimate is booked into the then-current second. A request whose
estimate alone exceeds the limit is still admitted into an unused second (Cosmos lets a request go into debt
rather than refusing it forever); whatever a second overspends is carried into the next one, so the long-run rate
stays at the provisioned RU/s. Metadata requests are never refused (the proxy only books their RU via ``settle``).
In ``serverless`` account mode the priority and the throughput bucket of a request are ignored (Azure offers
neither on serverless accounts): every request may use the whole budget and no bucket share is enforced.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from devstack.ru_gateway.config import GatewaySettings

SUBSTATUS_RU_BUDGET_EXCEEDED = 3200
SUBSTATUS_THROUGHPUT_BUCKET_EXCEEDED = 3212


@dataclass(frozen=True)
class Admission:
    admitted: bool
    retry_after_ms: int = 0
    substatus: int = 0
    reason: str = ""


class Throttle:
    def __init__(self, settings: Callable[[], GatewaySettings], clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._second = math.floor(clock())
        self._used = 0.0
        self._bucket_used: dict[int, float] = {}

    def _roll(self, now: float, budget: float) -> None:
        second = math.floor(now)
        if second == self._second:
            return
        elapsed = second - self._second
        self._used = min(budget, max(0.0, self._used - budget * elapsed))  # carry the overspend, at most 1 s of it
        self._bucket_used = {}
        self._second = second

    def admit(self, estimate_ru: float, priority: str | None, bucket: int | None) -> Admission:
        settings = self._settings()
        budget = settings.provisioned_ru
        now = self._clock()
        with self._lock:
            self._roll(now, budget)
            retry_ms = max(1, math.ceil((self._second + 1 - now) * 1000))
            if settings.serverless:
                priority, bucket = None, None  # not honoured on serverless accounts, as on Azure
            low = (priority or "").strip().lower() == "low"
            limit = budget * (settings.low_priority_fraction if low else 1.0)
            fresh = self._used <= 0.0
            if self._used + estimate_ru > limit and not fresh:
                who = "low-priority request" if low else "request"
                return Admission(
                    False,
                    retry_ms,
                    SUBSTATUS_RU_BUDGET_EXCEEDED,
                    f"{who} would use {self._used + estimate_ru:.0f} of {limit:.0f} RU this second",
                )
            pct = settings.throughput_buckets.get(bucket) if bucket is not None else None
            if pct is not None:
                bucket_limit = budget * pct / 100
                used = self._bucket_used.get(bucket, 0.0)
                if used + estimate_ru > bucket_limit and used > 0.0:
                    return Admission(
                        False,
                        retry_ms,
                        SUBSTATUS_THROUGHPUT_BUCKET_EXCEEDED,
                        f"throughput bucket {bucket} would use {used + estimate_ru:.0f} of its {bucket_limit:.0f} RU",
                    )
                self._bucket_used[bucket] = used + estimate_ru
            self._used += estimate_ru
            return Admission(True)

    def settle(self, delta_ru: float, bucket: int | None) -> None:
        if delta_ru == 0:
            return
        settings = self._settings()
        with self._lock:
            self._roll(self._clock(), settings.provisioned_ru)
            self._used = max(0.0, self._used + delta_ru)
            if bucket is not None and bucket in self._bucket_used:
                self._bucket_used[bucket] = max(0.0, self._bucket_used[bucket] + delta_ru)

    def used_this_second(self) -> float:
        with self._lock:
            self._roll(self._clock(), self._settings().provisioned_ru)
            return self._used
