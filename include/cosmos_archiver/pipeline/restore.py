"""Write archived records back into Cosmos DB: hashes checked first, never overwriting what Cosmos holds again.

For each record asked for, the newest archived version is restored: the newest generation of its slice, and of
the slices holding it (a record archived in one slice and again, after an update moved its timestamp, in another),
the one the archive index names newest by the document's ``_ts`` — the version the read-through API serves. A slice
restore leaves out its records with a newer version in another slice and names them (``superseded``):

1. the slice's files are re-verified against the manifest first (:func:`verify_archive`, Blob reads only) and
   every restored row's sha256 is recomputed again right before its write: a mismatch writes nothing;
2. the system properties Cosmos sets (``_rid``, ``_self``, ``_etag``, ``_ts``, ``_attachments``) are stripped;
3. it is created conditionally (``create_item``): a record that exists in Cosmos again (re-created or updated
   meanwhile, or deleted through the API: a tombstone) is not overwritten and is reported; one identical to the
   archived version without its system properties (what an earlier, killed restore wrote itself: same sha256) is
   reported "already restored"; a purge stub is replaced by the full document with If-Match on the stub's etag,
   and only a stub that names this record's sha256 (the archive agrees it stands for this version:
   readthrough/markers.py);
4. each request is paid through an RU budget, like the copy.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from azure.core import MatchConditions
from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import CosmosAccessConditionFailedError, CosmosResourceExistsError

from include.cosmos_archiver.archive.canonical import (
    canonical_json,
    partition_key_from_text,
    partition_key_text,
    partition_key_value,
    sha256_hex,
)
from include.cosmos_archiver.archive.manifest import Manifest, RecordEntry
from include.cosmos_archiver.archive.parquet_layout import decode_any
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.id_lists import name_ids
from include.cosmos_archiver.pipeline.validate import record_name, verify_archive
from include.cosmos_archiver.readthrough.index import ArchiveIndex, IndexEntry
from include.cosmos_archiver.readthrough.markers import SYSTEM_PROPERTIES, stub_sha256
from include.cosmos_archiver.ru.budget import RuBudget
from include.cosmos_archiver.ru.paid_requests import PaidRequests
from include.cosmos_archiver.settings import ArchiveSettings

log = logging.getLogger(__name__)


class RestoreError(TerminalError, ValueError):
    """Unknown slice or record: the message names it and says where to look; nothing was written."""


class RestoreIntegrityError(TerminalError, RuntimeError):
    """The archive does not match its manifest: nothing of that slice was written back."""


@dataclass
class RestoreResult:
    restored: list[str] = field(default_factory=list)  # created, or written over a purge stub
    exists: list[str] = field(default_factory=list)  # present in Cosmos again: not overwritten
    already: list[str] = field(default_factory=list)  # identical to the archive already (an earlier restore's)
    superseded: list[str] = field(default_factory=list)  # "pk/id (slice S)": a newer version is archived in S
    ru_charged: float = 0.0
    seconds: float = 0.0

    def message(self) -> str:
        text = f"restored {len(self.restored)} record(s); {self.ru_charged:.1f} RU"
        if self.already:
            text += (f"; {len(self.already)} already restored (Cosmos holds exactly the archived version, same "
                     f"sha256, e.g. written by an earlier restore that was stopped): {name_ids(self.already)}")
        if self.superseded:
            text += (f"; {len(self.superseded)} NOT restored from this slice: a newer version is archived in another "
                     f"slice (restore that slice, or these records by id): {name_ids(self.superseded)}")
        if self.exists:
            text += (f"; {len(self.exists)} exist in Cosmos again and were NOT overwritten (compare them with the "
                     f"archive by hand): {name_ids(self.exists)}")
        if self.restored:
            text += ("; note: restored records lie in archived slices, so the next archive run copies them again "
                     "(a new generation) and purges them unless the archive's purge is off")
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


KEY_SPELLING = ("a partition key is written as the archive names it (archive.canonical.partition_key_text): a "
                "string as it is, unless it reads as JSON or starts with '~', then JSON-quoted ('\"12345\"', "
                "'\"null\"'); a number, boolean or null as JSON (12345, true, null)")


def parse_record_ids(text: str) -> list[tuple[str, str]]:
    """``PK/ID,PK/ID,...`` -> [(archived key text, id)]; a Cosmos id cannot hold '/', so the last '/' splits each
    item. PK is read as :data:`KEY_SPELLING` says (the spelling reports and manifests print), so ``12345`` is the
    number and ``"12345"`` the string."""
    keys = []
    for item in (part.strip() for part in text.split(",")):
        pk, sep, rid = item.rpartition("/")
        if not sep or not pk or not rid:
            raise RestoreError(f"record {item!r} is not PARTITION_KEY/ID (e.g. cust-00042/inv-42-00000007)")
        keys.append((partition_key_text(partition_key_from_text(pk)), rid))
    return keys


def restore_slice(
    container: ContainerProxy, store: ArchiveStore, slice_id: str, settings: ArchiveSettings, *,
    budget: RuBudget | None = None,
) -> RestoreResult:
    """Restore every record of one archived slice (newest versions)."""
    manifest = store.read_manifest(slice_id)
    if manifest is None:
        raise RestoreError(store.unknown_slice_message(slice_id))
    keys = set(manifest.latest_records())
    result = RestoreResult()
    _restore(container, store, manifest, keys, ArchiveIndex(store).lookup_many(keys), settings, budget, result)
    return result


def restore_records(
    container: ContainerProxy, store: ArchiveStore, keys: Iterable[tuple[str, str]], settings: ArchiveSettings, *,
    slice_id: str | None = None, budget: RuBudget | None = None,
) -> RestoreResult:
    """Restore the given (partition key, id) records, found in the slice manifests (or in ``slice_id`` only).
    Every key must be archived; otherwise RestoreError names the unknown ones before anything is written."""
    wanted = set(keys)
    slice_ids = [slice_id] if slice_id else sorted(store.manifest_metadata())
    manifests: dict[str, Manifest] = {}
    holders: dict[tuple[str, str], list[str]] = {}  # key -> the slices holding a version of it
    for sid in slice_ids:
        manifest = store.read_manifest(sid)
        if manifest is None:
            raise RestoreError(store.unknown_slice_message(sid))
        for key in wanted & set(manifest.latest_records()):
            manifests[sid] = manifest
            holders.setdefault(key, []).append(sid)
    wanted -= set(holders)
    if wanted:
        raise RestoreError(
            f"{len(wanted)} record(s) not in the archive{f' slice {slice_id}' if slice_id else ''}: "
            + name_ids([record_name(*k) for k in sorted(wanted)])
            + f"; check the partition key and id (PK/ID; {KEY_SPELLING}), nothing was restored")
    newest = ArchiveIndex(store).lookup_many(holders)  # one look for the choice here and _restore's check
    found: dict[str, set[tuple[str, str]]] = {}
    for key, sids in holders.items():
        chosen = newest[key].slice if key in newest and newest[key].slice in sids else sids[-1]
        found.setdefault(chosen, set()).add(key)
    result = RestoreResult()
    for sid, here in sorted(found.items()):
        _restore(container, store, manifests[sid], here, newest, settings, budget, result)
    return result


def _restore(
    container: ContainerProxy, store: ArchiveStore, manifest: Manifest, keys: set[tuple[str, str]],
    newest: dict[tuple[str, str], IndexEntry], settings: ArchiveSettings, budget: RuBudget | None,
    result: RestoreResult,
) -> None:
    """Restore ``keys`` from ``manifest``'s slice; ``newest`` (the archive index's newest entry per key) names the
    records whose newer version lies in another slice: those are left out and reported as superseded."""
    started = time.perf_counter()
    check = verify_archive(store, manifest, settings, check_strays=False)
    if not check.ok:
        raise RestoreIntegrityError(f"slice {manifest.slice_id}: the archive does not match its manifest, nothing "
                                    f"of it was restored: {check.message()}")
    paid = PaidRequests(budget) if budget is not None else PaidRequests()
    latest = manifest.latest_records()
    elsewhere = {key: newest[key].slice for key in keys if key in newest and newest[key].slice != manifest.slice_id}
    result.superseded += [f"{record_name(*key)} (slice {sid})" for key, sid in sorted(elsewhere.items())]
    keys = keys - elsewhere.keys()  # a newer version lies in another slice: never bring this one back
    by_file: dict[int, dict[tuple[str, str], RecordEntry]] = {}
    for key in keys:
        by_file.setdefault(latest[key].file, {})[key] = latest[key]
    for index, entries in sorted(by_file.items()):
        for row in decode_any(store.download(manifest.files[index].path), settings.partition_key_path):
            entry = entries.get((row.partition_key, row.id))
            if entry is None:
                continue
            if sha256_hex(row.doc) != entry.sha256:  # changed since verify_archive read it
                raise RestoreIntegrityError(f"slice {manifest.slice_id}: {record_name(row.partition_key, row.id)} "
                                            f"in {manifest.files[index].path} no longer matches its sha256; stopped")
            doc = _without_system_properties(json.loads(row.doc))
            name = record_name(row.partition_key, row.id)
            {"restored": result.restored, "already": result.already, "exists": result.exists}[
                _write_back(container, doc, entry.sha256, settings, paid)].append(name)
    result.seconds = round(result.seconds + time.perf_counter() - started, 3)
    result.ru_charged = round(result.ru_charged + paid.ru_charged, 2)
    log.info("slice %s: %s", manifest.slice_id, result.message())


def _without_system_properties(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in SYSTEM_PROPERTIES}


def _write_back(
    container: ContainerProxy, doc: dict[str, Any], sha256: str, settings: ArchiveSettings, paid: PaidRequests
) -> Literal["restored", "already", "exists"]:
    """Create ``doc``; over the purge stub of this very version (``sha256``), replace the stub. "already": Cosmos
    holds ``doc`` exactly (its sha256 without system properties); "exists": another document (a record, a
    tombstone, a stub of another version) holds the key, left as it is."""
    try:
        paid.call(lambda hook: container.create_item(doc, response_hook=hook))
        return "restored"
    except CosmosResourceExistsError:
        pass
    pk = partition_key_value(doc, settings.partition_key_path)
    current = paid.call(lambda hook: container.read_item(doc["id"], partition_key=pk, response_hook=hook))
    if stub_sha256(current) != sha256:
        same = sha256_hex(canonical_json(_without_system_properties(current))) == sha256_hex(canonical_json(doc))
        return "already" if same else "exists"
    try:
        paid.call(lambda hook: container.replace_item(
            doc["id"], doc, etag=current["_etag"], match_condition=MatchConditions.IfNotModified, response_hook=hook))
    except CosmosAccessConditionFailedError:
        return "exists"  # the stub was just overwritten by someone else: theirs stays
    return "restored"

