"""Service faults the gateway injects on request, to rehearse what Cosmos DB does on a bad day.

API: ``FaultSpec`` (one fault: kind, how long, how many, which share of which traffic), ``FaultPlan`` (thread-safe
set of active faults; ``add``, ``clear``, ``draw(traffic, operation)``, ``down()``, ``to_json()``) and
``FaultSpecError`` (a ``ValueError`` naming the bad value). The gateway consults the plan for every data-plane
request and exposes it as ``/_gateway/faults`` (loopback only; see proxy.py).

Kinds:
- ``throttle``: a 429 storm — Cosmos's 429 (substatus 3200) with ``x-ms-retry-after-ms`` = ``retry_after_ms``,
  whatever the RU budget says;
- ``error``: a 5xx answer (``status``, default 503 ServiceUnavailable);
- ``reset``: the connection is cut (TCP RST) without an answer;
- ``slow``: the answer is delayed by ``delay_s`` (then served normally);
- ``down``: the gateway refuses every connection (closed before the TLS handshake), metadata and all.
A fault ends after ``duration_s`` seconds from when it was added (None: until cleared) or ``count`` injections
(None: unlimited); ``rate`` is the share of matching requests it hits (seeded, so a run can be replayed);
``traffic`` limits it to ``archiver`` or ``business`` requests (default ``all``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

FAULT_KINDS = ("throttle", "error", "reset", "slow", "down")
TRAFFIC_FILTERS = ("all", "archiver", "business")


class FaultSpecError(ValueError):
    """A fault specification is invalid; the message names the value and the allowed range."""


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    duration_s: float | None = None
    count: int | None = None
    rate: float = 1.0
    traffic: str = "all"
    status: int = 503
    delay_s: float = 1.0
    retry_after_ms: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultSpecError(f"fault kind {self.kind!r} must be one of {', '.join(FAULT_KINDS)}")
        if self.duration_s is not None and not (isinstance(self.duration_s, int | float) and self.duration_s > 0):
            raise FaultSpecError(f"fault duration_s={self.duration_s!r} must be a number of seconds > 0 or null")
        if self.count is not None and not (isinstance(self.count, int) and self.count >= 1):
            raise FaultSpecError(f"fault count={self.count!r} must be an integer >= 1 or null")
        if self.duration_s is None and self.count is None:
            raise FaultSpecError("a fault needs duration_s or count (or both), so that it ends by itself")
        if not (isinstance(self.rate, int | float) and 0 < self.rate <= 1):
            raise FaultSpecError(f"fault rate={self.rate!r} must be in (0, 1], the share of requests hit")
        if self.traffic not in TRAFFIC_FILTERS:
            raise FaultSpecError(f"fault traffic={self.traffic!r} must be one of {', '.join(TRAFFIC_FILTERS)}")
        if not (isinstance(self.status, int) and 500 <= self.status <= 599):
            raise FaultSpecError(f"fault status={self.status!r} must be a 5xx status, e.g. 503")
        if not (isinstance(self.delay_s, int | float) and 0 <= self.delay_s <= 120):
            raise FaultSpecError(f"fault delay_s={self.delay_s!r} must be 0-120 seconds")
        if not (isinstance(self.retry_after_ms, int) and 0 <= self.retry_after_ms <= 60_000):
            raise FaultSpecError(f"fault retry_after_ms={self.retry_after_ms!r} must be 0-60000")

    @classmethod
    def from_json(cls, payload: Any) -> FaultSpec:
        if not isinstance(payload, Mapping):
            raise FaultSpecError(f"a fault must be a JSON object, got {type(payload).__name__}")
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(payload) - allowed)
        if unknown:
            raise FaultSpecError(f"unknown fault field(s) {unknown}; allowed: {sorted(allowed)}")
        if "kind" not in payload:
            raise FaultSpecError(f"a fault needs a kind, one of {', '.join(FAULT_KINDS)}")
        try:
            return cls(**payload)
        except TypeError as exc:
            raise FaultSpecError(f"bad fault {dict(payload)!r}: {exc}") from None


@dataclass
class _Active:
    spec: FaultSpec
    until: float
    rng: random.Random
    injected: int = 0

    def live(self, now: float) -> bool:
        return now < self.until and (self.spec.count is None or self.injected < self.spec.count)


@dataclass
class FaultPlan:
    clock: Callable[[], float] = time.monotonic
    _active: list[_Active] = field(default_factory=list)
    _injected: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, spec: FaultSpec) -> None:
        until = self.clock() + spec.duration_s if spec.duration_s is not None else float("inf")
        with self._lock:
            self._active.append(_Active(spec, until, random.Random(spec.seed)))

    def clear(self) -> None:
        with self._lock:
            self._active.clear()

    def _take(self, match: Callable[[FaultSpec], bool]) -> FaultSpec | None:
        now = self.clock()
        with self._lock:
            self._active = [a for a in self._active if a.live(now)]
            for active in self._active:
                if match(active.spec) and active.rng.random() < active.spec.rate:
                    active.injected += 1
                    self._injected[active.spec.kind] += 1
                    return active.spec
        return None

    def draw(self, traffic: str, *, metadata: bool = False) -> FaultSpec | None:
        """The fault to apply to one request of ``traffic`` (``archiver``/``business``), if any. Metadata requests
        (account, database, container, partition key ranges) meet only ``down``; on a kept-alive connection a
        ``down`` fault cuts the connection like ``reset``."""
        return self._take(lambda s: (s.kind == "down" or not metadata) and s.traffic in ("all", traffic))

    def down(self) -> bool:
        """Whether to refuse a new connection now (a ``down`` fault is active)."""
        return self._take(lambda s: s.kind == "down") is not None

    def to_json(self) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            active = [
                {**asdict(a.spec), "injected": a.injected, "remaining_s": None if a.until == float("inf")
                 else round(max(0.0, a.until - now), 3)}
                for a in self._active if a.live(now)
            ]  # fmt: skip
            return {"active": active, "injected": dict(self._injected)}
