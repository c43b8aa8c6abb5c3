"""Marker fields of the small documents the archive leaves in Cosmos DB, in one place.

- A **stub** (the purge's ``stub`` mode) replaces an archived document: id, partition key and ``STUB_MARKER``.
  Reads hydrate it from the archive transparently.
- A **tombstone** replaces a record deleted through the API while the archive holds (or may soon hold) it: id,
  partition key and ``TOMBSTONE_MARKER``; it carries no timestamp field and every slice query leaves it out,
  so it is never archived. It stays (a few hundred bytes) so that no API process can serve the archived copy
  again, even from a cache.

Both names are defined once, in ``source/reader.py``, whose slice queries leave both kinds out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from include.cosmos_archiver.source.reader import STUB_MARKER, TOMBSTONE_MARKER

__all__ = ["STUB_MARKER", "SYSTEM_PROPERTIES", "TOMBSTONE_MARKER", "is_stub", "is_tombstone", "tombstone"]
SYSTEM_PROPERTIES = ("_rid", "_self", "_etag", "_ts", "_attachments")


def is_stub(doc: dict[str, Any]) -> bool:
    return STUB_MARKER in doc


def is_tombstone(doc: dict[str, Any]) -> bool:
    return TOMBSTONE_MARKER in doc


def with_path_value(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``doc`` with ``value`` set at a ``/a/b`` property path (the partition key path), nested dicts created."""
    parts = path.strip("/").split("/")
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return doc


def tombstone(record_id: str, partition_key_path: str, partition_key: Any, *, order: Any, slice_id: str | None
              ) -> dict[str, Any]:
    mark = {"deletedAt": dt.datetime.now(dt.UTC).isoformat(), "order": order, "slice": slice_id}
    return with_path_value({"id": record_id, TOMBSTONE_MARKER: mark}, partition_key_path, partition_key)
