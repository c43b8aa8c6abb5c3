"""Right to erasure: rewrite the archived parts that hold deleted (tombstoned) records without them.

For each affected part, under the slice's lease: check the part against its manifest sha256, drop the erased
rows, write the remaining rows to a new part name (readers holding the old footer then get a 404 and reload the
index, never a wrong row), update the manifest (files, records, count, bytes, slice digest, a note), re-index the
slice, delete the old part, and prove it: the new part's sha256 is the manifest's, every remaining row re-hashes
to its manifest sha256, no erased key is left, and the slice digest recomputes. Tombstones stay in Cosmos DB.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pyarrow.parquet as pq
from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.canonical import partition_key_text, sha256_hex, slice_digest
from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.parquet_layout import decode_rows, encode_rows
from include.cosmos_archiver.archive.slice_lease import SliceLease, under_slice_lease
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.readthrough.index import DEFAULT_SHARDS, ArchiveIndex, index_slice
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import MISSING
from include.cosmos_archiver.source.reader import TOMBSTONE, marker_sql

log = logging.getLogger(__name__)
_GENERATION = re.compile(r"-e(\d+)\.parquet$")


@dataclass
class ErasedPart:
    slice_id: str
    old_part: str
    old_sha256: str
    new_part: str | None  # None when no row was left (the part is gone)
    new_sha256: str | None
    erased: list[dict[str, str]]  # partition_key, id, sha256 of each erased record
    slice_digest_before: str
    slice_digest_after: str
    proof: dict[str, Any] = field(default_factory=dict)


def tombstoned_keys(container: ContainerProxy, partition_key_path: str) -> list[tuple[str, str]]:
    """(archived partition key text, id) of every tombstone in the container (one cross-partition query)."""
    pk = "c" + "".join(f'["{p}"]' for p in partition_key_path.strip("/").split("/"))
    sql = f"SELECT c.id, {pk} AS pk FROM c WHERE {marker_sql(TOMBSTONE)}"
    return [(partition_key_text(r.get("pk", MISSING)), r["id"])
            for r in container.query_items(sql, enable_cross_partition_query=True)]


def erase_deleted(container: ContainerProxy, store: ArchiveStore, settings: ArchiveSettings, *,
                  shards: int = DEFAULT_SHARDS) -> list[ErasedPart]:
    """Erase every tombstoned record still in the archive; idempotent (a second run finds nothing to do)."""
    index = ArchiveIndex(store, shards=shards)
    by_part: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for key in tombstoned_keys(container, settings.partition_key_path):
        entry = index.lookup(*key)
        if entry is not None:
            by_part.setdefault((entry.slice, entry.part), set()).add(key)
    done = []
    for (slice_id, part), keys in sorted(by_part.items()):
        done.append(under_slice_lease(
            store, slice_id, settings, answer=lambda _m: None,
            work=lambda lease, manifest, s=slice_id, p=part, k=keys: _erase(store, settings, lease, manifest, s, p, k,
                                                                            shards),
        ))  # fmt: skip
    return done


def _next_name(part: str) -> str:
    match = _GENERATION.search(part)
    if match:
        return part[:match.start()] + f"-e{int(match.group(1)) + 1}.parquet"
    return part[:-len(".parquet")] + "-e1.parquet"


def _erase(store: ArchiveStore, settings: ArchiveSettings, lease: SliceLease, manifest: Manifest | None,
           slice_id: str, part: str, keys: set[tuple[str, str]], shards: int) -> ErasedPart:
    if manifest is None:
        raise ValueError(f"slice {slice_id} has no manifest: nothing to erase from")
    position = next((i for i, f in enumerate(manifest.files) if f.path == part), None)
    if position is None:
        raise ValueError(f"{part} is not in slice {slice_id}'s manifest (rewritten meanwhile?): run the erasure again")
    entry = manifest.files[position]
    data = store.download(part)
    if sha256_hex(data) != entry.sha256:
        raise ValueError(f"{part}: sha256 does not match the manifest; not rewriting a damaged part")
    group_rows = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).num_rows
    rows = list(decode_rows(data))
    kept = [r for r in rows if (r.partition_key, r.id) not in keys]
    erased = [{"partition_key": r.partition_key, "id": r.id, "sha256": r.sha256} for r in rows
              if (r.partition_key, r.id) in keys]
    digest_before = manifest.slice_digest
    new_part = new_sha = None
    if kept:
        new_data = encode_rows(kept, row_group_rows=group_rows, compression_level=settings.compression_level)
        new_part, new_sha = _next_name(part), sha256_hex(new_data)
        lease.ensure_held()
        store.upload(new_part, new_data)
        # replace(): any other field of the entry (e.g. a generation) is kept
        manifest.files[position] = replace(entry, path=new_part, sha256=new_sha, bytes=len(new_data),
                                           records=len(kept))
    gone = {(e["partition_key"], e["id"]) for e in erased}
    manifest.records = [r for r in manifest.records if (r.partition_key, r.id) not in gone]
    if not kept:  # drop the emptied file and renumber the records' file indexes
        manifest.files.pop(position)
        for r in manifest.records:
            r.file -= r.file > position
    manifest.record_count = len(manifest.records)
    manifest.record_bytes -= sum(len(r.doc) for r in rows if (r.partition_key, r.id) in gone)
    manifest.slice_digest = slice_digest([(r.partition_key, r.id, r.sha256) for r in manifest.records])
    when = dt.datetime.now(dt.UTC).isoformat()
    manifest.notes.append(f"{when}: erased {len(erased)} deleted record(s) "
                          f"{', '.join(e['partition_key'] + '/' + e['id'] for e in erased)} from {part} "
                          f"({entry.sha256}) -> {new_part} ({new_sha})")
    lease.ensure_held()
    store.write_manifest(manifest)
    index_slice(store, slice_id, shards=shards, partition_key_path=settings.partition_key_path,
                require_verified=False)
    store.delete(part)
    result = ErasedPart(slice_id, part, entry.sha256, new_part, new_sha, erased, digest_before,
                        manifest.slice_digest)
    result.proof = prove_erased(store, slice_id, gone)
    log.info("erasure: %s", asdict(result))
    return result


def prove_erased(store: ArchiveStore, slice_id: str, gone: set[tuple[str, str]]) -> dict[str, Any]:
    """Re-read the slice: every file matches its manifest sha256, every row re-hashes to its manifest sha256, no
    erased key is present, and the slice digest recomputes. Raises AssertionError-like ValueError otherwise."""
    manifest = store.read_manifest(slice_id)
    assert manifest is not None
    expected = {(r.partition_key, r.id): r.sha256 for r in manifest.records}
    seen: dict[tuple[str, str], str] = {}
    for f in manifest.files:
        data = store.download(f.path)
        if sha256_hex(data) != f.sha256:
            raise ValueError(f"{f.path}: sha256 differs from the manifest after the erasure")
        for row in decode_rows(data):
            seen[(row.partition_key, row.id)] = sha256_hex(row.doc)
    if seen != expected:
        raise ValueError(f"slice {slice_id}: rows differ from the manifest after the erasure")
    if gone & seen.keys():
        raise ValueError(f"slice {slice_id}: erased records still present: {sorted(gone & seen.keys())}")
    digest = slice_digest([(pk, rid, h) for (pk, rid), h in seen.items()])
    if digest != manifest.slice_digest:
        raise ValueError(f"slice {slice_id}: digest {digest} is not the manifest's {manifest.slice_digest}")
    return {"files_match_manifest": True, "rows_rehash": len(seen), "erased_absent": sorted(f"{k[0]}/{k[1]}"
            for k in gone), "slice_digest": digest}
