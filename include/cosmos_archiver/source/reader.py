"""Read one time slice from Cosmos DB page by page, paying for each page through an RU budget.

Every slice query leaves out purge stubs (documents carrying :data:`STUB_MARKER`): a stub is never archived again;
and tombstones of records deleted through the read-through API (:data:`TOMBSTONE_MARKER`), which are no records.
Besides whole documents, a slice can be counted (``SELECT VALUE COUNT(1)``) or listed as ids and etags, the cheap
completeness checks of fast validation and of the remainder sweep.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.canonical import partition_key_text
from include.cosmos_archiver.ru.budget import RuBudget, UnlimitedBudget, served_at
from include.cosmos_archiver.ru.paid_requests import CHARGE_HEADER, THROTTLE_RETRY_HEADER
from include.cosmos_archiver.slices import TimeSlice, TimestampKind, bound_value, field_expression

STUB_MARKER = "_archived"  # the field a purge stub carries (pipeline/purge.py); never a business field
TOMBSTONE_MARKER = "_archiveDeleted"  # a record deleted through the read-through API (readthrough/markers.py)


@dataclass
class ReadStats:
    ru_charged: float = 0.0
    pages: int = 0
    throttled_requests: int = 0
    page_charges: list[float] = field(default_factory=list)


def slice_query(
    time_slice: TimeSlice, timestamp_field: str, kind: TimestampKind, select: str = "*"
) -> dict[str, Any]:
    """The slice's documents (stubs left out); ``select`` the projection, e.g. ``VALUE COUNT(1)``."""
    expr = field_expression(timestamp_field)
    return {
        "query": f"SELECT {select} FROM c WHERE {expr} >= @start AND {expr} < @end "
                 f"AND NOT IS_DEFINED(c.{STUB_MARKER}) AND NOT IS_DEFINED(c.{TOMBSTONE_MARKER})",
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
    select: str = "*",
) -> Iterator[list[Any]]:
    """Yield the slice's documents (or ``select``'s projection) a page at a time; charges and throttling land in
    ``stats``."""
    budget = budget or UnlimitedBudget()
    stats = stats if stats is not None else ReadStats()
    query = slice_query(time_slice, timestamp_field, timestamp_kind, select)
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


def count_slice(
    container: ContainerProxy,
    time_slice: TimeSlice,
    *,
    timestamp_field: str = "_ts",
    timestamp_kind: TimestampKind = "epoch_seconds",
    budget: RuBudget | None = None,
    stats: ReadStats | None = None,
) -> int:
    """How many documents (stubs left out) the slice's range holds: one cheap ``COUNT`` query."""
    total = 0
    for page in read_slice(container, time_slice, timestamp_field=timestamp_field, timestamp_kind=timestamp_kind,
                           budget=budget, stats=stats, select="VALUE COUNT(1)"):
        total += sum(int(n) for n in page)  # one partial count per partition range
    return total


def slice_versions(
    container: ContainerProxy,
    time_slice: TimeSlice,
    *,
    partition_key_path: str,
    timestamp_field: str = "_ts",
    timestamp_kind: TimestampKind = "epoch_seconds",
    page_size: int = 1000,
    budget: RuBudget | None = None,
    stats: ReadStats | None = None,
) -> dict[tuple[str, str], str | None]:
    """(partition key text, id) -> ``_etag`` of every document in the slice (stubs left out), without the bodies."""
    pk = field_expression(partition_key_path.strip("/").replace("/", "."))
    versions: dict[tuple[str, str], str | None] = {}
    for page in read_slice(container, time_slice, timestamp_field=timestamp_field, timestamp_kind=timestamp_kind,
                           page_size=page_size, budget=budget, stats=stats, select=f"c.id, c._etag, {pk} AS pk"):
        for row in page:
            versions[(partition_key_text(row.get("pk")), str(row["id"]))] = row.get("_etag")
    return versions
