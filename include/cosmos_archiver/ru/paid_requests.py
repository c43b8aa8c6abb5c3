"""Point requests (delete, replace, create, read) paid through an RU budget, their charges summed.

The budget is asked before each request (expecting the last request's charge) and told afterwards what the server
charged (``x-ms-request-charge``), whether it throttled, and when it answered, also when the request failed (a 412
or a 404 is charged too). Throttled attempts are the 429s the SDK retried on its own, counted from each HTTP response
(:mod:`.throttles`; the SDK's ``x-ms-throttle-retry-count`` never reaches the response hook).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from include.cosmos_archiver.ru.budget import RuBudget, UnlimitedBudget, served_at
from include.cosmos_archiver.ru.throttles import ThrottleWatch

CHARGE_HEADER = "x-ms-request-charge"
T = TypeVar("T")
ResponseHook = Callable[[Any, Any], None]


@dataclass
class PaidRequests:
    budget: RuBudget = field(default_factory=UnlimitedBudget)
    ru_charged: float = 0.0
    throttled_requests: int = 0
    last_charge: float = 1.0

    def call(self, request: Callable[[ResponseHook], T]) -> T:
        """``request(response_hook)`` runs the SDK call with the hook; its charge is booked even if it raises."""
        headers: dict[str, Any] = {}

        def hook(response_headers: Any, _result: Any) -> None:
            headers.update(response_headers or {})

        self.budget.before_request(self.last_charge)
        watch = ThrottleWatch()
        try:
            return request(hook)
        except Exception as exc:
            headers.update(getattr(exc, "headers", None) or {})
            raise
        finally:
            charge = float(headers.get(CHARGE_HEADER, 0) or 0)
            throttled = watch.seen()
            self.budget.after_request(charge, throttled > 0, served_at(headers))
            self.ru_charged += charge
            self.throttled_requests += throttled
            self.last_charge = charge or self.last_charge
