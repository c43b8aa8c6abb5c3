"""The seed's formula as a RuBudget: a token bucket at the fixed rate (ceiling - assumed client load) x provisioned.

Right on average, blind to the business: it overshoots in every spike and wastes every quiet hour. Kept as the
baseline that bench/ru_budget.py compares :class:`~include.cosmos_archiver.ru.adaptive_budget.AdaptiveBudget` with,
and as the ``static`` controller setting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from include.cosmos_archiver.ru.settings import RateControlError, RateControlSettings
from include.cosmos_archiver.ru.statistics import ChargeMeter
from include.cosmos_archiver.ru.token_bucket import TokenBucket


def static_max_records(max_ru: float, ru_per_record: float) -> int:
    """The seed's formula: how many records a fixed RU allowance pays for."""
    if max_ru < 0 or ru_per_record <= 0:
        raise RateControlError(f"max_ru={max_ru!r} must be >= 0 and ru_per_record={ru_per_record!r} > 0")
    return int(max_ru // ru_per_record)



class StaticBudget:
    """The seed formula as a RuBudget: a token bucket at the fixed rate (ceiling - assumed client load)."""

    def __init__(
        self,
        settings: RateControlSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._bucket = TokenBucket(settings.static_rate_ru_s, settings.burst_s, clock=clock, sleep=sleep)
        self._meter = ChargeMeter()
        self._reserved = threading.local()
        self.throttled = 0
        self.spent_ru = 0.0

    def available_ru_per_s(self) -> float:
        return self._bucket.rate

    @property
    def measured_ru_per_request(self) -> float | None:
        return self._meter.ewma

    def before_request(self, expected_ru: float) -> None:
        reserve = expected_ru if expected_ru > 0 else (self._meter.ewma or 1.0)
        self._reserved.value = reserve
        self._bucket.take(reserve)

    def after_request(self, charged_ru: float, throttled: bool, served_at: float | None = None) -> None:
        reserved = getattr(self._reserved, "value", 0.0)
        self._reserved.value = 0.0
        self._bucket.adjust(charged_ru - reserved)
        self.spent_ru += charged_ru
        if throttled:
            self.throttled += 1
        elif charged_ru > 0:
            self._meter.record(time.time(), charged_ru)
