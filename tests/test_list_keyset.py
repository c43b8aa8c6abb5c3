"""A read-through list page is a few keyset queries in the customer's partition (issue 18, item 7): what one page
loads does not grow with the customer's hot history (RU booked by the gateway's published model, which charges a
query by the documents it makes the service load), and the pages list exactly what paging by instant promises
(paging.py): every spelling of the timestamp in (instant, id) order, ties across page boundaries, bounds, deletes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid

import pytest
from azure.cosmos import PartitionKey
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bench.purge_ru import booked_ru
from include.cosmos_archiver.readthrough.paging import ListQuery, instant_key, instant_of
from include.cosmos_archiver.readthrough.repository import ReadThroughRepository, list_indexing_policy
from tests.readthrough_helpers import SETTINGS, repository
from tests.test_instants import iso_strings

OTHER_SPELLINGS = {  # id -> issuedAt: written far from (or in another shape than) the canonical text of its instant
    "s-plus": "2025-06-07T23:00:00+23:59",  # = 2025-06-06T23:01Z, written the day after
    "s-minus": "2025-06-05T01:00:00-23:59",  # = 2025-06-06T00:59Z, written the day before
    "s-date": "2025-06-06",  # UTC midnight, sorts before every time of its day
    "s-naive": "2025-06-06T00:00:00",  # no offset: UTC
    "s-space": "2025-06-06 12:00:00Z",  # any separator: sorts before every "T" of its day
    "s-x": "2025-06-06x03:00:00Z",  # ... or after them
    "s-nofrac": "2025-06-06T00:00:00Z",  # "Z" sorts after ".": after 00:00:00.999Z
    "s-half": "2025-06-06T00:00:00.5Z",
    "s-micro": "2025-06-06T00:00:00.123456Z",
    "s-leap": "2025-06-06T23:59:60Z",  # the last microsecond of its minute
    "s-basic": "2025-06-06T100000Z",  # basic time: sorts before "T10:"
    "s-comma": "2025-06-06T10:00:00,5+00:00",
    "s-prev-plus": "2025-06-06T20:00:00+22:00",  # = 2025-06-05T22:00Z
}
NOT_LISTED = {  # no instant: in no list (they still sort into the window the queries read)
    "x-impossible": "2025-02-30T00:00:00.000Z", "x-garbage": "2025-06-06garbage", "x-number": 1749168000,
    "x-null": None,
}


def canonical(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _records() -> dict[str, object]:
    """Canonical records every few hours over 2025-06-03..10, some tied with the other spellings' instants."""
    start = dt.datetime(2025, 6, 3, tzinfo=dt.UTC)
    values: dict[str, object] = {f"c-{i:02d}": canonical(start + dt.timedelta(hours=7 * i)) for i in range(26)}
    values |= {"t-a": "2025-06-06T00:00:00.000Z", "t-z": "2025-06-06T00:00:00.000Z",  # ties with s-date/s-naive
               "t-m": "2025-06-06T10:00:00.000Z", "t-n": "2025-06-06T23:01:00.000Z"}  # with s-basic, s-plus
    return values | OTHER_SPELLINGS | NOT_LISTED


def _expected(values: dict[str, object], low: dt.datetime | None = None, high: dt.datetime | None = None
              ) -> list[str]:
    placed = [(instant_key(t), rid) for rid, v in values.items() if (t := instant_of(v, "iso8601")) is not None
              and (low is None or t >= low) and (high is None or t < high)]
    return [rid for _, rid in sorted(placed)]


def _paged(repo, customer: str, page_size: int, **bounds: str) -> list[str]:
    ids, token = [], None
    while True:
        page = repo.list(customer, page_size=page_size, continuation=token, **bounds)
        ids += [json.loads(r.body)["id"] for r in page.records]
        token = page.continuation
        if token is None:
            return ids


@pytest.fixture(params=["range index", "composite index"])
def container(request, cosmos_database):
    """The default indexing policy (pages ordered by the timestamp's range index), or with the composite index
    docs/read-through-api.md names (ordered by partition key, timestamp)."""
    name = f"k-{uuid.uuid4().hex[:12]}"
    policy = list_indexing_policy(SETTINGS) if request.param == "composite index" else None
    yield cosmos_database.create_container(name, PartitionKey("/customerId"), indexing_policy=policy)
    cosmos_database.delete_container(name)


def test_pages_list_every_spelling_in_instant_order_across_page_boundaries(container, archive_store, request):
    values = _records()
    for rid, at in values.items():
        doc = {"id": rid, "customerId": "cust", "amount": 1} | ({} if at is None else {"issuedAt": at})
        container.upsert_item(doc)
        container.upsert_item({**doc, "customerId": "other"})  # the same ids and times, another customer
    repo = repository(container, archive_store)
    repo.delete("t-z", "cust")  # a tombstone in the window: never listed
    values.pop("t-z")
    expected = _expected(values)
    assert "s-plus" in expected and "s-prev-plus" in expected and "x-garbage" not in expected
    for size in (3, 100):
        assert _paged(repo, "cust", size) == expected, size
    assert repo._composite_order is ("composite" in request.node.callspec.params["container"])
    low, high = dt.datetime(2025, 6, 6, tzinfo=dt.UTC), dt.datetime(2025, 6, 6, 23, 1, tzinfo=dt.UTC)
    assert _paged(repo, "cust", 3, start="2025-06-06", end="2025-06-07T00:01:00+01:00") == _expected(values, low, high)
    assert len(_paged(repo, "other", 100)) == len(expected) + 1, "the other customer's own records, t-z included"



def test_epoch_seconds_page_in_instant_order_with_ties(cosmos_container, archive_store):
    values = {"e-a": 1_750_000_000, "e-b": 1_750_000_000.0, "e-c": 1_749_999_999.5, "e-d": 1_750_086_400,
              "e-e": 1_750_000_000.25, "e-f": 1_700_000_000, "e-g": 1_750_000_000, "x-str": "2025-06-15T00:00:00.000Z",
              "x-bool": True, "x-huge": 1e300}
    for rid, at in values.items():
        cosmos_container.upsert_item({"id": rid, "customerId": "cust", "issuedAt": at})
    settings = dataclasses.replace(SETTINGS, timestamp_kind="epoch_seconds")
    repo = ReadThroughRepository(cosmos_container, archive_store, settings)
    placed = sorted((instant_key(t), rid) for rid, v in values.items() if (t := instant_of(v, "epoch_seconds")))
    assert [rid for _, rid in placed] == ["e-f", "e-c", "e-a", "e-b", "e-g", "e-e", "e-d"]
    for size in (2, 100):
        assert _paged(repo, "cust", size) == [rid for _, rid in placed], size

# -- what a page costs -------------------------------------------------------------------------------------------------
BODY = "x" * 100_000  # ~100 KB records: a page's charge is what it loads (~10 RU per MB), not its fixed costs
PER_DAY, PAGE = 2, 5


def _page_charges(repo, stats_url: str, customer: str, pages: int) -> list[float]:
    charges, token = [], None
    for _ in range(pages):
        before = booked_ru(stats_url)
        page = repo.list(customer, page_size=PAGE, continuation=token)
        charges.append(booked_ru(stats_url) - before)
        token = page.continuation
    return charges


def test_a_page_loads_the_same_however_long_the_customers_hot_history(cosmos_container, archive_store, stack):
    """Two customers written alike (PER_DAY records a day), one with 4x the other's history: their pages cost the
    same. Before, a page loaded every hot record after its token, so the long history's first page cost ~4x."""
    first = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    for customer, days in (("short", 8), ("long", 32)):
        for n in range(days * PER_DAY):
            at = canonical(first + dt.timedelta(hours=24 / PER_DAY * n))
            cosmos_container.upsert_item({"id": f"r{n:03d}", "customerId": customer, "issuedAt": at, "body": BODY})
    repo = repository(cosmos_container, archive_store)
    short = _page_charges(repo, stack.gateway_stats_url, "short", 1)
    long = _page_charges(repo, stack.gateway_stats_url, "long", 6)
    assert max(long) < 1.3 * short[0], (short, long)


@st.composite
def read_and_later(draw: st.DrawFn) -> tuple[str, str]:
    """The last value read, and a value written on the same date (or the next), any time and offset."""
    last = draw(iso_strings())
    date = dt.date(2025, 6, 6) + dt.timedelta(days=draw(st.integers(0, 1)))
    tail = draw(iso_strings() | st.sampled_from(list(OTHER_SPELLINGS.values())))[10:]
    return last if draw(st.booleans()) else date.isoformat() + last[10:], date.isoformat() + tail


@hypothesis_settings(max_examples=400, deadline=None)
@given(read_and_later())
def test_no_value_sorting_after_the_last_one_read_is_before_the_settled_instant(pair):
    """settled_below's promise, over the whole range of ISO 8601 spellings (offsets up to +-24:59, any fraction,
    dates only, impossible fields): a value the server sorts at or after ``last`` has no instant below it."""
    last, later = pair
    settled, instant = ListQuery("c", None, None, 1, None).settled_below(last), instant_of(later, "iso8601")
    if later >= last and settled is not None and instant is not None:
        assert instant_key(instant) > settled, (last, later)
