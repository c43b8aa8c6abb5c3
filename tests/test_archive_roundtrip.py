"""The core path against real services: copy a slice to Parquet in Azurite and prove it identical by hash."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from devstack import drills
from include.cosmos_archiver.archive.canonical import canonical_json
from include.cosmos_archiver.archive.parquet_layout import decode_rows
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice

SETTINGS = ArchiveSettings(
    timestamp_field="issuedAt", timestamp_kind="iso8601", page_size=7, max_file_bytes=40_000, row_group_bytes=10_000
)
DAY = TimeSlice(dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))


def adversarial_documents() -> list[dict]:
    base = "2025-03-01T10:00:00.000Z"
    return [
        {
            "id": "unicode",
            "customerId": "c-Ω",
            "issuedAt": base,
            "name": "Zoë Ærøskøbing 渡辺 محمد 😀",
            "escapes": 'quote " backslash \\ newline \n tab \t nul-ish \u0001 line-sep \u2028 para \u2029',
        },
        {
            "id": "numbers",
            "customerId": "c-1",
            "issuedAt": base,
            "tenth": 0.1,
            "huge": 1e308,
            "tiny": 5e-324,
            "negzero": -0.0,
            "big_int": 2**53 + 1,
            "bigger_int": 12345678901234567890,
            "neg": -(2**63),
            "third": 1 / 3,
            "exp": 1.5e-10,
            "int_float": 3.0,
        },
        {
            "id": "shapes",
            "customerId": "c-1",
            "issuedAt": base,
            "null": None,
            "empty_list": [],
            "empty_obj": {},
            "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": [[[[{"h": [1, [2, [3]]]}]]]]}}}}}}},
            "bools": [True, False, None],
        },
        {
            "id": "keys",
            "customerId": "c-2",
            "issuedAt": base,
            "a.b": 1,
            "$dollar": 2,
            "with space": 3,
            "ünï": 4,
            "": 5,
            "Z": {"z": 1, "A": 2, "a": 3},
        },
        {"id": "padding", "customerId": "c-3", "issuedAt": "2025-03-01T23:59:59.999Z", "blob": "x" * 60_000},
        *[
            {
                "id": f"bulk-{i:03d}",
                "customerId": f"c-{i % 5}",
                "issuedAt": f"2025-03-01T{i % 24:02d}:00:00.000Z",
                "n": i,
                "text": "é" * (i * 37),
            }
            for i in range(30)
        ],
        # Outside the slice on both sides: must not be archived.
        {"id": "before", "customerId": "c-1", "issuedAt": "2025-02-28T23:59:59.999Z"},
        {"id": "after", "customerId": "c-1", "issuedAt": "2025-03-02T00:00:00.000Z"},
    ]


@pytest.fixture
def seeded(cosmos_container):
    for doc in adversarial_documents():
        cosmos_container.upsert_item(doc)
    return cosmos_container


def test_round_trip_is_byte_exact_for_adversarial_documents(seeded, archive_store):
    manifest = copy_slice(seeded, archive_store, DAY, SETTINGS)

    in_slice = {d["id"] for d in adversarial_documents()} - {"before", "after"}
    assert {r.id for r in manifest.records} == in_slice
    assert len(manifest.files) > 1, "max_file_bytes must split the slice into several bounded files"
    assert all(f.bytes < SETTINGS.max_file_bytes for f in manifest.files)

    source = {
        (d["customerId"], d["id"]): canonical_json(d)
        for d in seeded.query_items("SELECT * FROM c", enable_cross_partition_query=True)
        if d["id"] in in_slice
    }
    archived = {}
    for entry in manifest.files:
        for row in decode_rows(archive_store.download(entry.path)):
            archived[(row.partition_key, row.id)] = row.doc
    assert archived == source  # byte for byte, the canonical JSON of what Cosmos serves
    for key, doc in archived.items():
        assert canonical_json(json.loads(doc)) == doc, f"{key}: canonical form must be stable under re-parsing"
    numbers = json.loads(archived[("c-1", "numbers")])
    assert numbers["tenth"] == 0.1 and numbers["huge"] == 1e308 and numbers["tiny"] == 5e-324
    unicode = json.loads(archived[("c-Ω", "unicode")])
    assert unicode["escapes"].endswith("para \u2029") and "😀" in unicode["name"]

    result = validate_slice(seeded, archive_store, DAY, SETTINGS)
    assert result.ok, result.message()
    assert archive_store.read_manifest(DAY.slice_id).status == "verified"


def test_flipped_byte_fails_validation_naming_file_and_records(seeded, archive_store):
    manifest = copy_slice(seeded, archive_store, DAY, SETTINGS)
    damaged = drills.corrupt_slice(archive_store, DAY.slice_id)

    result = validate_slice(seeded, archive_store, DAY, SETTINGS)

    assert not result.ok
    assert [b.path for b in result.bad_files] == [damaged]
    expected = sorted(f"{r.partition_key}/{r.id}" for r in manifest.records if r.file == 0)
    assert sorted(result.bad_files[0].records) == expected and expected
    assert damaged in result.message() and expected[0] in result.message()
    assert archive_store.read_manifest(DAY.slice_id).status == "failed"


def test_changed_and_new_records_are_named(seeded, archive_store):
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    changed = seeded.read_item("numbers", partition_key="c-1")
    changed["tenth"] = 0.2
    seeded.upsert_item(changed)
    seeded.upsert_item({"id": "late", "customerId": "c-9", "issuedAt": "2025-03-01T12:00:00.000Z"})
    seeded.delete_item("keys", partition_key="c-2")

    result = validate_slice(seeded, archive_store, DAY, SETTINGS)

    assert not result.ok  # the archive holds a record Cosmos DB no longer has
    assert result.extra == ["c-2/keys"]
    # written since the copy began: named as changed (they stay in Cosmos DB), not failures
    assert result.changed == ["c-1/numbers", "c-9/late"] and result.differing == [] and result.missing == []


def test_second_run_of_a_verified_slice_writes_nothing(seeded, archive_store):
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    before = {b.name: b.etag for b in archive_store.container.list_blobs()}

    again = copy_slice(seeded, archive_store, DAY, SETTINGS)
    revalidated = validate_slice(seeded, archive_store, DAY, SETTINGS)

    assert again.status == "verified"
    assert revalidated.ok and revalidated.skipped_reason
    assert {b.name: b.etag for b in archive_store.container.list_blobs()} == before


def test_recopy_of_an_unverified_slice_removes_stale_parts(seeded, archive_store):
    first = copy_slice(seeded, archive_store, DAY, SETTINGS)
    for doc in adversarial_documents()[4:-2]:  # keep only the four small adversarial documents
        seeded.delete_item(doc["id"], partition_key=doc["customerId"])

    second = copy_slice(seeded, archive_store, DAY, SETTINGS)

    assert len(first.files) > 1 and len(second.files) == 1 and second.record_count == 4
    assert archive_store.list_parts(DAY.slice_id) == [f.path for f in second.files]
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok


def test_empty_slice_has_a_zero_count_manifest_and_no_data_file(cosmos_container, archive_store):
    manifest = copy_slice(cosmos_container, archive_store, DAY, SETTINGS)

    assert manifest.record_count == 0 and manifest.files == []
    assert archive_store.list_parts(DAY.slice_id) == []
    stored = archive_store.read_manifest(DAY.slice_id)
    assert stored is not None and stored.record_count == 0
    assert validate_slice(cosmos_container, archive_store, DAY, SETTINGS).ok


def test_manifest_accounts_ru_and_digests(seeded, archive_store):
    manifest = copy_slice(seeded, archive_store, DAY, SETTINGS)

    assert manifest.ru_charged > 0  # from x-ms-request-charge, as charged by the RU gateway
    served = seeded.query_items("SELECT * FROM c", enable_cross_partition_query=True)
    assert manifest.record_bytes == sum(len(canonical_json(d)) for d in served if d["id"] not in ("before", "after"))
    assert len(manifest.slice_digest) == 64 and all(len(f.sha256) == 64 for f in manifest.files)
    assert archive_store.manifest_statuses() == {DAY.slice_id: "copied"}
