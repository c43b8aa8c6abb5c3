"""Prove a copied slice identical to its source before anything may be removed from Cosmos DB.

The archive side is always re-read from Blob Storage (:func:`verify_archive`: every file's sha256 against the
manifest, every row's sha256 recomputed from the stored JSON, every manifest record found); the pre-purge
re-verification and restore use the same check. The source side depends on ``settings.validation``:

- ``fast`` (default, local executor): the sha256 was taken at copy time from Cosmos' own bytes, so the source is only
  counted: one index-served ``COUNT`` of the slice's range per partition key range (:func:`source.reader.count_range`,
  loads no document), compared with what the copy's range query placed from that range (``manifest.source_counts``),
  counting only documents last written before the copy began (``_ts`` < ``read_since``). Equal counts prove every
  placed record still there unchanged; the archive's own hashes prove what it holds; the purge deletes with If-Match
  on the archived etag (a record changed since is kept, 412, and archived again by the next generation) and only what
  was archived, so nothing unarchived can leave Cosmos. When a count differs (a record changed, arrived or left since
  the copy, a non-canonical timestamp in the range), or the copy recorded no counts, the source is listed, ids and
  ``_etag`` (no bodies, but ``_etag`` is not indexed: on Azure the listing loads every document of the range, ~3 RU
  per 300 KB record), and a record missing, deleted or moved is named. (Other ISO 8601 spellings, when the source has
  them, are counted by their own query, which loads the documents near the slice: see archive.source_facts.)
- ``deep``: the whole slice is read again and every document hashed afresh (the former default; twice the read RU).
  Slices Azure Data Factory copied (no hashes or etags from Cosmos in their manifest) are always checked deep.

The result names exactly which records are missing from the archive, extra in it, or differ, and which files are
damaged. Records that change are not failures: a record written or updated since its generation's copy began
(``_ts`` at or after the manifest's ``read_since``) is listed as ``changed``; it stays in Cosmos DB (it is not in
the manifest, or the purge's If-Match on the archived etag keeps it) and a later generation archives it. Documents
the copy could not archive (the manifest's ``left_out``) are listed as left out. The slice fails only when the
archive is wrong (a file or hash does not match, a record is in the archive that Cosmos DB no longer has) or a record
that existed unchanged when the slice was copied is missing from it or differs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.canonical import (
    UnarchivableError,
    archivable_json,
    printable,
    record_key,
    sha256_hex,
)
from include.cosmos_archiver.archive.manifest import Manifest, RecordEntry, left_out_name
from include.cosmos_archiver.archive.parquet_layout import ArchivedRow, decode_any
from include.cosmos_archiver.archive.slice_lease import SliceLease, under_slice_lease
from include.cosmos_archiver.archive.source_facts import note_other_spellings, other_spellings_seen
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.id_lists import name_ids
from include.cosmos_archiver.ru.budget import RuBudget, UnlimitedBudget
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.feed_ranges import partition_ranges, range_key
from include.cosmos_archiver.source.reader import (
    COUNT,
    ReadStats,
    SliceRead,
    count_range,
    read_other_spellings,
    read_slice,
    slice_versions,
)

log = logging.getLogger(__name__)


@dataclass
class BadFile:
    path: str
    reason: str
    records: list[str]


@dataclass
class ValidationResult:
    slice_id: str
    ok: bool
    source_count: int = 0
    sink_count: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    bad_files: list[BadFile] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # written since the copy began: stay in Cosmos DB, not failures
    left_out: list[str] = field(default_factory=list)  # "pk/id: reason" of documents the copy could not archive
    ru_charged: float = 0.0
    seconds: float = 0.0
    validated_at: str = ""
    skipped_reason: str | None = None
    mode: str = ""

    def message(self) -> str:
        if self.skipped_reason:
            return f"slice {self.slice_id}: {self.skipped_reason}"
        if self.ok:
            text = f"slice {self.slice_id}: verified {self.sink_count} records identical to the source"
            if self.changed:
                text += (f"; {len(self.changed)} changed since the copy began (kept in Cosmos DB, archived by a later "
                         f"generation): {name_ids(self.changed)}")
            if self.left_out:
                text += (f"; {len(self.left_out)} left in Cosmos DB, not archivable (never purged): "
                         f"{name_ids(self.left_out)}")
            return text
        parts = [f"slice {self.slice_id}: validation FAILED (source {self.source_count}, archive {self.sink_count})"]
        for label, ids in (("missing from archive", self.missing), ("extra in archive", self.extra),
                           ("differing", self.differing)):
            if ids:
                parts.append(f"{len(ids)} {label}: {name_ids(ids)}")
        for bad in self.bad_files:
            records = name_ids(bad.records)
            parts.append(f"damaged file {bad.path}: {bad.reason}; its {len(bad.records)} records: {records}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_name(pk: str, rid: str) -> str:
    """``pk/id`` for messages (printable: a lone surrogate is written ``\\udxxx``)."""
    return printable(f"{pk}/{rid}")


def validate_slice(
    container: ContainerProxy,
    store: ArchiveStore,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    *,
    budget: RuBudget | None = None,
    force: bool = False,
) -> ValidationResult:
    """Validate one slice and record the outcome in its manifest (status ``verified`` or ``failed``).

    A verified (or never copied) slice is answered without touching any blob; otherwise validation holds the
    slice's lease, so no copy rewrites the files while they are checked, and re-reads the manifest under it.
    """
    slice_id = time_slice.slice_id

    def work(lease: SliceLease, manifest: Manifest | None) -> ValidationResult:
        assert manifest is not None  # _answer_without_validating answers a missing manifest
        return _validate(container, store, time_slice, settings, manifest, lease, budget=budget)

    return under_slice_lease(
        store, slice_id, settings, answer=lambda manifest: _answer_without_validating(store, slice_id, manifest, force),
        work=work,
    )  # fmt: skip


def _answer_without_validating(
    store: ArchiveStore, slice_id: str, manifest: Manifest | None, force: bool
) -> ValidationResult | None:
    if manifest is None:
        return ValidationResult(slice_id, ok=False, bad_files=[BadFile(store.manifest_path(slice_id),
                                "no manifest: the slice was never copied (run the copy first)", [])])
    if manifest.status == "verified" and not force:
        return ValidationResult(slice_id, ok=True, source_count=manifest.record_count,
                                sink_count=manifest.record_count,
                                skipped_reason=f"already verified at {(manifest.validation or {}).get('validated_at')}")
    return None


@dataclass
class ArchiveCheck:
    """What re-reading a slice's files from Blob Storage proved (no Cosmos request)."""

    bad_files: list[BadFile] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)  # stored JSON or its hash differs from the manifest
    missing: list[str] = field(default_factory=list)  # in the manifest, in no readable file
    unverifiable: set[tuple[str, str]] = field(default_factory=set)  # records of unreadable/damaged files

    @property
    def ok(self) -> bool:
        return not (self.bad_files or self.differing or self.missing)

    def message(self) -> str:
        parts = [f"damaged file {b.path}: {b.reason} ({len(b.records)} records: {name_ids(b.records)})"
                 for b in self.bad_files]
        for label, names in (("differ from the manifest", self.differing), ("missing from the files", self.missing)):
            if names:
                parts.append(f"{len(names)} record(s) {label}: {name_ids(names)}")
        return "; ".join(parts) or "archive files match the manifest"


def verify_archive(
    store: ArchiveStore,
    manifest: Manifest,
    settings: ArchiveSettings,
    *,
    check_strays: bool = True,
    on_row: Callable[[int, ArchivedRow], None] | None = None,
) -> ArchiveCheck:
    """Re-read every file of every generation: file sha256, each row's sha256 recomputed from its stored JSON and
    compared with the manifest's entry for that generation, and every manifest record present. Blob reads only.
    ``on_row(file index, row)`` sees every row of the files whose sha256 matched (one download serves both)."""
    check = ArchiveCheck()
    by_file: dict[int, dict[tuple[str, str], RecordEntry]] = {}
    for entry in manifest.records:
        by_file.setdefault(entry.file, {})[(entry.partition_key, entry.id)] = entry
    if check_strays:
        listed = {f.path for f in manifest.files}
        for stray in sorted(set(store.list_parts(manifest.slice_id)) - listed):
            check.bad_files.append(BadFile(stray, "part not listed in the manifest (left by another copy)", []))
    for index, entry in enumerate(manifest.files):
        expected = by_file.get(index, {})
        names = [record_name(*k) for k in sorted(expected)]
        try:
            data = store.download(entry.path)
        except Exception as exc:  # the SDK's not-found and transport errors alike: name the file, go on
            check.bad_files.append(BadFile(entry.path, f"cannot be read: {exc.__class__.__name__}", names))
            check.unverifiable.update(expected)
            continue
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.sha256:
            check.bad_files.append(
                BadFile(entry.path, f"sha256 {actual} does not match the manifest's {entry.sha256}", names))
            check.unverifiable.update(expected)
            continue
        found: set[tuple[str, str]] = set()
        try:
            for row in decode_any(data, settings.partition_key_path):  # our layout or an ADF copy's
                key = (row.partition_key, row.id)
                found.add(key)
                recomputed = sha256_hex(row.doc)
                listed_entry = expected.get(key)
                if recomputed != row.sha256 or listed_entry is None or listed_entry.sha256 != recomputed:
                    check.differing.append(record_name(*key))
                elif on_row is not None:
                    on_row(index, row)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            check.bad_files.append(BadFile(entry.path, f"not a readable Parquet file ({exc})", names))
            check.unverifiable.update(expected)
            continue
        check.missing.extend(record_name(*k) for k in sorted(expected.keys() - found))
    return check


Versions = dict[tuple[str, str], tuple[str | None, int | None]]  # key -> (etag or sha256, _ts)


def _source_versions(
    container: ContainerProxy, time_slice: TimeSlice, settings: ArchiveSettings, manifest: Manifest,
    budget: RuBudget | None, stats: ReadStats, *, spellings: bool,
) -> tuple[str, Versions]:
    """("fast", key -> (_etag, _ts)) from a listing, or ("deep", key -> (sha256, _ts)) from a full re-read of the
    slice (sha256 None for a document that cannot be archived)."""
    latest = manifest.latest_records()
    fast = (settings.validation == "fast" and manifest.executor == "local"
            and all(entry.etag for entry in latest.values()))
    read = dict(timestamp_field=settings.timestamp_field, timestamp_kind=settings.timestamp_kind,
                budget=budget, stats=stats, other_spellings=spellings)
    if fast:
        return "fast", slice_versions(container, time_slice, partition_key_path=settings.partition_key_path,
                                      page_size=max(settings.page_size, 1000), **read)
    source: Versions = {}
    for page in read_slice(container, time_slice, page_size=settings.page_size, **read):
        for doc in page:
            try:
                digest: str | None = sha256_hex(archivable_json(doc))
            except UnarchivableError:
                digest = None
            source[record_key(doc, settings.partition_key_path)] = (digest, doc.get("_ts"))
    return "deep", source


@dataclass
class CountProof:
    """The index-served counts of a slice's range against what its copy placed: ``ok`` proves the copy complete."""

    ok: bool
    counted: int
    expected: int
    detail: str


def count_proof(container: ContainerProxy, time_slice: TimeSlice, settings: ArchiveSettings, manifest: Manifest,
                budget: RuBudget | None, stats: ReadStats, *, spellings: bool) -> CountProof | None:
    """Compare the range's index-served count per partition key range (all of them at once when the ranges changed
    since the copy, e.g. a split) with the copy's ``source_counts``; None when no count proof applies (deep
    validation, an ADF copy, no counts recorded, a purge of this generation started)."""
    counts = manifest.source_counts
    if (settings.validation != "fast" or manifest.executor != "local" or not counts
            or (manifest.purge or {}).get("generation") == manifest.generation
            or bool(counts.get("other_spellings_read")) != spellings):
        return None
    read = dict(timestamp_field=settings.timestamp_field, timestamp_kind=settings.timestamp_kind, budget=budget,
                stats=stats)
    # Only documents unchanged since the copy began are counted: each was read by the copy, so the count equals what
    # the copy placed exactly when every placed record is still there unchanged. A record deleted since the copy and
    # another inserted cannot cancel out; any change or delete makes the count short and the source is listed.
    since = manifest.copy_read_since()
    expected: dict[str, int] = {k: int(v) for k, v in counts["ranges"].items()}
    ranges = partition_ranges(container)
    if {range_key(r) for r in ranges} == set(expected):
        counted = {range_key(r): count_range(container, time_slice, feed_range=r, unchanged_before=since, **read)
                   for r in ranges}
    else:  # the ranges moved (a split): the whole range's count against the sum
        expected = {"all": sum(expected.values())}
        counted = {"all": count_range(container, time_slice, unchanged_before=since, **read)}
    if spellings:  # the other spellings near the slice, placed by their instant (this count loads documents)
        spelled = SliceRead(container, time_slice, settings.timestamp_field, settings.timestamp_kind,
                            budget=read["budget"] or UnlimitedBudget(), stats=stats, select=COUNT,
                            partition_key_path=settings.partition_key_path)
        expected["other_spellings"] = int(counts.get("other_spellings", 0))
        counted["other_spellings"] = sum(int(n) for page in read_other_spellings(spelled) for n in page)
    differ = {k: (counted.get(k, 0), n) for k, n in expected.items() if counted.get(k, 0) != n}
    detail = ("; ".join(f"{k if len(expected) > 1 else 'range'}: {c} in Cosmos, {n} copied"
                        for k, (c, n) in differ.items()) or "counts equal")
    return CountProof(not differ, sum(counted.values()), sum(expected.values()), detail)


def _compare(result: ValidationResult, source: Versions, manifest: Manifest, archive: ArchiveCheck, mode: str,
             this_generation: set[tuple[str, str]]) -> None:
    """Name what the listed (or re-read) source and the archive disagree on; records changed since the copy began
    and the documents the copy set aside are listed apart, not failures."""
    latest = manifest.latest_records()
    archived = {k: (r.etag if mode == "fast" else r.sha256) for k, r in latest.items()}
    since = manifest.copy_read_since()
    left_out = {(e.partition_key, e.id): e for e in manifest.left_out}

    def changed_since_copy(key: tuple[str, str]) -> bool:
        ts = source[key][1]
        return isinstance(ts, int | float) and ts >= since

    absent = source.keys() - latest.keys() - archive.unverifiable
    set_aside = absent & left_out.keys()
    moved = {k for k in source.keys() & latest.keys() if source[k][0] != archived[k]}
    changed = {k for k in (absent - set_aside) | moved if changed_since_copy(k)}
    result.changed = [record_name(*k) for k in sorted(changed)]
    result.left_out = [left_out_name(left_out[k]) for k in sorted(set_aside)]
    result.missing = sorted({record_name(*k) for k in absent - set_aside - changed} | set(archive.missing))
    # Only the newest generation can be "extra": records of earlier generations are gone from Cosmos once purged.
    result.extra = [record_name(*k) for k in sorted(this_generation - source.keys())]
    result.differing = sorted({record_name(*k) for k in moved - changed} | set(archive.differing))


def _validate(
    container: ContainerProxy,
    store: ArchiveStore,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    manifest: Manifest,
    lease: SliceLease,
    *,
    budget: RuBudget | None,
) -> ValidationResult:
    started = time.perf_counter()
    slice_id = time_slice.slice_id
    result = ValidationResult(slice_id, ok=False)
    archive = verify_archive(store, manifest, settings)
    latest = manifest.latest_records()
    this_generation = {k for k, r in latest.items() if r.generation == manifest.generation}
    if (manifest.purge or {}).get("generation") == manifest.generation:
        this_generation = set()  # a purge of it has started: records missing from Cosmos were purged, not lost

    stats = ReadStats()
    spellings = settings.timestamp_kind == "iso8601" and other_spellings_seen(store)
    proof = count_proof(container, time_slice, settings, manifest, budget, stats, spellings=spellings)
    result.bad_files = archive.bad_files
    result.sink_count = len(latest)
    if proof is not None and proof.ok:
        mode, result.source_count = "counts", proof.counted
        result.missing, result.differing = sorted(archive.missing), sorted(archive.differing)
        result.left_out = [left_out_name(e) for e in manifest.left_out]  # counted with the range, never archived
    else:
        if proof is not None:
            log.info("slice %s: the index-served counts differ from the copy's (%s): listing the source to name the "
                     "records", slice_id, proof.detail)
            spellings = spellings or settings.timestamp_kind == "iso8601"  # a stray spelling may be the reason
        found_before = stats.other_spellings
        mode, source = _source_versions(container, time_slice, settings, manifest, budget, stats,
                                        spellings=spellings)
        # More in the range than the slice places (a range count sees any value whose text sorts into the range,
        # the placed queries only canonical ones and those of another spelling whose instant is in the slice).
        strays = max(stats.other_spellings - found_before, (proof.counted - len(source)) if proof else 0)
        if settings.timestamp_kind == "iso8601" and strays > 0 and not other_spellings_seen(store):
            note_other_spellings(store, found_by=f"validation of slice {slice_id}", count=strays)
        result.source_count = len(source)
        _compare(result, source, manifest, archive, mode, this_generation)
    result.mode = mode
    result.ok = not (result.missing or result.extra or result.differing or result.bad_files)
    result.ru_charged = round(stats.ru_charged, 2)
    result.seconds = round(time.perf_counter() - started, 3)
    result.validated_at = dt.datetime.now(dt.UTC).isoformat()

    manifest.status = "verified" if result.ok else "failed"
    if result.ok:
        manifest.verified_generation = manifest.generation
    elif not manifest.purge_started:
        manifest.verified_generation = -1  # nothing has left Cosmos: a re-copy may rebuild the whole slice
    manifest.add_ru("validate", stats.ru_charged)
    manifest.validation = {
        "ok": result.ok, "mode": mode, "generation": manifest.generation, "validated_at": result.validated_at,
        "ru_charged": result.ru_charged, "seconds": result.seconds, "source_count": result.source_count,
        "sink_count": result.sink_count, "changed": len(result.changed), "left_out": len(result.left_out),
        "message": result.message(),
    }
    lease.ensure_held()  # renewed: ours for another lease period, enough for the commit
    store.write_manifest(manifest)
    (log.info if result.ok else log.error)(result.message())
    return result
