"""The census accounts for every document: counts match the seeded truth for every category, each left-out
document is named, and a slice sealed under a wrong timestamp_field is caught."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time

import pytest

from devstack.stack import EMULATOR_COSMOS_KEY
from include.cosmos_archiver.archive.source_facts import note_other_spellings
from include.cosmos_archiver.cli.main import main
from include.cosmos_archiver.cli.targets import BLOB_CONNECTION_STRING_ENV, COSMOS_ENDPOINT_ENV, COSMOS_KEY_ENV
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.planning.due_slices import select_due_slices
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.census import CATEGORIES, take_census

NOW = dt.datetime(2026, 6, 1, 13, 30, tzinfo=dt.UTC)  # cutoff 2026-03-03, lookback from 2026-02-21
SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", cutoff_days=90, lookback_days=100,
                           page_size=4)


def day(d: str) -> TimeSlice:
    start = dt.datetime.fromisoformat(d).replace(tzinfo=dt.UTC)
    return TimeSlice(start, start + dt.timedelta(days=1))


ARCHIVED = {  # in slices 02-25 and 02-26, which the test copies and validates
    "a1": "2026-02-25T01:00:00.000Z", "a2": "2026-02-25T12:00:00.000Z", "a3": "2026-02-25T23:00:00.000Z",
    "a-offset": "2026-02-24T22:00:00-05:00",  # 03:00 UTC on the 25th
    "a-date": "2026-02-26", "a4": "2026-02-26T08:00:00.000Z",
}
WAITING = {"w1": "2026-02-27T01:00:00.000Z", "w2": "2026-03-02T23:59:59.999Z", "w-offset": "2026-02-27T10:00:00+01:00"}
HOT = {"h1": "2026-05-01T00:00:00.000Z", "h2": "2026-03-03T00:00:00.000Z", "h-date": "2026-05-02"}
OLD = {"o1": "2025-01-01T00:00:00.000Z", "o-offset": "2025-01-02T00:00:00+00:00"}
SEALED = {"s1": "2026-02-28T05:00:00.000Z", "s2": "2026-02-28T06:00:00+00:00"}  # slice verified under a wrong field


def seed(container) -> None:
    for group in (ARCHIVED, WAITING, HOT, OLD, SEALED):
        for doc_id, issued in group.items():
            container.upsert_item({"id": doc_id, "customerId": "c-1", "issuedAt": issued})
    container.upsert_item({"id": "no-ts", "customerId": "c-2"})
    container.upsert_item({"id": "null-ts", "customerId": "c-2", "issuedAt": None})
    container.upsert_item({"id": "number-ts", "customerId": "c-2", "issuedAt": 1772000000})
    container.upsert_item({"id": "bool-ts", "customerId": "c-2", "issuedAt": True})
    container.upsert_item({"id": "words", "customerId": "c-2", "issuedAt": "yesterday"})
    container.upsert_item({"id": "us-date", "customerId": "c-2", "issuedAt": "02/25/2026"})
    container.upsert_item({"id": "no-pk", "issuedAt": "2026-02-25T10:00:00.000Z"})
    container.upsert_item({"id": "no-pk-offset", "issuedAt": "2026-02-27T10:00:00+02:00"})
    container.upsert_item({"id": "null-pk", "customerId": None, "issuedAt": "2026-02-25T11:00:00.000Z"})


@pytest.fixture
def archived_source(cosmos_container, archive_store):
    seed(cosmos_container)
    # the source spells some timestamps other than canonical UTC, as preflight's sample would have recorded
    note_other_spellings(archive_store, found_by="preflight's sample", count=1)
    time.sleep(2.1)  # _ts has whole seconds: the copy reads in a later second than the seeding wrote
    for d in ("2026-02-25", "2026-02-26"):
        copy_slice(cosmos_container, archive_store, day(d), SETTINGS)
        assert validate_slice(cosmos_container, archive_store, day(d), SETTINGS).ok
    wrong = ArchiveSettings(**{**SETTINGS.__dict__, "timestamp_field": "issuedOn"})
    copy_slice(cosmos_container, archive_store, day("2026-02-28"), wrong)
    assert validate_slice(cosmos_container, archive_store, day("2026-02-28"), wrong).ok  # sealed with 0 records
    return cosmos_container, archive_store


def test_census_counts_match_the_seeded_truth_and_name_every_left_out_document(archived_source):
    container, store = archived_source
    time.sleep(2.1)
    changed = container.read_item("a2", partition_key="c-1")
    changed["amount"] = 7
    container.upsert_item(changed)  # updated after its slice was verified
    container.upsert_item({"id": "late", "customerId": "c-3", "issuedAt": "2026-02-26T09:00:00.000Z"})  # inserted

    census = take_census(container, store, SETTINGS, now=NOW)

    expected = {
        "archived": len(ARCHIVED) - 1 + 1,  # a2 changed; null-pk (key "null") is archived too
        "changed_since_archived": 2,
        "waiting": len(WAITING),
        "hot": len(HOT),
        "timestamp_missing": 2,
        "timestamp_wrong_kind": 2,
        "timestamp_unparseable": 2,
        "partition_key_missing": 2,
        "older_than_lookback": len(OLD),
        "missing_from_verified": len(SEALED),
    }
    assert census.counts == {c: expected.get(c, 0) for c in CATEGORIES}, census.details()
    assert census.total == sum(expected.values()) and census.balanced
    assert {r: sorted(ids) for r, ids in census.left_out_ids.items()} == {
        "timestamp_missing": ["c-2/no-ts", "c-2/null-ts"],
        "timestamp_wrong_kind": ["c-2/bool-ts", "c-2/number-ts"],
        "timestamp_unparseable": ["c-2/us-date", "c-2/words"],
        "partition_key_missing": ["~undefined/no-pk", "~undefined/no-pk-offset"],
        "older_than_lookback": ["c-1/o-offset", "c-1/o1"],
        "missing_from_verified": ["c-1/s1", "c-1/s2"],
    }
    assert census.has_left_out
    # a2 and "late" go into a new generation by themselves (purge keeps them, the sweep copies them): no re-open
    assert (census.slices_to_reopen, census.slices_to_sweep) == (["2026/02/28"], ["2026/02/25", "2026/02/26"])
    assert "the next run archives the changed documents of 2 verified slice(s) as a new generation" in census.line()
    unpurged = take_census(container, store, dataclasses.replace(SETTINGS, purge="off"), now=NOW)
    assert unpurged.slices_to_reopen == ["2026/02/25", "2026/02/26", "2026/02/28"] and not unpurged.slices_to_sweep
    assert any("issuedOn" in n for n in census.notes)
    line = census.line()
    assert "6 archived" in line and "2 changed since archived" in line and "12 left out" in line, line
    assert "c-1/s1" in census.details() and census.to_dict()["has_left_out"] is True


def test_documents_before_the_cutoff_in_a_slice_not_cold_yet_are_hot_as_the_plan_sees_them(
    cosmos_container, archive_store
):
    for doc_id, issued in {**WAITING, **HOT}.items():
        cosmos_container.upsert_item({"id": doc_id, "customerId": "c-1", "issuedAt": issued})
    daily = take_census(cosmos_container, archive_store, SETTINGS, now=NOW)
    assert (daily.counts["waiting"], daily.counts["hot"]) == (len(WAITING), len(HOT))
    # weekly slices (the grid starts on a Thursday): 2026-02-26..03-05 holds the cutoff (03-03), so it is not cold
    # and the plan does not archive it yet; every WAITING document lies in it
    weekly = dataclasses.replace(SETTINGS, slice_hours=168)
    planned = select_due_slices(archive_store, weekly, now=NOW).due
    assert planned and planned[-1].end == dt.datetime(2026, 2, 26, tzinfo=dt.UTC)
    counted = take_census(cosmos_container, archive_store, weekly, now=NOW)
    assert (counted.counts["waiting"], counted.counts["hot"]) == (0, len(WAITING) + len(HOT)), counted.line()


def test_a_clean_archive_has_nothing_left_out(cosmos_container, archive_store):
    for doc_id, issued in {**ARCHIVED, **HOT}.items():
        cosmos_container.upsert_item({"id": doc_id, "customerId": "c-1", "issuedAt": issued})
    note_other_spellings(archive_store, found_by="preflight's sample", count=1)  # ARCHIVED has some
    time.sleep(2.1)
    for d in ("2026-02-25", "2026-02-26"):
        copy_slice(cosmos_container, archive_store, day(d), SETTINGS)
        assert validate_slice(cosmos_container, archive_store, day(d), SETTINGS).ok

    charges: list[float] = []

    class RecordingBudget:  # the RuBudget seam: the census pays for each page through it
        def before_request(self, expected_ru: float) -> None:
            pass

        def after_request(self, charged_ru: float, throttled: bool, served_at: float | None = None) -> None:
            charges.append(charged_ru)

    census = take_census(cosmos_container, archive_store, SETTINGS, now=NOW, exact=True, budget=RecordingBudget())

    assert census.counts["archived"] == len(ARCHIVED) and census.counts["hot"] == len(HOT)
    assert not census.has_left_out and census.balanced and not census.slices_to_reopen
    assert census.ru_charged > 0 and census.queries > 0
    assert round(sum(charges), 2) == census.ru_charged and len(charges) >= census.queries


def test_census_with_epoch_seconds_reports_strings_as_the_wrong_kind(cosmos_container, archive_store):
    settings = ArchiveSettings(timestamp_field="paidAt", timestamp_kind="epoch_seconds", cutoff_days=90,
                               lookback_days=100)
    feb_25 = int(dt.datetime(2026, 2, 25, 6, tzinfo=dt.UTC).timestamp())
    cosmos_container.upsert_item({"id": "n1", "customerId": "c", "paidAt": feb_25})
    cosmos_container.upsert_item({"id": "n2", "customerId": "c", "paidAt": feb_25 + 0.5})
    cosmos_container.upsert_item({"id": "s1", "customerId": "c", "paidAt": str(feb_25)})
    cosmos_container.upsert_item({"id": "hot", "customerId": "c", "paidAt": int(NOW.timestamp())})

    census = take_census(cosmos_container, archive_store, settings, now=NOW)

    assert (census.counts["waiting"], census.counts["hot"], census.counts["timestamp_wrong_kind"]) == (2, 1, 1)
    assert census.left_out_ids == {"timestamp_wrong_kind": ["c/s1"]} and census.balanced


def test_the_copy_leaves_out_documents_without_their_partition_key(cosmos_container, archive_store):
    # cosmosdb-server keys documents by id alone, so each has its own id here (tests/test_timestamps.py checks the
    # key texts of one id under the three partition keys).
    for doc in ({"id": "k1", "customerId": "null", "issuedAt": "2026-02-25T01:00:00.000Z"},
                {"id": "k2", "customerId": None, "issuedAt": "2026-02-25T02:00:00.000Z"},
                {"id": "k3", "issuedAt": "2026-02-25T03:00:00.000Z"}):
        cosmos_container.upsert_item(doc)
    manifest = copy_slice(cosmos_container, archive_store, day("2026-02-25"), SETTINGS)
    assert sorted((r.partition_key, r.id) for r in manifest.records) == [('"null"', "k1"), ("null", "k2")]
    assert validate_slice(cosmos_container, archive_store, day("2026-02-25"), SETTINGS).ok
    census = take_census(cosmos_container, archive_store, SETTINGS, now=NOW)
    assert census.left_out_ids == {"partition_key_missing": ["~undefined/k3"]}


def test_cosmos_archive_census_prints_the_line_and_ids_and_exits_1_when_anything_is_left_out(
        cosmos_container, archive_store, stack, monkeypatch, capsys):
    cosmos_container.upsert_item({"id": "ok", "customerId": "c", "issuedAt": "2026-02-25T01:00:00.000Z"})
    cosmos_container.upsert_item({"id": "bad", "customerId": "c", "issuedAt": 1772000000})
    monkeypatch.setenv(COSMOS_ENDPOINT_ENV, stack.cosmos_endpoint)
    monkeypatch.setenv(COSMOS_KEY_ENV, EMULATOR_COSMOS_KEY)
    monkeypatch.setenv(BLOB_CONNECTION_STRING_ENV, stack.blob_connection_string)
    settings = {"database": "tests", "container": cosmos_container.id, "timestamp_field": "issuedAt",
                "timestamp_kind": "iso8601", "cutoff_days": 90, "lookback_days": 100,
                "blob_container": archive_store.container.container_name}
    args = ["census", "--settings-json", json.dumps(settings), "--now", NOW.isoformat()]

    assert main(args) == 1
    out = capsys.readouterr().out
    assert "2 documents: 0 archived, 0 changed since archived, 1 waiting, 0 hot, 1 left out" in out
    assert "timestamp_wrong_kind: c/bad" in out
    assert main([*args, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["counts"]["timestamp_wrong_kind"] == 1
    cosmos_container.delete_item("bad", partition_key="c")
    assert main(args) == 0
