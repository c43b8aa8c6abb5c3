"""The small documents the archive leaves in Cosmos DB, recognised by a shape no business document has by accident.

Both carry one namespaced object under :data:`MARKER_FIELD` (``_cosmosArchive``)::

    {"v": 1, "kind": "stub", "slice": ..., "sha256": <the archive's sha256 of the record>, "etag": ..., ...}
    {"v": 1, "kind": "tombstone", "deletedAt": ..., "order": ..., "slice": ...}

- A **stub** (the purge's ``stub`` mode) replaces an archived document: id, partition key, timestamp field and the
  marker. It is believed only when the archive agrees: the index holds the record with the stub's sha256 (reads), or
  the row being restored has it (restore). Reads hydrate it from the archive transparently.
- A **tombstone** replaces every record deleted through the API: id, partition key and the marker; every slice
  query leaves it out, so it is never archived. It stays (a few hundred bytes) so that no API process can serve an
  archived copy again, from any generation, cache or later archive run.

A business field of any name, ``_archived`` or ``_archiveDeleted`` included, or :data:`MARKER_FIELD` holding any
other value, is data: archived, counted and served like the rest. The shape and its SQL twin
(:func:`source.reader.marker_sql`) are defined next to the slice queries that must leave markers out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from include.cosmos_archiver.source.reader import MARKER_FIELD, MARKER_KINDS, MARKER_VERSION, STUB, TOMBSTONE

__all__ = ["MARKER_FIELD", "MARKER_SCHEMA", "SYSTEM_PROPERTIES", "is_stub", "is_tombstone", "marker_kind",
           "stub_marker", "stub_sha256", "tombstone"]
SYSTEM_PROPERTIES = ("_rid", "_self", "_etag", "_ts", "_attachments")
# JSON Schema of a body that carries a marker (what the API refuses to write): the shape marker_kind recognises
MARKER_SCHEMA = {"required": [MARKER_FIELD], "properties": {MARKER_FIELD: {
    "type": "object", "required": ["v", "kind"],
    "properties": {"v": {"type": "number", "const": MARKER_VERSION}, "kind": {"enum": list(MARKER_KINDS)}}}}}


def marker_kind(doc: dict[str, Any]) -> str | None:
    """``"stub"``, ``"tombstone"`` or None (a business document): exactly what ``marker_sql`` selects."""
    mark = doc.get(MARKER_FIELD)
    if not isinstance(mark, dict):
        return None
    version, kind = mark.get("v"), mark.get("kind")
    if isinstance(version, bool) or not isinstance(version, int | float) or version != MARKER_VERSION:
        return None
    return kind if isinstance(kind, str) and kind in MARKER_KINDS else None


def is_stub(doc: dict[str, Any]) -> bool:
    return marker_kind(doc) == STUB


def is_tombstone(doc: dict[str, Any]) -> bool:
    return marker_kind(doc) == TOMBSTONE


def stub_sha256(doc: dict[str, Any]) -> str | None:
    """The archive's sha256 of the record a stub stands for (None if it names none)."""
    sha = doc.get(MARKER_FIELD, {}).get("sha256") if is_stub(doc) else None
    return sha if isinstance(sha, str) else None


def stub_marker(**fields: Any) -> dict[str, Any]:
    return {"v": MARKER_VERSION, "kind": STUB, **fields}


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
    mark = {"v": MARKER_VERSION, "kind": TOMBSTONE, "deletedAt": dt.datetime.now(dt.UTC).isoformat(),
            "order": order, "slice": slice_id}
    return with_path_value({"id": record_id, MARKER_FIELD: mark}, partition_key_path, partition_key)
