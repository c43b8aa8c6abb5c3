"""Prove a copied slice identical to its source before anything may be removed from Cosmos DB.

Re-reads both sides: the sink's files (their sha256 against the manifest, every row's sha256 recomputed from the
stored JSON) and the source slice (canonical JSON hashed afresh). The result names exactly which records are
missing from the archive, extra in it, or differ, and which files are damaged. A record written or updated after
its copy shows up here as differing/extra/missing, so it can never be lost by a later purge.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.canonical import canonical_json, record_key, sha256_hex
from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.parquet_layout import decode_any
from include.cosmos_archiver.archive.slice_lease import SliceLease, under_slice_lease
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.id_lists import name_ids
from include.cosmos_archiver.ru.budget import RuBudget
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.reader import ReadStats, read_slice

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
    ru_charged: float = 0.0
    seconds: float = 0.0
    validated_at: str = ""
    skipped_reason: str | None = None

    def message(self) -> str:
        if self.skipped_reason:
            return f"slice {self.slice_id}: {self.skipped_reason}"
        if self.ok:
            return f"slice {self.slice_id}: verified {self.sink_count} records identical to the source"
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


def _name(pk: str, rid: str) -> str:
    return f"{pk}/{rid}"


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
    expected = {(r.partition_key, r.id): r for r in manifest.records}
    sink: dict[tuple[str, str], str] = {}
    unverifiable: set[tuple[str, str]] = set()

    listed = {f.path for f in manifest.files}
    for stray in sorted(set(store.list_parts(slice_id)) - listed):
        result.bad_files.append(BadFile(stray, "part not listed in the manifest (left by another copy)", []))
    for index, entry in enumerate(manifest.files):
        in_file = [k for k, r in expected.items() if r.file == index]
        names = [_name(*k) for k in sorted(in_file)]
        try:
            data = store.download(entry.path)
        except Exception as exc:  # the SDK's not-found and transport errors alike: name the file, go on
            result.bad_files.append(BadFile(entry.path, f"cannot be read: {exc.__class__.__name__}", names))
            unverifiable.update(in_file)
            continue
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.sha256:
            result.bad_files.append(
                BadFile(entry.path, f"sha256 {actual} does not match the manifest's {entry.sha256}", names))
            unverifiable.update(in_file)
            continue
        try:
            for row in decode_any(data, settings.partition_key_path):  # our layout or an ADF copy's
                key = (row.partition_key, row.id)
                recomputed = sha256_hex(row.doc)
                sink[key] = recomputed if recomputed == row.sha256 else f"stored-hash-mismatch:{recomputed}"
        except Exception as exc:  # pyarrow raises several types for a damaged file
            result.bad_files.append(BadFile(entry.path, f"not a readable Parquet file ({exc})", names))
            unverifiable.update(in_file)

    stats = ReadStats()
    source: dict[tuple[str, str], str] = {}
    for page in read_slice(container, time_slice, timestamp_field=settings.timestamp_field,
                           timestamp_kind=settings.timestamp_kind, page_size=settings.page_size,
                           budget=budget, stats=stats):
        for doc in page:
            source[record_key(doc, settings.partition_key_path)] = sha256_hex(canonical_json(doc))

    result.source_count = len(source)
    result.sink_count = len(sink)
    result.missing = [_name(*k) for k in sorted(source.keys() - sink.keys() - unverifiable)]
    result.extra = [_name(*k) for k in sorted(sink.keys() - source.keys())]
    result.differing = [_name(*k) for k in sorted(source.keys() & sink.keys())
                        if source[k] != sink[k] or expected.get(k) is None or expected[k].sha256 != sink[k]]
    result.ok = not (result.missing or result.extra or result.differing or result.bad_files
                     or len(expected) != len(sink))
    result.ru_charged = round(stats.ru_charged, 2)
    result.seconds = round(time.perf_counter() - started, 3)
    result.validated_at = dt.datetime.now(dt.UTC).isoformat()

    manifest.status = "verified" if result.ok else "failed"
    manifest.validation = {
        "ok": result.ok, "validated_at": result.validated_at, "ru_charged": result.ru_charged,
        "seconds": result.seconds, "source_count": result.source_count, "sink_count": result.sink_count,
        "message": result.message(),
    }
    lease.ensure_held()  # renewed: ours for another lease period, enough for the commit
    store.write_manifest(manifest)
    (log.info if result.ok else log.error)(result.message())
    return result
