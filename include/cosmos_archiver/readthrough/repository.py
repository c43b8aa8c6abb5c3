"""The billing API's data access: Cosmos DB first, the archive on a miss, as if nothing had been archived.

- ``get``: Cosmos DB's document, else (a 404 or a stub) the archived one, byte for byte as Cosmos returned it
  before archiving (system properties included); a tombstone is a 404.
- ``list``: one customer's hot and archived records merged in the list contract's order (:mod:`.paging`).
- ``create``: 409 for an id that is in Cosmos DB or archived and not deleted.
- ``update``: replaces (or upserts) a live, stubbed or archived record; the new version lives in Cosmos DB and
  wins over the archive from then on. Every write is conditional on the ETag it read, so a concurrent purge
  (conditional on the archived ETag) and this update cannot both win: no update is lost.
- ``delete``: every record is replaced by a tombstone in the same write, so it never comes back: not from the
  archive, not after a later archive run, purge, restore, index compaction or erasure, whether it was live,
  archived or both (an older version may be archived, or being copied, under another timestamp).

Partition keys: a caller passes the key's value as its writer wrote it (the API's ``customerId`` is always a string;
the library also takes numbers, booleans, None for JSON null and the empty string). The archive and its index name
the key by :func:`partition_key_text`, the one mapping from a value to its archived key, used here, by the index
writer, restore, the erasure and the census: the string ``"null"`` and JSON null, ``"12345"`` and 12345 are
different keys, and a key never reaches another key's record.

Bodies are the canonical JSON of the document (:func:`canonical_json`): the same bytes whether the document came
from Cosmos DB or from the archive, which stores exactly that form.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import CosmosHttpResponseError
from azure.cosmos.partition_key import NullPartitionKeyValue

from include.cosmos_archiver.archive.canonical import (
    partition_key_text,
    partition_key_value,
    record_key,
)
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.readthrough.documents import check_document, served_json
from include.cosmos_archiver.readthrough.errors import (
    ArchiveUnavailable,
    BadRequest,
    Conflict,
    NotFound,
    ReadThroughError,
)
from include.cosmos_archiver.readthrough.ids import check_id
from include.cosmos_archiver.readthrough.index import ArchiveIndex, IndexEntry
from include.cosmos_archiver.readthrough.markers import (
    MARKER_FIELD,
    SYSTEM_PROPERTIES,
    is_stub,
    is_tombstone,
    marker_kind,
    stub_sha256,
    tombstone,
)
from include.cosmos_archiver.readthrough.paging import ListQuery, build_query, encode_token, timestamp_of
from include.cosmos_archiver.readthrough.preconditions import check_if_match
from include.cosmos_archiver.readthrough.rows import RowReader
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import (
    MISSING,
    TimestampError,
    field_expression,
    field_value,
    slice_grid,
    timestamp_instant,
)
from include.cosmos_archiver.source.reader import RECORDS_ONLY, STUB, TOMBSTONE, marker_sql

log = logging.getLogger(__name__)
Source = Literal["cosmos", "archive"]
WRITE_ATTEMPTS = 5
ROW_GROUP_READERS = 8  # a list page's archived records come from many row groups: read them side by side
T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    body: bytes  # canonical JSON: the API's response body
    etag: str | None
    source: Source


@dataclass
class Page:
    records: list[Record]
    continuation: str | None
    sources: set[str] = field(default_factory=set)

    def body(self) -> bytes:
        items = b",".join(r.body for r in self.records)
        return b'{"continuation":' + json.dumps(self.continuation).encode() + b',"items":[' + items + b"]}"


def _status(exc: CosmosHttpResponseError) -> int:
    return int(exc.status_code or 0)


def list_composite_index(settings: ArchiveSettings) -> list[dict[str, str]]:
    """The composite index (partition key, timestamp), both ascending, that serves a list page's keyset query: an
    entry of the container's indexing policy's ``compositeIndexes`` (docs/read-through-api.md)."""
    return [{"path": "/" + settings.partition_key_path.strip("/"), "order": "ascending"},
            {"path": "/" + settings.timestamp_field.replace(".", "/"), "order": "ascending"}]


def list_indexing_policy(settings: ArchiveSettings) -> dict[str, Any]:
    """Cosmos DB's default indexing policy (every path, ``_etag`` excluded) with :func:`list_composite_index`: what a
    container created for these settings can be given."""
    return {"indexingMode": "consistent", "automatic": True, "includedPaths": [{"path": "/*"}],
            "excludedPaths": [{"path": '/"_etag"/?'}], "compositeIndexes": [list_composite_index(settings)]}


def sdk_partition_key(value: Any) -> Any:
    """The SDK's spelling of a partition key value (a string, number, boolean or None for JSON null; anything else
    is a BadRequest naming it): JSON null is NullPartitionKeyValue (a query's None would mean "every partition")."""
    if value is not None and not isinstance(value, str | int | float | bool):
        raise BadRequest(f"partition key {value!r} is a {type(value).__name__}: a partition key is a string, number, "
                         "boolean or null", parameter="customerId", value=value)
    return NullPartitionKeyValue if value is None else value


class ReadThroughRepository:
    def __init__(self, container: ContainerProxy, store: ArchiveStore, settings: ArchiveSettings, *,
                 index: ArchiveIndex | None = None, rows: RowReader | None = None) -> None:
        self.container = container
        self.store = store
        self.settings = settings
        self.index = index or ArchiveIndex(store)
        self.rows = rows or RowReader(store.container)
        self._ts_expr = field_expression(settings.timestamp_field)
        self._readers = ThreadPoolExecutor(ROW_GROUP_READERS, thread_name_prefix="archive-read")
        self._pk_expr = "c" + "".join(f'["{p}"]' for p in settings.partition_key_path.strip("/").split("/"))
        self._composite_order: bool | None = None  # whether the container serves ORDER BY (partition key, timestamp)

    # -- reads ---------------------------------------------------------------------------------------------------
    def get(self, record_id: str, partition_key: Any) -> Record:
        doc = self._read(record_id, partition_key)
        kind = None if doc is None else marker_kind(doc)
        if kind == TOMBSTONE:
            raise NotFound(f"record {record_id!r} of {partition_key!r} was deleted", parameter="id", value=record_id)
        if doc is not None and kind is None:
            return Record(served_json(doc), doc.get("_etag"), "cosmos")
        stub_sha = None if doc is None else stub_sha256(doc)  # a stub names the version it stands for
        record = self._archived(partition_key, record_id, expect_sha256=stub_sha, stub=doc is not None)
        if record is None:
            if doc is not None:
                raise ArchiveUnavailable(f"{partition_key!r}/{record_id} is a stub but its slice is not in the "
                                         "archive index: run index_slice for it (retry later)")
            raise NotFound(f"no record {record_id!r} for customerId {partition_key!r}", parameter="id",
                           value=record_id)
        return record

    def list(self, customer: Any, start: str | None = None, end: str | None = None, page_size: Any = 100,
             continuation: str | None = None) -> Page:
        # the token is bound to the key's JSON (never empty, "null" and null distinct), the index to its text
        sdk_partition_key(customer)
        query = build_query(json.dumps(customer, ensure_ascii=False), start, end, page_size, continuation,
                            self.settings.timestamp_kind)
        archived_later = self._readers.submit(self.index.entries_of, partition_key_text(customer))
        hot = self._hot_window(query, customer)
        archived = self._archive_call(archived_later.result)
        if not hot and not archived and not self._customer_exists(customer):
            raise BadRequest(f"customerId={customer!r} is not a known customer (no records, hot or archived)",
                             parameter="customerId", value=customer)
        candidates: dict[str, tuple[Any, str, IndexEntry | None]] = {rid: (o, rid, None) for rid, o in hot.items()}
        for e in archived:
            key = query.place(e.order, e.id) if e.id not in candidates else None
            if key is not None:
                candidates[e.id] = (key, e.id, e)
        ordered = sorted(candidates.values(), key=lambda c: (c[0], c[1]))
        window = self._confirm_archived(query, customer, ordered)
        page, more = window[:query.page_size], len(window) > query.page_size
        records = self._bodies(customer, page)
        token = encode_token(query, page[-1][0], page[-1][1]) if more and page else None
        return Page(records, token, {r.source for r in records})

    # -- writes --------------------------------------------------------------------------------------------------
    def create(self, doc: Any) -> Record:
        doc, pk, rid = self._writable(doc)
        for _ in range(WRITE_ATTEMPTS):
            existing = self._read(rid, pk)
            try:
                if existing is None:
                    if self._entry(pk, rid) is not None:
                        raise Conflict(f"record {rid!r} of {pk!r} exists (archived)", parameter="id", value=rid)
                    return self._written(self.container.create_item(doc))
                if is_tombstone(existing):  # deleted: its id is free again
                    return self._written(self._replace(rid, doc, existing))
            except CosmosHttpResponseError as exc:
                if _status(exc) in (404, 409, 412):  # raced with another writer or the purge: look again
                    continue
                raise self._cosmos_error(exc) from None
            raise Conflict(f"record {rid!r} of {pk!r} exists", parameter="id", value=rid)
        raise ArchiveUnavailable(f"record {rid!r}: concurrent writes kept conflicting; retry")

    def update(self, record_id: str, doc: Any, *, if_match: str | None = None, upsert: bool = False) -> Record:
        doc, pk, rid = self._writable(doc)
        if rid != record_id:
            raise BadRequest(f"body id {rid!r} differs from the path's id {record_id!r}", parameter="id", value=rid)
        for _ in range(WRITE_ATTEMPTS):
            existing = self._read(rid, pk)
            try:
                if existing is not None and not is_stub(existing) and not is_tombstone(existing):
                    self._check(if_match, existing.get("_etag"), rid)
                    return self._written(self._replace(rid, doc, existing))
                if existing is not None and is_tombstone(existing):
                    if not upsert:
                        self._check(if_match, None, rid)
                        raise NotFound(f"record {rid!r} of {pk!r} was deleted", parameter="id", value=rid)
                    self._check(if_match, None, rid)
                    return self._written(self._replace(rid, doc, existing))
                entry = self._entry(pk, rid)
                if entry is None and existing is None and not upsert:
                    self._check(if_match, None, rid)
                    raise NotFound(f"no record {rid!r} for customerId {pk!r}", parameter="id", value=rid)
                self._check(if_match, entry.etag if entry else None, rid)
                written = self._replace(rid, doc, existing) if existing else self.container.create_item(doc)
                return self._written(written)
            except CosmosHttpResponseError as exc:
                if _status(exc) in (404, 409, 412):
                    continue
                raise self._cosmos_error(exc) from None
        raise ArchiveUnavailable(f"record {rid!r}: concurrent writes kept conflicting; retry")

    def delete(self, record_id: str, partition_key: Any, *, if_match: str | None = None) -> None:
        for _ in range(WRITE_ATTEMPTS):
            existing = self._read(record_id, partition_key)
            try:
                if existing is not None and is_tombstone(existing):
                    self._check(if_match, None, record_id)
                    raise NotFound(f"record {record_id!r} of {partition_key!r} was deleted", parameter="id",
                                   value=record_id)
                if existing is not None and not is_stub(existing):
                    # always a tombstone: an older version may be archived (or being copied) under any timestamp
                    self._check(if_match, existing.get("_etag"), record_id)
                    order = timestamp_of(existing, self.settings.timestamp_field)
                    self._replace(record_id, self._tombstone(record_id, partition_key, order), existing)
                    return
                entry = self._entry(partition_key, record_id)
                if entry is None and existing is None:
                    self._check(if_match, None, record_id)
                    raise NotFound(f"no record {record_id!r} for customerId {partition_key!r}", parameter="id",
                                   value=record_id)
                self._check(if_match, entry.etag if entry else None, record_id)
                mark = self._tombstone(record_id, partition_key, entry.order if entry else None)
                if existing is not None:
                    self._replace(record_id, mark, existing)
                else:
                    self.container.create_item(mark)
                return
            except CosmosHttpResponseError as exc:
                if _status(exc) in (404, 409, 412):
                    continue
                raise self._cosmos_error(exc) from None
        raise ArchiveUnavailable(f"record {record_id!r}: concurrent writes kept conflicting; retry")

    # -- helpers -------------------------------------------------------------------------------------------------
    def _read(self, record_id: str, partition_key: Any) -> dict[str, Any] | None:
        """The one entry point of every route (get, list's lookups, create, update, delete, lookup): the id is
        checked here, so no request is built for anything but one document (:mod:`.ids`). A document the store
        answers for another key (the local emulator files the string "1" and the number 1 together) is not it."""
        check_id(record_id)
        try:
            doc = self.container.read_item(record_id, partition_key=sdk_partition_key(partition_key))
        except CosmosHttpResponseError as exc:
            if _status(exc) == 404:
                return None
            raise self._cosmos_error(exc) from None
        return doc if self._key_text(doc) == partition_key_text(partition_key) else None

    def _key_text(self, doc: dict[str, Any]) -> str:
        return record_key(doc, self.settings.partition_key_path)[0]

    def _replace(self, record_id: str, doc: dict[str, Any], existing: dict[str, Any]) -> dict[str, Any]:
        return self.container.replace_item(record_id, doc, etag=existing["_etag"],
                                           match_condition=MatchConditions.IfNotModified)

    @staticmethod
    def _written(doc: dict[str, Any]) -> Record:
        return Record(served_json(doc), doc.get("_etag"), "cosmos")

    _check = staticmethod(check_if_match)

    def _tombstone(self, record_id: str, partition_key: Any, order: Any) -> dict[str, Any]:
        slice_id = self._slice_id(order)
        return tombstone(record_id, self.settings.partition_key_path, partition_key, order=order, slice_id=slice_id)

    def _slice_id(self, order: Any) -> str | None:
        moment = self._moment(order)
        if moment is None:
            return None
        step = dt.timedelta(microseconds=1)
        return slice_grid(moment, moment + step, slice_hours=self.settings.slice_hours)[0].slice_id

    def _moment(self, order: Any) -> dt.datetime | None:
        try:
            if self.settings.timestamp_kind == "epoch_seconds" and isinstance(order, int | float):
                return dt.datetime.fromtimestamp(order, dt.UTC)
            if self.settings.timestamp_kind == "iso8601" and isinstance(order, str):
                return dt.datetime.fromisoformat(order.replace("Z", "+00:00")).astimezone(dt.UTC)
        except (ValueError, OverflowError, OSError):
            return None
        return None

    def _writable(self, doc: Any) -> tuple[dict[str, Any], str, str]:
        if not isinstance(doc, dict):
            raise BadRequest("the body must be a JSON object (a billing record)", parameter="body",
                             value=type(doc).__name__)
        check_document(doc)
        rid = check_id(doc.get("id"))
        pk_field = self.settings.partition_key_path.strip("/").replace("/", ".")
        pk = partition_key_value(doc, self.settings.partition_key_path)
        if not isinstance(pk, str) or not pk or len(pk) > 255:
            raise BadRequest(f"{pk_field}={pk!r} must be a non-empty string of at most 255 characters",
                             parameter=pk_field, value=pk)
        if (kind := marker_kind(doc)) is not None:
            raise BadRequest(f"{MARKER_FIELD}={doc[MARKER_FIELD]!r} has the shape of the archive's own {kind} "
                             f"documents, which is reserved: use another value or field name", parameter=MARKER_FIELD,
                             value=doc[MARKER_FIELD])
        self._check_timestamp(doc)
        return {k: v for k, v in doc.items() if k not in SYSTEM_PROPERTIES}, pk, rid

    def _check_timestamp(self, doc: dict[str, Any]) -> None:
        """BadRequest when the timestamp field holds a value the archiver can never place in a slice (an impossible
        date such as ``2026-02-30``, the wrong kind, out of range): :func:`slices.timestamp_instant`, the archiver's
        own rule. A record without the field (or with null) is accepted: a business choice (such a record stays hot
        and the census lists it), documented in docs/read-through-api.md."""
        field = self.settings.timestamp_field
        value = field_value(doc, field)
        if value is MISSING or value is None:
            return
        try:
            timestamp_instant(value, self.settings.timestamp_kind, field)
        except TimestampError as exc:
            raise BadRequest(f"{exc}: the archiver could never place this record in a time slice; send a real "
                             f"{self.settings.timestamp_kind} timestamp, or leave {field} out", parameter=field,
                             value=value) from None

    def _entry(self, partition_key: Any, record_id: str, *, fresh: bool = False) -> IndexEntry | None:
        key = partition_key_text(partition_key)  # the archived key of the caller's value
        return self._archive_call(lambda: self.index.lookup(key, record_id, fresh=fresh))

    def _archived(self, partition_key: Any, record_id: str, *, expect_sha256: str | None = None,
                  stub: bool = False) -> Record | None:
        """The archived record. For a ``stub``, only the version the stub names (``expect_sha256``): the index is
        re-listed when its entry differs, and a stub the archive does not confirm is not believed (503)."""
        for attempt in (1, 2):
            entry = self._entry(partition_key, record_id)
            if entry is not None and stub and entry.sha256 != expect_sha256:
                entry = self._entry(partition_key, record_id, fresh=True)
                if entry is not None and entry.sha256 != expect_sha256:
                    raise ArchiveUnavailable(
                        f"{partition_key!r}/{record_id} is a stub naming sha256 {expect_sha256!r}, but the archive "
                        f"index holds {entry.sha256} ({entry.slice}): the stub is not believed; re-index its slice")
            if entry is None:
                return None
            try:
                return Record(self.rows.document(entry), entry.etag, "archive")
            except (ResourceNotFoundError, ValueError):
                if attempt == 2:  # the part was rewritten (an erasure) after the index was cached: reload once
                    raise ArchiveUnavailable(f"{entry.part} does not hold {partition_key}/{record_id} as the "
                                             "index says; retry") from None
                self.index.invalidate()
            except AzureError as exc:
                raise ArchiveUnavailable(f"the archive could not be read ({exc.__class__.__name__}); retry") from None
        return None

    @staticmethod
    def _archive_call(call: Callable[[], T]) -> T:
        try:
            return call()
        except AzureError as exc:
            raise ArchiveUnavailable(f"the archive could not be read ({exc.__class__.__name__}); retry") from None

    def _hot_window(self, query: ListQuery, customer: Any) -> dict[str, str]:
        """id -> instant key of the customer's first ``page_size + 1`` live records in list order (in range, after
        the token), and no others: enough, since only archived candidates can be dropped later.

        Keyset queries in the customer's logical partition, ``TOP n ... ORDER BY <timestamp>`` from the range's
        written-date window (:meth:`ListQuery.server_filter`) on, each going on from the last stored value the one
        before it read (that value included: the TOP may have cut the records sharing it; ids read twice count
        once), ``n`` as :meth:`ListQuery.next_batch` estimates.
        Numbers sort as instants; ISO strings sort by their text, which is instant order only for the canonical
        spelling, so the reading goes on until ``page_size + 1`` of the records read lie below the instant every
        record not read yet is known to be after (:meth:`ListQuery.settled_below`: the last value's written date
        less MAX_UTC_OFFSET). A page thus loads its own records and those written within about a day of them
        (two days on either side at most), however long the customer's history (before: every hot record after
        the token, ~N^2 / (2 x pageSize) documents to page through N). Ordered by (partition key, timestamp) where
        the container has that composite index, else by the timestamp's range index (:meth:`_keyset`)."""
        ts, need = self._ts_expr, query.page_size + 1
        in_range, params = query.server_filter(ts)
        found: dict[str, str] = {}
        first, cursor, batch, read = None, None, need, 0
        while True:
            after = "" if cursor is None else f" AND {ts} >= @cursor"
            page_params = params if cursor is None else [*params, {"name": "@cursor", "value": cursor}]
            rows = self._keyset(f"SELECT TOP {batch} c.id, {ts} AS o FROM c WHERE {in_range} AND {RECORDS_ONLY}"
                                f"{after} ORDER BY {ts}", page_params, customer)
            for row in rows:
                if (key := query.place(row.get("o"), row["id"])) is not None:
                    found[row["id"]] = key
            if len(rows) < batch:  # all read
                break
            settled = query.settled_below(rows[-1].get("o"))
            if settled is not None and sum(key < settled for key in found.values()) >= need:
                break
            read += len(rows)
            first = rows[0].get("o") if first is None else first
            batch = query.next_batch(list(found.values()), first, rows[-1].get("o"), read, batch)
            if rows[0].get("o") == rows[-1].get("o"):  # every row shares the cursor's value: read past them all
                batch = max(batch, 2 * len(rows))
            cursor = rows[-1].get("o")
        return dict(sorted(found.items(), key=lambda item: (item[1], item[0]))[:need])

    def _confirm_archived(self, query: ListQuery, customer: Any, ordered: list[tuple[Any, str, IndexEntry | None]]
                          ) -> list[tuple[Any, str, IndexEntry | None]]:
        """Drop archived candidates that Cosmos DB holds a newer live version of (updated out of the range) or a
        tombstone for (deleted), until the window holds page_size + 1 confirmed records or none are left: one
        lookup by id per window, so a page never reads the customer's other tombstones."""
        confirmed: list[tuple[Any, str, IndexEntry | None]] = []
        rest = ordered
        while rest and len(confirmed) <= query.page_size:
            need = query.page_size + 1 - len(confirmed)
            window, rest = rest[:need], rest[need:]
            ids = [c[1] for c in window if c[2] is not None]
            superseded = set()  # a live version or a tombstone: anything but the purge's stub
            if ids:
                sql = f"SELECT c.id FROM c WHERE ARRAY_CONTAINS(@ids, c.id) AND NOT {marker_sql(STUB)}"
                superseded = {row["id"] for row in self._query(sql, [{"name": "@ids", "value": ids}], customer)}
            confirmed += [c for c in window if c[2] is None or c[1] not in superseded]
        return confirmed

    def _bodies(self, customer: Any, page: list[tuple[Any, str, IndexEntry | None]]) -> list[Record]:
        hot_ids = [rid for _, rid, e in page if e is None]
        sql = "SELECT * FROM c WHERE ARRAY_CONTAINS(@ids, c.id)"
        hot_later = self._readers.submit(self._query, sql, [{"name": "@ids", "value": hot_ids}], customer) if (
            hot_ids) else None
        entries = [e for _, _, e in page if e is not None]
        by_part: dict[str, list[IndexEntry]] = {}
        for e in sorted(entries, key=lambda e: (e.part, e.row_group, e.row)):
            by_part.setdefault(e.part, []).append(e)

        def read_part(part_entries: list[IndexEntry]) -> list[tuple[str, bytes]]:
            # one part per thread: its footer and each row group are fetched once, then served from the cache
            return [(e.id, self.rows.document(e)) for e in part_entries]

        try:
            archived = dict(pair for pairs in self._readers.map(read_part, by_part.values()) for pair in pairs)
        except (ResourceNotFoundError, ValueError):  # a part rewritten by an erasure since the index was cached
            self.index.invalidate()
            archived = {}
            for e in entries:
                record = self._archived(customer, e.id)
                if record is not None:
                    archived[e.id] = record.body
        except AzureError as exc:
            raise ArchiveUnavailable(f"the archive could not be read ({exc.__class__.__name__}); retry") from None
        docs = {d["id"]: d for d in hot_later.result()} if hot_later else {}
        records = []
        for _, rid, entry in page:
            doc = docs.get(rid)
            if entry is None and doc is not None and not is_stub(doc) and not is_tombstone(doc):
                records.append(Record(served_json(doc), doc.get("_etag"), "cosmos"))
            elif entry is not None and rid in archived:
                records.append(Record(archived[rid], entry.etag, "archive"))
            elif doc is None or is_stub(doc):  # purged between the two queries: now it is in the archive
                late = self._archived(customer, rid)
                if late is not None:
                    records.append(late)
        return records

    def _customer_exists(self, customer: Any) -> bool:
        return bool(self._query("SELECT TOP 1 c.id FROM c", [], customer))

    def _query(self, sql: str, params: list[dict[str, Any]], partition_key: Any) -> list[dict[str, Any]]:
        """A single-partition query; the partition key is also a filter (the local emulator ignores the option)."""
        try:
            return self._single_partition(sql, params, partition_key)
        except CosmosHttpResponseError as exc:
            raise self._cosmos_error(exc) from None

    def _single_partition(self, sql: str, params: list[dict[str, Any]], partition_key: Any) -> list[dict[str, Any]]:
        sql, order_by, order = sql.partition(" ORDER BY ")
        sql = sql.replace(" WHERE ", f" WHERE {self._pk_expr} = @pk AND (", 1) + ")" if " WHERE " in sql else (
            f"{sql} WHERE {self._pk_expr} = @pk")
        sql += order_by + order
        params = [*params, {"name": "@pk", "value": partition_key}]
        return list(self.container.query_items(sql, parameters=params,
                                               partition_key=sdk_partition_key(partition_key)))

    def _keyset(self, sql: str, params: list[dict[str, Any]], partition_key: Any) -> list[dict[str, Any]]:
        """A list page's keyset query, ``sql`` ending in ``ORDER BY <timestamp>``: ordered by (partition key,
        timestamp) while the container has the composite index that serves it (docs/read-through-api.md), else,
        once Cosmos DB refuses that order for want of the index, by the timestamp alone (its range index)."""
        if self._composite_order is not False:
            ordered = sql.replace(" ORDER BY ", f" ORDER BY {self._pk_expr}, ", 1)
            try:
                rows = self._single_partition(ordered, params, partition_key)
                self._composite_order = True
                return rows
            except CosmosHttpResponseError as exc:
                if _status(exc) != 400 or "composite index" not in (exc.message or ""):
                    raise self._cosmos_error(exc) from None
                self._composite_order = False
                log.warning("the container has no composite index %s: list pages are ordered by the timestamp's "
                            "range index alone; add it to compositeIndexes (docs/read-through-api.md)",
                            json.dumps(list_composite_index(self.settings)))
        return self._query(sql, params, partition_key)

    @staticmethod
    def _cosmos_error(exc: CosmosHttpResponseError) -> ReadThroughError:
        status = _status(exc)
        first = (exc.message or "").splitlines()[0][:300] if exc.message else ""
        if status in (400, 413):
            return BadRequest(f"Cosmos DB refused the record: {first}", parameter="body", value=None)
        return ArchiveUnavailable(f"Cosmos DB answered {status}: {first}; retry")

    def hydrate_only(self, partition_key: Any, record_id: str) -> Record:
        """The lookup service's answer: the archived record unless Cosmos DB holds a tombstone for it."""
        doc = self._read(record_id, partition_key)
        if doc is not None and is_tombstone(doc):
            raise NotFound(f"record {record_id!r} of {partition_key!r} was deleted", parameter="id", value=record_id)
        record = self._archived(partition_key, record_id)
        if record is None:
            raise NotFound(f"no archived record {record_id!r} for partition key {partition_key!r}", parameter="id",
                           value=record_id)
        return record

