"""Purge a verified slice from Cosmos DB: each archived record leaves only in the version that was archived.

``purge_slice`` is the DAG's one-line entry point (after validation, on a slice verified in this or an earlier
run, never while the archive is halted). It:

1. refuses a slice that is not ``verified`` (never copied, failed, or a newer generation not validated yet);
2. under the slice lease, re-verifies the slice's files against the manifest (file sha256 and every record's
   sha256 recomputed from the stored JSON; Blob reads only): a mismatch marks the slice ``failed`` and raises
   :class:`PurgeIntegrityError` before anything is deleted;
2b. makes sure every part has a second way back without Cosmos DB: a replica written and verified by sha256
   (archive.replica; the default), or a storage account that protects the blobs (archive.protection); with
   neither it raises :class:`NoWayBackError` naming the settings, and deletes nothing;
3. for the newest archived version of every record, deletes it (``delete``) or replaces it by a small pointer
   (``stub``) with If-Match on the ``_etag`` it was archived with: 412 = changed after its copy (kept in Cosmos,
   counted, archived again by a later generation), 404 = already gone (counted), one customer after another in
   turns (source.feed_ranges.across_partitions: consecutive deletes land on different physical partitions, where
   key order put a run of one customer's on one); each request is paid through the
   RU budget like the copy's pages (and sent at ``priority`` where the account offers priority-based execution);
4. logs every outcome in the purge log beside the manifest (``_purge-NNNNN.jsonl`` append blobs, archive/purge_log.py;
   a killed purge resumes from it) and finally records the purge's counts and RU in the manifest.

A stub keeps the id, partition key and timestamp field, plus the marker object ``_cosmosArchive`` of kind ``stub``
(slice, file, the archive's sha256 of the record, archived etag and time; see readthrough/markers.py): point reads
still answer in one hop; every slice query leaves stubs out, so a stub is never archived again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from azure.core import MatchConditions
from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import CosmosAccessConditionFailedError, CosmosResourceNotFoundError

from include.cosmos_archiver.archive.canonical import partition_key_value
from include.cosmos_archiver.archive.manifest import Manifest, RecordEntry
from include.cosmos_archiver.archive.parquet_layout import ArchivedRow
from include.cosmos_archiver.archive.protection import StorageProtection
from include.cosmos_archiver.archive.purge_log import PurgeLog, purge_log_path, read_purge_log, write_purge_log
from include.cosmos_archiver.archive.remedies import remedy_for_damage
from include.cosmos_archiver.archive.replica import missing_way_back, repair_part, replica_store, replicate_slice
from include.cosmos_archiver.archive.scrub import is_damaged
from include.cosmos_archiver.archive.slice_lease import SliceLease, under_slice_lease
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.id_lists import name_ids
from include.cosmos_archiver.pipeline.validate import record_name, verify_archive
from include.cosmos_archiver.readthrough.markers import MARKER_FIELD, stub_marker
from include.cosmos_archiver.ru.budget import RuBudget
from include.cosmos_archiver.ru.paid_requests import PaidRequests, ResponseHook
from include.cosmos_archiver.settings import ArchiveSettings, PurgeMode
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.feed_ranges import across_partitions

log = logging.getLogger(__name__)
LOG_EVERY_RECORDS = 50  # the purge log is appended to at least this often ...
LOG_EVERY_S = 5.0  # ... and at least this often (seconds)


class PurgeError(TerminalError, RuntimeError):
    """A slice may not be purged; terminal: retrying does not help until an operator acts."""


class SliceNotVerifiedError(PurgeError):
    """The slice (or its newest generation) is not verified: nothing is purged."""


class PurgeIntegrityError(PurgeError):
    """The pre-purge re-verification found the archive different from its manifest: nothing was deleted."""


class NoWayBackError(PurgeError):
    """Neither a verified replica nor the storage account's protection would recover a purged record."""


@dataclass
class PurgeResult:
    slice_id: str
    mode: str
    generation: int = -1
    purged: int = 0  # deleted, or replaced by a stub in stub mode
    changed: int = 0  # 412: changed after the copy, kept in Cosmos
    gone: int = 0  # 404: already gone
    skipped: int = 0  # already handled by an earlier (or killed) purge of the same version
    ru_charged: float = 0.0
    throttled_requests: int = 0
    seconds: float = 0.0
    changed_ids: list[str] = field(default_factory=list)
    gone_ids: list[str] = field(default_factory=list)
    skipped_reason: str | None = None

    def message(self) -> str:
        if self.skipped_reason:
            return f"slice {self.slice_id}: {self.skipped_reason}"
        verb = "replaced by stubs" if self.mode == "stub" else "deleted"
        text = (f"slice {self.slice_id}: purge of generation {self.generation}: {self.purged} {verb}, "
                f"{self.changed} changed after their copy (kept in Cosmos, archived again by the next run), "
                f"{self.gone} already gone, {self.skipped} done before; {self.ru_charged:.1f} RU")
        if self.changed_ids:
            text += "; changed: " + name_ids(self.changed_ids)
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def purge_slice(
    container: ContainerProxy,
    store: ArchiveStore,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    *,
    budget: RuBudget | None = None,
    mode: PurgeMode | None = None,
    priority: str | None = None,
    protection: StorageProtection | None = None,
    replica: ArchiveStore | None = None,
) -> PurgeResult:
    """Purge one verified slice (``mode`` defaults to ``settings.purge``); see the module docstring.
    ``protection``: what the archive's storage account keeps (read by the caller when ``storage_account_id`` is
    set); ``replica``: the replica's store when it lives in another account (default: ``settings.replica`` in the
    archive's own account).

    Raises SliceNotVerifiedError (not verified: nothing done) and PurgeIntegrityError (archive damaged: slice
    marked failed, nothing deleted), both terminal; Cosmos/Blob errors other than 412/404 propagate (transient:
    the task may retry, the purge resumes from its log).
    """
    mode = mode or settings.purge
    slice_id = time_slice.slice_id
    if mode == "off":
        return PurgeResult(slice_id, mode, skipped_reason="purge is off (setting purge='off'): nothing deleted")

    def work(lease: SliceLease, manifest: Manifest | None) -> PurgeResult:
        assert manifest is not None  # _answer refuses a missing manifest
        target = replica or (replica_store(store, settings) if settings.replica is not None else None)
        way_back = _way_back(settings, manifest, protection, store, target)
        return _purge(container, store, settings, manifest, lease, mode=mode, budget=budget, priority=priority,
                      way_back=way_back, repair_from=target)

    return under_slice_lease(store, slice_id, settings, answer=lambda m: _answer(store, slice_id, m, mode),
                             work=work)


def _answer(store: ArchiveStore, slice_id: str, manifest: Manifest | None, mode: str) -> PurgeResult | None:
    if manifest is None:
        raise SliceNotVerifiedError(f"slice {slice_id}: no manifest at {store.manifest_path(slice_id)}: it was never "
                                    "copied, so nothing of it may be purged; run the copy and validation first")
    if manifest.status != "verified" or manifest.verified_generation != manifest.generation:
        raise SliceNotVerifiedError(
            f"slice {slice_id}: status {manifest.status!r} (generation {manifest.generation}, verified up to "
            f"{manifest.verified_generation}): only a verified slice is purged; nothing was deleted. Validate it "
            "(or re-copy it if validation failed) first")
    if is_damaged(store, slice_id):
        raise PurgeIntegrityError(
            f"slice {slice_id}: the last scrub found its archive damaged ({store.manifest_path(slice_id)} and "
            f"_scrub.json beside it name the files and records); nothing was purged now. "
            f"{remedy_for_damage(manifest, ['(the records _scrub.json names)'])}")
    if manifest.purged_generation >= manifest.generation:
        return PurgeResult(slice_id, mode, manifest.generation,
                           skipped_reason=f"generation {manifest.generation} already purged "
                                          f"({(manifest.purge or {}).get('counts')})")
    return None


def _purge(
    container: ContainerProxy,
    store: ArchiveStore,
    settings: ArchiveSettings,
    manifest: Manifest,
    lease: SliceLease,
    *,
    mode: str,
    budget: RuBudget | None,
    priority: str | None,
    way_back: Callable[[Manifest], str],
    repair_from: ArchiveStore | None = None,
) -> PurgeResult:
    started = time.perf_counter()
    latest = manifest.latest_records()
    rows: dict[tuple[str, str], dict[str, Any]] = {}  # what the stub / the delete need from the stored document

    def keep(file_index: int, row: ArchivedRow) -> None:
        entry = latest.get((row.partition_key, row.id))
        if entry is not None and entry.file == file_index:
            rows[(row.partition_key, row.id)] = _essentials(row, settings)

    check = verify_archive(store, manifest, settings, on_row=keep)
    repaired = ""
    if not check.ok and repair_from is not None:  # a damaged part is rewritten from its replica, then proven
        listed = {f.path for f in manifest.files}
        repairs = [repair_part(store, repair_from, manifest, b.path) for b in check.bad_files if b.path in listed]
        repaired = "; ".join(f"{r.path}: {r.how}" for r in repairs)
        if any(r.repaired for r in repairs):
            log.warning("slice %s: before the purge: %s", manifest.slice_id, repaired)
            rows.clear()
            check = verify_archive(store, manifest, settings, on_row=keep)
    missing_rows = sorted(set(latest) - set(rows))
    if not check.ok or missing_rows:
        reason = check.message() if not check.ok else (
            f"{len(missing_rows)} record(s) not found in their file: "
            + name_ids([record_name(*k) for k in missing_rows]))
        _mark_failed(store, manifest, lease, f"pre-purge re-verification failed: {reason}")
        damaged = [name for bad in check.bad_files for name in bad.records] + [record_name(*k) for k in missing_rows]
        raise PurgeIntegrityError(
            f"slice {manifest.slice_id}: the archive no longer matches its manifest, so nothing was purged now: "
            f"{reason}. The slice is marked failed. {remedy_for_damage(manifest, damaged, repaired)}")

    etags = {key: entry.etag or rows[key]["etag"] for key, entry in latest.items()}
    if no_etag := sorted(key for key, etag in etags.items() if not etag):
        raise PurgeError(
            f"slice {manifest.slice_id}: {len(no_etag)} archived record(s) carry no _etag ("
            + name_ids([record_name(*k) for k in no_etag])
            + "), so they cannot be deleted on the condition that they are unchanged; nothing was purged. "
            "Re-copy the slice with the local executor (it records every etag), validate, then purge")

    log.info("slice %s: way back before the purge: %s", manifest.slice_id, way_back(manifest))
    purge_log = read_purge_log(store, manifest.slice_id) or PurgeLog(manifest.slice_id)
    purge_log.mode, purge_log.generation, purge_log.state = mode, manifest.generation, "running"
    if (manifest.purge or {}).get("generation") != manifest.generation:
        # Recorded before the first delete: from now on no re-copy may rebuild the slice from the source alone.
        manifest.purge = {"generation": manifest.generation, "state": "running", "mode": mode,
                          "counts": purge_log.counts(), "ru_charged": purge_log.ru_charged}
    lease.ensure_held()
    store.write_manifest(manifest)  # the purge's start and the replica, before the first delete
    done = purge_log.done()
    result = PurgeResult(manifest.slice_id, mode, manifest.generation)
    paid = PaidRequests(budget) if budget is not None else PaidRequests()
    last_write = time.monotonic()
    unlogged = 0
    request = {"priority": priority} if priority else {}
    for key in across_partitions(latest):  # consecutive deletes on different physical partitions
        entry = latest[key]
        if done.get(key, "\0") == etags[key]:
            result.skipped += 1
            continue
        spent_before = paid.ru_charged
        try:
            paid.call(lambda hook, e=entry, k=key: _write_one(
                container, store, manifest, settings, e, etags[k], rows[k], mode, hook, request))
            outcome = "stubbed" if mode == "stub" else "purged"
            result.purged += 1
        except CosmosAccessConditionFailedError:
            outcome = "changed"
            result.changed += 1
            result.changed_ids.append(record_name(*key))
        except CosmosResourceNotFoundError:
            outcome = "gone"
            result.gone += 1
            result.gone_ids.append(record_name(*key))
        except Exception:  # throttled beyond the SDK's retries, a timeout, another status: transient or not,
            _save(store, purge_log, lease)  # what was done so far stays done (the retry resumes from here)
            raise
        purge_log.ru_charged = round(purge_log.ru_charged + paid.ru_charged - spent_before, 2)
        purge_log.add(outcome, key[0], key[1], etags[key])  # type: ignore[arg-type]
        unlogged += 1
        if unlogged >= LOG_EVERY_RECORDS or time.monotonic() - last_write >= LOG_EVERY_S:
            _save(store, purge_log, lease)
            unlogged, last_write = 0, time.monotonic()

    purge_log.state = "complete"
    _save(store, purge_log, lease)
    result.ru_charged = round(paid.ru_charged, 2)
    result.throttled_requests = paid.throttled_requests
    result.seconds = round(time.perf_counter() - started, 3)
    manifest.purge = {
        "generation": manifest.generation, "state": "complete", "mode": mode, "counts": purge_log.counts(),
        "ru_charged": purge_log.ru_charged, "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "log": purge_log_path(store, manifest.slice_id),
    }
    manifest.add_ru("purge", result.ru_charged)
    lease.ensure_held()
    store.write_manifest(manifest)
    (log.warning if result.changed else log.info)(result.message())
    return result


def _way_back(
    settings: ArchiveSettings, manifest: Manifest | None, protection: StorageProtection | None, store: ArchiveStore,
    replica: ArchiveStore | None,
) -> Callable[[Manifest], str]:
    """How the slice's parts stay recoverable without Cosmos DB; NoWayBackError (nothing deleted) if they would
    not. The replica is written and proven under the lease, right before the first delete."""
    missing = missing_way_back(settings, protection)
    if missing:
        raise NoWayBackError(f"slice {manifest.slice_id if manifest else '?'}: {missing}")
    if replica is None:
        assert protection is not None
        return lambda _m: protection.describe()
    return lambda m: replicate_slice(store, replica, m).message()


def _essentials(row: ArchivedRow, settings: ArchiveSettings) -> dict[str, Any]:
    """The typed partition key value and the timestamp field of an archived document (for the delete and stub)."""
    doc = json.loads(row.doc)
    return {
        "etag": row.etag or doc.get("_etag"),
        "pk": partition_key_value(doc, settings.partition_key_path),
        "ts": partition_key_value(doc, "/" + settings.timestamp_field.replace(".", "/")),
    }


def _write_one(
    container: ContainerProxy,
    store: ArchiveStore,
    manifest: Manifest,
    settings: ArchiveSettings,
    entry: RecordEntry,
    etag: str,
    essentials: dict[str, Any],
    mode: str,
    hook: ResponseHook,
    request: dict[str, Any],
) -> None:
    condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
    if mode == "delete":
        container.delete_item(entry.id, partition_key=essentials["pk"], response_hook=hook, **condition, **request)
        return
    stub = stub_document(entry, etag, essentials, manifest, store.url(manifest.files[entry.file].path), settings)
    container.replace_item(entry.id, stub, response_hook=hook, **condition, **request)


def stub_document(
    entry: RecordEntry, etag: str, essentials: dict[str, Any], manifest: Manifest, location: str,
    settings: ArchiveSettings,
) -> dict[str, Any]:
    """The pointer that replaces an archived document in stub mode."""
    stub: dict[str, Any] = {"id": entry.id}
    _set_path(stub, settings.partition_key_path.strip("/").split("/"), essentials["pk"])
    if not settings.timestamp_field.startswith("_"):  # _ts is the server's: it moves to the stub's write time
        _set_path(stub, settings.timestamp_field.split("."), essentials["ts"])
    stub[MARKER_FIELD] = stub_marker(
        slice=manifest.slice_id, location=location, sha256=entry.sha256, etag=etag, generation=entry.generation,
        archived_at=manifest.copied_at,
    )
    return stub


def _set_path(doc: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        doc = doc.setdefault(part, {})
    doc[parts[-1]] = value


def _save(store: ArchiveStore, purge_log: PurgeLog, lease: SliceLease) -> None:
    lease.ensure_held()
    write_purge_log(store, purge_log)


def _mark_failed(store: ArchiveStore, manifest: Manifest, lease: SliceLease, reason: str) -> None:
    manifest.status = "failed"
    if not manifest.purge_started:
        manifest.verified_generation = -1  # nothing has left Cosmos: a re-copy may rebuild the whole slice
    manifest.validation = {**(manifest.validation or {}), "ok": False, "message": f"slice {manifest.slice_id}: "
                           f"{reason}", "validated_at": dt.datetime.now(dt.UTC).isoformat()}
    lease.ensure_held()
    store.write_manifest(manifest)
    log.error("slice %s: %s", manifest.slice_id, reason)
