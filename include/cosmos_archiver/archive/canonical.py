"""Canonical JSON of a Cosmos document and its sha256: the identity every archived record is proven against.

Canonical form: keys sorted, no insignificant whitespace, UTF-8 without escaping non-ASCII, shortest
round-tripping float repr, integers of any size as written. Canonicalising the parse of a canonical document gives
the same bytes again, so the archive can be re-hashed from what it stores.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(document: dict[str, Any]) -> bytes:
    """The document as canonical UTF-8 JSON bytes; NaN/Infinity (not valid JSON, not storable in Cosmos) raise."""
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_key(document: dict[str, Any], partition_key_path: str) -> tuple[str, str]:
    """(partition key value as text, id): unique per container."""
    return partition_key_text(partition_key_value(document, partition_key_path)), str(document["id"])


def partition_key_value(document: dict[str, Any], partition_key_path: str) -> Any:
    value: Any = document
    for part in partition_key_path.strip("/").split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def partition_key_text(value: Any) -> str:
    """Text form of a partition key value: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def slice_digest(record_hashes: list[tuple[str, str, str]]) -> str:
    """Order-independent digest of a slice: sha256 over sorted 'pk<TAB>id<TAB>sha256' lines."""
    h = hashlib.sha256()
    for pk, rid, digest in sorted(record_hashes):
        h.update(f"{pk}\t{rid}\t{digest}\n".encode())
    return h.hexdigest()
