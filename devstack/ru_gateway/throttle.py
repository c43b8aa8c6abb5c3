"""Provisioned-throughput enforcement over one-second windows, per physical partition, like Cosmos DB.

API: ``Throttle(settings_getter, clock=time.time)``; ``admit(estimate_by_partition, priority, bucket) -> Admission``;
``settle(delta_by_partition, bucket)`` once the real charge is known; ``used_this_second()`` (account total).

Model (documented choice): each physical partition has its own budget per second (settings.partition_budget:
provisioned RU/s divided evenly among the partitions, or on a serverless account the per-partition limit; Microsoft
Learn "Partitioning and horizontal scaling": "throughput provisioned ... is divided evenly among physical
partitions"; a request needing more than its partition has left is answered 429 even when the account has
headroom, "Diagnose and troubleshoot 429s": hot partitions). A request is admitted if, on every partition it
touches, the RU already used in the current second plus its *estimate* fit the limit for its priority (High or
unmarked: 100 %, Low: ``low_priority_fraction``) and, if it names a configured throughput bucket, that bucket's share
of the account; the estimate is reserved at admission. When the backend has answered, the difference between the
real charge and the estimate is booked into the then-current second. A request whose estimate alone exceeds the
limit is still admitted into an unused second (Cosmos lets a request go into debt rather than refusing it
forever); whatever a second overspends is carried into the next one (at most one second of it), so the long-run
rate stays at the budget. Metadata requests are never refused (the proxy only books their RU via ``settle``).
In ``serverless`` account mode the priority and the throughput bucket of a request are ignored (Azure offers
neither on serverless accounts): every request may use the whole budget and no bucket share is enforced.
429s carry substatus 3200 (RU budget) or 3212 (throughput bucket), as Cosmos DB sends them (Microsoft Learn
"HTTP status codes for Azure Cosmos DB").
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
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
    partition: int | None = None  # the partition whose second is spent


class Throttle:
    def __init__(self, settings: Callable[[], GatewaySettings], clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._second = math.floor(clock())
        self._used: dict[int, float] = {}
        self._bucket_used: dict[int, float] = {}

    def _roll(self, now: float, budget: float) -> None:
        second = math.floor(now)
        if second == self._second:
            return
        elapsed = second - self._second
        # carry the overspend, at most 1 s of it
        self._used = {
            p: carried for p, used in self._used.items() if (carried := min(budget, max(0.0, used - budget * elapsed)))
        }
        self._bucket_used = {}
        self._second = second

    def admit(self, estimate: Mapping[int, float], priority: str | None, bucket: int | None) -> Admission:
        settings = self._settings()
        budget = settings.partition_budget
        now = self._clock()
        with self._lock:
            self._roll(now, budget)
            retry_ms = max(1, math.ceil((self._second + 1 - now) * 1000))
            if settings.serverless:
                priority, bucket = None, None  # not honoured on serverless accounts, as on Azure
            low = (priority or "").strip().lower() == "low"
            limit = budget * (settings.low_priority_fraction if low else 1.0)
            for partition, ru in estimate.items():
                used = self._used.get(partition, 0.0)
                if used + ru > limit and used > 0.0:
                    who = "low-priority request" if low else "request"
                    return Admission(
                        False,
                        retry_ms,
                        SUBSTATUS_RU_BUDGET_EXCEEDED,
                        f"{who} would use {used + ru:.0f} of {limit:.0f} RU this second on physical partition "
                        f"{partition}",
                        partition,
                    )
            total = sum(estimate.values())
            pct = settings.throughput_buckets.get(bucket) if bucket is not None else None
            if pct is not None:
                bucket_limit = settings.provisioned_ru * pct / 100
                used = self._bucket_used.get(bucket, 0.0)
                if used + total > bucket_limit and used > 0.0:
                    return Admission(
                        False,
                        retry_ms,
                        SUBSTATUS_THROUGHPUT_BUCKET_EXCEEDED,
                        f"throughput bucket {bucket} would use {used + total:.0f} of its {bucket_limit:.0f} RU",
                    )
                self._bucket_used[bucket] = used + total
            for partition, ru in estimate.items():
                self._used[partition] = self._used.get(partition, 0.0) + ru
            return Admission(True)

    def settle(self, delta: Mapping[int, float], bucket: int | None) -> None:
        if not any(delta.values()):
            return
        settings = self._settings()
        with self._lock:
            self._roll(self._clock(), settings.partition_budget)
            for partition, ru in delta.items():
                self._used[partition] = max(0.0, self._used.get(partition, 0.0) + ru)
            if bucket is not None and bucket in self._bucket_used:
                self._bucket_used[bucket] = max(0.0, self._bucket_used[bucket] + sum(delta.values()))

    def used_this_second(self) -> float:
        with self._lock:
            self._roll(self._clock(), self._settings().partition_budget)
            return sum(self._used.values())
