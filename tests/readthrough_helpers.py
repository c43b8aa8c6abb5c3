"""Shared set-up for the read-through tests and bench: a seeded dataset, archived with the project's own copy,
validation and index, and purged with the pipeline's purge (``purge_like_the_pipeline`` calls purge_slice: each
archived record leaves Cosmos DB only if its _etag is still the archived one, deleted or replaced by a stub)."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator

from azure.cosmos import ContainerProxy, DatabaseProxy, PartitionKey
from hypothesis import HealthCheck, Phase

from devstack.seed import SeedSpec, make_record
from devstack.stack import StackConfig
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import blob_container
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.purge import PurgeResult, purge_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.readthrough.index import ArchiveIndex, index_for_purge, index_slice
from include.cosmos_archiver.readthrough.repository import ReadThroughRepository
from include.cosmos_archiver.settings import ArchiveSettings, PurgeMode
from include.cosmos_archiver.slices import TimeSlice, cutoff, slice_grid

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
SETTINGS = ArchiveSettings(
    timestamp_field="issuedAt", timestamp_kind="iso8601", slice_hours=720, cutoff_days=90,
    max_file_bytes=60_000, row_group_bytes=8_000, page_size=200,
)


def seed_spec(records: int, customers: int = 6, target_kb: int = 2) -> SeedSpec:
    return SeedSpec(records=records, seed=7, target_kb=target_kb, months_back=12, customers=customers, end=NOW)


def seed(container: ContainerProxy, spec: SeedSpec) -> list[dict]:
    docs = [make_record(spec, i, NOW) for i in range(spec.records)]
    for doc in docs:
        container.upsert_item(doc)
    return docs


def due_slices(settings: ArchiveSettings = SETTINGS, now: dt.datetime = NOW) -> list[TimeSlice]:
    """The slices the DAG would archive at ``now``: whole slices older than the cutoff, over the last 13 months."""
    edge = cutoff(now, settings.cutoff_days)
    return [s for s in slice_grid(now - dt.timedelta(days=400), edge, slice_hours=settings.slice_hours)
            if s.end <= edge]


INDEX_MAX_AGE_S = 0.2  # the tests' API processes re-list the index this often, so purges wait only this long


def repository(container: ContainerProxy, store: ArchiveStore) -> ReadThroughRepository:
    return ReadThroughRepository(container, store, SETTINGS, index=ArchiveIndex(store, max_age_s=INDEX_MAX_AGE_S))


def archive_slice(container: ContainerProxy, store: ArchiveStore, time_slice: TimeSlice,
                  settings: ArchiveSettings = SETTINGS, *, index: bool = True) -> bool:
    """Copy + validate (+ index, as the DAG will after validation); False if validation failed."""
    copy_slice(container, store, time_slice, settings)
    result = validate_slice(container, store, time_slice, settings)
    if result.ok and index:
        index_slice(store, time_slice.slice_id, partition_key_path=settings.partition_key_path)
    return result.ok


def purge_like_the_pipeline(container: ContainerProxy, store: ArchiveStore, slice_id: str, *,
                            mode: PurgeMode = "delete", settings: ArchiveSettings = SETTINGS) -> PurgeResult:
    """The pipeline's own purge (pipeline/purge.py) of a verified slice: conditional delete, or stub, on the
    archived _etag."""
    manifest = store.read_manifest(slice_id)
    assert manifest is not None, f"slice {slice_id} was never copied"
    time_slice = TimeSlice(dt.datetime.fromisoformat(manifest.slice_start),
                           dt.datetime.fromisoformat(manifest.slice_end))
    # as the DAG must: index the slice, then purge no sooner than the API processes' index max age after that
    index_for_purge(store, slice_id, partition_key_path=settings.partition_key_path, wait_s=INDEX_MAX_AGE_S)
    return purge_slice(container, store, time_slice, settings, mode=mode)


@contextlib.contextmanager
def fresh_stores(stack: StackConfig, database: DatabaseProxy, partition_key_path: str = "/customerId"
                 ) -> Iterator[tuple[ContainerProxy, ArchiveStore]]:
    """A new Cosmos DB container and archive Blob container, deleted after: one per hypothesis example (function
    fixtures are not reset between examples)."""
    name = f"h-{uuid.uuid4().hex[:12]}"
    container = database.create_container(name, PartitionKey(partition_key_path))
    blobs = blob_container(stack.blob_connection_string, name)
    try:
        yield container, ArchiveStore(blobs, "records")
    finally:
        database.delete_container(name)
        blobs.delete_container()


def slice_at(moment: dt.datetime, settings: ArchiveSettings = SETTINGS) -> TimeSlice:
    """The slice of the archive grid holding ``moment``."""
    return slice_grid(moment, moment + dt.timedelta(microseconds=1), slice_hours=settings.slice_hours)[0]


# Two due slices of the tests' grid: the first is purged by delete, the second by stubs (archive_and_purge_both)
PURGE_MOMENTS = {"delete": dt.datetime(2025, 10, 10, 12, tzinfo=dt.UTC),
                 "stub": dt.datetime(2025, 12, 20, 12, tzinfo=dt.UTC)}
# hypothesis settings of examples that archive and purge (seconds each): no shrinking, the failing example is
# printed as drawn, with the blob that replays it (@reproduce_failure); fixtures are session-wide or reset by
# fresh_stores
ARCHIVING_EXAMPLES = {"deadline": None, "database": None, "phases": [Phase.explicit, Phase.generate],
                      "print_blob": True,
                      "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]}


def issued_at(i: int) -> str:
    """The timestamp of the ``i``-th test record: even ones in the delete-purged slice, odd ones in the stubbed."""
    moment = PURGE_MOMENTS[("delete", "stub")[i % 2]] + dt.timedelta(minutes=i)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def archive_and_purge_both(container: ContainerProxy, store: ArchiveStore) -> dict[str, PurgeResult]:
    """Archive the two PURGE_MOMENTS slices and purge them like the pipeline, by delete and by stubs."""
    results = {}
    for mode, moment in PURGE_MOMENTS.items():
        time_slice = slice_at(moment)
        assert archive_slice(container, store, time_slice), time_slice.slice_id
        results[mode] = purge_like_the_pipeline(container, store, time_slice.slice_id, mode=mode)  # type: ignore[arg-type]
    return results
