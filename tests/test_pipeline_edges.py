"""Edges of the pipeline against the local stack (issue 16): a document the copy cannot archive is set aside and
named while the rest of its slice is verified and purged; records that change during the copy are not failures."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from include.cosmos_archiver.archive.canonical import COSMOS_ITEM_LIMIT_BYTES, UnarchivableError, archivable_json
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.purge import purge_slice
from include.cosmos_archiver.pipeline.slice_workflow import SliceWorkflow
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.planning.due_slices import select_due_slices
from include.cosmos_archiver.reporting.run_report import build_run_report
from include.cosmos_archiver.source.census import take_census
from tests.test_purge import DAY, NOW, OUTSIDE, SETTINGS, archive_verified, archived_latest, documents, in_cosmos
from tests.test_slice_workflow import MemoryStatus

POISON = {"id": "poison", "customerId": "c-2", "issuedAt": "2025-03-01T05:30:00.000Z", "note": "bad \ud800 text"}


@pytest.fixture
def seeded(cosmos_container):
    for doc in documents():
        cosmos_container.upsert_item(doc)
    return cosmos_container


@pytest.mark.parametrize(("document", "says"), [
    ({"id": "a", "note": "\udc00"}, "lone surrogate"),
    ({"id": "a", "amount": float("nan")}, "cannot be encoded as JSON"),
    ({"id": "a", "body": "x" * COSMOS_ITEM_LIMIT_BYTES}, "over Cosmos DB's item size limit"),
])
def test_what_the_copy_cannot_archive_is_refused_with_its_reason(document, says):
    with pytest.raises(UnarchivableError, match=says):
        archivable_json(document)


def test_deep_nesting_is_refused_with_its_reason():
    deep: dict = {}
    for _ in range(100_000):
        deep = {"a": deep}
    with pytest.raises(UnarchivableError, match="nested too deeply"):
        archivable_json({"id": "a", "deep": deep})


@pytest.mark.parametrize("validation", ["fast", "deep"])
def test_a_poison_document_is_set_aside_named_and_the_rest_of_its_slice_verified_and_purged(
    seeded, archive_store, validation
):
    settings = dataclasses.replace(SETTINGS, validation=validation)
    seeded.upsert_item(POISON)  # Cosmos DB (and cosmosdb-server) store a lone surrogate

    manifest = copy_slice(seeded, archive_store, DAY, settings)

    assert [(e.partition_key, e.id) for e in manifest.left_out] == [("c-2", "poison")]
    assert "lone surrogate" in manifest.left_out[0].reason and manifest.record_count == 24
    assert any("c-2/poison" in n for n in manifest.summary()["left_out"])
    result = validate_slice(seeded, archive_store, DAY, settings)
    assert result.ok, result.message()
    assert [n.split(":")[0] for n in result.left_out] == ["c-2/poison"] and "c-2/poison" in result.message()
    purged = purge_slice(seeded, archive_store, DAY, settings)
    assert purged.purged == 24, purged.message()
    assert set(in_cosmos(seeded)) == {"poison", *OUTSIDE}  # the poison document stays, untouched
    assert seeded.read_item("poison", partition_key="c-2")["note"] == POISON["note"]
    assert archive_verified(archive_store) and len(archived_latest(archive_store)) == 24
    if validation == "deep":
        return  # the rest does not depend on how the source was re-read

    # Named in the census and the run report; the next run has nothing new to archive (no empty generations).
    census = take_census(seeded, archive_store, settings, now=NOW)
    assert census.counts["unarchivable"] == 1 and census.balanced, census.details()
    assert census.left_out_ids["unarchivable"][0].startswith("c-2/poison: ")
    report = build_run_report("run-1", [archive_store.read_manifest(DAY.slice_id)], [], None, None, None)
    assert "c-2/poison" in report.html and report.rows[0].left_out
    plan = select_due_slices(archive_store, settings, now=NOW, window=(DAY.start, DAY.end), container=seeded)
    assert plan.due == [], plan.describe()
    assert copy_slice(seeded, archive_store, DAY, settings).generation == 0

    # Its writer mends it: the next run archives it as a new generation, and purges it.
    seeded.upsert_item({**POISON, "note": "mended"})
    plan = select_due_slices(archive_store, settings, now=NOW, window=(DAY.start, DAY.end), container=seeded)
    assert [s.slice_id for s in plan.due] == [DAY.slice_id], plan.describe()
    mended = copy_slice(seeded, archive_store, DAY, settings)
    assert mended.generation == 1 and mended.left_out == [] and mended.record_count == 25
    assert validate_slice(seeded, archive_store, DAY, settings).ok
    assert purge_slice(seeded, archive_store, DAY, settings).purged == 1
    assert set(in_cosmos(seeded)) == set(OUTSIDE) and archived_latest(archive_store)["poison"]["note"] == "mended"


class Busy:
    """Updates two records of the slice about every ``every_s`` seconds from its start until it is stopped."""

    def __init__(self, container, ids: list[tuple[str, str]], every_s: float = 0.3) -> None:
        self.container, self.ids, self.every_s = container, ids, every_s
        self.stop, self.writes = threading.Event(), 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for rid, pk in self.ids:
                doc = self.container.read_item(rid, partition_key=pk)
                doc["amount"] = str(self.writes)
                self.container.upsert_item(doc)
                self.writes += 1
            self.stop.wait(self.every_s)

    def __enter__(self) -> Busy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def test_records_updated_through_copy_validation_and_purge_are_changed_not_failures(seeded, archive_store):
    busy_ids = [("inv-005", "c-1"), ("inv-010", "c-2")]
    status = MemoryStatus()
    workflow = SliceWorkflow(status, attempts=3, backoff_s=0)
    started = time.perf_counter()
    with Busy(seeded, busy_ids) as busy:
        time.sleep(1.1)  # their _ts is in the second the copy starts in, or later
        copy_slice(seeded, archive_store, DAY, SETTINGS)
        time.sleep(1.1)  # updated after the copy read them
        outcome = workflow.validate(
            DAY, "run-1", route="local", check=lambda s: validate_slice(seeded, archive_store, s, SETTINGS),
            copiers={"local": lambda s: copy_slice(seeded, archive_store, s, SETTINGS, force=True)})
        # fast validation proves the copy complete by index-served counts (updates do not change them); the
        # purge's If-Match on the archived etag then keeps the two updated records in Cosmos DB, as changed
        assert outcome.ok and outcome.attempts == 1, outcome.message
        result = workflow.purge(outcome, "run-1", purge=lambda s: purge_slice(seeded, archive_store, s, SETTINGS),
                                notify=lambda o: pytest.fail(f"notified: {o.message}"))
    assert busy.writes >= 4
    assert status.value.status == "Running" and status.writes == []  # nothing halted
    assert result.purged == 22 and result.changed == 2, result.message()
    assert set(in_cosmos(seeded)) == {"inv-005", "inv-010", *OUTSIDE}

    # The next run archives the two as a new generation; validated and purged, the slice is empty.
    again = copy_slice(seeded, archive_store, DAY, SETTINGS)
    assert again.generation == 1 and sorted(r.id for r in again.records if r.generation == 1) == ["inv-005", "inv-010"]
    assert validate_slice(seeded, archive_store, DAY, SETTINGS).ok
    assert purge_slice(seeded, archive_store, DAY, SETTINGS).purged == 2
    assert set(in_cosmos(seeded)) == set(OUTSIDE)
    latest = archived_latest(archive_store)
    assert len(latest) == 24 and latest["inv-005"]["amount"] != "0" and archive_verified(archive_store)
    assert time.perf_counter() - started < 60
