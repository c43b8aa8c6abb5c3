"""Which slices a run archives, against a real Azurite archive: due, unverified, oldest first, exact windows."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.slice_grid import SliceGridError
from include.cosmos_archiver.planning.due_slices import DueSlicesError, select_due_slices
from include.cosmos_archiver.settings import ArchiveSettings, SettingsError
from include.cosmos_archiver.slices import SliceError, TimeSlice, cutoff, slice_grid
from include.cosmos_archiver.source.census import take_census

NOW = dt.datetime(2026, 6, 1, 13, 30, tzinfo=dt.UTC)
SETTINGS = ArchiveSettings(cutoff_days=90, lookback_days=100, slice_hours=24)


def _mark(store, time_slice: TimeSlice, status: str) -> None:
    store.write_manifest(Manifest(
        slice_id=time_slice.slice_id, slice_start=time_slice.start.isoformat(), slice_end=time_slice.end.isoformat(),
        timestamp_field="_ts", source={}, status=status, record_count=0, record_bytes=0, slice_digest="", ru_charged=0,
        throttled_requests=0, files=[], records=[], timings_s={}, copied_at="", tool_version="test"))


def test_scheduled_run_plans_cold_unverified_slices_oldest_first(archive_store):
    first = select_due_slices(archive_store, SETTINGS, now=NOW)
    assert first.cutoff == dt.datetime(2026, 3, 3, tzinfo=dt.UTC)
    assert [s.slice_id for s in first.due][:2] == ["2026/02/21", "2026/02/22"]
    assert first.due[-1].end == first.cutoff and len(first.due) == 10
    assert first.due == sorted(first.due)

    _mark(archive_store, first.due[0], "verified")
    _mark(archive_store, first.due[1], "failed")
    again = select_due_slices(archive_store, SETTINGS, now=NOW, max_slices=4)
    assert [s.slice_id for s in again.due] == [s.slice_id for s in first.due[1:5]]
    assert (again.already_verified, again.deferred) == (1, 5)


def test_backfill_window_archives_exactly_its_slices_and_never_newer_than_the_cutoff(archive_store):
    window = (dt.datetime(2025, 12, 30, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    plan = select_due_slices(archive_store, SETTINGS, now=NOW, window=window)
    assert [s.slice_id for s in plan.due] == ["2025/12/30", "2025/12/31", "2026/01/01"]

    _mark(archive_store, plan.due[1], "verified")
    assert [s.slice_id for s in select_due_slices(archive_store, SETTINGS, now=NOW, window=window).due] == [
        "2025/12/30", "2026/01/01"]

    hot = select_due_slices(archive_store, SETTINGS, now=NOW, window=(dt.datetime(2026, 5, 1, tzinfo=dt.UTC), NOW))
    assert hot.due == [] and hot.not_cold_yet > 0
    with pytest.raises(DueSlicesError, match="must be after its start"):
        select_due_slices(archive_store, SETTINGS, now=NOW, window=(window[1], window[0]))


def test_a_changed_slice_hours_is_refused_naming_the_archived_grid(archive_store, cosmos_container):
    day = TimeSlice(dt.datetime(2026, 2, 21, tzinfo=dt.UTC), dt.datetime(2026, 2, 22, tzinfo=dt.UTC))
    _mark(archive_store, day, "verified")
    assert archive_store.manifest_metadata()["2026/02/21"]["slice_hours"] == "24"
    assert select_due_slices(archive_store, SETTINGS, now=NOW).already_verified == 1  # the same grid plans as before

    six_hours = dataclasses.replace(SETTINGS, slice_hours=6)  # 2026/02/21 would read as its first 6 hours
    named = (r"slice_hours=6, but 1 archived slice\(s\) under blob prefix 'records' span 24 h \(e.g. 2026/02/21\): "
             "set slice_hours back to 24")
    with pytest.raises(SliceGridError, match=named):
        select_due_slices(archive_store, six_hours, now=NOW)
    with pytest.raises(SliceGridError, match=named):
        take_census(cosmos_container, archive_store, six_hours, now=NOW)


def test_grid_is_fixed_so_replanning_is_idempotent():
    weekly = slice_grid(dt.datetime(2026, 1, 3, 17, tzinfo=dt.UTC), dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
                         slice_hours=168)
    shifted = slice_grid(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
                          slice_hours=168)
    assert weekly == shifted and all(s.end - s.start == dt.timedelta(days=7) for s in weekly)
    hourly = slice_grid(dt.datetime(2026, 1, 1, 5, 30, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC),
                         slice_hours=6)
    assert [s.slice_id for s in hourly] == ["2026/01/01/00", "2026/01/01/06"]
    assert cutoff(NOW, 90) == dt.datetime(2026, 3, 3, tzinfo=dt.UTC)


@pytest.mark.parametrize(("values", "named"), [
    ({"slice_hours": 5}, "slice_hours=5"),
    ({"cutoff_days": 0}, "cutoff_days=0"),
    ({"lookback_days": 30}, "lookback_days=30"),
    ({"timestamp_field": "c.x; DROP"}, "'c.x; DROP'"),
    ({"timestamp_kind": "unix"}, "timestamp_kind='unix'"),
    ({"blob_container": "Bad_Name"}, "blob_container='Bad_Name'"),
    ({"partition_key_path": "customerId"}, "partition_key_path='customerId'"),
    ({"page_size": "many"}, "page_size='many'"),
    ({"colour": "blue"}, "unknown archive setting(s) ['colour']"),
])
def test_bad_settings_name_the_value(values, named):
    with pytest.raises(SettingsError) as error:
        ArchiveSettings.from_mapping(values)
    assert named in str(error.value)


def test_naive_datetimes_are_refused():
    with pytest.raises(SliceError, match="timezone"):
        slice_grid(dt.datetime(2026, 1, 1), NOW)
