"""The Parquet layout of archived records.

``doc`` holds the canonical JSON byte-exactly (the lossless copy); the other columns are promoted for lookups
(id, partition key, ``_ts``, ``_etag``) and for re-verification (sha256). Small row groups keep a point lookup by
id/partition key to one row group's worth of reading, helped by the column statistics pyarrow writes.

Files an Azure Data Factory copy wrote (``adf/resources``: columns id, partition_key, ts, etag and ``doc`` as JSON text
in whatever form ADF serialised it, no sha256) are read with :func:`decode_any`, which canonicalises and hashes
each ``doc`` so both layouts are proven the same way.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from include.cosmos_archiver.archive.canonical import canonical_json, record_key, sha256_hex

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("partition_key", pa.string(), nullable=False),
        pa.field("ts", pa.int64()),
        pa.field("etag", pa.string()),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("doc", pa.large_string(), nullable=False),
    ]
)


@dataclass
class ArchivedRow:
    id: str
    partition_key: str
    ts: int | None
    etag: str | None
    sha256: str
    doc: bytes  # canonical JSON, UTF-8


def rows_table(rows: list[ArchivedRow]) -> pa.Table:
    """The rows as an Arrow table in the archive's schema."""
    return pa.table(
        {
            "id": pa.array([r.id for r in rows], pa.string()),
            "partition_key": pa.array([r.partition_key for r in rows], pa.string()),
            "ts": pa.array([r.ts for r in rows], pa.int64()),
            "etag": pa.array([r.etag for r in rows], pa.string()),
            "sha256": pa.array([r.sha256 for r in rows], pa.string()),
            # Bytes straight in, then a cast that validates UTF-8: no str round trip (2x faster, half the memory).
            "doc": pa.array([r.doc for r in rows], pa.large_binary()).cast(pa.large_string()),
        },
        schema=SCHEMA,
    )


def encode_rows(rows: list[ArchivedRow], *, row_group_rows: int, compression_level: int = 1) -> bytes:
    """One Parquet file (zstd) holding ``rows`` in row groups of ``row_group_rows``."""
    sink = io.BytesIO()
    pq.write_table(
        rows_table(rows),
        sink,
        row_group_size=max(1, row_group_rows),
        compression="zstd",
        compression_level=compression_level,
        use_dictionary=["partition_key"],
        write_statistics=["id", "partition_key", "ts"],
        write_page_index=True,
    )
    return sink.getvalue()


def decode_rows(data: bytes) -> Iterator[ArchivedRow]:
    """Rows of one archived Parquet file; raises pyarrow errors on a damaged file."""
    table = pq.read_table(io.BytesIO(data), schema=SCHEMA)
    columns = table.drop_columns(["doc"]).to_pydict()
    docs = table.column("doc").cast(pa.large_binary()).to_pylist()
    for i in range(table.num_rows):
        yield ArchivedRow(
            id=columns["id"][i],
            partition_key=columns["partition_key"][i],
            ts=columns["ts"][i],
            etag=columns["etag"][i],
            sha256=columns["sha256"][i],
            doc=docs[i],
        )


def decode_any(data: bytes, partition_key_path: str | None = None) -> Iterator[ArchivedRow]:
    """Rows of an archived Parquet file in our layout (as :func:`decode_rows`) or in the ADF copy layout.

    ADF-layout rows get ``doc`` = the canonical JSON of their parsed ``doc`` text and ``sha256`` = its hash;
    ``ts``/``etag`` may be absent. With ``partition_key_path`` the key (partition key, id) is taken from the
    document itself, as the copy executor and the source side of validation do, so it never depends on how ADF
    rendered a non-string partition key; without it the id/partition_key columns are used.
    """
    names = set(pq.read_schema(io.BytesIO(data)).names)
    if "sha256" in names:
        yield from decode_rows(data)
        return
    missing = sorted({"id", "doc"} - names)
    if missing:
        raise ValueError(f"no {missing} column(s) (found {sorted(names)}): neither the archive nor the ADF layout")
    wanted = [c for c in ("id", "partition_key", "ts", "etag", "doc") if c in names]
    table = pq.read_table(io.BytesIO(data), columns=wanted)
    columns = table.to_pydict()
    for i in range(table.num_rows):
        text = columns["doc"][i]
        try:
            doc = json.loads(text) if isinstance(text, str | bytes) else None
        except ValueError as exc:
            raise ValueError(f"row {i} (id {columns['id'][i]!r}): doc is not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise ValueError(f"row {i} (id {columns['id'][i]!r}): doc is not a JSON object")
        canon = canonical_json(doc)
        if partition_key_path is not None:
            pk, rid = record_key(doc, partition_key_path)
        else:
            pk, rid = str(columns.get("partition_key", [None] * table.num_rows)[i]), str(columns["id"][i])
        ts = columns["ts"][i] if "ts" in columns else doc.get("_ts")
        etag = columns["etag"][i] if "etag" in columns else doc.get("_etag")
        yield ArchivedRow(
            id=rid,
            partition_key=pk,
            ts=ts if isinstance(ts, int) and not isinstance(ts, bool) else None,
            etag=etag if isinstance(etag, str) else None,
            sha256=sha256_hex(canon),
            doc=canon,
        )
