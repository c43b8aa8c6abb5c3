"""Shared set-up for the read-through tests and bench: a seeded dataset, archiving it with the project's own copy
and validation, and a purge that does exactly what the pipeline's purge does.

``purge_like_the_pipeline`` stands in for pipeline/purge.py (another branch): once that is merged, switch it to
the real purge. It removes each archived record from Cosmos DB only if its _etag is still the archived one
(If-Match), or replaces it by a stub, the purge's two modes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import CosmosHttpResponseError

from devstack.seed import SeedSpec, make_record
from include.cosmos_archiver.archive.parquet_layout import decode_rows
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.readthrough.index import index_slice
from include.cosmos_archiver.readthrough.markers import STUB_MARKER
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice, cutoff, plan_slices

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
    return [s for s in plan_slices(now - dt.timedelta(days=400), edge, slice_hours=settings.slice_hours)
            if s.end <= edge]


def archive_slice(container: ContainerProxy, store: ArchiveStore, time_slice: TimeSlice,
                  settings: ArchiveSettings = SETTINGS, *, index: bool = True) -> bool:
    """Copy + validate (+ index, as the DAG will after validation); False if validation failed."""
    copy_slice(container, store, time_slice, settings)
    result = validate_slice(container, store, time_slice, settings)
    if result.ok and index:
        index_slice(store, time_slice.slice_id, partition_key_path=settings.partition_key_path)
    return result.ok


@dataclass
class PurgeResult:
    removed: int = 0
    changed_since_archive: int = 0  # If-Match failed: the record was written after archiving; kept
    already_gone: int = 0


def purge_like_the_pipeline(container: ContainerProxy, store: ArchiveStore, slice_id: str, *,
                            mode: str = "delete") -> PurgeResult:
    """What pipeline/purge.py does for a verified slice: conditional delete (or stub) on the archived _etag."""
    manifest = store.read_manifest(slice_id)
    assert manifest is not None and manifest.status == "verified", f"slice {slice_id} is not verified"
    result = PurgeResult()
    for f in manifest.files:
        for row in decode_rows(store.download(f.path)):
            try:
                if mode == "delete":
                    container.delete_item(row.id, row.partition_key, etag=row.etag,
                                          match_condition=MatchConditions.IfNotModified)
                else:
                    doc = json.loads(row.doc)  # the purge's stub_document: id, partition key, timestamp, pointer
                    stub = {"id": row.id, "customerId": row.partition_key, "issuedAt": doc["issuedAt"],
                            STUB_MARKER: {"slice": slice_id, "location": store.url(f.path), "sha256": row.sha256,
                                          "etag": row.etag, "generation": 0, "archived_at": manifest.copied_at}}
                    container.replace_item(row.id, stub, etag=row.etag, match_condition=MatchConditions.IfNotModified)
                result.removed += 1
            except CosmosHttpResponseError as exc:
                if exc.status_code == 412:
                    result.changed_since_archive += 1
                elif exc.status_code == 404:
                    result.already_gone += 1
                else:
                    raise
    return result
