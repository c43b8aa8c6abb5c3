"""The daily run's census counts only its own slices, with index-served counts, and says what each still holds;
the full census' cost estimate is printed from a count and a small sample."""

from __future__ import annotations

import datetime as dt
import time

from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.purge import purge_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.readthrough.markers import stub_marker
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.census_cost import FULL_LOADS, estimate_census_cost
from include.cosmos_archiver.source.reader import MARKER_FIELD, ReadStats, count_range, range_count_query
from include.cosmos_archiver.source.run_census import census_of_run

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", cutoff_days=90, lookback_days=100)


def day(d: str) -> TimeSlice:
    start = dt.datetime.fromisoformat(d).replace(tzinfo=dt.UTC)
    return TimeSlice(start, start + dt.timedelta(days=1))


def test_the_run_census_counts_what_its_slices_still_hold(cosmos_container, archive_store):
    purged, waiting = day("2026-02-25"), day("2026-02-26")
    for i in range(3):
        cosmos_container.upsert_item({"id": f"p{i}", "customerId": "c", "issuedAt": f"2026-02-25T0{i}:00:00.000Z"})
        cosmos_container.upsert_item({"id": f"w{i}", "customerId": "c", "issuedAt": f"2026-02-26T0{i}:00:00.000Z"})
    cosmos_container.upsert_item({"id": "old", "customerId": "c", "issuedAt": "2025-01-01T00:00:00.000Z"})
    time.sleep(2.1)
    copy_slice(cosmos_container, archive_store, purged, SETTINGS)
    assert validate_slice(cosmos_container, archive_store, purged, SETTINGS).ok
    purge_slice(cosmos_container, archive_store, purged, SETTINGS)
    cosmos_container.upsert_item({"id": "late", "customerId": "c", "issuedAt": "2026-02-25T12:00:00.000Z"})

    census = census_of_run(cosmos_container, archive_store, SETTINGS, [purged, waiting], now=NOW)

    assert census.left_after_purge == {purged.slice_id: 1}
    assert census.not_verified == {waiting.slice_id: 3} and census.kept_by_setting == {}
    assert census.older_than_lookback == 1 and census.has_left_out
    assert census.queries == 3 and census.ru_charged > 0
    assert "1 document(s) in 1 purged slice(s)" in census.line()


def test_the_range_count_filters_only_on_what_the_index_serves(cosmos_container):
    query = range_count_query(day("2026-02-25"), "issuedAt", "iso8601", "/customerId")["query"]
    for unserved in ("LENGTH", "SUBSTRING", "ENDSWITH", "_etag"):
        assert unserved not in query
    cosmos_container.upsert_item({"id": "a", "customerId": "c", "issuedAt": "2026-02-25T01:00:00.000Z"})
    cosmos_container.upsert_item({"id": "b", "issuedAt": "2026-02-25T02:00:00.000Z"})  # no partition key
    cosmos_container.upsert_item({"id": "s", "customerId": "c", "issuedAt": "2026-02-25T03:00:00.000Z",
                                  MARKER_FIELD: stub_marker(slice="2026/02/25")})  # a purge stub
    cosmos_container.upsert_item({"id": "f", "customerId": "c", "issuedAt": "2026-02-25T04:00:00.000Z",
                                  "_archived": {"slice": "2026/02/25"}})  # a business field, not our marker
    assert count_range(cosmos_container, day("2026-02-25"), timestamp_field="issuedAt", timestamp_kind="iso8601",
                       stats=ReadStats()) == 2


def test_the_full_census_estimate_is_its_loads_at_the_published_rate(cosmos_container):
    for i in range(4):
        cosmos_container.upsert_item({"id": f"d{i}", "customerId": "c", "body": "x" * 10_000})
    cost = estimate_census_cost(cosmos_container, sample=2)
    assert cost.documents == 4 and 10 < cost.avg_kb < 10.5
    assert abs(cost.ru - 4 * cost.avg_kb / 1000 * cost.ru_per_mb * FULL_LOADS) < 1e-6
    assert "full census estimate" in cost.line() and "troubleshoot-query-performance" in cost.line()
