"""Read one archived record by reading only its row group: a cached footer plus one ranged Blob GET.

Cold: the part's tail (footer, usually one 64 KiB request) and the row group's byte range (one request); warm:
the decoded row group from a bytes-bounded LRU. The document comes back byte for byte as archived (canonical
JSON) and is checked against the index's sha256 before it is served.
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from azure.storage.blob import ContainerClient

from include.cosmos_archiver.archive.canonical import canonical_json, sha256_hex
from include.cosmos_archiver.readthrough.index import IndexEntry

TAIL_BYTES = 64 * 1024


class _RangeFile(io.RawIOBase):
    """A read-only file over a blob that serves reads from prefetched ranges and fetches what is missing."""

    def __init__(self, container: ContainerClient, path: str, size: int) -> None:
        self._container, self._path, self._size, self._pos = container, path, size, 0
        self._chunks: list[tuple[int, bytes]] = []

    def fetch(self, offset: int, length: int) -> bytes:
        data = self._container.download_blob(self._path, offset=offset, length=length).readall()
        self._chunks.append((offset, data))
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset if whence == 0 else self._pos + offset if whence == 1 else self._size + offset
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        start = self._pos
        if start >= end:
            return b""
        for offset, data in self._chunks:
            if offset <= start and end <= offset + len(data):
                self._pos = end
                return data[start - offset:end - offset]
        data = self.fetch(start, end - start)
        self._pos = end
        return data

    def readall(self) -> bytes:
        return self.read(-1)


class RowReader:
    """Thread-safe; bounded: ``max_cache_bytes`` of decoded documents and ``max_footers`` part footers."""

    def __init__(self, container: ContainerClient, *, max_cache_bytes: int = 64 * 1024 * 1024,
                 max_footers: int = 1024) -> None:
        self.container = container
        self.max_cache_bytes = max_cache_bytes
        self.max_footers = max_footers
        self._lock = threading.Lock()
        self._footers: OrderedDict[str, pq.FileMetaData] = OrderedDict()
        self._groups: OrderedDict[tuple[str, int], tuple[list[str], list[bytes], int]] = OrderedDict()
        self._cached_bytes = 0
        self.stats = {"footer_gets": 0, "row_group_gets": 0, "cache_hits": 0}

    def clear(self) -> None:
        with self._lock:
            self._footers.clear()
            self._groups.clear()
            self._cached_bytes = 0

    def document(self, entry: IndexEntry) -> bytes:
        """The archived document's canonical JSON; ValueError if the part no longer matches the index."""
        ids, docs, _ = self._group(entry)
        if entry.row >= len(ids) or ids[entry.row] != entry.id:
            raise ValueError(f"{entry.part} row group {entry.row_group} row {entry.row} is not {entry.id!r}")
        doc = docs[entry.row]
        if sha256_hex(doc) != entry.sha256:  # an ADF-layout file stores doc as ADF wrote it: serve its canonical form
            doc = canonical_json(json.loads(doc))
        if sha256_hex(doc) != entry.sha256:
            raise ValueError(f"{entry.part}: {entry.partition_key}/{entry.id} does not match its sha256 in the index")
        return doc

    def _group(self, entry: IndexEntry) -> tuple[list[str], list[bytes], int]:
        key = (entry.part, entry.row_group)
        with self._lock:
            hit = self._groups.get(key)
            if hit is not None:
                self._groups.move_to_end(key)
                self.stats["cache_hits"] += 1
                return hit
        file = _RangeFile(self.container, entry.part, entry.part_bytes)
        metadata = self._footer(entry, file)
        rg = metadata.row_group(entry.row_group)
        starts, ends = [], []
        for c in range(rg.num_columns):
            col = rg.column(c)
            start = col.dictionary_page_offset if col.has_dictionary_page and col.dictionary_page_offset else (
                col.data_page_offset)
            starts.append(start)
            ends.append(start + col.total_compressed_size)
        file.fetch(min(starts), max(ends) - min(starts))
        self.stats["row_group_gets"] += 1
        table = pq.ParquetFile(file, metadata=metadata).read_row_group(entry.row_group, columns=["id", "doc"])
        ids = table.column("id").to_pylist()
        docs = table.column("doc").cast(pa.large_binary()).to_pylist()
        size = sum(len(d) for d in docs)
        value = (ids, docs, size)
        with self._lock:
            if key not in self._groups and size <= self.max_cache_bytes:
                self._groups[key] = value
                self._cached_bytes += size
                while self._cached_bytes > self.max_cache_bytes:
                    _, (_, _, dropped) = self._groups.popitem(last=False)
                    self._cached_bytes -= dropped
        return value

    def _footer(self, entry: IndexEntry, file: _RangeFile) -> Any:
        with self._lock:
            metadata = self._footers.get(entry.part)
            if metadata is not None:
                self._footers.move_to_end(entry.part)
                return metadata
        tail = min(TAIL_BYTES, entry.part_bytes)
        file.fetch(entry.part_bytes - tail, tail)
        self.stats["footer_gets"] += 1
        metadata = pq.ParquetFile(file).metadata
        with self._lock:
            self._footers[entry.part] = metadata
            while len(self._footers) > self.max_footers:
                self._footers.popitem(last=False)
        return metadata
