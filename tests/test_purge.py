"""Purge against the local stack: records leave Cosmos DB only once proven, and nothing written meanwhile is lost."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from devstack import drills
from include.cosmos_archiver.archive.canonical import canonical_json, record_key, sha256_hex
from include.cosmos_archiver.archive.parquet_layout import decode_rows
from include.cosmos_archiver.archive.purge_log import read_purge_log
from include.cosmos_archiver.pipeline.copy import copy_slice, needs_local_copy
from include.cosmos_archiver.pipeline.purge import PurgeIntegrityError, SliceNotVerifiedError, purge_slice
from include.cosmos_archiver.pipeline.validate import validate_slice, verify_archive
from include.cosmos_archiver.planning.due_slices import select_due_slices
from include.cosmos_archiver.readthrough.markers import MARKER_FIELD, is_stub
from include.cosmos_archiver.settings import ArchiveSettings, SettingsError
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.reader import count_slice
from tests.conftest import REPO_ROOT

SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", page_size=7, max_file_bytes=20_000,
                           row_group_bytes=5_000, cutoff_days=90, lookback_days=400, slice_lease_wait_s=60)
DAY = TimeSlice(dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
NOW = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)
OUTSIDE = ("before", "after")


def documents(count: int = 24) -> list[dict]:
    docs = [{"id": f"inv-{i:03d}", "customerId": f"c-{i % 4}", "issuedAt": f"2025-03-01T{i % 24:02d}:00:00.000Z",
             "amount": str(i * 10), "text": "é" * (i * 50)} for i in range(count)]
    docs.append({"id": "before", "customerId": "c-1", "issuedAt": "2025-02-28T23:59:59.999Z"})
    docs.append({"id": "after", "customerId": "c-1", "issuedAt": "2025-03-02T00:00:00.000Z"})
    return docs


@pytest.fixture
def seeded(cosmos_container):
    for doc in documents():
        cosmos_container.upsert_item(doc)
    return cosmos_container


def in_cosmos(container) -> dict[str, dict]:
    return {d["id"]: d for d in container.query_items("SELECT * FROM c", enable_cross_partition_query=True)}


def left_in_range(container) -> int:
    return count_slice(container, DAY, timestamp_field=SETTINGS.timestamp_field, timestamp_kind="iso8601")


def archived_latest(store) -> dict[str, dict]:
    """id -> the archive's newest version of each record (newest generation wins)."""
    manifest = store.read_manifest(DAY.slice_id)
    latest = manifest.latest_records()
    out: dict[str, dict] = {}
    for index, entry in enumerate(manifest.files):
        for row in decode_rows(store.download(entry.path)):
            wanted = latest[(row.partition_key, row.id)]
            if wanted.file == index:
                out[row.id] = json.loads(row.doc)
    return out


def archive_verified(store) -> bool:
    manifest = store.read_manifest(DAY.slice_id)
    return manifest.status == "verified" and verify_archive(store, manifest, SETTINGS).ok


def test_archive_and_purge_leave_no_full_document_and_the_archive_verified(seeded, archive_store):
    """Changed in issue 17 (the gateway's published charge model): fast validation lists ids and etags, but a query
    pays for the documents it loads, and the listing's canonical-spelling filter is not served by the index, so it
    loads every document of the slice's range like the copy does; the seed model charged bytes returned and made the
    listing look 5x cheaper than the copy. What validation should cost on Azure is issue 18's."""
    originals = {d["id"]: canonical_json(d) for d in in_cosmos(seeded).values() if d["id"] not in OUTSIDE}
    # The count proof counts documents written before the copy began (_ts < read_since, 1 s of margin): let the
    # freshly seeded ones age past it, as cold records have.
    time.sleep(2.1)
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    validation = validate_slice(seeded, archive_store, DAY, SETTINGS)
    assert validation.ok and validation.mode == "counts", validation.message()  # index-served counts

    result = purge_slice(seeded, archive_store, DAY, SETTINGS)

    assert (result.purged, result.changed, result.gone) == (len(originals), 0, 0), result.message()
    assert set(in_cosmos(seeded)) == set(OUTSIDE)  # the neighbours outside the slice are untouched
    assert archive_verified(archive_store)
    assert {k: canonical_json(v) for k, v in archived_latest(archive_store).items()} == originals
    manifest = archive_store.read_manifest(DAY.slice_id)
    assert manifest.purge["counts"]["purged"] == len(originals) and manifest.purged_generation == 0
    assert set(manifest.ru_steps) == {"copy", "validate", "purge"} and manifest.ru_steps["purge"] > 0
    # index-served counts load no document: never more than the copy (the test stack models ~100 physical
    # partitions for its 1,000,000 RU/s, and a cross-partition query pays a page on each, so not much less either)
    assert 0 < manifest.ru_steps["validate"] <= manifest.ru_steps["copy"]
    purge_log = read_purge_log(archive_store, DAY.slice_id)
    assert purge_log.state == "complete" and {r[1] for r in purge_log.outcomes["purged"]} == set(originals)
    # Run again: nothing left, nothing to do, no new generation.
    assert purge_slice(seeded, archive_store, DAY, SETTINGS).skipped_reason
    assert copy_slice(seeded, archive_store, DAY, SETTINGS).generation == 0


def test_update_between_copy_and_purge_is_kept_then_archived_by_the_next_run(seeded, archive_store):
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    changed = seeded.read_item("inv-005", partition_key="c-1")
    changed["amount"] = "999.99"
    seeded.upsert_item(changed)

    first = purge_slice(seeded, archive_store, DAY, SETTINGS)

    assert first.changed == 1 and first.changed_ids == ["c-1/inv-005"]
    assert seeded.read_item("inv-005", partition_key="c-1")["amount"] == "999.99"  # the new value stays
    assert left_in_range(seeded) == 1
    plan = select_due_slices(archive_store, SETTINGS, now=NOW, window=(DAY.start, DAY.end), container=seeded)
    assert [s.slice_id for s in plan.due] == [DAY.slice_id], plan.describe()

    # The next run: the remainder becomes generation 1 of the same slice, then it is validated and purged.
    second_copy = copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert second_copy.generation == 1 and [r.id for r in second_copy.records if r.generation == 1] == ["inv-005"]
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    second = purge_slice(seeded, archive_store, DAY, SETTINGS)

    assert (second.purged, second.changed) == (1, 0)
    assert left_in_range(seeded) == 0 and set(in_cosmos(seeded)) == set(OUTSIDE)
    latest = archived_latest(archive_store)
    assert latest["inv-005"]["amount"] == "999.99"  # the newest version wins
    assert len(latest) == 24 and archive_verified(archive_store)
    assert archive_store.read_manifest(DAY.slice_id).record_count == 24
    plan = select_due_slices(archive_store, SETTINGS, now=NOW, window=(DAY.start, DAY.end), container=seeded)
    assert plan.due == []


def test_late_insert_into_a_verified_slice_is_archived_by_the_next_run(seeded, archive_store):
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    purge_slice(seeded, archive_store, DAY, SETTINGS)
    late = {"id": "late", "customerId": "c-9", "issuedAt": "2025-03-01T12:30:00.000Z", "amount": "1"}
    seeded.upsert_item(late)

    manifest = copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert manifest.generation == 1 and manifest.record_count == 25
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    assert purge_slice(seeded, archive_store, DAY, SETTINGS).purged == 1

    assert left_in_range(seeded) == 0
    assert archived_latest(archive_store)["late"]["amount"] == "1"
    assert archive_store.list_parts(DAY.slice_id) == [f.path for f in archive_store.read_manifest(DAY.slice_id).files]


def test_stub_mode_leaves_pointers_that_are_never_archived_again(seeded, archive_store):
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok

    result = purge_slice(seeded, archive_store, DAY, SETTINGS, mode="stub")

    assert result.purged == 24
    stub = seeded.read_item("inv-007", partition_key="c-3")  # still one point read away
    archived = archived_latest(archive_store)["inv-007"]
    assert stub["issuedAt"] == archived["issuedAt"] and "text" not in stub
    mark = stub[MARKER_FIELD]
    assert is_stub(stub) and mark["sha256"] == sha256_hex(canonical_json(archived))
    assert mark["location"].endswith(".parquet") and mark["etag"] == archived["_etag"]
    assert left_in_range(seeded) == 0
    assert copy_slice(seeded, archive_store, DAY, SETTINGS).generation == 0  # stubs are not a remainder


def test_unverified_or_failed_slice_is_never_purged(seeded, archive_store):
    before = in_cosmos(seeded)
    with pytest.raises(SliceNotVerifiedError, match="never copied"):
        purge_slice(seeded, archive_store, DAY, SETTINGS)
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    with pytest.raises(SliceNotVerifiedError, match="status 'copied'"):
        purge_slice(seeded, archive_store, DAY, SETTINGS)
    seeded.delete_item("inv-003", partition_key="c-3")  # the archive now holds a record Cosmos DB does not
    assert not validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    with pytest.raises(SliceNotVerifiedError, match="status 'failed'"):
        purge_slice(seeded, archive_store, DAY, SETTINGS)

    assert set(in_cosmos(seeded)) == set(before) - {"inv-003"}  # nothing deleted by the purge
    assert read_purge_log(archive_store, DAY.slice_id) is None


def test_part_corrupted_after_validation_stops_the_purge_before_any_delete(seeded, archive_store):
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    damaged = drills.corrupt_slice(archive_store, DAY.slice_id)

    with pytest.raises(PurgeIntegrityError, match="nothing was purged") as caught:
        purge_slice(seeded, archive_store, DAY, SETTINGS)

    assert damaged in str(caught.value)
    assert len(in_cosmos(seeded)) == 26
    manifest = archive_store.read_manifest(DAY.slice_id)
    assert manifest.status == "failed" and "pre-purge re-verification failed" in manifest.validation["message"]
    # Nothing had left Cosmos, so the next run re-copies the whole slice from the source and may purge it then.
    assert copy_slice(seeded, archive_store, DAY, SETTINGS).generation == 0
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    assert purge_slice(seeded, archive_store, DAY, SETTINGS).purged == 24


KILLABLE_PURGE = textwrap.dedent("""
    import json, sys, time
    from include.cosmos_archiver.archive.store import ArchiveStore
    from include.cosmos_archiver.clients import blob_container, cosmos_client
    from include.cosmos_archiver.pipeline import purge
    from include.cosmos_archiver.settings import ArchiveSettings
    from include.cosmos_archiver.slices import TimeSlice

    args = json.loads(sys.argv[1])
    purge.LOG_EVERY_RECORDS = 3

    class Slow:  # a budget that paces hard: the test kills the process midway
        def before_request(self, expected_ru):
            time.sleep(0.15)
        def after_request(self, charged_ru, throttled, served_at=None):
            pass

    container = (cosmos_client(args["endpoint"], args["key"]).get_database_client(args["database"])
                 .get_container_client(args["container"]))
    store = ArchiveStore(blob_container(args["blob"], args["blob_container"]), "records")
    purge.purge_slice(container, store, TimeSlice.from_dict(args["slice"]),
                      ArchiveSettings.from_mapping(args["settings"]), budget=Slow())
""")


def test_purge_killed_midway_resumes_and_loses_nothing(seeded, archive_store, stack):
    from devstack.stack import EMULATOR_COSMOS_KEY

    originals = {d["id"] for d in documents()} - set(OUTSIDE)
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    args = {"endpoint": stack.cosmos_endpoint, "key": EMULATOR_COSMOS_KEY,
            "database": seeded.container_link.split("/")[1], "container": seeded.id,
            "blob": stack.blob_connection_string,
            "blob_container": archive_store.container.container_name, "slice": DAY.to_dict(),
            "settings": {"timestamp_field": "issuedAt", "timestamp_kind": "iso8601", "page_size": 7}}
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE_PURGE, json.dumps(args)], cwd=REPO_ROOT,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            purge_log = read_purge_log(archive_store, DAY.slice_id)
            if purge_log is not None and len(purge_log.outcomes["purged"]) >= 6:
                break
            assert proc.poll() is None, "the purge ended before the test could kill it"
            time.sleep(0.05)
        else:
            pytest.fail("the purge made no progress within 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    killed_log = read_purge_log(archive_store, DAY.slice_id)
    assert killed_log.state == "running" and 0 < len(in_cosmos(seeded)) - 2 < len(originals)

    # No record lost at the kill: each original is in Cosmos or in the verified archive.
    archived = {r.id for r in archive_store.read_manifest(DAY.slice_id).records}
    assert originals <= set(in_cosmos(seeded)) | archived and archive_verified(archive_store)
    manifest = archive_store.read_manifest(DAY.slice_id)
    assert manifest.purge["state"] == "running"  # recorded before the first delete: no re-copy rebuilds the slice
    assert validate_slice(seeded, archive_store, DAY, SETTINGS, force=True).ok  # purged records are not "extra"

    resumed = purge_slice(seeded, archive_store, DAY, SETTINGS)

    logged = len(killed_log.outcomes["purged"])
    assert resumed.skipped == logged  # already done: not redone
    assert resumed.purged + resumed.gone + logged == len(originals)
    assert resumed.gone <= 3 + 1  # at most the records deleted after the last log write
    assert set(in_cosmos(seeded)) == set(OUTSIDE) and archive_verified(archive_store)
    final = read_purge_log(archive_store, DAY.slice_id)
    assert final.state == "complete"
    assert {r[1] for o in ("purged", "gone") for r in final.outcomes[o]} == originals


def test_purge_off_and_bad_settings():
    assert ArchiveSettings().purge == "delete" and ArchiveSettings().validation == "fast"
    with pytest.raises(SettingsError, match="purge='erase' must be one of"):
        ArchiveSettings(purge="erase")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="validation='full' must be one of"):
        ArchiveSettings.from_mapping({"validation": "full"})


def test_purge_off_deletes_nothing(seeded, archive_store):
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    result = purge_slice(seeded, archive_store, DAY, ArchiveSettings(**{**SETTINGS.__dict__, "purge": "off"}))
    assert result.skipped_reason and len(in_cosmos(seeded)) == 26


def test_deep_validation_rereads_the_source(seeded, archive_store):
    deep = ArchiveSettings(**{**SETTINGS.__dict__, "validation": "deep"})
    copy_slice(seeded, archive_store, DAY, deep)
    result = validate_slice(seeded, archive_store, DAY, deep)
    manifest = archive_store.read_manifest(DAY.slice_id)
    assert result.ok and result.mode == "deep" and manifest.validation["mode"] == "deep"
    assert manifest.ru_steps["validate"] >= 0.9 * manifest.ru_steps["copy"]  # a second full read
    assert {record_key(d, "/customerId") for d in in_cosmos(seeded).values() if d["id"] not in OUTSIDE} == set(
        manifest.latest_records())


def test_plan_survey_reports_recorded_step_charges_and_records_beyond_the_lookback(
    seeded, archive_store, stack, monkeypatch, capsys
):
    from devstack.stack import EMULATOR_COSMOS_KEY
    from include.cosmos_archiver.cli.main import main

    copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    purge_slice(seeded, archive_store, DAY, SETTINGS)
    monkeypatch.setenv("COSMOS_ARCHIVE_COSMOS_ENDPOINT", stack.cosmos_endpoint)
    monkeypatch.setenv("COSMOS_ARCHIVE_COSMOS_KEY", EMULATOR_COSMOS_KEY)
    monkeypatch.setenv("COSMOS_ARCHIVE_BLOB_CONNECTION_STRING", stack.blob_connection_string)
    settings = json.dumps({"database": "tests", "container": seeded.id, "timestamp_field": "issuedAt",
                           "timestamp_kind": "iso8601", "blob_container": archive_store.container.container_name,
                           "lookback_days": 200})

    assert main(["plan", "--records", "24", "--avg-size-kb", "1", "--ru-per-record", "1", "--provisioned-ru-s", "400",
                 "--account-mode", "provisioned", "--survey", "--settings-json", settings]) == 0

    out = capsys.readouterr().out
    manifest = archive_store.read_manifest(DAY.slice_id)
    assert f"purge      {manifest.ru_steps['purge']:>14,.1f} RU over 24 records" in out
    assert "validate" in out and "copy" in out
    # "before" and "after" stay in Cosmos, outside the slice: both lie before the lookback of a run today.
    assert "records older than lookback_days=200 (no run archives them): 2 --" in out


def test_adf_copied_slice_is_validated_deep_and_purged_on_the_etags_adf_wrote(seeded, archive_store):
    from devstack.adf_standin.copy_runner import write_adf_layout
    from include.cosmos_archiver.adf.indexing import index_adf_slice

    write_adf_layout(seeded, archive_store, DAY, SETTINGS)
    assert not needs_local_copy(archive_store, DAY.slice_id)
    manifest = index_adf_slice(archive_store, DAY, SETTINGS)
    assert manifest.executor == "adf" and not any(r.etag for r in manifest.records)  # ADF writes no hashes

    result = validate_slice(seeded, archive_store, DAY, SETTINGS)  # settings say fast: ADF slices are read deep
    assert result.ok and result.mode == "deep", result.message()
    changed = seeded.read_item("inv-002", partition_key="c-2")
    seeded.upsert_item({**changed, "amount": "changed after validation"})

    purged = purge_slice(seeded, archive_store, DAY, SETTINGS)

    assert (purged.purged, purged.changed) == (23, 1)  # If-Match on the _etag column ADF copied
    assert needs_local_copy(archive_store, DAY.slice_id)  # its remainder: never an ADF re-run over its files
    assert set(in_cosmos(seeded)) == {*OUTSIDE, "inv-002"}


def test_adf_copy_places_other_timestamp_spellings_by_their_instant(seeded, archive_store):
    """The pipeline's query holds only the canonical UTC spelling (its placedFilter); indexing adds the slice's
    other spellings by their UTC instant, so an ADF slice validates and purges like a local one."""
    from devstack.adf_standin.copy_runner import write_adf_layout
    from include.cosmos_archiver.adf.indexing import index_adf_slice
    from include.cosmos_archiver.adf.parameters import pipeline_parameters
    from include.cosmos_archiver.archive.source_facts import note_other_spellings
    from tests.test_adf_definitions import rendered_query

    spelled = [
        {"id": "offset", "customerId": "c-1", "issuedAt": "2025-02-28T22:00:00-05:00"},  # 2025-03-01T03:00Z: in
        {"id": "date-only", "customerId": "c-2", "issuedAt": "2025-03-01"},  # its UTC midnight: in
        {"id": "next-day", "customerId": "c-3", "issuedAt": "2025-03-01T22:00:00-05:00"},  # 03-02T03:00Z: out
    ]
    for doc in spelled:
        seeded.upsert_item(doc)
    note_other_spellings(archive_store, found_by="preflight's sample", count=2)  # as preflight would record
    query = rendered_query(pipeline_parameters(DAY, SETTINGS, page_size=10))  # what ADF sends, run by the emulator
    selected = {d["id"] for d in seeded.query_items(query, enable_cross_partition_query=True)}
    assert len(selected) == 24 and not selected & {d["id"] for d in spelled}  # the string range would take next-day

    write_adf_layout(seeded, archive_store, DAY, SETTINGS)
    assert len(index_adf_slice(archive_store, DAY, SETTINGS).records) == 24  # without the source: ADF's files only
    manifest = index_adf_slice(archive_store, DAY, SETTINGS, container=seeded)
    assert {r.id for r in manifest.records} == {f"inv-{i:03d}" for i in range(24)} | {"offset", "date-only"}
    assert any(n.startswith("2 document(s) in other ISO 8601 spellings of issuedAt") for n in manifest.notes)
    adf_parts = [f for f in manifest.files if "/adf_" in f.path]
    assert adf_parts and len(manifest.files) == len(adf_parts) + 1, manifest.files  # ADF's files and one of ours

    result = validate_slice(seeded, archive_store, DAY, SETTINGS)
    assert result.ok and result.sink_count == 26, result.message()
    assert purge_slice(seeded, archive_store, DAY, SETTINGS).purged == 26
    assert set(in_cosmos(seeded)) == {*OUTSIDE, "next-day"}


def test_reopening_a_purged_slice_says_what_it_could_not_read_again(seeded, archive_store):
    from include.cosmos_archiver.pipeline.reopen import reopen_slice

    copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    assert purge_slice(seeded, archive_store, DAY, SETTINGS).purged == 24

    result = reopen_slice(seeded, archive_store, DAY, SETTINGS)

    assert result.verified and "its purge had started" in result.message, result.message
    assert "(0 document(s))" in result.message and "Blob versioning or soft delete" in result.message
    assert len(archived_latest(archive_store)) == 24 and set(in_cosmos(seeded)) == set(OUTSIDE)  # nothing lost


def test_plan_follows_the_purge_over_several_slices(cosmos_container, archive_store):
    days = [TimeSlice(DAY.start + dt.timedelta(days=i), DAY.end + dt.timedelta(days=i)) for i in range(3)]
    for i, the_slice in enumerate(days):
        for n in range(3):
            cosmos_container.upsert_item({"id": f"d{i}-{n}", "customerId": "c-1",
                                          "issuedAt": f"{the_slice.start:%Y-%m-%d}T0{n}:00:00.000Z"})
    cosmos_container.upsert_item({"id": "ancient", "customerId": "c-1", "issuedAt": "2020-01-01T00:00:00.000Z"})
    window = (days[0].start, days[-1].end)
    for the_slice in days:
        copy_slice(cosmos_container, archive_store, the_slice, SETTINGS)
        assert validate_slice(cosmos_container, archive_store, the_slice, SETTINGS).ok

    pending = select_due_slices(archive_store, SETTINGS, now=NOW, window=window, container=cosmos_container)
    assert pending.due == days and pending.purge_pending == 3  # verified, awaiting their purge
    assert select_due_slices(archive_store, SETTINGS, now=NOW, window=window).due == []  # no container: as before
    for the_slice in days:
        purge_slice(cosmos_container, archive_store, the_slice, SETTINGS)
    clean = select_due_slices(archive_store, SETTINGS, now=NOW, window=window, container=cosmos_container)
    assert clean.due == [] and clean.older_than_lookback == 1 and "older than lookback_days" in clean.describe()

    cosmos_container.upsert_item({"id": "late", "customerId": "c-1",
                                  "issuedAt": f"{days[1].start:%Y-%m-%d}T12:00:00.000Z"})
    late = select_due_slices(archive_store, SETTINGS, now=NOW, window=window, container=cosmos_container)

    assert late.due == [days[1]] and late.remainders == 1 and late.sweep_ru > 0
    off = ArchiveSettings(**{**SETTINGS.__dict__, "purge": "off"})
    assert select_due_slices(archive_store, off, now=NOW, window=window, container=cosmos_container).due == []
