"""The read-through repository against the local stack: stubs hydrated, archived records updated and deleted as
before, the erasure proven by hashes, the index found fresh across compaction; plus the paging contract's pure
logic."""

from __future__ import annotations

import json
import time

import pytest

from include.cosmos_archiver.archive.canonical import canonical_json, sha256_hex, slice_digest
from include.cosmos_archiver.archive.parquet_layout import decode_rows
from include.cosmos_archiver.pipeline.restore import restore_records, restore_slice
from include.cosmos_archiver.readthrough.erasure import erase_deleted
from include.cosmos_archiver.readthrough.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from include.cosmos_archiver.readthrough.index import ArchiveIndex, compact_index
from include.cosmos_archiver.readthrough.markers import is_tombstone
from include.cosmos_archiver.readthrough.paging import build_query, encode_token
from include.cosmos_archiver.readthrough.repository import ReadThroughRepository
from tests.readthrough_helpers import (
    SETTINGS,
    archive_slice,
    due_slices,
    purge_like_the_pipeline,
    repository,
    seed,
    seed_spec,
)


@pytest.fixture
def archived(cosmos_container, archive_store):
    """40 records; the two oldest due slices archived, the first purged by delete, the second by stubs."""
    docs = {d["id"]: d for d in seed(cosmos_container, seed_spec(40))}
    originals = {rid: canonical_json(cosmos_container.read_item(rid, d["customerId"])) for rid, d in docs.items()}
    slices = [s for s in due_slices() if any(s.start.strftime("%Y-%m-%d") <= d["issuedAt"][:10]
                                             < s.end.strftime("%Y-%m-%d") for d in docs.values())][:2]
    keys = {}
    for time_slice, mode in zip(slices, ("delete", "stub"), strict=True):
        assert archive_slice(cosmos_container, archive_store, time_slice)
        assert purge_like_the_pipeline(cosmos_container, archive_store, time_slice.slice_id, mode=mode).purged > 0
        keys[mode] = [(r.partition_key, r.id) for r in archive_store.read_manifest(time_slice.slice_id).records]
    repo = ReadThroughRepository(cosmos_container, archive_store, SETTINGS)
    return repo, docs, originals, keys, slices


def test_archived_and_stubbed_records_read_byte_for_byte(archived):
    repo, _docs, originals, keys, _ = archived
    for mode in ("delete", "stub"):
        for pk, rid in keys[mode]:
            record = repo.get(rid, pk)
            assert record.source == "archive" and record.body == originals[rid], (mode, rid)
            assert json.loads(record.body)["_etag"] == record.etag
    assert repo.rows.stats["row_group_gets"] >= 1
    gets = dict(repo.rows.stats)
    pk, rid = keys["delete"][0]
    repo.get(rid, pk)
    assert repo.rows.stats["row_group_gets"] == gets["row_group_gets"], "a warm read must come from the cache"


def test_update_of_archived_record_lives_in_cosmos_and_wins(archived, cosmos_container):
    repo, docs, originals, keys, _ = archived
    for mode in ("delete", "stub"):
        pk, rid = keys[mode][0]
        stale_etag = json.loads(originals[rid])["_etag"]
        with pytest.raises(PreconditionFailed):
            repo.update(rid, {**docs[rid], "paid": "changed"}, if_match='"not-it"')
        updated = repo.update(rid, {**docs[rid], "paid": "changed"}, if_match=f'"{stale_etag}"')
        assert updated.source == "cosmos"
        assert cosmos_container.read_item(rid, pk)["paid"] == "changed"
        again = repo.get(rid, pk)
        assert again.source == "cosmos" and json.loads(again.body)["paid"] == "changed"
        with pytest.raises(PreconditionFailed):  # the archived version's ETag is no longer current
            repo.update(rid, docs[rid], if_match=f'"{stale_etag}"')
        with pytest.raises(Conflict):
            repo.create(docs[rid])
    pk, rid = keys["delete"][1]
    upserted = repo.update(rid, {**docs[rid], "paid": "upserted"}, upsert=True)  # upsert of an archived record
    assert upserted.source == "cosmos" and json.loads(repo.get(rid, pk).body)["paid"] == "upserted"
    repo.delete(rid, pk)
    with pytest.raises(NotFound):
        repo.update(rid, docs[rid])  # a replace of a deleted record
    assert repo.update(rid, docs[rid], upsert=True).source == "cosmos"  # an upsert brings it back, as before
    fresh = {**docs[rid], "id": "inv-brand-new"}
    with pytest.raises(NotFound):
        repo.update("inv-brand-new", fresh)
    assert json.loads(repo.update("inv-brand-new", fresh, upsert=True).body)["id"] == "inv-brand-new"


def test_create_of_archived_id_conflicts_and_delete_never_comes_back(archived, archive_store, cosmos_container):
    repo, docs, originals, keys, slices = archived
    (pk, rid), (spk, srid) = keys["delete"][0], keys["stub"][0]
    with pytest.raises(Conflict):
        repo.create(docs[rid])
    repo.delete(rid, pk)
    repo.delete(srid, spk)
    for p, r in ((pk, rid), (spk, srid)):
        with pytest.raises(NotFound):
            repo.get(r, p)
        with pytest.raises(NotFound):
            repo.delete(r, p)
        assert is_tombstone(cosmos_container.read_item(r, p))
        assert r not in {json.loads(x.body)["id"] for x in repo.list(p, page_size=1000).records}
    # a fresh process (empty caches) agrees
    with pytest.raises(NotFound):
        ReadThroughRepository(cosmos_container, archive_store, SETTINGS).get(rid, pk)

    manifest_before = archive_store.read_manifest(slices[0].slice_id)
    erased = erase_deleted(cosmos_container, archive_store, SETTINGS)
    assert {(e["partition_key"], e["id"]) for part in erased for e in part.erased} == {(pk, rid), (spk, srid)}
    for part in erased:
        assert part.proof["files_match_manifest"] and part.old_sha256 != part.new_sha256
        assert part.slice_digest_before != part.slice_digest_after
    manifest = archive_store.read_manifest(slices[0].slice_id)
    assert manifest.record_count == manifest_before.record_count - 1
    remaining = {}
    for f in manifest.files:
        data = archive_store.download(f.path)
        assert sha256_hex(data) == f.sha256
        remaining |= {(r.partition_key, r.id): sha256_hex(r.doc) for r in decode_rows(data)}
    assert (pk, rid) not in remaining
    assert slice_digest([(k[0], k[1], h) for k, h in remaining.items()]) == manifest.slice_digest
    assert erase_deleted(cosmos_container, archive_store, SETTINGS) == [], "the erasure is idempotent"
    # the rest of the slice still reads byte for byte, through the old repository's now-stale caches too
    for p, r in keys["delete"][1:]:
        assert repo.get(r, p).body == originals[r]
    opk, orid = keys["delete"][1]
    stale = ReadThroughRepository(cosmos_container, archive_store, SETTINGS)
    stale.list(opk, page_size=1000)  # caches the index before a second erasure rewrites the part again
    repo.delete(orid, opk)
    erase_deleted(cosmos_container, archive_store, SETTINGS)
    stale.rows.clear()  # no cached row group or footer: the stale index points at a part that is gone
    listed = {json.loads(x.body)["id"]: x.body for x in stale.list(opk, page_size=1000).records}
    assert orid not in listed
    assert all(listed[r] == originals[r] for p, r in keys["delete"] if p == opk and r not in (rid, orid))
    assert sum(p == opk for p, _ in keys["delete"]) - (opk == pk) - 1 == sum(
        r in listed for p, r in keys["delete"] if p == opk)
    # the id is free again: a create replaces the tombstone
    assert repo.create(docs[rid]).source == "cosmos"
    assert json.loads(repo.get(rid, pk).body)["total"] == docs[rid]["total"]


def test_index_found_fresh_across_new_slices_and_compaction(cosmos_container, archive_store):
    docs = seed(cosmos_container, seed_spec(40))
    slices = due_slices()
    index = ArchiveIndex(archive_store, shards=8, max_cached_shards=2)
    assert index.lookup(docs[0]["customerId"], docs[0]["id"]) is None
    from include.cosmos_archiver.readthrough.index import index_slice

    found = 0
    for n, time_slice in enumerate(slices):
        assert archive_slice(cosmos_container, archive_store, time_slice, index=False)
        index_slice(archive_store, time_slice.slice_id, shards=8)
        if n % 3 == 2:
            compact_index(archive_store, shards=8)
        for r in archive_store.read_manifest(time_slice.slice_id).records:
            entry = index.lookup(r.partition_key, r.id)
            assert entry is not None and entry.sha256 == r.sha256, (time_slice.slice_id, r.id)
            found += 1
    assert found > 20 and len(index._views) <= 2
    manifests = [archive_store.read_manifest(s.slice_id) for s in slices]
    for customer in {d["customerId"] for d in docs}:
        expected = {r.id for m in manifests for r in m.records if r.partition_key == customer}
        assert {e.id for e in index.entries_of(customer)} == expected


def test_list_tokens_are_bound_to_their_query():
    q = build_query("c-1", "2025-01-01", "2025-02-01", 10, None, "iso8601")
    token = encode_token(q, "2025-01-05T00:00:00.000000+00:00", "inv-9")
    assert build_query("c-1", "2025-01-01", "2025-02-01", 5, token, "iso8601").after == (
        "2025-01-05T00:00:00.000000+00:00", "inv-9")
    for crafted in ("2025-01-05", "2025-01-05T00:00:00", "2025-01-05T01:00:00.000000+01:00"):
        with pytest.raises(BadRequest):  # a naive or offset key would compare wrongly (or raise): refused
            build_query("c-1", "2025-01-01", "2025-02-01", 5, encode_token(q, crafted, "inv-9"), "iso8601")
    for customer, start in (("c-2", "2025-01-01"), ("c-1", "2025-01-02")):
        with pytest.raises(BadRequest) as bad:
            build_query(customer, start, "2025-02-01", 10, token, "iso8601")
        assert bad.value.parameter == "continuation"
    for size in (0, 10_000, "ten", True):
        with pytest.raises(BadRequest) as bad:
            build_query("c-1", None, None, size, None, "iso8601")
        assert bad.value.parameter == "pageSize"
    with pytest.raises(BadRequest) as bad:
        build_query("c-1", "2025-02-30", None, 10, None, "iso8601")
    assert bad.value.parameter == "from" and "2025-02-30" in bad.value.message
    epoch = build_query("c-1", "1970-01-02", None, 10, None, "epoch_seconds")
    assert epoch.place(86400, "a") == "1970-01-02T00:00:00.000000+00:00" and epoch.place("86400", "a") is None
    assert epoch.place(86399.5, "a") is None


def test_delete_between_validation_and_purge_never_comes_back(cosmos_container, archive_store):
    """The window the purge cannot see: a record deleted after its slice was verified (and indexed), before the
    purge ran. Its archived copy must not be served afterwards."""
    docs = seed(cosmos_container, seed_spec(40))
    time_slice = next(s for s in due_slices() if any(
        s.start.strftime("%Y-%m-%d") <= d["issuedAt"][:10] < s.end.strftime("%Y-%m-%d") for d in docs))
    repo = ReadThroughRepository(cosmos_container, archive_store, SETTINGS)
    assert archive_slice(cosmos_container, archive_store, time_slice)
    records = archive_store.read_manifest(time_slice.slice_id).records
    (pk, rid), (pk2, rid2) = (records[0].partition_key, records[0].id), (records[1].partition_key, records[1].id)
    repo.delete(rid, pk)  # verified + indexed, not purged yet
    assert archive_slice(cosmos_container, archive_store, time_slice, index=False)  # a re-run: already verified
    purge = purge_like_the_pipeline(cosmos_container, archive_store, time_slice.slice_id)
    assert purge.changed == 1  # the tombstone is not the archived version: the purge keeps it
    with pytest.raises(NotFound):
        repo.get(rid, pk)
    assert rid not in {json.loads(r.body)["id"] for r in repo.list(pk, page_size=1000).records}
    assert repo.get(rid2, pk2).source == "archive"


def test_a_slice_copied_by_adf_is_indexed_and_served_canonical(cosmos_container, archive_store):
    """ADF writes ``doc`` in its own JSON form (served key order, ASCII escapes): the index hashes the canonical
    form and reads serve it, the same bytes the API served before the purge."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from devstack.adf_standin.copy_runner import ADF_SCHEMA, _adf_rows
    from include.cosmos_archiver.archive.manifest import FileEntry, Manifest, RecordEntry
    from include.cosmos_archiver.readthrough.index import index_slice

    seed(cosmos_container, seed_spec(12))
    served = list(cosmos_container.query_items("SELECT * FROM c", enable_cross_partition_query=True))
    repo = ReadThroughRepository(cosmos_container, archive_store, SETTINGS)
    before = {d["id"]: repo.get(d["id"], d["customerId"]).body for d in served}
    sink = io.BytesIO()
    pq.write_table(pa.table(_adf_rows(served, SETTINGS.partition_key_path), schema=ADF_SCHEMA), sink,
                   row_group_size=5)
    path = f"{archive_store.slice_dir('2025/01/01')}/adf_00000.parquet"
    archive_store.upload(path, sink.getvalue())
    records = [RecordEntry(d["customerId"], d["id"], sha256_hex(canonical_json(d)), 0) for d in served]
    archive_store.write_manifest(Manifest(
        slice_id="2025/01/01", slice_start="2025-01-01T00:00:00+00:00", slice_end="2025-01-31T00:00:00+00:00",
        timestamp_field=SETTINGS.timestamp_field, source={}, status="verified", record_count=len(records),
        record_bytes=0, slice_digest=slice_digest([(r.partition_key, r.id, r.sha256) for r in records]),
        ru_charged=0.0, throttled_requests=0, records=records, timings_s={}, copied_at="", tool_version="test",
        files=[FileEntry(path, sha256_hex(sink.getvalue()), len(sink.getvalue()), len(records))], executor="adf"))
    assert index_slice(archive_store, "2025/01/01") == len(served)
    for d in served:
        cosmos_container.delete_item(d["id"], d["customerId"])
    for d in served:
        record = repo.get(d["id"], d["customerId"])
        assert record.source == "archive" and record.body == before[d["id"]], d["id"]


@pytest.mark.parametrize("mode", ["delete", "stub"])
def test_a_record_archived_again_reads_its_newest_version(cosmos_container, archive_store, mode):
    """Updated after its copy, a record is kept by the purge (412), archived again as the slice's next generation
    and purged then: an API process that cached the index before must serve the new version."""
    docs = {d["id"]: d for d in seed(cosmos_container, seed_spec(40))}
    repo = repository(cosmos_container, archive_store)
    time_slice = next(s for s in due_slices() if archive_slice(cosmos_container, archive_store, s)
                      and archive_store.read_manifest(s.slice_id).record_count > 2)
    first, other = archive_store.read_manifest(time_slice.slice_id).records[:2]
    repo.update(first.id, {**docs[first.id], "rev": 1})
    purged = purge_like_the_pipeline(cosmos_container, archive_store, time_slice.slice_id, mode=mode)
    assert purged.changed == 1
    assert repo.get(other.id, other.partition_key).source == "archive"
    assert repo.index.lookup(first.partition_key, first.id).etag == first.etag  # caches generation 0's entry
    assert archive_slice(cosmos_container, archive_store, time_slice)  # generation 1: the updated record
    assert archive_store.read_manifest(time_slice.slice_id).generation == 1
    purge_like_the_pipeline(cosmos_container, archive_store, time_slice.slice_id, mode=mode)
    record = repo.get(first.id, first.partition_key)
    assert record.source == "archive" and json.loads(record.body)["rev"] == 1


def test_the_newest_archived_version_wins_when_an_update_moved_a_record_to_an_earlier_slice(
        cosmos_container, archive_store):
    """A record archived in a slice, then updated with its timestamp moved into an EARLIER slice that is archived
    later, has an index entry in both slices: reads serve the newer version (by the document's ``_ts``), before and
    after compaction, not whichever slice the index happened to list last."""
    docs = {d["id"]: d for d in seed(cosmos_container, seed_spec(40))}
    earlier, later = [s for s in due_slices() if any(
        s.start.strftime("%Y-%m-%d") <= d["issuedAt"][:10] < s.end.strftime("%Y-%m-%d") for d in docs.values())][:2]
    moved = next(d for d in docs.values() if later.start.strftime("%Y-%m-%d") <= d["issuedAt"][:10]
                 < later.end.strftime("%Y-%m-%d"))
    assert archive_slice(cosmos_container, archive_store, later)
    purge_like_the_pipeline(cosmos_container, archive_store, later.slice_id, mode="delete")
    repo = ReadThroughRepository(cosmos_container, archive_store, SETTINGS)
    time.sleep(1.1)  # the second its archived version was written lies before the update's
    newer = {**moved, "paid": "corrected", "issuedAt": earlier.start.strftime("%Y-%m-%dT06:00:00.000Z")}
    repo.update(moved["id"], newer, upsert=True)
    time.sleep(2.1)  # the update ages past the count proof's margin, so the earlier slice's purge takes it
    assert archive_slice(cosmos_container, archive_store, earlier)
    purge_like_the_pipeline(cosmos_container, archive_store, earlier.slice_id, mode="delete")
    for compacted in (False, True):
        if compacted:
            compact_index(archive_store)
        record = ReadThroughRepository(cosmos_container, archive_store, SETTINGS).get(moved["id"],
                                                                                      moved["customerId"])
        assert record.source == "archive" and json.loads(record.body)["paid"] == "corrected", compacted
    key = (moved["customerId"], moved["id"])
    from_later = restore_slice(cosmos_container, archive_store, later.slice_id, SETTINGS)
    assert [name for name in from_later.superseded if moved["id"] in name and earlier.slice_id in name]
    assert moved["id"] not in str(from_later.restored) and "newer version" in from_later.message()
    by_id = restore_records(cosmos_container, archive_store, [key], SETTINGS)
    assert len(by_id.restored) == 1
    assert cosmos_container.read_item(moved["id"], moved["customerId"])["paid"] == "corrected"
