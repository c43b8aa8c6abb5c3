"""Read one time slice from Cosmos DB page by page, paying for each page through an RU budget.

Each document is placed by the UTC instant of its timestamp (:func:`slices.timestamp_instant`), not by how its
value compares on the server: ``slice_query`` (the range query, also Azure Data Factory's) sees ISO 8601 strings in
the canonical UTC spelling correctly; ``spelling_query`` reads the other spellings (an offset, a date only, other
fractional digits) whose written date lies within a day of the slice, and each is kept only if its instant is in
the slice. A document whose timestamp cannot be placed is never read into a slice; source.census names it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import CosmosClientTimeoutError

from include.cosmos_archiver.clients import EndpointPatience, endpoint_of, patience_of, waiting_for
from include.cosmos_archiver.ru.budget import RuBudget, UnlimitedBudget, served_at
from include.cosmos_archiver.slices import (
    MAX_UTC_OFFSET,
    MISSING,
    TimeSlice,
    TimestampError,
    TimestampKind,
    bound_value,
    canonical_iso_sql,
    field_expression,
    field_value,
    is_canonical_iso,
    timestamp_instant,
)

log = logging.getLogger(__name__)
UNREACHABLE_ERRORS = (ServiceRequestError, ServiceResponseError, CosmosClientTimeoutError)
CHARGE_HEADER = "x-ms-request-charge"
THROTTLE_RETRY_HEADER = "x-ms-throttle-retry-count"


class SourceUnreachableError(ConnectionError):
    """Cosmos DB did not answer within the clients' retry bound (transient: a later retry may succeed)."""


@dataclass
class ReadStats:
    ru_charged: float = 0.0
    pages: int = 0
    throttled_requests: int = 0
    page_charges: list[float] = field(default_factory=list)
    other_spellings: int = 0  # documents placed in the slice by the parsed instant of a non-canonical spelling


def slice_query(time_slice: TimeSlice, timestamp_field: str, kind: TimestampKind) -> dict[str, Any]:
    expr = field_expression(timestamp_field)
    return {
        "query": f"SELECT * FROM c WHERE {expr} >= @start AND {expr} < @end",
        "parameters": [
            {"name": "@start", "value": bound_value(time_slice.start, kind)},
            {"name": "@end", "value": bound_value(time_slice.end, kind)},
        ],
    }


def spelling_window(time_slice: TimeSlice) -> tuple[str, str]:
    """Lexicographic bounds (dates ``YYYY-MM-DD``) holding every ISO 8601 string whose instant may be in the slice:
    its written local date is at most MAX_UTC_OFFSET from the UTC one."""
    low = (time_slice.start - MAX_UTC_OFFSET).date()
    high = (time_slice.end + MAX_UTC_OFFSET).date() + dt.timedelta(days=1)
    return low.isoformat(), high.isoformat()


def spelling_query(time_slice: TimeSlice, timestamp_field: str) -> dict[str, Any]:
    """ISO 8601 strings near the slice in a spelling other than the canonical UTC one."""
    expr = field_expression(timestamp_field)
    low, high = spelling_window(time_slice)
    return {
        "query": f"SELECT * FROM c WHERE IS_STRING({expr}) AND {expr} >= @low AND {expr} < @high "
                 f"AND NOT {canonical_iso_sql(expr)}",
        "parameters": [{"name": "@low", "value": low}, {"name": "@high", "value": high}],
    }


def in_slice(document: dict[str, Any], time_slice: TimeSlice, timestamp_field: str, kind: TimestampKind) -> bool:
    """Whether the document's timestamp is an instant inside the slice."""
    try:
        instant = timestamp_instant(field_value(document, timestamp_field), kind, timestamp_field)
    except TimestampError:
        return False
    return time_slice.start <= instant < time_slice.end


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
    iso = timestamp_kind == "iso8601"

    pk_field: list[str | None] = []  # the container's partition key as a dotted field, once a page has arrived

    def keep(doc: dict[str, Any]) -> bool:
        if not pk_field:
            path = container_partition_key_path(container)
            pk_field.append(path.strip("/").replace("/", ".") if path else None)
        return in_slice(doc, time_slice, timestamp_field, timestamp_kind) and (
            pk_field[0] is None or field_value(doc, pk_field[0]) is not MISSING)

    for page in query_pages(container, slice_query(time_slice, timestamp_field, timestamp_kind), page_size=page_size,
                            budget=budget, stats=stats):
        # Other spellings the range matched by their text are left to the spelling query, which places them all.
        kept = [d for d in page if (not iso or is_canonical_iso(field_value(d, timestamp_field))) and keep(d)]
        if kept:
            yield kept
    if not iso:
        return
    for page in query_pages(container, spelling_query(time_slice, timestamp_field), page_size=page_size,
                            budget=budget, stats=stats):
        kept = [d for d in page if keep(d)]
        stats.other_spellings += len(kept)
        if kept:
            yield kept


def container_partition_key_path(container: ContainerProxy) -> str | None:
    """The container's (first) partition key path, from the properties the SDK caches for its queries.

    A document without its partition key property is left in Cosmos DB (and named by the census): the billing API
    cannot address it by key, and a purge could not delete it the usual way."""
    try:
        paths = container._get_properties()["partitionKey"]["paths"]  # cached by the SDK after the first query
    except (KeyError, AttributeError, TypeError):
        return None
    return paths[0] if paths else None


def query_pages(
    container: ContainerProxy,
    query: dict[str, Any],
    *,
    page_size: int,
    budget: RuBudget,
    stats: ReadStats,
) -> Iterator[list[dict[str, Any]]]:
    """Run one query page by page through the budget.

    While a page is awaited a progress line is logged every 30 s (:func:`clients.waiting_for`). An endpoint that
    does not answer (the SDK gives up on a refused connection at once) is retried here, resuming from the last
    page's continuation, until the client's :class:`EndpointPatience` ``total_s`` has passed since the first
    failure; then SourceUnreachableError names the endpoint.
    """
    page_charge = [0.0, 0]  # RU and throttle retries of the requests behind the current page
    page_served: list[float | None] = [None]  # the server's Date of the page's last answer

    def on_response(headers: Any, _result: Any) -> None:
        # Called once per HTTP request the SDK makes (a page may take several across partition ranges).
        page_charge[0] += float(headers.get(CHARGE_HEADER, 0) or 0)
        page_charge[1] += int(headers.get(THROTTLE_RETRY_HEADER, 0) or 0)
        page_served[0] = served_at(headers)

    patience = patience_of(container)

    def open_pages(continuation: str | None, timeout: float) -> Iterator[Any]:
        return container.query_items(
            query=query["query"],
            parameters=query["parameters"],
            enable_cross_partition_query=True,
            max_item_count=page_size,
            response_hook=on_response,
            timeout=timeout,  # azure-cosmos' client-side bound on each request with its own retries
        ).by_page(continuation)

    pages: Iterator[Any] | None = None  # opened on the first page (opening reads the container's properties)
    continuation: str | None = None
    yielded = False
    endpoint = endpoint_of(container)
    what = f"the next page of a slice query from Cosmos DB container {container.id!r} at {endpoint}"
    while True:
        budget.before_request(stats.page_charges[-1] if stats.page_charges else 1.0)
        page_charge[0], page_charge[1] = 0.0, 0
        try:
            with waiting_for(what):
                pages, raw = _next_page(pages, open_pages, continuation, yielded and not continuation, patience, what)
                page = list(raw)
        except StopIteration:
            stats.ru_charged += page_charge[0]  # the request that found no more pages is charged too
            return
        except UNREACHABLE_ERRORS as exc:
            raise SourceUnreachableError(
                f"Cosmos DB at {endpoint} (container {container.id!r}) did not answer a slice query within "
                f"{patience.total_s:.0f} s ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}); check the "
                "account endpoint, its firewall and the service's health; the task can be retried"
            ) from exc
        continuation = getattr(pages, "continuation_token", None)
        charge, throttled = page_charge
        stats.ru_charged += charge
        stats.pages += 1
        stats.throttled_requests += throttled
        stats.page_charges.append(charge)
        budget.after_request(charge, throttled > 0, page_served[0])
        if page:
            yielded = True
            yield page


def _next_page(
    pages: Iterator[Any] | None,
    reopen: Callable[[str | None, float], Iterator[Any]],
    continuation: str | None,
    cannot_resume: bool,
    patience: EndpointPatience,
    what: str,
) -> tuple[Iterator[Any], Any]:
    """(pager, its next page), retrying an unreachable endpoint by reopening the pager at the last continuation
    until ``patience.total_s`` has passed since the wait began (a query that already yielded pages and has no
    continuation cannot resume: it fails, and the task's retry re-copies the slice)."""
    deadline = time.monotonic() + patience.total_s
    delay = 1.0
    while True:
        try:
            if pages is None:
                pages = reopen(continuation, max(1.0, deadline - time.monotonic()))
            return pages, next(pages)
        except UNREACHABLE_ERRORS as exc:
            if cannot_resume or time.monotonic() + delay >= deadline:
                raise
            log.warning("%s: %s; retrying in %.0f s (gives up after %.0f s)", what, exc.__class__.__name__, delay,
                        patience.total_s)
            time.sleep(delay)
            delay = min(delay * 2, patience.backoff_max_s)
            pages = None
