"""The local copy executor: one time slice from Cosmos DB to Parquet files in Blob Storage, plus its manifest.

Used when no Azure Data Factory is configured (and by the local ADF stand-in). Idempotent: a verified slice is
left untouched; any other slice is rewritten at the same deterministic paths, stale parts are removed, and the
manifest is written last as the commit point. The rewrite holds the slice's lease (:mod:`.slice_lease`), so runs
that copy or validate the same slice at the same time (a backfill) take turns.

Convergence: once a verified slice has been purged, whatever its range still holds (records changed after their
copy, late inserts; stubs are never read) is archived as the next generation of the same slice, appended to the
verified generations, which are never rewritten (they may hold the only copy of purged records).

A document the copy cannot archive (a lone surrogate UTF-8 cannot encode, a body over Cosmos DB's item size limit,
anything that raises while canonicalising: canonical.archivable_json) is set aside, not retried: it is named with
its partition key, id and reason in the manifest's ``left_out`` (and so in validation, the run report and the
census), stays in Cosmos DB (the purge deletes only archived records), and the rest of the slice goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.canonical import UnarchivableError, record_key
from include.cosmos_archiver.archive.manifest import LeftOutEntry, Manifest, RecordEntry, left_out_name
from include.cosmos_archiver.archive.slice_lease import SliceLease, under_slice_lease
from include.cosmos_archiver.archive.slice_manifest import copied_manifest, read_since_of, remove_stale_parts
from include.cosmos_archiver.archive.source_facts import other_spellings_seen
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.pipeline.part_writer import PartWriter
from include.cosmos_archiver.ru.budget import RuBudget
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.feed_ranges import in_turns, partition_ranges, range_key
from include.cosmos_archiver.source.reader import ReadStats, count_remaining, documents_besides, read_slice

log = logging.getLogger(__name__)


def copy_slice(
    container: ContainerProxy,
    store: ArchiveStore,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    *,
    budget: RuBudget | None = None,
    source: dict[str, str] | None = None,
    force: bool = False,
    reuse_copied: bool = False,
) -> Manifest:
    """Copy one slice and return its manifest (the existing one, untouched, if the slice is already verified).

    A verified slice is answered without touching any blob; otherwise the copy holds the slice's lease (waiting up
    to ``settings.slice_lease_wait_s`` for another run's, else SliceBusyError) and re-checks the manifest under it.
    ``reuse_copied``: a complete copy another run left ``copied`` (not validated yet) is answered as is, and
    validation decides — runs of a backfill that share a slice then read it once, not once each. (A manifest is
    written only after all its files, so ``copied`` is a whole copy; if the source moved on since, validation
    names the difference and the slice is re-copied.)
    """
    remainder = _Remainder(container, time_slice, settings, budget, spellings=other_spellings_seen(store))
    return under_slice_lease(
        store, time_slice.slice_id, settings,
        answer=lambda existing: _already_done(existing, force=force, reuse_copied=reuse_copied, remainder=remainder),
        work=lambda lease, existing: _copy(container, store, time_slice, settings, lease, budget=budget,
                                           source=source, base=_kept_generations(existing, force),
                                           sweep_ru=remainder.ru),
    )  # fmt: skip


@dataclass
class _Remainder:
    """How many documents a purged slice's range still holds: one COUNT query, asked at most once per copy
    (index-served, :func:`count_range`, unless the source has other spellings, which only a loading count places)."""

    container: ContainerProxy
    time_slice: TimeSlice
    settings: ArchiveSettings
    budget: RuBudget | None
    spellings: bool = False
    left: int | None = None
    ru: float = 0.0

    def after_purge(self, manifest: Manifest) -> int:
        if self.settings.purge == "off" or manifest.purged_generation < manifest.generation:
            return 0  # not purged yet: the purge step comes first, then the sweep
        if self.left is None:
            stats = ReadStats()
            self.left = count_remaining(self.container, self.time_slice, timestamp_field=self.settings.timestamp_field,
                                        timestamp_kind=self.settings.timestamp_kind, other_spellings=self.spellings,
                                        budget=self.budget, stats=stats)
            self.ru = stats.ru_charged
            if 0 < self.left <= len(manifest.left_out):
                # maybe only the documents the copy set aside, unchanged: they alone would make an empty generation
                self.left = documents_besides(
                    self.container, self.time_slice, manifest.left_out_versions(),
                    partition_key_path=self.settings.partition_key_path, timestamp_field=self.settings.timestamp_field,
                    timestamp_kind=self.settings.timestamp_kind, budget=self.budget, stats=stats)
                self.ru = stats.ru_charged
        return self.left


def _kept_generations(existing: Manifest | None, force: bool) -> Manifest | None:
    """The manifest whose verified generations a new copy appends to; None: the copy builds the slice afresh."""
    if existing is None or existing.verified_generation < 0:
        return None
    if force and not existing.purge_started:
        return None  # nothing has left Cosmos yet: a forced copy may rebuild the slice from the source
    return existing


def _already_done(existing: Manifest | None, *, force: bool, reuse_copied: bool,
                  remainder: _Remainder | None = None) -> Manifest | None:
    if existing is None or force:
        return None
    if existing.status == "verified":
        left = remainder.after_purge(existing) if remainder is not None else 0
        if left:
            log.info("slice %s: %d document(s) changed or arrived in its range after the purge of generation %d: "
                     "archiving them as generation %d", existing.slice_id, left, existing.generation,
                     existing.generation + 1)
            return None
        log.info("slice %s already verified (%d records, digest %s): nothing to copy",
                 existing.slice_id, existing.record_count, existing.slice_digest)
        return existing
    if existing.status == "copied" and reuse_copied:
        log.info("slice %s already copied at %s (%d records, digest %s), not validated yet: validation decides",
                 existing.slice_id, existing.copied_at, existing.record_count, existing.slice_digest)
        return existing
    return None


def _copy(
    container: ContainerProxy,
    store: ArchiveStore,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    lease: SliceLease,
    *,
    budget: RuBudget | None,
    source: dict[str, str] | None,
    base: Manifest | None = None,
    sweep_ru: float = 0.0,
) -> Manifest:
    slice_id = time_slice.slice_id
    started = time.perf_counter()
    began = dt.datetime.now(dt.UTC).timestamp()
    generation = base.verified_generation + 1 if base is not None else 0
    kept_files, kept_records = base.kept_before(generation) if base is not None else ([], [])
    archived = {(r.partition_key, r.id): r.etag for r in sorted(kept_records, key=lambda r: r.generation)}
    writer = PartWriter(store, slice_id, settings, lease, first_index=len(kept_files), generation=generation)
    records: list[RecordEntry] = []
    left_out: list[LeftOutEntry] = []
    seen: set[tuple[str, str]] = set()
    notes: list[str] = []
    read_s = 0.0
    ranges = partition_ranges(container)
    range_stats = [ReadStats() for _ in ranges]
    returned = [0] * len(ranges)
    spellings = other_spellings_seen(store)
    pages = in_turns(  # one query per physical partition, a page from each in turn (source.feed_ranges)
        read_slice(container, time_slice, timestamp_field=settings.timestamp_field,
                   timestamp_kind=settings.timestamp_kind, page_size=settings.page_size, budget=budget,
                   stats=range_stats[i], other_spellings=spellings, feed_range=feed_range)
        for i, feed_range in enumerate(ranges))
    while True:
        t0 = time.perf_counter()
        turn = next(pages, None)
        read_s += time.perf_counter() - t0
        if turn is None:
            break
        index, page = turn
        returned[index] += len(page)
        for doc in page:
            key = record_key(doc, settings.partition_key_path)
            if key in seen:  # a query retried across a partition split can repeat a document
                notes.append(f"duplicate record {key[0]}/{key[1]} returned by the query was skipped")
                continue
            seen.add(key)
            if doc.get("_etag") is not None and archived.get(key) == doc.get("_etag"):
                continue  # this very version is in a verified generation already (its purge has not run yet)
            try:
                records.append(writer.add_document(doc, key))
            except UnarchivableError as exc:
                left_out.append(LeftOutEntry(key[0], key[1], str(exc), doc.get("_etag"), doc.get("_ts"), generation))
                log.warning("slice %s: left in Cosmos DB, not archived: %s", slice_id, left_out_name(left_out[-1]))
    writer.flush()
    stats = _summed(range_stats)
    if left_out:
        notes.append(f"{len(left_out)} document(s) left in Cosmos DB, not archivable: "
                     + "; ".join(left_out_name(e) for e in left_out[:20]))

    written = {f.path for f in kept_files + writer.files}
    lease.ensure_held()  # renewed: ours for another lease period, enough for the cleanup and the commit
    notes += remove_stale_parts(store, slice_id, keep=written.__contains__, left_by="an earlier copy")

    total_s = time.perf_counter() - started
    manifest = copied_manifest(
        time_slice, settings, files=writer.files, records=records, record_bytes=writer.record_bytes, notes=notes,
        source=source, ru_charged=stats.ru_charged, throttled_requests=stats.throttled_requests,
        base=base, generation=generation, left_out=left_out, read_since=_read_since(began, stats),
        timings_s={
            "total": round(total_s, 3),
            "read": round(read_s, 3),
            "canonicalise_and_hash": round(total_s - read_s - writer.encode_s - writer.upload_s, 3),
            "encode": round(writer.encode_s, 3),
            "upload": round(writer.upload_s, 3),
        },
    )
    manifest.source_counts = {  # what each partition range's range holds (placed + other spellings sorting into it)
        "other_spellings_read": spellings,
        "ranges": {range_key(r): n - s.other_spellings + s.spelled_in_range
                   for r, n, s in zip(ranges, returned, range_stats, strict=True)},
        "other_spellings": stats.other_spellings,
    }
    manifest.add_ru("copy", stats.ru_charged)
    if sweep_ru:
        manifest.add_ru("sweep", sweep_ru)
    store.write_manifest(manifest)
    log.info("copied slice %s: %s", slice_id, manifest.summary())
    return manifest


def _summed(stats: list[ReadStats]) -> ReadStats:
    total = ReadStats()
    for s in stats:
        total.ru_charged += s.ru_charged
        total.pages += s.pages
        total.throttled_requests += s.throttled_requests
        total.page_charges += s.page_charges
        total.other_spellings += s.other_spellings
        total.spelled_in_range += s.spelled_in_range
    served = [s.first_served for s in stats if s.first_served is not None]
    total.first_served = min(served) if served else None
    return total


def _read_since(began: float, stats: ReadStats) -> int:
    """When this copy's read began: the earlier of our clock and the server's (its first answer's Date)."""
    return read_since_of(began, *([stats.first_served] if stats.first_served is not None else []))


def needs_local_copy(store: ArchiveStore, slice_id: str) -> bool:
    """True once the slice's purge has started: its next copy must append a generation, which only the local
    executor does (an Azure Data Factory re-run would overwrite the files that hold the purged records)."""
    manifest = store.read_manifest(slice_id)
    return manifest is not None and manifest.purge_started
