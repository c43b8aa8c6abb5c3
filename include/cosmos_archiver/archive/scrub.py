"""Scrub: re-check verified data at rest against its manifests, without reading Cosmos DB (no RU).

For each slice: every file the manifest lists must exist, have its size and sha256; every row must decode, hash
(sha256 of its stored canonical JSON) to its stored and its manifest record's sha256, and every manifest record
must be found; a Parquet file the manifest does not list is reported too. A finding names the file and the
records (``partition key/id``) it affects.

The outcome is written beside the manifest as ``_scrub.json`` (status ``ok`` or ``damaged``, the findings, when);
:func:`is_damaged` reads it, and a purge of a damaged slice must not run (the manifest's own status is left as it
is: turning it back to "not verified" would make the next run re-copy the slice from a source a purge may already
have emptied, and "verify" what is left).

Repair: a damaged part is rewritten from its replica copy (archive.replica) when that copy hashes to the manifest's
sha256; the slice is then scrubbed again, and the repair is proven only if every hash matches. What no replica can
repair gets its remedy by case: a slice not purged yet is re-opened (its records are still in Cosmos DB, nothing is
lost); a purged slice names the records at risk (their only copy is the damaged part) and how to restore the part
(a previous version or soft-deleted snapshot, or a backup), then scrub it again.

An IO budget bounds a scrub: ``max_bytes`` read per run (the rest waits for the next run: least recently scrubbed
slices go first) and ``max_bytes_per_s`` (paced reads, so a scrub does not compete with restores).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from azure.core.exceptions import ResourceNotFoundError

from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.remedies import remedy_for_damage
from include.cosmos_archiver.archive.replica import repair_part, replica_store
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.id_lists import name_ids
from include.cosmos_archiver.pipeline.validate import record_name, verify_archive
from include.cosmos_archiver.settings import ArchiveSettings

log = logging.getLogger(__name__)
SCRUB_NAME = "_scrub.json"
ScrubStatus = Literal["ok", "damaged"]


class UnknownSliceError(TerminalError, ValueError):
    """A slice id to scrub has no manifest (a typo, or a date that is no slice start): nothing is scrubbed or
    written, so a wrong id cannot leave a slice marked damaged."""


class ScrubDamagedError(TerminalError, RuntimeError):
    """A scrub found archived files or records that no longer match their manifest (named in the message)."""


@dataclass
class Finding:
    path: str
    reason: str
    records: list[str]  # "partition key/id" of the records it affects


@dataclass
class SliceScrub:
    slice_id: str
    status: ScrubStatus
    files: int = 0
    records: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    scrubbed_at: str = ""
    findings: list[Finding] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # "<part>: how it was repaired (proven by sha256)"
    remedy: str = ""  # what to do about the findings left

    def message(self) -> str:
        repaired = f"; {len(self.repaired)} part(s) repaired: {'; '.join(self.repaired)}" if self.repaired else ""
        if self.status == "ok":
            return (f"slice {self.slice_id}: scrub ok ({self.files} files, {self.records} records re-hashed)"
                    + repaired)
        parts = [f"slice {self.slice_id}: DAMAGED"]
        for f in self.findings:
            parts.append(f"{f.path}: {f.reason}" + (f"; records: {name_ids(f.records)}" if f.records else ""))
        return "; ".join(parts) + repaired + (f". {self.remedy}" if self.remedy else "")


@dataclass
class ScrubReport:
    scrubbed: list[SliceScrub]
    not_reached: list[str]  # slices left for a later run by the IO budget
    bytes_read: int
    seconds: float

    @property
    def damaged(self) -> list[SliceScrub]:
        return [s for s in self.scrubbed if s.status == "damaged"]

    def line(self) -> str:
        text = (f"scrub: {len(self.scrubbed)} slice(s) re-hashed ({self.bytes_read / 1e6:.1f} MB in "
                f"{self.seconds:.1f} s), {len(self.damaged)} damaged")
        if self.damaged:
            text += ": " + ", ".join(s.slice_id for s in self.damaged)
        if self.not_reached:
            text += f"; {len(self.not_reached)} slice(s) left for a later scrub (IO budget)"
        return text


def scrub_path(store: ArchiveStore, slice_id: str) -> str:
    return f"{store.slice_dir(slice_id)}/{SCRUB_NAME}"


class _Pacer:
    def __init__(self, max_bytes_per_s: float | None) -> None:
        self.rate = max_bytes_per_s
        self.started = time.monotonic()
        self.read = 0

    def took(self, nbytes: int) -> None:
        self.read += nbytes
        if self.rate:
            ahead = self.read / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)


def scrub_slice(
    store: ArchiveStore,
    slice_id: str,
    settings: ArchiveSettings,
    *,
    pacer: _Pacer | None = None,
    record: bool = True,
    replica: ArchiveStore | None = None,
) -> SliceScrub:
    """Re-hash one slice's files and records against its manifest (pipeline.validate.verify_archive, the check a
    purge makes first), repair damaged parts from ``replica`` and prove the repair by scrubbing again; ``record``
    writes ``_scrub.json``."""
    started = time.perf_counter()
    pacer = pacer or _Pacer(None)
    result = SliceScrub(slice_id, "ok")
    manifest = store.read_manifest(slice_id)
    if manifest is None:
        result.findings.append(Finding(store.manifest_path(slice_id), "manifest missing", []))
    else:
        _check_files(store, manifest, settings, result)
        pacer.took(result.bytes_read)
        if result.findings:
            result = _repair(store, replica, manifest, settings, result)
    result.status = "damaged" if result.findings else "ok"
    result.seconds = round(time.perf_counter() - started, 3)
    result.scrubbed_at = dt.datetime.now(dt.UTC).isoformat()
    if record:
        store.upload(scrub_path(store, slice_id), json.dumps(asdict(result), indent=1).encode(),
                     content_type="application/json", metadata={"status": result.status})
    (log.info if result.status == "ok" else log.error)(result.message())
    return result


def _repair(
    store: ArchiveStore, replica: ArchiveStore | None, manifest: Manifest, settings: ArchiveSettings,
    damaged: SliceScrub,
) -> SliceScrub:
    """Rewrite each damaged part from its replica copy, then scrub again: the second scrub's findings are what is
    left (a repair counts only once every hash matches). The remedy of what is left depends on the purge."""
    repairs = [repair_part(store, replica, manifest, path) for path in sorted({f.path for f in damaged.findings})]
    done = [f"{r.path}: {r.how}" for r in repairs if r.repaired]
    result = damaged
    if done:
        result = SliceScrub(damaged.slice_id, "ok")
        _check_files(store, manifest, settings, result)
        result.bytes_read += damaged.bytes_read
        result.repaired = done
    if result.findings:
        unrepaired = "; ".join(f"{r.path}: {r.how}" for r in repairs if not r.repaired)
        result.remedy = remedy_for_damage(manifest, [n for f in result.findings for n in f.records], unrepaired)
    return result


def _check_files(store: ArchiveStore, manifest: Manifest, settings: ArchiveSettings, result: SliceScrub) -> None:
    """Sizes from one listing first (a missing or truncated part says so), then the full re-hash."""
    folder = store.slice_dir(manifest.slice_id) + "/"
    sizes = {b.name: b.size for b in store.container.list_blobs(name_starts_with=folder)}
    names_in: dict[int, list[str]] = {}
    path_of: dict[str, str] = {}
    for r in manifest.records:
        name = record_name(r.partition_key, r.id)
        names_in.setdefault(r.file, []).append(name)
        path_of[name] = manifest.files[r.file].path
    named: set[str] = set()
    for index, entry in enumerate(manifest.files):
        records = sorted(names_in.get(index, []))
        if entry.path not in sizes:
            result.findings.append(Finding(entry.path, "file missing", records))
        elif sizes[entry.path] != entry.bytes:
            result.findings.append(Finding(entry.path, f"{sizes[entry.path]} bytes, the manifest says {entry.bytes} "
                                           "(truncated or overwritten)", records))
        else:
            result.bytes_read += entry.bytes
            continue
        named.add(entry.path)
    check = verify_archive(store, manifest, settings, on_row=lambda _i, _row: None)
    result.files = len(manifest.files)
    result.records = len(manifest.records)
    for bad in check.bad_files:
        if bad.path not in named:
            result.findings.append(Finding(bad.path, bad.reason, sorted(bad.records)))
    for label, names in (("records whose content does not hash to the manifest's", check.differing),
                         ("manifest records not in the file", check.missing)):
        by_path: dict[str, list[str]] = {}
        for name in names:
            by_path.setdefault(path_of.get(name, "?"), []).append(name)
        for path, grouped in sorted(by_path.items()):
            if path not in named:
                result.findings.append(Finding(path, label, sorted(grouped)))


def scrub_archive(
    store: ArchiveStore,
    settings: ArchiveSettings,
    *,
    slice_ids: list[str] | None = None,
    max_bytes: int | None = None,
    max_bytes_per_s: float | None = None,
    replica: ArchiveStore | None = None,
) -> ScrubReport:
    """Scrub the verified slices (or ``slice_ids``: UnknownSliceError, before anything is written, when one has no
    manifest), least recently scrubbed first, within the IO budget; damaged parts are repaired from ``replica``
    (default: the ``replica_container`` of the archive's account)."""
    started = time.perf_counter()
    statuses = store.manifest_statuses()
    unknown = [s for s in slice_ids or () if s not in statuses]
    if unknown:
        raise UnknownSliceError(store.unknown_slice_message(unknown[0], statuses))
    candidates = slice_ids if slice_ids is not None else [s for s, st in statuses.items() if st == "verified"]
    last = _last_scrubbed(store)
    order = sorted(candidates, key=lambda s: (last.get(s, ""), s))
    pacer = _Pacer(max_bytes_per_s)
    scrubbed: list[SliceScrub] = []
    not_reached: list[str] = []
    for slice_id in order:
        if max_bytes is not None and pacer.read >= max_bytes:
            not_reached.append(slice_id)
            continue
        if replica is None and settings.replica is not None:
            replica = replica_store(store, settings)
        scrubbed.append(scrub_slice(store, slice_id, settings, pacer=pacer, replica=replica))
    report = ScrubReport(scrubbed, not_reached, pacer.read, round(time.perf_counter() - started, 3))
    (log.error if report.damaged else log.info)(report.line())
    return report


def _last_scrubbed(store: ArchiveStore) -> dict[str, str]:
    """slice_id -> when its ``_scrub.json`` was last written, from one listing."""
    start = f"{store.prefix}/" if store.prefix else ""
    return {b.name[len(start): -len(SCRUB_NAME) - 1]: b.last_modified.isoformat()
            for b in store.container.list_blobs(name_starts_with=start) if b.name.endswith("/" + SCRUB_NAME)}


def scrub_marks(store: ArchiveStore) -> dict[str, ScrubStatus]:
    """slice_id -> its last scrub's status, from one listing (metadata of the ``_scrub.json`` blobs)."""
    start = f"{store.prefix}/" if store.prefix else ""
    return {b.name[len(start): -len(SCRUB_NAME) - 1]: (b.metadata or {}).get("status", "damaged")
            for b in store.container.list_blobs(name_starts_with=start, include=["metadata"])
            if b.name.endswith("/" + SCRUB_NAME)}


def is_damaged(store: ArchiveStore, slice_id: str) -> bool:
    """Whether the slice's last scrub found damage: a purge of the slice must not run then."""
    try:
        data = store.download(scrub_path(store, slice_id))
    except ResourceNotFoundError:
        return False
    return json.loads(data).get("status") != "ok"


def damaged_slices(store: ArchiveStore) -> list[str]:
    return sorted(s for s, status in scrub_marks(store).items() if status != "ok")


def clear_scrub_mark(store: ArchiveStore, slice_id: str) -> None:
    """Forget the slice's scrub outcome (its data was rewritten and verified again)."""
    store.delete(scrub_path(store, slice_id))
