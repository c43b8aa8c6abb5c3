"""Runs that copy/validate the same slice at once (an Airflow 3 backfill) take turns through the slice's Blob lease,
and a verified slice is never rewritten; against real Azurite and cosmosdb-server."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobLeaseClient

from include.cosmos_archiver.adf.indexing import index_adf_slice
from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.slice_lease import SliceBusyError, lease_path, slice_lease
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.purge import purge_slice
from include.cosmos_archiver.pipeline.validate import ValidationResult, validate_slice
from include.cosmos_archiver.settings import ArchiveSettings, SettingsError
from tests.test_archive_roundtrip import DAY, SETTINGS, adversarial_documents

IN_SLICE = len(adversarial_documents()) - 2  # "before" and "after" lie outside DAY
RUNS = 4
WAIT = dataclasses.replace(SETTINGS, slice_lease_wait_s=25)  # bounded: a stuck lease fails the test, not hangs it


@pytest.fixture
def seeded(cosmos_container):
    for doc in adversarial_documents():
        cosmos_container.upsert_item(doc)
    return cosmos_container


@contextmanager
def held_elsewhere(store: ArchiveStore, slice_id: str) -> Iterator[BlobLeaseClient]:
    """The slice's lease held by "another run": a plain SDK lease of 15 s, released at the end."""
    blob = store.container.get_blob_client(lease_path(store, slice_id))
    if not blob.exists():
        blob.upload_blob(b"")
    lease = BlobLeaseClient(blob)
    lease.acquire(lease_duration=15)
    try:
        yield lease
    finally:
        lease.release()


def etags(store: ArchiveStore) -> dict[str, str]:
    return {b.name: b.etag for b in store.container.list_blobs()}


def test_concurrent_copy_and_validate_of_one_slice_never_unverify_it(seeded, archive_store):
    statuses: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        blob = archive_store.container.get_blob_client(archive_store.manifest_path(DAY.slice_id))
        while not stop.is_set():
            if blob.exists():
                status = blob.get_blob_properties().metadata.get("status", "?")
                if not statuses or statuses[-1] != status:
                    statuses.append(status)
            time.sleep(0.01)

    outcomes: dict[int, tuple[Manifest, ValidationResult]] = {}
    errors: list[BaseException] = []
    copied = [threading.Event() for _ in range(RUNS)]

    def run(n: int) -> None:
        # Run n starts copying as run n-1 starts validating: without a lock its copy would overwrite the
        # verified manifest whenever it finishes after that validation (the backfill race).
        try:
            if n and not copied[n - 1].wait(timeout=30):
                raise TimeoutError(f"run {n - 1} did not finish its copy")
            manifest = copy_slice(seeded, archive_store, DAY, WAIT)
            copied[n].set()
            outcomes[n] = (manifest, validate_slice(seeded, archive_store, DAY, WAIT))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            copied[n].set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    runs = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(RUNS)]
    started = time.monotonic()
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=60)
    elapsed = time.monotonic() - started
    time.sleep(0.1)
    stop.set()
    watcher.join(timeout=5)

    assert not errors, errors
    assert sorted(outcomes) == list(range(RUNS)), f"a run did not finish within {elapsed:.0f} s"
    for manifest, result in outcomes.values():
        assert manifest.record_count == IN_SLICE
        assert result.ok, result.message()
    final = archive_store.read_manifest(DAY.slice_id)
    assert final is not None and final.status == "verified" and final.record_count == IN_SLICE
    assert "verified" in statuses
    assert statuses[statuses.index("verified"):] == ["verified"], f"manifest status went {statuses}"
    # The lock blob is there, and nothing that lists a slice folder takes it for data or a manifest.
    assert lease_path(archive_store, DAY.slice_id) in etags(archive_store)
    assert archive_store.manifest_statuses() == {DAY.slice_id: "verified"}
    assert archive_store.list_parts(DAY.slice_id) == [f.path for f in final.files]
    forced = validate_slice(seeded, archive_store, DAY, WAIT, force=True)
    assert forced.ok and not forced.bad_files, forced.message()


def test_a_slice_leased_elsewhere_is_busy_then_copies_once_released(seeded, archive_store, caplog):
    quick = dataclasses.replace(SETTINGS, slice_lease_wait_s=1)
    caplog.set_level(logging.INFO, logger="include.cosmos_archiver.archive.slice_lease")
    with held_elsewhere(archive_store, DAY.slice_id):
        started = time.monotonic()
        with pytest.raises(SliceBusyError) as busy:
            copy_slice(seeded, archive_store, DAY, quick)
        assert time.monotonic() - started < 5
        message = str(busy.value)
        assert DAY.slice_id in message and "another run" in message and "expires within" in message
        assert any("waiting up to" in r.getMessage() for r in caplog.records)
        assert archive_store.read_manifest(DAY.slice_id) is None and archive_store.list_parts(DAY.slice_id) == []

    assert copy_slice(seeded, archive_store, DAY, quick).status == "copied"

    with held_elsewhere(archive_store, DAY.slice_id):
        with pytest.raises(SliceBusyError, match=DAY.slice_id):
            validate_slice(seeded, archive_store, DAY, quick)
        with pytest.raises(SliceBusyError, match=DAY.slice_id):
            index_adf_slice(archive_store, DAY, quick)
        assert archive_store.read_manifest(DAY.slice_id).status == "copied"  # type: ignore[union-attr]

    assert validate_slice(seeded, archive_store, DAY, quick).ok
    # Every holder released its lease on the way out, also the ones that raised: it is free now.
    with held_elsewhere(archive_store, DAY.slice_id):
        pass


def test_lease_is_released_on_an_exception_and_waiters_log_how_long(archive_store, caplog):
    caplog.set_level(logging.INFO, logger="include.cosmos_archiver.archive.slice_lease")
    with pytest.raises(KeyError), slice_lease(archive_store, DAY.slice_id, wait_s=0, lease_s=15):
        raise KeyError("boom")

    done = threading.Event()

    def hold_briefly() -> None:
        with slice_lease(archive_store, DAY.slice_id, wait_s=0, lease_s=15):
            done.set()
            time.sleep(1.5)

    holder = threading.Thread(target=hold_briefly, daemon=True)
    holder.start()
    assert done.wait(timeout=10)
    with slice_lease(archive_store, DAY.slice_id, wait_s=10, lease_s=15, poll_s=0.2):
        pass
    holder.join(timeout=10)
    assert any("acquired after waiting" in r.getMessage() for r in caplog.records)


def test_lease_is_renewed_while_the_block_runs(archive_store):
    blob = archive_store.container.get_blob_client(lease_path(archive_store, DAY.slice_id))
    with slice_lease(archive_store, DAY.slice_id, wait_s=0, lease_s=15) as lease:
        time.sleep(17)  # past one lease period: only the keep-alive thread's renewals keep it ours
        with pytest.raises(ResourceExistsError) as taken:
            BlobLeaseClient(blob).acquire(lease_duration=15)
        assert taken.value.error_code == "LeaseAlreadyPresent"
        lease.ensure_held()
    BlobLeaseClient(blob).acquire(lease_duration=15)  # released on exit


def test_rerun_of_a_verified_slice_touches_no_blob_not_even_the_lock(seeded, archive_store):
    copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    before = etags(archive_store)
    assert lease_path(archive_store, DAY.slice_id) in before

    # Held elsewhere: the fast path must not even wait for it.
    with held_elsewhere(archive_store, DAY.slice_id):
        again = copy_slice(seeded, archive_store, DAY, dataclasses.replace(SETTINGS, slice_lease_wait_s=0))
        revalidated = validate_slice(seeded, archive_store, DAY, dataclasses.replace(SETTINGS, slice_lease_wait_s=0))
        indexed = index_adf_slice(archive_store, DAY, dataclasses.replace(SETTINGS, slice_lease_wait_s=0))
    again_free = copy_slice(seeded, archive_store, DAY, SETTINGS)

    assert again.status == indexed.status == again_free.status == "verified"
    assert revalidated.ok and revalidated.skipped_reason
    assert etags(archive_store) == before


class CountingBudget:
    def __init__(self) -> None:
        self.requests = 0

    def before_request(self, expected_ru: float) -> None:
        self.requests += 1

    def after_request(self, charged_ru: float, throttled: bool, served_at: float | None = None) -> None:
        return None


def test_a_copy_another_run_left_unvalidated_is_reused_and_validation_judges_it(seeded, archive_store, caplog):
    """Backfill runs share slices: a run that finds a whole copy not yet validated reads nothing and writes
    nothing; if the source moved on since that copy, validation names the record as changed (not a broken
    archive) and the purge keeps it in Cosmos DB for a later generation."""
    first = copy_slice(seeded, archive_store, DAY, SETTINGS)
    before = etags(archive_store)
    reads = CountingBudget()
    with caplog.at_level(logging.INFO, logger="include.cosmos_archiver.pipeline.copy"):
        reused = copy_slice(seeded, archive_store, DAY, SETTINGS, budget=reads, reuse_copied=True)
    assert (reused.status, reused.slice_digest, reused.copied_at) == ("copied", first.slice_digest, first.copied_at)
    assert reads.requests == 0 and etags(archive_store) == before
    assert "already copied at" in caplog.text and "validation decides" in caplog.text
    recopied = copy_slice(seeded, archive_store, DAY, SETTINGS, budget=reads)  # the default: copy again
    assert reads.requests > 0 and recopied.copied_at != first.copied_at

    changed = next(d for d in adversarial_documents() if d["id"] not in ("before", "after"))
    seeded.upsert_item({**changed, "amount": 999})  # the source moves on after the copy
    copy_slice(seeded, archive_store, DAY, SETTINGS, reuse_copied=True)
    judged = validate_slice(seeded, archive_store, DAY, SETTINGS)
    assert judged.ok and not judged.differing, judged.message()
    assert [name for name in judged.changed if changed["id"] in name], judged.message()
    purge_slice(seeded, archive_store, DAY, SETTINGS)
    kept = list(seeded.query_items("SELECT * FROM c WHERE c.id = @id", enable_cross_partition_query=True,
                                   parameters=[{"name": "@id", "value": changed["id"]}]))
    assert [doc["amount"] for doc in kept] == [999]  # the newer version stays in Cosmos DB, unpurged


@pytest.mark.parametrize(
    ("values", "named"),
    [({"slice_lease_s": 90}, "slice_lease_s=90"), ({"slice_lease_s": "10"}, "slice_lease_s=10"),
     ({"slice_lease_wait_s": -1}, "slice_lease_wait_s=-1")],
)
def test_lease_settings_are_validated_by_name(values: dict, named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        ArchiveSettings.from_mapping(values)
    assert ArchiveSettings.from_mapping({"slice_lease_s": "15", "slice_lease_wait_s": "0"}).slice_lease_s == 15
