"""Documents to Parquet parts of a slice folder: canonicalise, hash, buffer, and upload a part whenever the buffer
reaches ``max_file_bytes`` (the local copy executor's writer, also used for what an ADF copy cannot place)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from include.cosmos_archiver.archive.canonical import archivable_json, sha256_hex
from include.cosmos_archiver.archive.manifest import FileEntry, RecordEntry
from include.cosmos_archiver.archive.parquet_layout import ArchivedRow, encode_rows
from include.cosmos_archiver.archive.slice_lease import SliceLease
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.settings import ArchiveSettings


@dataclass
class PartWriter:
    """Buffers rows and uploads a Parquet part whenever the buffer reaches ``max_file_bytes`` of documents."""

    store: ArchiveStore
    slice_id: str
    settings: ArchiveSettings
    lease: SliceLease | None = None  # renewed before every upload when set (bench/ writes without one)
    first_index: int = 0  # parts of earlier generations (or an ADF copy's files) keep their numbers
    generation: int = 0
    rows: list[ArchivedRow] = field(default_factory=list)
    buffered_bytes: int = 0
    record_bytes: int = 0  # canonical JSON bytes of every document added
    files: list[FileEntry] = field(default_factory=list)
    encode_s: float = 0.0
    upload_s: float = 0.0

    @property
    def current_index(self) -> int:
        return self.first_index + len(self.files)

    def add_document(self, doc: dict[str, Any], key: tuple[str, str]) -> RecordEntry:
        """Canonicalise and hash one source document (``key``: its partition key text and id), buffer it, and
        return its manifest entry; UnarchivableError (nothing buffered) for a document that cannot be archived."""
        canon = archivable_json(doc)
        digest = sha256_hex(canon)
        self.record_bytes += len(canon)
        entry = RecordEntry(partition_key=key[0], id=key[1], sha256=digest, file=self.current_index,
                            etag=doc.get("_etag"), generation=self.generation)
        self.add(ArchivedRow(id=key[1], partition_key=key[0], ts=_int_or_none(doc.get("_ts")),
                             etag=doc.get("_etag"), sha256=digest, doc=canon))
        return entry

    def add(self, row: ArchivedRow) -> None:
        self.rows.append(row)
        self.buffered_bytes += len(row.doc)
        if self.buffered_bytes >= self.settings.max_file_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        started = time.perf_counter()
        # Clustered by partition key: one customer's records of a slice share few row groups (read-through lists).
        self.rows.sort(key=lambda r: (r.partition_key, r.id))
        avg = max(1, self.buffered_bytes // len(self.rows))
        data = encode_rows(
            self.rows,
            row_group_rows=max(1, self.settings.row_group_bytes // avg),
            compression_level=self.settings.compression_level,
        )
        digest = sha256_hex(data)
        encoded = time.perf_counter()
        path = self.store.part_path(self.slice_id, self.current_index)
        if self.lease is not None:
            self.lease.ensure_held()
        self.store.upload(path, data)
        self.upload_s += time.perf_counter() - encoded
        self.encode_s += encoded - started
        self.files.append(FileEntry(path=path, sha256=digest, bytes=len(data), records=len(self.rows),
                                    generation=self.generation))
        self.rows, self.buffered_bytes = [], 0


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
