"""The seam between anything that spends Cosmos RU (copy, validation, purge) and whatever paces that spend.

A spender calls ``before_request`` with the RU it expects to charge (it may block), then ``after_request`` with
what the server actually charged (``x-ms-request-charge``) and whether it was throttled (HTTP 429).
"""

from __future__ import annotations

from typing import Protocol


class RuBudget(Protocol):
    def before_request(self, expected_ru: float) -> None: ...

    def after_request(self, charged_ru: float, throttled: bool) -> None: ...


class UnlimitedBudget:
    """No pacing: for tests of correctness and for stores that enforce nothing."""

    def before_request(self, expected_ru: float) -> None:
        return None

    def after_request(self, charged_ru: float, throttled: bool) -> None:
        return None
