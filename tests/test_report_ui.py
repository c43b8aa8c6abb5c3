"""What the operator sees: a run report that counts THIS run's work (purge included), the report site the Airflow
plugin mounts, and the halt worded in one line (real cosmosdb-server + Azurite on loopback)."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.purge import purge_slice
from include.cosmos_archiver.pipeline.run_status import CLEAR_HINT, ArchiveStatus
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.reporting.archive_status import halt_line
from include.cosmos_archiver.reporting.report_run import archive_facts
from include.cosmos_archiver.reporting.report_site import create_report_app
from include.cosmos_archiver.reporting.run_report import build_run_report
from include.cosmos_archiver.reporting.run_work import SliceCounters, SliceFacts, progress, slice_work
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice

SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", cutoff_days=90, lookback_days=400)
DAY = TimeSlice(dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
HALTED = ArchiveStatus("Halted", "scheduled__2026-06-01T00:00:00+00:00", "2025/03/01", DAY.start.isoformat(),
                       "slice 2025/03/01: validation FAILED (source 3, archive 2)\n1 missing from archive: c-1/inv-1",
                       "2026-06-01T03:04:05+00:00")


def _doc(i: int) -> dict:
    return {"id": f"inv-{i:03d}", "customerId": f"c-{i % 3}", "issuedAt": f"2025-03-01T{i % 24:02d}:00:00.000Z",
            "text": "x" * (200 + i)}


def test_the_halt_is_one_line_naming_the_slice_the_reason_and_how_to_clear_it() -> None:
    line = halt_line(HALTED)
    assert line is not None and "\n" not in line
    assert line.startswith("Halted since 2026-06-01T03:04:05+00:00: slice 2025/03/01 failed in run scheduled__")
    assert "1 missing from archive: c-1/inv-1" in line and line.endswith(CLEAR_HINT)
    assert halt_line(ArchiveStatus()) is None


def test_a_later_run_reports_its_own_copy_and_purge_and_record_bytes_do_not_grow(cosmos_container, archive_store):
    for i in range(12):
        cosmos_container.upsert_item(_doc(i))
    first = copy_slice(cosmos_container, archive_store, DAY, SETTINGS)
    assert validate_slice(cosmos_container, archive_store, DAY, SETTINGS).ok
    purge_slice(cosmos_container, archive_store, DAY, SETTINGS)
    purged = archive_store.read_manifest(DAY.slice_id)
    assert purged.purge["counts"]["purged"] == 12

    # The next run: one late record, copied twice (a re-copy after a failed validation), validated and purged.
    before = SliceCounters.of(DAY.slice_id, purged)
    cosmos_container.upsert_item(_doc(30))
    copy_slice(cosmos_container, archive_store, DAY, SETTINGS)
    again = copy_slice(cosmos_container, archive_store, DAY, SETTINGS)
    assert again.generation == 1
    late_bytes = again.generation_bytes["1"]
    assert again.record_bytes == first.record_bytes + late_bytes  # the re-copy replaced generation 1, not added
    assert validate_slice(cosmos_container, archive_store, DAY, SETTINGS).ok
    purge_slice(cosmos_container, archive_store, DAY, SETTINGS)
    after = archive_store.read_manifest(DAY.slice_id)

    work = slice_work(before, after)
    assert work is not None and (work.records, work.record_bytes) == (1, late_bytes)
    assert work.purge_counts == {"purged": 1}
    spent = {s: round(after.ru_steps.get(s, 0) - purged.ru_steps.get(s, 0), 2) for s in ("copy", "validate", "purge")}
    assert work.ru["purge"] == spent["purge"] > 0 and work.ru["copy"] == spent["copy"] > 0
    report = build_run_report("backfill__2026-06-02", [after], [], None, None, None, work={DAY.slice_id: work})
    assert (report.totals.records, report.totals.removed) == (1, 1)
    assert report.totals.ru == round(sum(work.ru.values()), 2)  # the purge is counted
    assert report.totals.ru_by_step["purge"] == spent["purge"]
    # A run that found the slice done did nothing to it.
    idle = slice_work(SliceCounters.of(DAY.slice_id, after), after)
    assert idle is not None and (idle.records, idle.ru, idle.purge_counts) == (0, {}, {})


def test_the_report_site_serves_reports_from_the_archive_with_the_halt_banner(archive_store) -> None:
    run_id = "manual__2026-06-01T00:00:00+00:00"
    report = build_run_report(run_id, [], [], None, None, None, halt=HALTED)
    report.write(archive_store)
    client = TestClient(create_report_app(lambda: archive_store, lambda: HALTED))

    status = client.get("/status")
    assert status.status_code == 200 and "Archive Halted" in status.text and "2025/03/01" in status.text
    assert "reports/manual__2026-06-01T00%3A00%3A00%2B00%3A00" in status.text
    page = client.get("/reports/manual__2026-06-01T00%3A00%3A00%2B00%3A00")
    assert page.status_code == 200 and page.text == report.html and "Archive Halted" in page.text
    missing = client.get("/reports/manual__nope")
    assert missing.status_code == 404 and "manual__nope" in missing.text


def test_a_report_of_an_archive_not_halted_says_so_in_words(archive_store) -> None:
    """The state "Running" means "not halted"; a finished run's report said "Archive status: Running"."""
    report = build_run_report("manual__2026-06-02T00:00:00+00:00", [], [], None, None, None, halt=ArchiveStatus())
    status = TestClient(create_report_app(lambda: archive_store, lambda: ArchiveStatus())).get("/status")
    for text in (report.html, status.text):
        assert "Archive status: not halted" in text and "Archive status: Running" not in text


def test_the_archive_wide_progress_reads_one_listing_not_every_manifest(cosmos_container, archive_store, monkeypatch):
    """Each run's report shows the whole archive's progress; it comes from the manifests' blob metadata (one
    listing), not from reading every manifest, which grows with its slice's records and with the archive's age. A
    manifest whose metadata predates those figures is read."""
    for i in range(12):
        cosmos_container.upsert_item(_doc(i))
    copy_slice(cosmos_container, archive_store, DAY, SETTINGS)
    assert validate_slice(cosmos_container, archive_store, DAY, SETTINGS).ok
    purge_slice(cosmos_container, archive_store, DAY, SETTINGS)
    manifest = archive_store.read_manifest(DAY.slice_id)
    reads: list[str] = []
    read_manifest = archive_store.read_manifest
    monkeypatch.setattr(archive_store, "read_manifest", lambda slice_id: reads.append(slice_id) or
                        read_manifest(slice_id))

    assert archive_facts(archive_store) == [SliceFacts.of(manifest)] and reads == []
    now = DAY.end + dt.timedelta(days=100)
    done = progress(archive_facts(archive_store), SETTINGS, now=now, provisioned_ru_s=1000, ceiling=0.8)
    assert (done.slices_done, done.records_archived, done.bytes_archived) == (1, 12, manifest.record_bytes)
    provisioned = progress(archive_facts(archive_store), SETTINGS, now=now, provisioned_ru_s=1000, ceiling=0.8,
                           account_mode="provisioned")
    assert done.eta_s > provisioned.eta_s  # serverless: the archiver's cap, below the provisioned headroom
    assert "serverless account" in done.basis and "provisioned account" in provisioned.basis

    blob = archive_store.container.get_blob_client(archive_store.manifest_path(DAY.slice_id))
    older = {k: v for k, v in blob.get_blob_properties().metadata.items() if k != "ru_steps"}
    blob.set_blob_metadata(older)  # as a manifest written before the metadata held its RU
    assert archive_facts(archive_store) == [SliceFacts.of(manifest)] and reads == [DAY.slice_id]
