"""Every instant, no crash (issue 16): the whole range of ISO 8601 values, from year 0001 to 9999 with offsets, leap
seconds and impossible dates, is placed in a slice or left out with a reason by the census, the copy and the reader."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.slices import TimeSlice, TimestampError, bound_value, slice_of, timestamp_instant
from include.cosmos_archiver.source.census import LEFT_OUT, take_census
from include.cosmos_archiver.source.reader import instant_in, read_slice
from tests.test_purge import DAY, NOW, SETTINGS

UTC = dt.UTC
EDGES = ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "2016-12-31T23:59:60Z", "2026-02-30T00:00:00Z",
         "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "2025-03-01T23:59:60.5+00:00"]


@st.composite
def iso_strings(draw: st.DrawFn) -> str:
    """ISO 8601 extended date-times over the whole range, with out-of-range fields (month 13, day 32, hour 24,
    second 60 and 61) and offsets up to +-24:59."""
    year = draw(st.sampled_from([1, 2, 999, 1970, 2016, 9998, 9999]) | st.integers(1, 9999))
    date = f"{year:04d}-{draw(st.integers(0, 13)):02d}-{draw(st.integers(0, 32)):02d}"
    if draw(st.booleans()):
        return date
    time = f"{draw(st.integers(0, 24)):02d}:{draw(st.integers(0, 60)):02d}:{draw(st.integers(0, 61)):02d}"
    fraction = draw(st.sampled_from(["", ".0", ".5", ".000", ".999", ".123456"]))
    zone = draw(st.sampled_from(["", "Z"]) | st.builds(
        lambda sign, h, m: f"{sign}{h:02d}:{m:02d}", st.sampled_from("+-"), st.integers(0, 24), st.integers(0, 59)))
    return f"{date}T{time}{fraction}{zone}"


@hypothesis_settings(max_examples=500, deadline=None)
@given(iso_strings())
@example("0001-01-01T00:30:00+01:00")
@example("9999-12-31T23:30:00-01:00")
@example("2016-12-31T23:59:60Z")
@example("2026-02-30T00:00:00Z")
@example("9999-12-31T23:59:59.999Z")
def test_every_iso_string_is_an_instant_in_a_slice_or_left_out_with_a_census_reason(value):
    try:
        instant = timestamp_instant(value, "iso8601", "issuedAt")
    except TimestampError as exc:
        assert exc.problem in LEFT_OUT and "issuedAt" in str(exc)
        assert not instant_in(value, DAY, "iso8601")
        return
    assert instant.tzinfo is UTC
    for hours in (1, 24):  # every grid a slice of at most a day: the instant has its slice, bounds that sort
        the_slice = slice_of(instant, hours)
        assert the_slice.start <= instant < the_slice.end
        assert bound_value(the_slice.start, "iso8601") < bound_value(the_slice.end, "iso8601")
        assert instant_in(value, the_slice, "iso8601")
    try:
        week = slice_of(instant, 168)
    except TimestampError as exc:  # a week slice may not fit before year 10000: a reason, not a crash
        assert exc.problem == "timestamp_out_of_range"
    else:
        assert week.start <= instant < week.end


def test_leap_seconds_are_the_last_moment_of_their_minute():
    assert timestamp_instant("2016-12-31T23:59:60Z", "iso8601") == dt.datetime(2016, 12, 31, 23, 59, 59, 999999,
                                                                                 tzinfo=UTC)
    assert timestamp_instant("2016-12-31T23:59:60.5+01:00", "iso8601").hour == 22


def test_slice_ids_and_bounds_of_early_years_keep_four_digits():
    first = TimeSlice(dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(1, 1, 2, tzinfo=UTC))
    assert first.slice_id == "0001/01/01" and bound_value(first.start, "iso8601") == "0001-01-01T00:00:00.000Z"


def test_census_and_copy_place_or_name_every_instant_of_the_whole_range(cosmos_container, archive_store):
    values = {f"edge-{i}": v for i, v in enumerate(EDGES)} | {
        "leap-canonical": "2025-03-01T23:59:60.000Z", "ordinary": "2025-03-01T12:00:00.000Z"}
    for doc_id, issued in values.items():
        cosmos_container.upsert_item({"id": doc_id, "customerId": "c-1", "issuedAt": issued})

    census = take_census(cosmos_container, archive_store, SETTINGS, now=NOW, max_listed=20)

    assert census.balanced and census.total == len(values), census.details()
    assert sorted(census.left_out_ids["timestamp_out_of_range"]) == ["c-1/edge-0", "c-1/edge-1"]
    assert census.left_out_ids["timestamp_unparseable"] == ["c-1/edge-3"]
    assert census.counts["waiting"] == 3  # the ordinary record and both leap seconds of 2025-03-01
    manifest = copy_slice(cosmos_container, archive_store, DAY, SETTINGS)
    assert sorted(r.id for r in manifest.records) == ["edge-6", "leap-canonical", "ordinary"]
    assert validate_slice(cosmos_container, archive_store, DAY, SETTINGS).ok
    for the_slice, ids in ((TimeSlice(dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(1, 1, 2, tzinfo=UTC)),
                            {"edge-4"}),
                           (TimeSlice(dt.datetime(9999, 12, 30, tzinfo=UTC), dt.datetime(9999, 12, 31, tzinfo=UTC)),
                            set())):
        read = {d["id"] for page in read_slice(cosmos_container, the_slice, timestamp_field="issuedAt",
                                               timestamp_kind="iso8601") for d in page}
        assert read == ids, the_slice


@pytest.mark.parametrize("value", [10**30, -(10**30), 1e300, 253402300800])
def test_epoch_seconds_beyond_the_calendar_are_out_of_range(value):
    with pytest.raises(TimestampError) as failure:
        timestamp_instant(value, "epoch_seconds")
    assert failure.value.problem == "timestamp_out_of_range"
