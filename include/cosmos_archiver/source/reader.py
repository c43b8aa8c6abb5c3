"""Read one time slice from Cosmos DB page by page, paying for each page through an RU budget.

Every slice query leaves out purge stubs (:data:`MARKER_FIELD` holding the marker object of kind ``stub``): a stub
is never archived again; and tombstones of records deleted through the read-through API (kind ``tombstone``), which
are no records. A business field that only shares a name with ours is data (:func:`marker_sql`).
Besides whole documents, a slice can be counted (``SELECT VALUE COUNT(1)``) or listed as ids and etags, the cheap
completeness checks of fast validation and of the remainder sweep.

Each document is placed by the UTC instant of its timestamp (:func:`slices.timestamp_instant`), not by how its
value compares on the server: the range query (``slice_query``, also Azure Data Factory's) sees ISO 8601 strings
in the canonical UTC spelling in time order, so the reader keeps only those from it; ``spelling_query`` reads the
other spellings (an offset, a date only, other fractional digits) whose written date lies within a day of the
slice, and each is kept only if its instant is in the slice. A document without its partition key property is left
in Cosmos DB (the billing API cannot address it by key, a purge could not delete it the usual way). What cannot be
placed is never read into a slice; source.census names it.

While a page is awaited a progress line is logged every 30 s (:func:`clients.waiting_for`); an endpoint that does
not answer is retried up to the client's :class:`clients.EndpointPatience`, then SourceUnreachableError names it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import CosmosClientTimeoutError

from include.cosmos_archiver.archive.canonical import partition_key_text
from include.cosmos_archiver.clients import EndpointPatience, endpoint_of, patience_of, waiting_for
from include.cosmos_archiver.errors import TransientError
from include.cosmos_archiver.ru.budget import RuBudget, UnlimitedBudget, served_at
from include.cosmos_archiver.ru.paid_requests import CHARGE_HEADER
from include.cosmos_archiver.ru.throttles import ThrottleWatch
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
    timestamp_instant,
)

log = logging.getLogger(__name__)
# The archive's own documents in Cosmos DB (readthrough/markers.py) carry one namespaced object, recognised by its
# shape: {"v": 1, "kind": "stub" | "tombstone", ...}. A business field of any name (``_archived`` included), even
# this name with another value, is data like any other: archived, counted and served.
MARKER_FIELD = "_cosmosArchive"
MARKER_VERSION = 1
STUB, TOMBSTONE = "stub", "tombstone"
MARKER_KINDS = (STUB, TOMBSTONE)
UNREACHABLE_ERRORS = (ServiceRequestError, ServiceResponseError, CosmosClientTimeoutError)
COUNT = "VALUE COUNT(1)"
_T_ALIAS = "_slice_t"  # the timestamp, projected next to a caller's projection so a spelling can be placed
T = TypeVar("T")


class SourceUnreachableError(TransientError, ConnectionError):
    """Cosmos DB did not answer within the clients' retry bound (a later retry may succeed)."""


@dataclass
class ReadStats:
    ru_charged: float = 0.0
    pages: int = 0
    throttled_requests: int = 0
    page_charges: list[float] = field(default_factory=list)
    other_spellings: int = 0  # documents placed in the slice by the parsed instant of a non-canonical spelling
    spelled_in_range: int = 0  # non-canonical values read whose text sorts into the slice's range (count_range's)
    first_served: float | None = None  # the server's Date of the first answer (epoch seconds), if it sent one


def marker_sql(kind: str | None = None, alias: str = "c") -> str:
    """The Cosmos SQL condition "this document is the archive's stub (``kind``) or either marker": the same shape
    :func:`readthrough.markers.marker_kind` checks. Every term is a boolean (guarded by ``IS_*``), so ``NOT`` of it
    is true, never undefined, for any business document: none is left out of a query by accident."""
    m = f'{alias}["{MARKER_FIELD}"]'
    kinds = ", ".join(f'"{k}"' for k in ((kind,) if kind else MARKER_KINDS))
    return (f"(IS_OBJECT({m}) AND IS_NUMBER({m}.v) AND {m}.v = {MARKER_VERSION} AND IS_STRING({m}.kind) "
            f"AND {m}.kind IN ({kinds}))")


RECORDS_ONLY = f"NOT {marker_sql()}"  # leaves out stubs and tombstones: they are no records


def slice_query(
    time_slice: TimeSlice, timestamp_field: str, kind: TimestampKind, select: str = "*"
) -> dict[str, Any]:
    """The slice's range (stubs left out); ``select`` the projection, e.g. ``VALUE COUNT(1)``. The Azure Data Factory
    pipeline sends this WHERE clause; the reader narrows it with :func:`placed_filter`."""
    expr = field_expression(timestamp_field)
    return {
        "query": f"SELECT {select} FROM c WHERE {expr} >= @start AND {expr} < @end "
                 f"AND {RECORDS_ONLY}",
        "parameters": [
            {"name": "@start", "value": bound_value(time_slice.start, kind)},
            {"name": "@end", "value": bound_value(time_slice.end, kind)},
        ],
    }


def placed_filter(timestamp_field: str, kind: TimestampKind, partition_key_path: str | None) -> str:
    """What the range query must add to hold only documents it places right: the canonical ISO spelling (the
    others are placed by :func:`spelling_query`) and a partition key."""
    parts = [canonical_iso_sql(field_expression(timestamp_field))] if kind == "iso8601" else []
    if partition_key_path:
        parts.append(f"IS_DEFINED({_pk_expression(partition_key_path)})")
    return "".join(f" AND {p}" for p in parts)


def spelling_window(time_slice: TimeSlice) -> tuple[str, str]:
    """Lexicographic bounds (dates ``YYYY-MM-DD``) holding every ISO 8601 string whose instant may be in the slice:
    its written local date is at most MAX_UTC_OFFSET from the UTC one (clamped to years 0001..9999)."""
    first, last = dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)
    low = (max(time_slice.start, first + MAX_UTC_OFFSET) - MAX_UTC_OFFSET).date().isoformat()
    high = "99999" if time_slice.end >= last - 2 * MAX_UTC_OFFSET else (
        (time_slice.end + MAX_UTC_OFFSET).date() + dt.timedelta(days=1)).isoformat()
    return low, high


def spelling_query(
    time_slice: TimeSlice, timestamp_field: str, select: str = "*", partition_key_path: str | None = None
) -> dict[str, Any]:
    """ISO 8601 strings near the slice in a spelling other than the canonical UTC one (stubs left out)."""
    expr = field_expression(timestamp_field)
    low, high = spelling_window(time_slice)
    pk = f" AND IS_DEFINED({_pk_expression(partition_key_path)})" if partition_key_path else ""
    return {
        "query": f"SELECT {select} FROM c WHERE IS_STRING({expr}) AND {expr} >= @low AND {expr} < @high "
                 f"AND NOT {canonical_iso_sql(expr)} AND {RECORDS_ONLY}{pk}",
        "parameters": [{"name": "@low", "value": low}, {"name": "@high", "value": high}],
    }


def _pk_expression(partition_key_path: str) -> str:
    return field_expression(partition_key_path.strip("/").replace("/", "."))


def instant_in(value: Any, time_slice: TimeSlice, kind: TimestampKind) -> bool:
    """Whether a stored timestamp value is an instant inside the slice."""
    try:
        instant = timestamp_instant(value, kind)
    except TimestampError:
        return False
    return time_slice.start <= instant < time_slice.end


@dataclass
class SliceRead:
    """One read of a slice: the source, the slice, how its timestamp is stored, and the pacing; charges and
    throttling land in ``stats``. ``select``: the projection (``VALUE COUNT(1)`` yields partial counts)."""

    container: ContainerProxy
    time_slice: TimeSlice
    timestamp_field: str
    timestamp_kind: TimestampKind
    page_size: int = 100
    budget: RuBudget = field(default_factory=UnlimitedBudget)
    stats: ReadStats = field(default_factory=ReadStats)
    select: str = "*"
    partition_key_path: str | None = None  # the container's, e.g. "/customerId"; None: not filtered on
    other_spellings: bool = True  # also read the non-canonical ISO 8601 spellings near the slice (archive.source_facts)
    feed_range: dict[str, Any] | None = None  # one partition key range (``container.read_feed_ranges()``); None: all


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
    other_spellings: bool = True,
    feed_range: dict[str, Any] | None = None,
) -> Iterator[list[Any]]:
    """Yield the slice's documents (or ``select``'s projection; ``VALUE COUNT(1)`` yields partial counts) a page at
    a time; charges and throttling land in ``stats``. The range query's placed documents come first
    (:func:`read_placed`), then, with ``other_spellings``, the other ISO 8601 spellings placed by their instant
    (:func:`read_other_spellings`). ``feed_range``: only that partition key range's documents."""
    read = SliceRead(container, time_slice, timestamp_field, timestamp_kind, page_size,
                     budget=budget or UnlimitedBudget(), stats=stats if stats is not None else ReadStats(),
                     select=select, partition_key_path=container_partition_key_path(container),
                     other_spellings=other_spellings, feed_range=feed_range)
    yield from read_placed(read)
    yield from read_other_spellings(read)


def read_placed(read: SliceRead) -> Iterator[list[Any]]:
    """The documents the server-side range query places right (what the ADF pipeline's query selects too)."""
    query = slice_query(read.time_slice, read.timestamp_field, read.timestamp_kind, read.select)
    query["query"] += placed_filter(read.timestamp_field, read.timestamp_kind, read.partition_key_path)
    yield from query_pages(read.container, query, page_size=read.page_size, budget=read.budget, stats=read.stats,
                           feed_range=read.feed_range)


def read_other_spellings(read: SliceRead) -> Iterator[list[Any]]:
    """The ISO 8601 documents in another spelling than the canonical UTC one whose instant lies in the slice (none
    for epoch seconds): the range query cannot place them, so they are read near the slice and placed here."""
    if read.timestamp_kind != "iso8601" or not read.other_spellings:
        return
    container, time_slice, select, stats = read.container, read.time_slice, read.select, read.stats
    timestamp_field, timestamp_kind = read.timestamp_field, read.timestamp_kind
    counting = select.replace(" ", "").upper() == COUNT.replace(" ", "")
    expr = field_expression(timestamp_field)
    projection = f"VALUE {expr}" if counting else "*" if select == "*" else f"{select}, {expr} AS {_T_ALIAS}"
    placed = 0
    query = spelling_query(time_slice, timestamp_field, projection, read.partition_key_path)
    low, high = (bound_value(time_slice.start, timestamp_kind), bound_value(time_slice.end, timestamp_kind))
    for page in query_pages(container, query, page_size=read.page_size, budget=read.budget, stats=stats,
                            feed_range=read.feed_range):
        if counting:
            placed += sum(instant_in(v, time_slice, timestamp_kind) for v in page)
            stats.spelled_in_range += sum(isinstance(v, str) and low <= v < high for v in page)
            continue
        value = (lambda d: field_value(d, timestamp_field)) if select == "*" else (lambda d: d.get(_T_ALIAS))
        stats.spelled_in_range += sum(isinstance(t, str) and low <= t < high for t in map(value, page))
        kept = [d for d in page if instant_in(value(d), time_slice, timestamp_kind)]
        if select != "*":
            kept = [{k: v for k, v in d.items() if k != _T_ALIAS} for d in kept]
        stats.other_spellings += len(kept)
        if kept:
            yield kept
    if counting:
        stats.other_spellings += placed
        yield [placed]


def container_partition_key_path(container: ContainerProxy) -> str | None:
    """The container's (first) partition key path, from the properties the SDK caches for its queries (read once,
    retried like a page while the endpoint does not answer)."""
    properties = answered(container, lambda remaining: container._get_properties(timeout=remaining),
                          "its properties")  # the SDK's cached container properties
    paths = (properties.get("partitionKey") or {}).get("paths") or []
    return paths[0] if paths else None


def answered(container: ContainerProxy, attempt: Callable[[float], T], request: str) -> T:
    """``attempt(remaining seconds)``, a request to ``container`` outside a query (its properties, its feed ranges),
    retried like a page while the endpoint does not answer, then :class:`SourceUnreachableError` naming it."""
    patience = patience_of(container)
    what = f"{request} from Cosmos DB container {container.id!r} at {endpoint_of(container)}"
    try:
        with waiting_for(what):
            return _retry_unreachable(attempt, patience, what)
    except UNREACHABLE_ERRORS as exc:
        raise _unreachable(container, patience, exc, request) from exc


def count_slice(
    container: ContainerProxy,
    time_slice: TimeSlice,
    *,
    timestamp_field: str = "_ts",
    timestamp_kind: TimestampKind = "epoch_seconds",
    budget: RuBudget | None = None,
    stats: ReadStats | None = None,
    other_spellings: bool = True,
) -> int:
    """How many documents (stubs left out) the slice places: a ``COUNT`` of the placed range (its canonical-spelling
    filter uses LENGTH/SUBSTRING, which the index does not serve: on Azure it loads the range's documents) plus,
    with ``other_spellings``, the other spellings near it. :func:`count_range` is the index-served count."""
    total = 0
    for page in read_slice(container, time_slice, timestamp_field=timestamp_field, timestamp_kind=timestamp_kind,
                           budget=budget, stats=stats, select=COUNT, other_spellings=other_spellings):
        total += sum(int(n) for n in page)  # one partial count per partition range
    return total


def range_count_query(time_slice: TimeSlice, timestamp_field: str, kind: TimestampKind,
                      partition_key_path: str | None) -> dict[str, Any]:
    """``COUNT`` of the slice's range whose whole filter the index serves: a range on the (range-indexed) timestamp
    path, ``IS_DEFINED`` of the partition key and ``NOT IS_DEFINED`` of the stub and tombstone markers (IS_DEFINED
    "benefits from a range index", learn.microsoft.com/cosmos-db/query/is-defined; the default indexing policy
    indexes every path but ``_etag``). No LENGTH/SUBSTRING/ENDSWITH: the canonical-spelling test of
    :func:`placed_filter` would make Azure load every document of the range ("a COUNT whose filter the index cannot
    fully serve falls back to loading documents"). It therefore also counts a non-canonical ISO 8601 value whose text
    sorts into the range; a caller comparing it with what a copy placed learns from a difference that such values
    exist (:mod:`archive.source_facts`)."""
    query = slice_query(time_slice, timestamp_field, kind, COUNT)
    if partition_key_path:
        query["query"] += f" AND IS_DEFINED({_pk_expression(partition_key_path)})"
    return query


def count_range(
    container: ContainerProxy,
    time_slice: TimeSlice,
    *,
    timestamp_field: str = "_ts",
    timestamp_kind: TimestampKind = "epoch_seconds",
    budget: RuBudget | None = None,
    stats: ReadStats | None = None,
    feed_range: dict[str, Any] | None = None,
    unchanged_before: int | None = None,
) -> int:
    """The index-served count of the slice's range (:func:`range_count_query`), optionally of one partition key
    range: what validation, the remainder sweep and the per-run census compare with the archive.
    ``unchanged_before`` (epoch seconds) counts only documents last written before it (``_ts`` is range-indexed)."""
    query = range_count_query(time_slice, timestamp_field, timestamp_kind, container_partition_key_path(container))
    if unchanged_before is not None:
        query["query"] += " AND c._ts < @unchanged_before"
        query["parameters"] = [*query.get("parameters", []), {"name": "@unchanged_before", "value": unchanged_before}]
    total = 0
    for page in query_pages(container, query, page_size=100, budget=budget or UnlimitedBudget(),
                            stats=stats if stats is not None else ReadStats(), feed_range=feed_range):
        total += sum(int(n) for n in page)  # one partial count per partition range
    return total


def count_remaining(
    container: ContainerProxy,
    time_slice: TimeSlice,
    *,
    timestamp_field: str,
    timestamp_kind: TimestampKind,
    other_spellings: bool,
    budget: RuBudget | None = None,
    stats: ReadStats | None = None,
) -> int:
    """How many documents a slice's range holds (the remainder sweep, the per-run census): index-served
    (:func:`count_range`) unless the source has other spellings, which only a loading count places."""
    read = dict(timestamp_field=timestamp_field, timestamp_kind=timestamp_kind, budget=budget, stats=stats)
    if other_spellings and timestamp_kind == "iso8601":
        return count_slice(container, time_slice, **read)
    return count_range(container, time_slice, **read)


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
    other_spellings: bool = True,
) -> dict[tuple[str, str], tuple[str | None, int | None]]:
    """(partition key text, id) -> (``_etag``, ``_ts``) of every document in the slice (stubs left out), without
    the bodies (``_etag`` is not indexed: on Azure this listing loads every document of the range, like a copy)."""
    pk = _pk_expression(partition_key_path)
    versions: dict[tuple[str, str], tuple[str | None, int | None]] = {}
    for page in read_slice(container, time_slice, timestamp_field=timestamp_field, timestamp_kind=timestamp_kind,
                           page_size=page_size, budget=budget, stats=stats,
                           select=f"c.id, c._etag, c._ts, {pk} AS pk", other_spellings=other_spellings):
        for row in page:
            versions[(partition_key_text(row.get("pk", MISSING)), str(row["id"]))] = (row.get("_etag"), row.get("_ts"))
    return versions


def documents_besides(
    container: ContainerProxy,
    time_slice: TimeSlice,
    known: dict[tuple[str, str], str | None],
    *,
    partition_key_path: str,
    timestamp_field: str = "_ts",
    timestamp_kind: TimestampKind = "epoch_seconds",
    budget: RuBudget | None = None,
    stats: ReadStats | None = None,
) -> int:
    """How many of the slice's documents are not one of ``known`` ((partition key text, id) -> ``_etag``) in that
    very version: e.g. besides the unarchivable documents a copy set aside, unchanged. Ids and etags only."""
    versions = slice_versions(container, time_slice, partition_key_path=partition_key_path,
                              timestamp_field=timestamp_field, timestamp_kind=timestamp_kind, budget=budget,
                              stats=stats)
    return sum(1 for key, (etag, _ts) in versions.items() if key not in known or known[key] != etag)


def query_pages(
    container: ContainerProxy,
    query: dict[str, Any],
    *,
    page_size: int,
    budget: RuBudget,
    stats: ReadStats,
    feed_range: dict[str, Any] | None = None,
) -> Iterator[list[Any]]:
    """Run one cross-partition query page by page through the budget, logging while a page is awaited, and restart
    it safely when the endpoint did not answer.

    A restart never resumes from a continuation token: the Python SDK supports them for single-partition queries
    only (Microsoft Learn, query pagination; a cross-partition query's token is the last partition key range's, which
    the SDK would send to every range). The query starts again from the beginning instead, and every row already
    yielded is left out by its identity (:func:`_row_identity`: the document's ``_rid``, or partition key and id);
    what it re-reads is paid again. A ``SELECT VALUE`` query (partial counts, timestamps) has rows without identity:
    its pages are held until it is complete, so a restart simply discards them. A query whose yielded rows have no
    identity cannot restart once it has yielded: it fails, and the task's retry starts the slice again."""
    page_charge = [0.0]  # RU of the requests behind the current page
    throttles = ThrottleWatch()  # their 429s (the SDK retries them itself, out of the response hook's sight)
    page_served: list[float | None] = [None]  # the server's Date of the page's last answer

    def on_response(headers: Any, _result: Any) -> None:
        # Called once per HTTP request the SDK makes (a page may take several across partition ranges).
        page_charge[0] += float(headers.get(CHARGE_HEADER, 0) or 0)
        page_served[0] = served_at(headers)
        if stats.first_served is None:
            stats.first_served = page_served[0]

    patience = patience_of(container)
    state: dict[str, Any] = {"pages": None}
    held: list[list[Any]] = []  # the pages of a SELECT VALUE query, until it is complete
    holding = query["query"].lstrip().upper().startswith("SELECT VALUE")
    yielded: set[Any] | None = set()  # identities of the rows yielded; None: a row without one was yielded

    def attempt(remaining: float) -> Any:
        if state["pages"] is None:  # opened lazily (opening may itself need the endpoint), always from the start
            scope = {"feed_range": feed_range} if feed_range is not None else {"enable_cross_partition_query": True}
            state["pages"] = container.query_items(
                query=query["query"],
                parameters=query["parameters"],
                max_item_count=page_size,
                response_hook=on_response,
                timeout=remaining,  # azure-cosmos' client-side bound on each page request with its own retries
                **scope,
            ).by_page()
        return next(state["pages"])

    def restart() -> None:
        state["pages"] = None
        held.clear()

    while True:
        budget.before_request(stats.page_charges[-1] if stats.page_charges else 1.0)
        page_charge[0] = 0.0
        throttles.start()
        try:
            with waiting_for(_what(container)):
                page = list(_retry_unreachable(attempt, patience, _what(container), resumable=yielded is not None,
                                               on_retry=restart))
        except StopIteration:
            stats.ru_charged += page_charge[0]  # the request that found no more pages is charged too
            stats.throttled_requests += throttles.seen()
            yield from held
            return
        except UNREACHABLE_ERRORS as exc:
            raise _unreachable(container, patience, exc) from exc
        charge, throttled = page_charge[0], throttles.seen()
        stats.ru_charged += charge
        stats.pages += 1
        stats.throttled_requests += throttled
        stats.page_charges.append(charge)
        budget.after_request(charge, throttled > 0, page_served[0])
        if holding:
            held.append(page)
            continue
        fresh = []
        for row in page:
            key = _row_identity(row)
            if key is None:
                yielded = None
            elif yielded is not None and key in yielded:
                continue  # yielded before a restart
            elif yielded is not None:
                yielded.add(key)
            fresh.append(row)
        if fresh:
            yield fresh


def _row_identity(row: Any) -> Any:
    """What tells a row's document apart from every other in the container: its ``_rid``, else its partition key
    (the ``pk`` alias of an id listing) and id; None when the row carries neither (ids repeat across partitions)."""
    if not isinstance(row, dict):
        return None
    if row.get("_rid") is not None:
        return ("_rid", str(row["_rid"]))
    if "pk" in row and "id" in row:
        return ("pk", partition_key_text(row["pk"]), str(row["id"]))
    return None


def _what(container: ContainerProxy) -> str:
    return f"the next page of a slice query from Cosmos DB container {container.id!r} at {endpoint_of(container)}"


def _unreachable(container: ContainerProxy, patience: EndpointPatience, exc: Exception,
                 request: str = "a slice query") -> SourceUnreachableError:
    return SourceUnreachableError(
        f"Cosmos DB at {endpoint_of(container)} (container {container.id!r}) did not answer {request} within "
        f"{patience.total_s:.0f} s ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}); check the account "
        "endpoint, its firewall and the service's health; the task can be retried"
    )


def _retry_unreachable(
    attempt: Callable[[float], T],
    patience: EndpointPatience,
    what: str,
    *,
    resumable: bool = True,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """``attempt(remaining seconds)``, retried with capped exponential backoff while the endpoint does not answer,
    until ``patience.total_s`` has passed since the first try."""
    deadline = time.monotonic() + patience.total_s
    delay = 1.0
    while True:
        try:
            return attempt(max(1.0, deadline - time.monotonic()))
        except UNREACHABLE_ERRORS as exc:
            if not resumable or time.monotonic() + delay >= deadline:
                raise
            log.warning("%s: %s; retrying in %.0f s (gives up after %.0f s)", what, exc.__class__.__name__, delay,
                        patience.total_s)
            time.sleep(delay)
            delay = min(delay * 2, patience.backoff_max_s)
            if on_retry is not None:
                on_retry()
