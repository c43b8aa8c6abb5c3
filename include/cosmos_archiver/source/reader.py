"""Read one time slice from Cosmos DB page by page, paying for each page through an RU budget."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.ru.budget import RuBudget, UnlimitedBudget, served_at
from include.cosmos_archiver.slices import TimeSlice, TimestampKind, bound_value, field_expression

CHARGE_HEADER = "x-ms-request-charge"
THROTTLE_RETRY_HEADER = "x-ms-throttle-retry-count"


@dataclass
class ReadStats:
    ru_charged: float = 0.0
    pages: int = 0
    throttled_requests: int = 0
    page_charges: list[float] = field(default_factory=list)


def slice_query(time_slice: TimeSlice, timestamp_field: str, kind: TimestampKind) -> dict[str, Any]:
    expr = field_expression(timestamp_field)
    return {
        "query": f"SELECT * FROM c WHERE {expr} >= @start AND {expr} < @end",
        "parameters": [
            {"name": "@start", "value": bound_value(time_slice.start, kind)},
            {"name": "@end", "value": bound_value(time_slice.end, kind)},
        ],
    }


def read_slice(
    container: ContainerProxy,
    time_slice: TimeSlice,
    *,
    timestamp_field: str = "_ts",
    timestamp_kind: TimestampKind = "epoch_seconds",
    page_size: int = 100,
    budget: RuBudget | None = None,
    stats: ReadStats | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the slice's documents a page at a time; charges and throttling land in ``stats``."""
    budget = budget or UnlimitedBudget()
    stats = stats if stats is not None else ReadStats()
    query = slice_query(time_slice, timestamp_field, timestamp_kind)
    page_charge = [0.0, 0]  # RU and throttle retries of the requests behind the current page
    page_served: list[float | None] = [None]  # the server's Date of the page's last answer

    def on_response(headers: Any, _result: Any) -> None:
        # Called once per HTTP request the SDK makes (a page may take several across partition ranges).
        page_charge[0] += float(headers.get(CHARGE_HEADER, 0) or 0)
        page_charge[1] += int(headers.get(THROTTLE_RETRY_HEADER, 0) or 0)
        page_served[0] = served_at(headers)

    pages = container.query_items(
        query=query["query"],
        parameters=query["parameters"],
        enable_cross_partition_query=True,
        max_item_count=page_size,
        response_hook=on_response,
    ).by_page()
    while True:
        budget.before_request(stats.page_charges[-1] if stats.page_charges else 1.0)
        page_charge[0], page_charge[1] = 0.0, 0
        try:
            page = list(next(pages))
        except StopIteration:
            stats.ru_charged += page_charge[0]  # the request that found no more pages is charged too
            return
        charge, throttled = page_charge
        stats.ru_charged += charge
        stats.pages += 1
        stats.throttled_requests += throttled
        stats.page_charges.append(charge)
        budget.after_request(charge, throttled > 0, page_served[0])
        if page:
            yield page
