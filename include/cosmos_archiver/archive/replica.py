"""The replica: a second, hash-verified copy of a slice's parts, written before any of its records leave Cosmos DB.

After a purge the archive is the only copy of the purged records. Unless the storage account keeps a way back
itself (archive.protection: versioning, soft delete, immutability), the purge first copies every part of the slice
to the replica container (setting ``replica_container``; by default ``<blob_container>-replica`` in the same
account, or a container in another account or region through the ``cosmos_archive_replica`` connection) under the
same path, reads each copy back and compares its sha256 with the manifest's, and copies the manifest beside them.
Only then are records deleted. The scrub repairs a damaged part of the archive from its replica copy (checked
against the manifest's sha256 before and after the write), so a flipped byte never costs a purged record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.protection import StorageProtection
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import EndpointPatience, ensure_container, with_patience
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.settings import ArchiveSettings

log = logging.getLogger(__name__)


class ReplicaError(TerminalError, RuntimeError):
    """The replica could not be written and proven: nothing is purged (the message names the part)."""


def sibling_container(container: ContainerClient, name: str) -> ContainerClient:
    """Container ``name`` in the same account as ``container``, with the same credential (key, SAS or token)."""
    base, _, query = container.url.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    return ContainerClient.from_container_url(url, credential=container.credential)


def replica_store(
    store: ArchiveStore, settings: ArchiveSettings, container: ContainerClient | None = None
) -> ArchiveStore | None:
    """The replica's store (same prefix and paths as the archive), or None when ``replica_container`` is "".
    ``container``: a client of the replica container in another account; else the archive's own account."""
    name = settings.replica
    if name is None:
        return None
    if name == store.container.container_name and container is None:
        raise ReplicaError(f"replica_container={name!r} is the archive's own container: a replica must be another "
                           "container (or another account through the cosmos_archive_replica connection)")
    client = with_patience(container or sibling_container(store.container, name),
                           EndpointPatience.from_settings(settings))
    ensure_container(client)
    return ArchiveStore(client, store.prefix)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(store: ArchiveStore, path: str) -> bytes | None:
    try:
        return store.download(path)
    except ResourceNotFoundError:
        return None


@dataclass
class ReplicaCopy:
    slice_id: str
    container: str
    written: list[str] = field(default_factory=list)  # parts copied now
    kept: list[str] = field(default_factory=list)  # parts already on the replica with the manifest's sha256
    bytes_written: int = 0
    seconds: float = 0.0

    def message(self) -> str:
        return (f"slice {self.slice_id}: replica at {self.container} verified by sha256: {len(self.written)} part(s) "
                f"written ({self.bytes_written / 1e6:.2f} MB), {len(self.kept)} already there")


def replicate_slice(store: ArchiveStore, replica: ArchiveStore, manifest: Manifest) -> ReplicaCopy:
    """Copy every part of ``manifest`` to ``replica`` and prove each copy by its sha256 (read back); then copy the
    manifest and record the replica in ``manifest.replica`` (the caller writes the manifest). ReplicaError, before
    anything is purged, when a part cannot be copied so that it hashes to the manifest's sha256."""
    started = time.perf_counter()
    result = ReplicaCopy(manifest.slice_id, replica.container.url.partition("?")[0])
    for entry in manifest.files:
        existing = _read(replica, entry.path)
        if existing is not None and _sha256(existing) == entry.sha256:
            result.kept.append(entry.path)
            continue
        data = store.download(entry.path)
        if _sha256(data) != entry.sha256:
            raise ReplicaError(f"slice {manifest.slice_id}: {entry.path} no longer hashes to its manifest's sha256, "
                               "so it was not replicated and nothing was purged; see the scrub for the remedy")
        replica.upload(entry.path, data)
        if _sha256(replica.download(entry.path)) != entry.sha256:
            raise ReplicaError(f"slice {manifest.slice_id}: the replica of {entry.path} at {result.container} does "
                               "not read back with its sha256; nothing was purged. Check the replica's account")
        result.written.append(entry.path)
        result.bytes_written += len(data)
    manifest.replica = {"container": result.container, "generation": manifest.generation,
                        "files": len(manifest.files),
                        "verified_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    replica.upload(replica.manifest_path(manifest.slice_id), manifest.to_json(), content_type="application/json")
    result.seconds = round(time.perf_counter() - started, 3)
    log.info(result.message())
    return result


def replicated(manifest: Manifest) -> bool:
    """Whether every part of the manifest's newest generation has a verified replica copy."""
    info: dict[str, Any] = manifest.replica or {}
    return int(info.get("generation", -1)) >= manifest.generation and int(info.get("files", -1)) >= len(manifest.files)


@dataclass
class Repair:
    path: str
    repaired: bool
    how: str  # what was done, or why it could not be


def repair_part(store: ArchiveStore, replica: ArchiveStore | None, manifest: Manifest, path: str) -> Repair:
    """Rewrite the archive's ``path`` from its replica copy when that copy hashes to the manifest's sha256, and prove
    the rewrite by reading it back. Nothing is written when the replica copy is missing or differs."""
    entry = next((f for f in manifest.files if f.path == path), None)
    if entry is None:
        return Repair(path, False, "not a part of the manifest (a stray file: delete it, nothing depends on it)")
    if replica is None:
        return Repair(path, False, "no replica is configured (replica_container is \"\")")
    data = _read(replica, path)
    if data is None:
        return Repair(path, False, f"no replica copy at {replica.url(path).partition('?')[0]}")
    if _sha256(data) != entry.sha256:
        return Repair(path, False, f"the replica copy at {replica.url(path).partition('?')[0]} does not hash to the "
                                   "manifest's sha256 either")
    store.upload(path, data)
    if _sha256(store.download(path)) != entry.sha256:
        return Repair(path, False, "rewritten from the replica but it does not read back with its sha256")
    return Repair(path, True, f"repaired from the replica: sha256 {entry.sha256} proven on the rewritten file")


def missing_way_back(settings: ArchiveSettings, protection: StorageProtection | None) -> str | None:
    """Why a purge would leave records without a second way back (naming the settings to fix), or None."""
    if settings.purge == "off" or settings.replica is not None or (protection is not None and protection.protects):
        return None
    if protection is not None:
        account = protection.describe()
    elif settings.storage_account_id:
        account = f"the protection of {settings.storage_account_id} was not read"
    else:
        account = "storage_account_id is not set, so the account's protection is unknown"
    return (f"purge={settings.purge!r} needs a second way back for every purged record, and there is none: "
            f"replica_container is \"\" (no replica) and {account}. Set replica_container to a Blob container for a "
            "verified replica (or remove it: the default is '<blob_container>-replica'), or turn on Blob versioning, "
            "soft delete or an immutability policy on the account named by storage_account_id; until then set "
            "purge='off'. Nothing was purged")


def repair_damaged(store: ArchiveStore, replica: ArchiveStore | None, slice_id: str,
                   settings: ArchiveSettings) -> str | None:
    """Under the slice's lease, rewrite from the replica every part that no longer hashes to the manifest; what was
    repaired (each proven by its sha256), or None when nothing could be."""
    from include.cosmos_archiver.archive.slice_lease import slice_lease
    from include.cosmos_archiver.pipeline.validate import verify_archive

    if replica is None:
        return None
    with slice_lease(store, slice_id, wait_s=settings.slice_lease_wait_s, lease_s=settings.slice_lease_s):
        manifest = store.read_manifest(slice_id)
        if manifest is None:
            return None
        listed = {f.path for f in manifest.files}
        check = verify_archive(store, manifest, settings, check_strays=False)
        repairs = [repair_part(store, replica, manifest, bad.path) for bad in check.bad_files if bad.path in listed]
    done = [f"{r.path}: {r.how}" for r in repairs if r.repaired]
    return "; ".join(done) or None
