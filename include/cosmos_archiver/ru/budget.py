"""The seam between anything that spends Cosmos RU (copy, validation, purge) and whatever paces that spend.

A spender calls ``before_request`` with the RU it expects to charge (it may block), then ``after_request`` with
what the server actually charged (``x-ms-request-charge``), whether it was throttled (HTTP 429) and, when the
response carried one, the server's time of the answer (its ``Date`` header: :func:`served_at`). The server's second
is the one its metrics book the charge in; the client's clock and the round trip are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Protocol


def served_at(headers: Mapping[str, str] | None) -> float | None:
    """The server's ``Date`` response header as a Unix time (whole seconds), or None when absent or unreadable."""
    text = (headers or {}).get("Date") or (headers or {}).get("date")
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


class RuBudget(Protocol):
    def before_request(self, expected_ru: float) -> None: ...

    def after_request(self, charged_ru: float, throttled: bool, served_at: float | None = None) -> None: ...


class UnlimitedBudget:
    """No pacing: for tests of correctness and for stores that enforce nothing."""

    def before_request(self, expected_ru: float) -> None:
        return None

    def after_request(self, charged_ru: float, throttled: bool, served_at: float | None = None) -> None:
        return None
