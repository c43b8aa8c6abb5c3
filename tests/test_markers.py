"""Markers cannot collide with business data (issue 16, item 6), against the local stack: a business document whose
fields merely share a name (or part of the shape) with the archive's stub and tombstone markers is read, counted,
archived, purged and served like any other; the server-side slice query and the Python predicate agree on what a
marker is; a stub is never archived again."""

from __future__ import annotations

import json

from include.cosmos_archiver.archive.canonical import canonical_json
from include.cosmos_archiver.archive.parquet_layout import decode_rows
from include.cosmos_archiver.readthrough.markers import MARKER_FIELD, marker_kind
from include.cosmos_archiver.source.census import take_census
from include.cosmos_archiver.source.reader import marker_sql
from tests.readthrough_helpers import (
    NOW,
    PURGE_MOMENTS,
    SETTINGS,
    archive_and_purge_both,
    archive_slice,
    issued_at,
    repository,
    slice_at,
)

LOOK_ALIKES = [
    {"_archived": {"slice": "2025/10/09", "sha256": "0" * 64, "etag": "x", "location": "y"}},  # the old stub's
    {"_archived": True},
    {"_archiveDeleted": {"deletedAt": "2025-01-01T00:00:00Z", "order": None, "slice": None}},  # the old tombstone's
    {"_archiveDeleted": 1},
    {"_cosmosArchive": "stub"},
    {"_cosmosArchive": {"kind": "stub", "sha256": "0" * 64}},  # no version
    {"_cosmosArchive": {"v": "1", "kind": "tombstone"}},  # the version is not a number
    {"_cosmosArchive": {"v": True, "kind": "stub"}},  # true is not 1
    {"_cosmosArchive": {"v": 1, "kind": "Stub"}},
    {"_cosmosArchive": {"v": 2, "kind": "stub"}},
    {"nested": {"_cosmosArchive": {"v": 1, "kind": "stub"}}},
]


def _docs() -> list[dict]:
    docs = []
    for i, extra in enumerate([*LOOK_ALIKES, {}, {}]):
        docs.append({"id": f"m{i}", "customerId": "cust-m", "issuedAt": issued_at(i), "amount": i, **extra})
    return docs


def test_business_fields_named_like_markers_are_archived_counted_and_served(cosmos_container, archive_store):
    docs = _docs()
    for d in docs:
        cosmos_container.create_item(d)
    repo = repository(cosmos_container, archive_store)
    before = {d["id"]: canonical_json(cosmos_container.read_item(d["id"], d["customerId"])) for d in docs}
    for d in docs:  # on the old code: the _archived ones 503 (a stub without its archive), _archiveDeleted 404
        record = repo.get(d["id"], d["customerId"])
        assert (record.source, record.body) == ("cosmos", before[d["id"]]), d
    census = take_census(cosmos_container, archive_store, SETTINGS, now=NOW)
    assert census.total == len(docs), census.details()  # every document counted

    assert all(r.purged for r in archive_and_purge_both(cosmos_container, archive_store).values())
    archived = {r.id for m in PURGE_MOMENTS.values() for r in archive_store.read_manifest(slice_at(m).slice_id).records}
    assert archived == {d["id"] for d in docs}
    fresh = repository(cosmos_container, archive_store)
    for d in docs:
        record = fresh.get(d["id"], d["customerId"])
        assert (record.source, record.body) == ("archive", before[d["id"]]), d
    assert {json.loads(r.body)["id"]: r.body for r in fresh.list("cust-m", page_size=100).records} == before

    # a second archive run: the stubs are left out, nothing new is archived
    stub_slice = slice_at(PURGE_MOMENTS["stub"])
    manifest = archive_store.read_manifest(stub_slice.slice_id)
    assert archive_slice(cosmos_container, archive_store, stub_slice)
    again = archive_store.read_manifest(stub_slice.slice_id)
    assert {(r.id, r.sha256) for r in again.latest_records().values()} == {
        (r.id, r.sha256) for r in manifest.latest_records().values()}
    for f in again.files:
        assert not any(marker_kind(json.loads(row.doc)) for row in decode_rows(archive_store.download(f.path)))


def test_the_slice_query_and_the_python_predicate_agree_on_what_a_marker_is(cosmos_container):
    shapes = [*LOOK_ALIKES, {MARKER_FIELD: {"v": 1, "kind": "stub", "sha256": "0" * 64}},
              {MARKER_FIELD: {"v": 1.0, "kind": "tombstone"}}, {MARKER_FIELD: {"v": 1, "kind": "tombstone"}}]
    docs = [{"id": f"s{i}", "customerId": "c", **shape} for i, shape in enumerate(shapes)]
    for d in docs:
        cosmos_container.create_item(d)
    for kind in (None, "stub", "tombstone"):
        sql = f"SELECT VALUE c.id FROM c WHERE {marker_sql(kind)}"
        found = set(cosmos_container.query_items(sql, enable_cross_partition_query=True))
        assert found == {d["id"] for d in docs if marker_kind(d) and (kind is None or marker_kind(d) == kind)}
        not_sql = f"SELECT VALUE c.id FROM c WHERE NOT {marker_sql(kind)}"
        assert set(cosmos_container.query_items(not_sql, enable_cross_partition_query=True)) == {
            d["id"] for d in docs} - found  # NOT is true for every business document, never undefined
    assert sum(bool(marker_kind(d)) for d in docs) == 3
