"""Canonical JSON of a Cosmos document and its sha256: the identity every archived record is proven against.

Canonical form: keys sorted, no insignificant whitespace, UTF-8 without escaping non-ASCII, shortest
round-tripping float repr, integers of any size as written. Canonicalising the parse of a canonical document gives
the same bytes again, so the archive can be re-hashed from what it stores.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.slices import MISSING, field_value

# "Maximum size of an item: 2 MB (UTF-8 length of JSON representation)" (Microsoft Learn, Azure Cosmos DB service
# quotas, per-item limits). cosmosdb-server does not enforce it, so a larger document can exist locally; Cosmos DB
# itself would refuse to take it back on a restore, so the archive sets it aside (a guess at the exact boundary:
# the service counts its own JSON with system properties, we count the canonical JSON of the document as read).
COSMOS_ITEM_LIMIT_BYTES = 2 * 1024 * 1024


class UnarchivableError(TerminalError, ValueError):
    """A document the archive cannot encode or hash (its message is the reason, named in the manifest); the copy
    sets such a document aside, so this never fails a task."""


def canonical_json(document: dict[str, Any]) -> bytes:
    """The document as canonical UTF-8 JSON bytes; NaN/Infinity (not valid JSON, not storable in Cosmos) raise."""
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def archivable_json(document: dict[str, Any], limit: int = COSMOS_ITEM_LIMIT_BYTES) -> bytes:
    """:func:`canonical_json`, or UnarchivableError saying why the document cannot be archived: a string UTF-8
    cannot encode (a lone surrogate such as ``"\\ud800"``, which Cosmos DB stores), NaN/Infinity, nesting too
    deep, a body over Cosmos DB's item size limit, or anything else that raises while canonicalising."""
    try:
        canon = canonical_json(document)
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
        raise UnarchivableError(f"a string holds {printable(bad) or 'a character'} (a lone surrogate), which UTF-8 "
                                "cannot encode") from None
    except RecursionError:
        raise UnarchivableError("the document is nested too deeply to encode as JSON") from None
    except Exception as exc:  # whatever canonicalisation raises: the document is set aside, named
        raise UnarchivableError(f"cannot be encoded as JSON ({exc.__class__.__name__}: {exc})") from None
    if len(canon) > limit:
        raise UnarchivableError(f"its JSON is {len(canon):,} bytes, over Cosmos DB's item size limit of "
                                f"{limit:,} bytes")
    return canon


def printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates) written as ``\\udxxx``: for names in messages,
    reports and notifications (the manifest keeps the exact text)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_key(document: dict[str, Any], partition_key_path: str) -> tuple[str, str]:
    """(partition key value as text, id): unique per container; a missing key is not the same key as null."""
    return partition_key_text(field_value(document, _dotted(partition_key_path))), str(document["id"])


def partition_key_value(document: dict[str, Any], partition_key_path: str) -> Any:
    """The partition key's value for an SDK call (None when the document does not have it)."""
    value = field_value(document, _dotted(partition_key_path))
    return None if value is MISSING else value


def _dotted(partition_key_path: str) -> str:
    return partition_key_path.strip("/").replace("/", ".")


MISSING_KEY_TEXT = "~undefined"  # the text of a missing partition key; no string key is ever written as this


def partition_key_text(value: Any) -> str:
    """Text form of a partition key value, one text per value (no two values share one):

    - a string is written as it is, unless it would read as something else: a string that parses as JSON
      (``"null"``, ``"7"``, ``"true"``, ``"[1]"``, ``'"x"'``) or starts with ``~`` is written JSON-quoted;
    - any other value (number, boolean, null, object) as compact JSON (``7``, ``true``, ``null``);
    - a missing partition key (:data:`MISSING`) as ``~undefined``.

    Ordinary string keys (``c-1``) and numbers are unchanged from manifest version 1; before this encoding a missing
    key, null and the string ``"null"`` were all written ``null``.
    """
    if value is MISSING:
        return MISSING_KEY_TEXT
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if _ambiguous(value) else value
    return json.dumps(value, separators=(",", ":"))


def partition_key_from_text(text: str) -> Any:
    """The partition key value a :func:`partition_key_text` stands for (MISSING for a missing key)."""
    if text == MISSING_KEY_TEXT:
        return MISSING
    try:
        return json.loads(text)
    except ValueError:
        return text


def _ambiguous(text: str) -> bool:
    if text.startswith("~"):
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def slice_digest(record_hashes: list[tuple[str, str, str]]) -> str:
    """Order-independent digest of a slice: sha256 over sorted 'pk<TAB>id<TAB>sha256' lines."""
    h = hashlib.sha256()
    for pk, rid, digest in sorted(record_hashes):
        h.update(f"{pk}\t{rid}\t{digest}\n".encode())
    return h.hexdigest()
