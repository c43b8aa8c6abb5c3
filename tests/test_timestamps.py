"""Timestamps are instants: every ISO 8601 spelling lands in the slice of its UTC instant; what cannot be placed has
a reason. Also which Cosmos SQL functions the local cosmosdb-server evaluates (the census and reader rely on them)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from include.cosmos_archiver.archive.canonical import (
    MISSING_KEY_TEXT,
    partition_key_from_text,
    partition_key_text,
    record_key,
)
from include.cosmos_archiver.archive.source_facts import other_spellings_seen
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import (
    MISSING,
    TimeSlice,
    TimestampError,
    bound_value,
    is_canonical_iso,
    slice_of,
    timestamp_instant,
)
from include.cosmos_archiver.source.reader import read_slice

UTC = dt.UTC
JUNE_6 = TimeSlice(dt.datetime(2026, 6, 6, tzinfo=UTC), dt.datetime(2026, 6, 7, tzinfo=UTC))
SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", page_size=3)


@pytest.mark.parametrize(("value", "instant"), [
    ("2026-06-06T00:00:00.000Z", dt.datetime(2026, 6, 6, tzinfo=UTC)),
    ("2026-06-06T00:00:00+00:00", dt.datetime(2026, 6, 6, tzinfo=UTC)),
    ("2026-06-05T22:00:00-05:00", dt.datetime(2026, 6, 6, 3, tzinfo=UTC)),
    ("2026-06-06T01:30:00+02:00", dt.datetime(2026, 6, 5, 23, 30, tzinfo=UTC)),
    ("2026-06-06", dt.datetime(2026, 6, 6, tzinfo=UTC)),
    ("2026-06-06T12:00:00.123456789Z"[:26] + "Z", dt.datetime(2026, 6, 6, 12, 0, 0, 123456, tzinfo=UTC)),
    ("2026-06-06T12:00:00", dt.datetime(2026, 6, 6, 12, tzinfo=UTC)),  # no offset: read as UTC
])
def test_iso_spellings_map_to_their_utc_instant(value, instant):
    assert timestamp_instant(value, "iso8601") == instant


@pytest.mark.parametrize(("value", "kind", "problem"), [
    (MISSING, "iso8601", "timestamp_missing"),
    (None, "iso8601", "timestamp_missing"),
    (1780704000, "iso8601", "timestamp_wrong_kind"),
    (True, "epoch_seconds", "timestamp_wrong_kind"),
    ("1780704000", "epoch_seconds", "timestamp_wrong_kind"),
    ("06/06/2026", "iso8601", "timestamp_unparseable"),
    ("20260606T000000Z", "iso8601", "timestamp_unparseable"),  # basic format: its date is not written YYYY-MM-DD
    ("2026-13-06T00:00:00.000Z", "iso8601", "timestamp_unparseable"),
    (1e300, "epoch_seconds", "timestamp_out_of_range"),
])
def test_a_timestamp_that_cannot_be_placed_has_a_reason(value, kind, problem):
    with pytest.raises(TimestampError) as failure:
        timestamp_instant(value, kind, "issuedAt")
    assert failure.value.problem == problem and "issuedAt" in str(failure.value)


def test_canonical_spelling_is_what_the_range_query_bounds_use():
    assert is_canonical_iso(bound_value(JUNE_6.start, "iso8601"))
    assert not is_canonical_iso("2026-06-06T00:00:00Z") and not is_canonical_iso("2026-06-06")
    assert slice_of(dt.datetime(2026, 6, 6, 3, tzinfo=UTC), 24) == JUNE_6


@pytest.mark.parametrize("value", ["c-1", "null", None, MISSING, 7, "7", True, "true", "", "~x", "~undefined",
                                   '"q"', {"a": 1}, [1, "b"], 1.5])
def test_partition_key_text_is_one_text_per_value(value):
    text = partition_key_text(value)
    back = partition_key_from_text(text)
    assert back is value if value is MISSING else (back == value and type(back) is type(value))


def test_a_missing_partition_key_and_the_string_null_are_distinct_keys():
    keys = {record_key(doc, "/customerId") for doc in (
        {"id": "1"}, {"id": "1", "customerId": None}, {"id": "1", "customerId": "null"})}
    assert keys == {(MISSING_KEY_TEXT, "1"), ("null", "1"), ('"null"', "1")}
    assert partition_key_text("c-1") == "c-1" and partition_key_text(7) == "7"  # unchanged from manifest v1


def test_other_spellings_land_in_the_slice_of_their_utc_instant(cosmos_container, archive_store):
    docs = {
        "canonical": "2026-06-06T10:00:00.000Z",
        "utc-offset": "2026-06-06T00:00:00+00:00",  # sorts after the slice's start bound's text but is its instant
        "minus-5": "2026-06-05T22:00:00-05:00",  # written on the 5th, its instant is 03:00 UTC on the 6th
        "date-only": "2026-06-06",  # sorts before "2026-06-06T..." (in the 5th's text range), is the 6th
        "no-millis": "2026-06-06T23:59:59Z",
        "plus-2": "2026-06-07T01:30:00+02:00",  # written on the 7th, its instant is 23:30 UTC on the 6th
        "next-day": "2026-06-07T00:00:00.000Z",
        "prev-offset": "2026-06-06T01:00:00+02:00",  # written on the 6th, its instant is 23:00 UTC on the 5th
        "prev-date": "2026-06-05",
    }
    for doc_id, issued in docs.items():
        cosmos_container.upsert_item({"id": doc_id, "customerId": "c", "issuedAt": issued})
    expected = {"canonical", "utc-offset", "minus-5", "date-only", "no-millis", "plus-2"}

    read = {d["id"] for page in read_slice(cosmos_container, JUNE_6, timestamp_field="issuedAt",
                                           timestamp_kind="iso8601", page_size=2) for d in page}
    june_5 = TimeSlice(JUNE_6.start - dt.timedelta(days=1), JUNE_6.start)
    read_5 = {d["id"] for page in read_slice(cosmos_container, june_5, timestamp_field="issuedAt",
                                             timestamp_kind="iso8601") for d in page}

    assert read == expected
    assert read_5 == {"prev-offset", "prev-date"}
    # The archive does not know yet that the source has other spellings: the copy sends the range query alone.
    assert not other_spellings_seen(archive_store)
    time.sleep(2.1)  # _ts < read_since (the copy's start second less one): missing, not changed since the copy
    manifest = copy_slice(cosmos_container, archive_store, JUNE_6, SETTINGS)
    assert {r.id for r in manifest.records} == {"canonical"}
    # Validation's index-served count of the range sees more than the copy placed ("utc-offset" and "no-millis"
    # sort into the range): it lists the slice with the other spellings, names what the copy missed, and records
    # that the source has other spellings, so the re-copy looks for them.
    first = validate_slice(cosmos_container, archive_store, JUNE_6, SETTINGS)
    assert not first.ok and {m.split("/")[1] for m in first.missing} == expected - {"canonical"}
    assert other_spellings_seen(archive_store)
    manifest = copy_slice(cosmos_container, archive_store, JUNE_6, SETTINGS, force=True)
    assert {r.id for r in manifest.records} == expected
    again = validate_slice(cosmos_container, archive_store, JUNE_6, SETTINGS)
    assert again.ok and again.mode == "counts", again.message()


QUERIES = {  # Cosmos SQL the census and the reader send; each must be evaluated by the local cosmosdb-server
    "SELECT VALUE COUNT(1) FROM c WHERE NOT IS_DEFINED(c.t)": 1,
    "SELECT VALUE COUNT(1) FROM c WHERE IS_NULL(c.t)": 1,
    "SELECT VALUE COUNT(1) FROM c WHERE IS_STRING(c.t)": 4,
    "SELECT VALUE COUNT(1) FROM c WHERE IS_NUMBER(c.t)": 1,
    "SELECT VALUE COUNT(1) FROM c WHERE IS_BOOL(c.t)": 1,
    "SELECT VALUE COUNT(1) FROM c WHERE STARTSWITH(c.t, '2026-06-06')": 2,
    "SELECT VALUE COUNT(1) FROM c WHERE IS_STRING(c.t) AND NOT (LENGTH(c.t) = 24 AND SUBSTRING(c.t, 10, 1) = 'T' "
    "AND SUBSTRING(c.t, 19, 1) = '.' AND ENDSWITH(c.t, 'Z'))": 3,
    "SELECT VALUE COUNT(1) FROM c WHERE NOT IS_DEFINED(c.customerId)": 1,
    "SELECT VALUE COUNT(1) FROM c WHERE c._ts > 0": 8,
}


def test_local_cosmosdb_server_evaluates_the_functions_the_census_uses(cosmos_container):
    for doc in ({"id": "a", "customerId": "x", "t": "2026-06-06T00:00:00.000Z"}, {"id": "b", "customerId": "x",
                "t": "2026-06-06"}, {"id": "c", "customerId": "x", "t": 1780704000}, {"id": "d", "customerId": "x"},
                {"id": "e", "t": "2026-06-05T22:00:00-05:00"}, {"id": "f", "customerId": "x", "t": None},
                {"id": "g", "customerId": "x", "t": True}, {"id": "h", "customerId": "null", "t": "x"}):
        cosmos_container.upsert_item(doc)
    for query, count in QUERIES.items():
        assert list(cosmos_container.query_items(query, enable_cross_partition_query=True)) == [count], query
    # Not supported by cosmosdb-server (so not used): OFFSET ... LIMIT, TYPE_OF, VALUE {n: COUNT(1)}.
