"""parquet_format.decode_any on files in the ADF copy layout (no servers needed: the bytes are real Parquet files
written by pyarrow the way the stand-in writes them; tests/test_adf_operator.py covers the whole path)."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from devstack.adf_standin.copy_runner import ADF_SCHEMA, _adf_rows
from include.cosmos_archiver.archive.canonical import canonical_json, sha256_hex
from include.cosmos_archiver.archive.parquet_layout import ArchivedRow, decode_any, decode_rows, encode_rows

DOCS = [
    {"id": "a", "customerId": "c-Ω", "_ts": 1700000000, "_etag": '"e1"', "z": 1, "a": {"y": [1.5, None], "b": "😀"}},
    {"_etag": '"e2"', "id": "b", "customerId": 7, "_ts": 1700000001, "big": 12345678901234567890, "tenth": 0.1},
]


def _file(columns: dict[str, list[Any]], schema: pa.Schema | None = None) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns, schema=schema), sink, compression="snappy")
    return sink.getvalue()


def test_adf_rows_are_canonicalised_and_hashed() -> None:
    data = _file(_adf_rows(DOCS, "/customerId"), ADF_SCHEMA)
    rows = list(decode_any(data, "/customerId"))
    assert [(r.partition_key, r.id, r.ts, r.etag) for r in rows] == [
        ("c-Ω", "a", 1700000000, '"e1"'),
        ("7", "b", 1700000001, '"e2"'),  # a number partition key as compact JSON, as record_key gives it
    ]
    for row, doc in zip(rows, DOCS, strict=True):
        assert row.doc == canonical_json(doc) and row.sha256 == sha256_hex(row.doc)
    raw = pq.read_table(io.BytesIO(data)).column("doc").to_pylist()
    assert all(text.encode() != canonical_json(doc) for text, doc in zip(raw, DOCS, strict=True))


def test_ts_and_etag_columns_may_be_missing() -> None:
    full = _adf_rows(DOCS, "/customerId")
    data = _file({"id": full["id"], "doc": full["doc"]})
    rows = list(decode_any(data, "/customerId"))
    assert [(r.partition_key, r.ts, r.etag) for r in rows] == [("c-Ω", 1700000000, '"e1"'), ("7", 1700000001, '"e2"')]
    without_path = list(decode_any(_file({"id": full["id"], "partition_key": ["p", "q"], "doc": full["doc"]})))
    assert [(r.partition_key, r.id, r.ts) for r in without_path] == [("p", "a", 1700000000), ("q", "b", 1700000001)]


def test_our_layout_is_decoded_as_before() -> None:
    canon = canonical_json(DOCS[0])
    ours = encode_rows(
        [ArchivedRow(id="a", partition_key="c-Ω", ts=1, etag=None, sha256=sha256_hex(canon), doc=canon)],
        row_group_rows=10,
    )
    assert list(decode_any(ours, "/customerId")) == list(decode_rows(ours))


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"id": ["a"], "body": ["{}"]}, r"no \['doc'\] column"),
        ({"id": ["a"], "doc": ["[1, 2]"]}, r"row 0 \(id 'a'\): doc is not a JSON object"),
        ({"id": ["a"], "doc": ["{not json"]}, r"row 0 \(id 'a'\): doc is not JSON"),
    ],
)
def test_files_in_neither_layout_are_named(columns: dict[str, list[Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        list(decode_any(_file(columns), "/customerId"))


def test_doc_json_round_trips_numbers_like_the_source_side() -> None:
    """Big integers and floats survive ADF-style text the same way they survive the SDK's JSON parsing."""
    (row,) = decode_any(_file(_adf_rows([DOCS[1]], "/customerId"), ADF_SCHEMA), "/customerId")
    assert json.loads(row.doc)["big"] == 12345678901234567890 and json.loads(row.doc)["tenth"] == 0.1
