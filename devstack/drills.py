"""Failure drills: deliberately damage an archived slice to rehearse the halt path (never in normal runs).

The production DAG knows nothing of drills. Tests and demos damage a slice from outside: between runs with
:func:`corrupt_slice` / :func:`tamper_record`, or during a run through the ADF stand-in with
:class:`DamagingCopies` (its copy runner damages what each pipeline run of a chosen slice wrote, so validation
fails and the slice is copied again, through ADF, as in production).
"""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from devstack.adf_standin.copy_runner import RunCopy
from include.cosmos_archiver.adf.parameters import slice_from_parameters
from include.cosmos_archiver.archive.store import ArchiveStore


def flip_byte(data: bytes, offset: int | None = None) -> bytes:
    """``data`` with one byte inverted (by default in the middle, inside the column data)."""
    if not data:
        raise ValueError("cannot corrupt an empty file")
    at = len(data) // 2 if offset is None else offset
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def corrupt_slice(store: ArchiveStore, slice_id: str) -> str | None:
    """Flip one byte in the slice's first data file; return its path (None for an empty slice)."""
    manifest = store.read_manifest(slice_id)
    if manifest is None or not manifest.files:
        return None
    path = manifest.files[0].path
    store.upload(path, flip_byte(store.download(path)))
    return path


def tamper_record(store: ArchiveStore, path: str) -> str:
    """Change one field of the first document in a Parquet file of the archive (ours or ADF's); return its id.

    The file stays readable (indexing an ADF copy still works): only validation's comparison with the source finds
    the record differing, as it would a copy that mangled a record (its source ``_ts`` is older than the copy, so
    validation cannot take it for a record that changed meanwhile).
    """
    table = pq.read_table(io.BytesIO(store.download(path)))
    docs = table.column("doc").to_pylist()
    doc = json.loads(docs[0])
    field = [k for k in doc if not k.startswith("_") and k != "id"][-1]
    doc[field] = f"{doc[field]}~drill"
    docs[0] = json.dumps(doc)
    index = table.schema.get_field_index("doc")
    table = table.set_column(index, table.schema.field(index), pa.array(docs, table.schema.field(index).type))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    store.upload(path, buffer.getvalue())
    return str(doc.get("id"))


class DamagingCopies:
    """An ADF stand-in copy runner that damages what chosen slices' pipeline runs wrote.

    ``damage`` maps slice id -> how many of its runs to damage (None: every run). ``copies`` counts every slice's
    pipeline runs, so a test can tell that a slice was copied again through ADF.
    """

    def __init__(self, run_copy: RunCopy, store: ArchiveStore, damage: Mapping[str, int | None]) -> None:
        self.run_copy, self.store, self.damage = run_copy, store, dict(damage)
        self.copies: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, parameters: dict[str, Any]) -> dict[str, Any]:
        output = self.run_copy(parameters)
        slice_id = slice_from_parameters(parameters)[0].slice_id
        with self._lock:
            self.copies[slice_id] += 1
            runs = self.copies[slice_id]
        times = self.damage.get(slice_id, 0)
        files = self.store.list_parts(slice_id)
        if files and (times is None or runs <= times):
            tamper_record(self.store, files[0])
        return output
