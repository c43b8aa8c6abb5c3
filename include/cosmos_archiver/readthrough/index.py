"""The archive index: where each archived record is (part file, row group, row), sharded by partition key hash.

Layout under the archive prefix::

    _index/delta/<slice id with '-'>.parquet   one per indexed slice, written by index_slice after validation
    _index/shards/<NNN>.parquet                compacted: every slice's entries of shard NNN (compact_index)
    _index/delta/_generation.json              rewritten by each compaction: its etag tells a reader that the
                                               shards it cached are older (one small listing, not the shards')

A delta supersedes the compacted entries of its slice in every shard, also where it has none left (so re-indexing a
slice, e.g. after an erasure, replaces them; the delta names its slice in its metadata), and compaction folds deltas
into the shards and then deletes them: it rewrites every shard the slice had entries in (the generation file keeps
each slice's shards) so that no entry the delta dropped survives. A reader lists the deltas first, then
reads the shard, then the deltas: a compaction in between never hides an entry (a vanished delta is re-listed).

A point lookup reads one shard (1/``shards`` of the archive, cached) — not the archive — and is refreshed when it
misses, so a slice indexed after the shard was cached is found, and when it is older than ``max_age_s``, so a
newer generation of a record is found: the purge of a slice must start at least ``max_age_s`` after the slice
was indexed (``DEFAULT_MAX_AGE_S``). Memory: ``max_cached_shards`` shards at a time.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from azure.core.exceptions import ResourceNotFoundError

from include.cosmos_archiver.archive.canonical import canonical_json, record_key, sha256_hex
from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.slice_lease import slice_lease
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.readthrough.paging import timestamp_of
from include.cosmos_archiver.settings import ArchiveSettings

DEFAULT_PK_PATH = ArchiveSettings.partition_key_path
DEFAULT_SHARDS = 1024
# How stale a cached shard may be: a slice archived again (a newer generation) must be indexed this long before its
# purge, so that no API process still points a purged record at its older version.
DEFAULT_MAX_AGE_S = 5.0  # 2 M records: ~2,000 entries (~2 MB in memory) per shard
INDEX_DIR = "_index"

SCHEMA = pa.schema([
    pa.field("shard", pa.int32()), pa.field("partition_key", pa.string()), pa.field("id", pa.string()),
    pa.field("order", pa.string()),  # JSON of the timestamp field's value (string or number), null if absent
    pa.field("slice", pa.string()), pa.field("part", pa.string()), pa.field("part_bytes", pa.int64()),
    pa.field("row_group", pa.int32()), pa.field("row", pa.int32()), pa.field("etag", pa.string()),
    pa.field("sha256", pa.string()),
    pa.field("modified", pa.int64()),  # the archived version's ``_ts``: which of a record's entries is newest
])


class IndexEntry(NamedTuple):
    partition_key: str
    id: str
    order: Any
    slice: str
    part: str
    part_bytes: int
    row_group: int
    row: int
    etag: str | None
    sha256: str
    modified: int | None = None  # the archived version's ``_ts`` (None in an index written before it was kept)

    def newer_than(self, other: IndexEntry | None) -> bool:
        """Whether this entry's version is at least as new as ``other``'s, by the document's ``_ts``: a record
        archived in one slice and, after an update moved its timestamp, in another has an entry in each, and the
        order of the slices says nothing about which version is newer. Equal (or unknown) ``_ts``: this one,
        the later one listed, wins."""
        return other is None or (self.modified or -1) >= (other.modified or -1)


def shard_of(partition_key: str, shards: int = DEFAULT_SHARDS) -> int:
    return int.from_bytes(hashlib.sha256(partition_key.encode()).digest()[:4], "big") % shards


def _index_prefix(store: ArchiveStore) -> str:
    return f"{store.prefix}/{INDEX_DIR}" if store.prefix else INDEX_DIR


def generation_path(store: ArchiveStore) -> str:
    return f"{_index_prefix(store)}/delta/_generation.json"


def delta_path(store: ArchiveStore, slice_id: str) -> str:
    return f"{_index_prefix(store)}/delta/{slice_id.replace('/', '-')}.parquet"


def shard_path(store: ArchiveStore, shard: int) -> str:
    return f"{_index_prefix(store)}/shards/{shard:05d}.parquet"


def _encode(entries: list[IndexEntry], shards: int, slice_id: str | None = None) -> bytes:
    rows = sorted(entries, key=lambda e: (shard_of(e.partition_key, shards), e.partition_key, e.id))
    table = pa.table({
        "shard": pa.array([shard_of(e.partition_key, shards) for e in rows], pa.int32()),
        "partition_key": [e.partition_key for e in rows], "id": [e.id for e in rows],
        "order": [None if e.order is None else json.dumps(e.order, ensure_ascii=False) for e in rows],
        "slice": [e.slice for e in rows], "part": [e.part for e in rows],
        "part_bytes": pa.array([e.part_bytes for e in rows], pa.int64()),
        "row_group": pa.array([e.row_group for e in rows], pa.int32()),
        "row": pa.array([e.row for e in rows], pa.int32()),
        "etag": [e.etag for e in rows], "sha256": [e.sha256 for e in rows],
        "modified": pa.array([e.modified for e in rows], pa.int64()),
    }, schema=SCHEMA.with_metadata({"shards": str(shards), **({"slice": slice_id} if slice_id else {})}))
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=4096, write_statistics=["shard", "partition_key"])
    return sink.getvalue()


def _delta_slice(data: bytes, path: str) -> str:
    """The slice a delta indexes: named in its metadata (older deltas: by their file name)."""
    named = (pq.ParquetFile(io.BytesIO(data)).schema_arrow.metadata or {}).get(b"slice")
    return named.decode() if named else path.rsplit("/", 1)[-1].removesuffix(".parquet").replace("-", "/")


def _decode(data: bytes, shards: int, shard: int | None = None) -> list[IndexEntry]:
    file = pq.ParquetFile(io.BytesIO(data))
    written = int((file.schema_arrow.metadata or {}).get(b"shards", b"0"))
    if written != shards:
        raise ValueError(f"archive index written with {written} shards, read with {shards}: use the same shard count")
    filters = [("shard", "=", shard)] if shard is not None else None
    cols = pq.read_table(io.BytesIO(data), filters=filters).to_pydict()
    modified = cols.get("modified") or [None] * len(cols["id"])  # absent from an index written before it was kept
    return [IndexEntry(pk, rid, None if o is None else json.loads(o), s, p, pb, rg, r, et, sh, m)
            for pk, rid, o, s, p, pb, rg, r, et, sh, m in zip(
                cols["partition_key"], cols["id"], cols["order"], cols["slice"], cols["part"], cols["part_bytes"],
                cols["row_group"], cols["row"], cols["etag"], cols["sha256"], modified, strict=True)]


def slice_entries(store: ArchiveStore, manifest: Manifest, partition_key_path: str = DEFAULT_PK_PATH
                  ) -> list[IndexEntry]:
    """Every record of a slice's parts with its position, read from the parts (not the manifest). A record in
    several files (a slice archived again in a later generation, appended to the manifest's files) is indexed at
    its last file: the newest version wins. Files in the ADF copy layout (``doc`` as ADF wrote it, no sha256) are
    indexed by the sha256 of the canonical JSON, which is what a read serves (see rows.RowReader)."""
    entries: dict[tuple[str, str], IndexEntry] = {}
    for f in manifest.files:
        parquet = pq.ParquetFile(io.BytesIO(store.download(f.path)))
        ours = "sha256" in parquet.schema_arrow.names
        for rg in range(parquet.num_row_groups):
            cols = parquet.read_row_group(rg, columns=["doc", *(["sha256"] if ours else [])]).to_pydict()
            for row, text in enumerate(cols["doc"]):
                doc = json.loads(text)
                pk, key_id = record_key(doc, partition_key_path)
                # ours: the stored sha256 (validation proved it against the doc); ADF's: hash the canonical form
                digest = cols["sha256"][row] if ours else sha256_hex(canonical_json(doc))
                order = timestamp_of(doc, manifest.timestamp_field)
                ts = doc.get("_ts")
                entries[(pk, key_id)] = IndexEntry(pk, key_id, order, manifest.slice_id, f.path, f.bytes, rg, row,
                                                   doc.get("_etag"), digest,
                                                   ts if isinstance(ts, int) and not isinstance(ts, bool) else None)
    return list(entries.values())


def index_slice(store: ArchiveStore, slice_id: str, *, shards: int = DEFAULT_SHARDS,
                partition_key_path: str = DEFAULT_PK_PATH, require_verified: bool = True) -> int:
    """Write the slice's index delta (idempotent; replaces an earlier one); return the number of entries.

    For the DAG: call it after a slice is verified and before it is purged, so every purged record is findable.
    The list order's timestamp field is the one the slice was archived by (its manifest's).
    """
    manifest = store.read_manifest(slice_id)
    if manifest is None or (require_verified and manifest.status != "verified"):
        status = None if manifest is None else manifest.status
        raise ValueError(f"slice {slice_id} is {status or 'not copied'}, not verified: index it after validation")
    entries = slice_entries(store, manifest, partition_key_path)
    store.upload(delta_path(store, slice_id), _encode(entries, shards, slice_id))
    return len(entries)


def index_for_purge(store: ArchiveStore, slice_id: str, *, partition_key_path: str = DEFAULT_PK_PATH,
                    shards: int = DEFAULT_SHARDS, wait_s: float = DEFAULT_MAX_AGE_S,
                    sleep: Callable[[float], None] = time.sleep) -> int:
    """The DAG's step between validation and purge: index the verified slice, then wait ``wait_s`` (the API
    processes' index max age) so that none still points a record about to be purged at an older version.
    Call it right before ``purge_slice``; returns the number of records indexed."""
    indexed = index_slice(store, slice_id, shards=shards, partition_key_path=partition_key_path)
    sleep(wait_s)
    return indexed


def _list(store: ArchiveStore, folder: str) -> dict[str, str]:
    """name -> etag of the index blobs in a folder (a rewritten blob keeps its name, not its etag)."""
    start = f"{_index_prefix(store)}/{folder}/"
    return {b.name: b.etag for b in store.container.list_blobs(name_starts_with=start)}


def compact_index(store: ArchiveStore, *, shards: int = DEFAULT_SHARDS,
                  wait_s: float = ArchiveSettings.slice_lease_wait_s) -> dict[str, int]:
    """Fold every delta into the shard files, then delete the deltas folded; readers stay correct throughout (see
    the module docstring). One compaction at a time, under the lease on ``_index/_lease``: the runs of a backfill
    run at once (Airflow 3 backfills ignore the DAG's ``max_active_runs``), and two compactions interleaved would
    read a delta the other just deleted (BlobNotFound) or write a shard without the entries the other folded."""
    with slice_lease(store, INDEX_DIR, wait_s=wait_s):
        return _compact(store, shards)


def _compact(store: ArchiveStore, shards: int) -> dict[str, int]:
    deltas = sorted(p for p in _list(store, "delta") if p.endswith(".parquet"))
    if not deltas:
        return {"deltas": 0, "shards_written": 0, "entries": 0}
    by_slice: dict[str, list[IndexEntry]] = {}
    for path in deltas:
        data = store.download(path)
        by_slice.setdefault(_delta_slice(data, path), []).extend(_decode(data, shards))
    try:  # where each slice's compacted entries are: those shards must drop what the new deltas no longer hold
        slice_shards: dict[str, list[int]] | None = json.loads(store.download(generation_path(store)))["slice_shards"]
    except (ResourceNotFoundError, KeyError, ValueError):
        slice_shards = None  # an index compacted before the map was kept: rewrite every shard once
    if slice_shards is None:
        start = f"{_index_prefix(store)}/shards/"
        slice_shards = {"": [int(b.rsplit("/", 1)[-1].removesuffix(".parquet")) for b in _list(store, "shards")
                             if b.startswith(start)]}
        old_shards = set(slice_shards.pop(""))
    else:
        old_shards = {n for sid in by_slice for n in slice_shards.get(sid, [])}
    touched = old_shards | {shard_of(e.partition_key, shards) for es in by_slice.values() for e in es}
    total = 0
    for shard in sorted(touched):
        try:
            kept = [e for e in _decode(store.download(shard_path(store, shard)), shards) if e.slice not in by_slice]
        except ResourceNotFoundError:
            kept = []
        merged = kept + [e for es in by_slice.values() for e in es if shard_of(e.partition_key, shards) == shard]
        store.upload(shard_path(store, shard), _encode(merged, shards))
        total += len(merged)
    for sid, entries in by_slice.items():
        slice_shards[sid] = sorted({shard_of(e.partition_key, shards) for e in entries})
    generation = {"deltas_folded": len(deltas), "entries": total, "slice_shards": slice_shards}
    store.upload(generation_path(store), json.dumps(generation).encode(), content_type="application/json")
    for path in deltas:
        store.delete(path)
    return {"deltas": len(deltas), "shards_written": len(touched), "entries": total}


@dataclass
class _ShardView:
    by_key: dict[tuple[str, str], IndexEntry]
    by_pk: dict[str, list[IndexEntry]] = field(default_factory=dict)
    base_etag: str | None = None  # of the compaction generation the view's shard file belongs to
    loaded_at: float = 0.0  # time.monotonic() of the delta listing the view reflects

    @classmethod
    def build(cls, base: Iterable[IndexEntry], deltas: dict[str, list[IndexEntry]]) -> _ShardView:
        superseded = set(deltas)
        view = cls({})
        for e in itertools.chain((e for e in base if e.slice not in superseded), *deltas.values()):
            if e.newer_than(view.by_key.get((e.partition_key, e.id))):
                view.by_key[(e.partition_key, e.id)] = e
        for e in view.by_key.values():
            view.by_pk.setdefault(e.partition_key, []).append(e)
        return view


class ArchiveIndex:
    """Reader side, thread-safe; one per API process."""

    def __init__(self, store: ArchiveStore, *, shards: int = DEFAULT_SHARDS, max_cached_shards: int = 32,
                 max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self.store = store
        self.shards = shards
        self.max_cached_shards = max_cached_shards
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._views: OrderedDict[int, _ShardView] = OrderedDict()
        # path -> (etag, its slice, shard -> entries)
        self._deltas: dict[str, tuple[str, str, dict[int, list[IndexEntry]]]] = {}
        self.stats = {"shard_loads": 0, "delta_loads": 0, "refreshes": 0}

    def lookup(self, partition_key: str, record_id: str, *, fresh: bool = False) -> IndexEntry | None:
        """The record's newest archived position. A view older than ``max_age_s`` is re-listed first (a newer
        generation of the slice may have been indexed since), and a miss is re-listed at once; ``fresh`` re-lists
        in any case."""
        shard = shard_of(partition_key, self.shards)
        entry = self._view(shard, refresh=fresh).by_key.get((partition_key, record_id))
        if entry is None and not fresh:  # perhaps indexed since this shard was cached
            entry = self._view(shard, refresh=True).by_key.get((partition_key, record_id))
        return entry

    def lookup_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], IndexEntry]:
        """The newest archived position of each (partition key, id) the index holds, each shard listed fresh once
        (not once per miss, as :meth:`lookup` would)."""
        by_shard: dict[int, list[tuple[str, str]]] = {}
        for key in keys:
            by_shard.setdefault(shard_of(key[0], self.shards), []).append(key)
        found = {}
        for shard, wanted in by_shard.items():
            view = self._view(shard, refresh=True)
            found.update({key: view.by_key[key] for key in wanted if key in view.by_key})
        return found

    def entries_of(self, partition_key: str) -> list[IndexEntry]:
        """Every archived record of one partition key, fresh (lists the deltas: one request)."""
        return list(self._view(shard_of(partition_key, self.shards), refresh=True).by_pk.get(partition_key, []))

    def invalidate(self) -> None:
        with self._lock:
            self._views.clear()
            self._deltas.clear()

    def _view(self, shard: int, *, refresh: bool = False) -> _ShardView:
        with self._lock:
            view = self._views.get(shard)
            if view is not None and time.monotonic() - view.loaded_at > self.max_age_s:
                refresh = True
            if view is not None and not refresh:
                self._views.move_to_end(shard)
                return view
        for _attempt in range(3):
            try:
                view = self._load(shard, reuse_base=view if refresh else None)
                break
            except ResourceNotFoundError:  # a delta compacted away between listing and reading it: list again
                continue
        else:
            view = self._load(shard, reuse_base=None)
        with self._lock:
            self._views[shard] = view
            self._views.move_to_end(shard)
            while len(self._views) > self.max_cached_shards:
                self._views.popitem(last=False)
        return view

    def _load(self, shard: int, reuse_base: _ShardView | None) -> _ShardView:
        listed_at = time.monotonic()
        listing = _list(self.store, "delta")  # one small request: the deltas and the compaction generation
        base_etag = listing.pop(generation_path(self.store), None)
        listed = {p: e for p, e in listing.items() if p.endswith(".parquet")}
        vanished = {p for p, (etag, _, _) in self._deltas.items() if listed.get(p) != etag}
        refresh_only = reuse_base is not None and not vanished and reuse_base.base_etag == base_etag
        if refresh_only:
            self.stats["refreshes"] += 1
        with self._lock:
            for path in vanished:  # compacted into the shards: our cached shards are older than that
                self._deltas.pop(path, None)
            if vanished:
                self._views.clear()
        base: list[IndexEntry] | None = None
        if not refresh_only:
            try:
                base = _decode(self.store.download(shard_path(self.store, shard)), self.shards, shard)
            except ResourceNotFoundError:
                base = []
            self.stats["shard_loads"] += 1
        for path, etag in listed.items():
            if path not in self._deltas:
                grouped: dict[int, list[IndexEntry]] = {}
                data = self.store.download(path)
                for e in _decode(data, self.shards):
                    grouped.setdefault(shard_of(e.partition_key, self.shards), []).append(e)
                self.stats["delta_loads"] += 1
                with self._lock:
                    self._deltas[path] = (etag, _delta_slice(data, path), grouped)
        deltas: dict[str, list[IndexEntry]] = {}  # every listed delta's slice, even with no entry in this shard
        for path in listed:
            if path in self._deltas:
                _, slice_id, grouped = self._deltas[path]
                deltas.setdefault(slice_id, []).extend(grouped.get(shard, []))
        if base is None:
            assert reuse_base is not None
            base = list(reuse_base.by_key.values())
        view = _ShardView.build(base, deltas)
        view.base_etag, view.loaded_at = base_etag, listed_at
        return view
