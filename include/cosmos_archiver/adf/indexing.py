"""Turn the Parquet files an Azure Data Factory copy wrote into an archived slice: write our manifest for them.

ADF writes neither a manifest nor hashes, and serialises each document as JSON text in its own form (key order,
spacing, escapes). :func:`index_adf_slice` reads every Parquet file in the slice folder that the pipeline wrote
(any ``*.parquet`` directly in the folder other than our own ``part-NNNNN.parquet``; the pipeline names them
``adf_NNNNN.parquet``), canonicalises and hashes each document, and writes ``<slice folder>/_manifest.json`` with
status ``copied`` and executor ``adf``. :func:`validation.validate_slice` then proves the slice against the source
exactly as it does for the local executor's output.

The pipeline's query holds only what a range query places right (``placedFilter``: for ISO 8601 timestamps the
canonical UTC spelling). Given the source container, indexing adds the slice's documents in other ISO 8601
spellings (an offset, a date only), placed by their UTC instant, as a part of the local executor's own, so the slice
holds exactly what validation reads.
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
import time

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.canonical import record_key, sha256_hex
from include.cosmos_archiver.archive.manifest import FileEntry, Manifest, RecordEntry
from include.cosmos_archiver.archive.parquet_layout import decode_any
from include.cosmos_archiver.archive.slice_lease import SliceLease, under_slice_lease
from include.cosmos_archiver.archive.slice_manifest import copied_manifest, read_since_of, remove_stale_parts
from include.cosmos_archiver.archive.source_facts import other_spellings_seen
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.pipeline.part_writer import PartWriter
from include.cosmos_archiver.ru.budget import RuBudget, UnlimitedBudget
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.reader import ReadStats, SliceRead, read_other_spellings

log = logging.getLogger(__name__)
OWN_PART_PREFIX = "part-"  # ArchiveStore.part_path: the local executor's files, never an ADF copy's
EXECUTOR = "adf"


class AdfIndexError(TerminalError, RuntimeError):
    pass


def _is_adf_file(path: str) -> bool:
    return not posixpath.basename(path).startswith(OWN_PART_PREFIX)


def adf_files(store: ArchiveStore, slice_id: str) -> list[str]:
    """The slice folder's Parquet files that are not the local executor's, sorted by name."""
    return [p for p in store.list_parts(slice_id) if _is_adf_file(p)]


def index_adf_slice(
    store: ArchiveStore,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    *,
    container: ContainerProxy | None = None,
    budget: RuBudget | None = None,
    run_id: str | None = None,
    run_start: dt.datetime | None = None,
    force: bool = False,
) -> Manifest:
    """Write (and return) the manifest of a slice an ADF pipeline run has just copied.

    ``container`` (the source, paced by ``budget``): add the documents in other ISO 8601 spellings (module
    docstring); without it an ISO 8601 slice that holds any is left for validation to name.

    A slice already ``verified`` is returned untouched (unless ``force``). Parts a former local copy left in the
    folder are removed (the ADF run is the newer copy and the slice is not verified), as ``copy_slice`` removes
    stale parts. A record found in two files with the same content (a stale file of an earlier run) is kept once,
    with a note; with different content the slice cannot be indexed and AdfIndexError names the record and files.
    An unreadable file raises AdfIndexError naming it. ``run_id`` (the ADF pipeline run) goes into the notes.
    ``run_start`` (the pipeline run's ``runStart``, ADF's clock) sets the manifest's ``read_since``: a document
    written since then may have been read before or after its change, so validation names it as changed (kept in
    Cosmos DB for a later generation) instead of failing the slice; without it, the indexing time stands in (later
    than the copy: a record changed during the copy then fails validation and the slice is copied again).
    A verified slice is answered without touching any blob; otherwise indexing holds the slice's lease (as copy and
    validation do) and re-checks the manifest under it.
    """
    return under_slice_lease(
        store, time_slice.slice_id, settings,
        answer=lambda existing: _already_verified(existing, force),
        work=lambda lease, _: _index(store, time_slice, settings, lease, run_id, container, budget,
                                     None if run_start is None else read_since_of(run_start.timestamp())),
    )  # fmt: skip


def _already_verified(existing: Manifest | None, force: bool) -> Manifest | None:
    if existing is None or existing.status != "verified" or force:
        return None
    log.info("slice %s already verified (%d records): not re-indexed", existing.slice_id, existing.record_count)
    return existing


def _index(
    store: ArchiveStore,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    lease: SliceLease,
    run_id: str | None,
    container: ContainerProxy | None,
    budget: RuBudget | None,
    read_since: int | None,
) -> Manifest:
    slice_id = time_slice.slice_id
    started = time.perf_counter()
    notes = [f"copied by Azure Data Factory pipeline run {run_id}"] if run_id else []
    notes.append("RU charged by the Data Factory copy is not known here; see the pipeline run's activity output")
    lease.ensure_held()
    notes += remove_stale_parts(store, slice_id, keep=_is_adf_file, left_by="an earlier local copy")

    files: list[FileEntry] = []
    records: dict[tuple[str, str], RecordEntry] = {}
    found_in: dict[tuple[str, str], str] = {}
    record_bytes = 0
    for path in adf_files(store, slice_id):
        data = store.download(path)
        count = 0
        try:
            rows = list(decode_any(data, settings.partition_key_path))
        except Exception as exc:  # pyarrow raises several types for a damaged file; decode_any ValueError
            raise AdfIndexError(
                f"slice {slice_id}: {path} is not a readable ADF Parquet file ({exc}); re-run the copy"
            ) from None
        for row in rows:
            count += 1
            key = (row.partition_key, row.id)
            if key in records:
                if records[key].sha256 != row.sha256:
                    raise AdfIndexError(
                        f"slice {slice_id}: record {key[0]}/{key[1]} differs between {found_in[key]} and {path} "
                        "(files of two copy runs); delete the slice folder's adf_*.parquet files and re-run the copy"
                    )
                notes.append(f"duplicate record {key[0]}/{key[1]} in {path} (same content as in {found_in[key]})")
                continue
            records[key] = RecordEntry(partition_key=key[0], id=key[1], sha256=row.sha256, file=len(files))
            found_in[key] = path
            record_bytes += len(row.doc)
        files.append(FileEntry(path=path, sha256=sha256_hex(data), bytes=len(data), records=count))

    stats = ReadStats()
    if container is not None:
        writer = PartWriter(store, slice_id, settings, lease, first_index=len(files))
        pages = read_other_spellings(SliceRead(
            container, time_slice, settings.timestamp_field, settings.timestamp_kind, settings.page_size,
            budget=budget or UnlimitedBudget(), stats=stats, partition_key_path=settings.partition_key_path,
            other_spellings=other_spellings_seen(store),  # only where the source has them (archive.source_facts)
        ))  # fmt: skip
        for page in pages:
            for doc in page:
                key = record_key(doc, settings.partition_key_path)
                if key in records:  # an ADF file of a pipeline without placedFilter: validation judges its place
                    notes.append(f"record {key[0]}/{key[1]} in another ISO 8601 spelling is in {found_in[key]} too")
                    continue
                records[key] = writer.add_document(doc, key)
        writer.flush()
        files += writer.files
        record_bytes += writer.record_bytes
        added = sum(f.records for f in writer.files)
        if added:
            notes.append(f"{added} document(s) in other ISO 8601 "
                         f"spellings of {settings.timestamp_field} placed by their UTC instant and copied by the "
                         f"local executor ({stats.ru_charged:.0f} RU)")

    total_s = time.perf_counter() - started
    manifest = copied_manifest(
        time_slice, settings, files=files, records=records.values(), record_bytes=record_bytes, notes=notes,
        executor=EXECUTOR, timings_s={"total": round(total_s, 3), "index": round(total_s, 3)}, read_since=read_since,
    )
    if stats.ru_charged:
        manifest.add_ru("copy", stats.ru_charged)
    lease.ensure_held()  # renewed: ours for another lease period, enough for the commit
    store.write_manifest(manifest)
    log.info("indexed ADF copy of slice %s: %s", slice_id, manifest.summary())
    return manifest
