"""Scrub re-checks verified slices at rest: a flipped byte, a truncated and a missing part are found and named by
file and records, the slice is marked damaged (no purge), and `cosmos-archive summary` exits non-zero."""

from __future__ import annotations

import datetime as dt

import pytest

from devstack import drills
from include.cosmos_archiver.archive.scrub import damaged_slices, is_damaged, scrub_archive, scrub_slice
from include.cosmos_archiver.cli.main import main
from include.cosmos_archiver.cli.targets import BLOB_CONNECTION_STRING_ENV
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice

SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", max_file_bytes=20_000,
                           row_group_bytes=5_000)
DAYS = [TimeSlice(dt.datetime(2025, 3, d, tzinfo=dt.UTC), dt.datetime(2025, 3, d + 1, tzinfo=dt.UTC)) for d in (1, 2)]


@pytest.fixture
def verified(cosmos_container, archive_store):
    for day in DAYS:
        for i in range(24):
            cosmos_container.upsert_item({"id": f"{day.start:%d}-{i:02d}", "customerId": f"c{i % 4}",
                                          "issuedAt": f"{day.start:%Y-%m-%d}T{i:02d}:00:00.000Z", "pad": "x" * 3000})
        copy_slice(cosmos_container, archive_store, day, SETTINGS)
        assert validate_slice(cosmos_container, archive_store, day, SETTINGS).ok
    return archive_store


def _records(manifest, index: int) -> list[str]:
    return sorted(f"{r.partition_key}/{r.id}" for r in manifest.records if r.file == index)


def test_scrub_finds_flipped_truncated_and_missing_parts_and_names_them(verified, stack, monkeypatch, capsys):
    store = verified
    slice_id = DAYS[0].slice_id
    manifest = store.read_manifest(slice_id)
    assert len(manifest.files) >= 3
    flipped = drills.corrupt_slice(store, slice_id)
    truncated = manifest.files[1].path
    store.upload(truncated, store.download(truncated)[:-100])
    missing = manifest.files[2].path
    store.delete(missing)

    report = scrub_archive(store, SETTINGS)

    assert [s.slice_id for s in report.damaged] == [slice_id]
    findings = {f.path: f for f in report.damaged[0].findings}
    assert set(findings) == {flipped, truncated, missing}
    assert "does not match the manifest" in findings[flipped].reason
    assert findings[flipped].records == _records(manifest, 0)
    assert "truncated" in findings[truncated].reason and findings[truncated].records == _records(manifest, 1)
    assert findings[missing].reason == "file missing" and findings[missing].records == _records(manifest, 2)
    message = report.damaged[0].message()
    assert flipped in message and _records(manifest, 0)[0] in message
    assert is_damaged(store, slice_id) and not is_damaged(store, DAYS[1].slice_id)
    assert damaged_slices(store) == [slice_id]
    assert store.read_manifest(slice_id).status == "verified"  # left as it is: a re-copy must not "repair" it

    monkeypatch.setenv(BLOB_CONNECTION_STRING_ENV, stack.blob_connection_string)
    settings_json = f'{{"blob_container": "{store.container.container_name}"}}'
    assert main(["summary", "--settings-json", settings_json]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and slice_id in out
    assert main(["scrub", "--settings-json", settings_json, "--slice", DAYS[1].slice_id]) == 0


def test_a_clean_archive_scrubs_ok_within_an_io_budget(verified):
    store = verified
    first = scrub_archive(store, SETTINGS, max_bytes=1)  # the budget is spent after the first slice
    assert len(first.scrubbed) == 1 and not first.damaged and len(first.not_reached) == 1
    second = scrub_archive(store, SETTINGS, max_bytes=1)  # least recently scrubbed first: the other slice now
    assert {first.scrubbed[0].slice_id, second.scrubbed[0].slice_id} == {d.slice_id for d in DAYS}
    assert not damaged_slices(store)
    whole = scrub_slice(store, DAYS[0].slice_id, SETTINGS, record=False)
    assert whole.status == "ok" and whole.records == 24 and whole.bytes_read > 0
