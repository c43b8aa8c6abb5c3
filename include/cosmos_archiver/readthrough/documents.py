"""Which record bodies the billing API writes: JSON that Cosmos DB stores and the archive copies byte for byte.

A body is refused (BadRequest, nothing written) when it is:

- over ``max_bytes`` (default :data:`MAX_ITEM_BYTES`, Cosmos DB's item size limit, with its source in
  :mod:`..archive.canonical`);
- not JSON by RFC 8259: ``NaN``, ``Infinity`` and numbers too large for a double (``1e400``) are not JSON numbers
  (Python's json reads them; Cosmos DB and the archive's canonical JSON cannot hold them);
- nested deeper than :data:`MAX_DEPTH` (Cosmos DB's per-item limit "Maximum level of nesting for embedded objects /
  arrays: 128", as recalled from the same quotas page; not re-checked on this machine);
- holding a string (value or property name) with a lone surrogate (``"\\ud800"``): valid JSON escapes, but no
  UTF-8 text, so the copy could not encode the record (issue 16: Cosmos DB stores it, the copy then fails).
"""

from __future__ import annotations

import json
import math
from typing import Any

from include.cosmos_archiver.archive.canonical import COSMOS_ITEM_LIMIT_BYTES as MAX_ITEM_BYTES
from include.cosmos_archiver.archive.canonical import canonical_json
from include.cosmos_archiver.readthrough.errors import BadRequest

__all__ = ["MAX_DEPTH", "MAX_ITEM_BYTES", "BodyTooLarge", "check_document", "check_size", "parse_body", "served_json"]

MAX_DEPTH = 128


class BodyTooLarge(BadRequest):
    status = 413
    code = "PayloadTooLarge"


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"the body holds {name}, which is not a JSON number: send a finite number or null",
                     parameter="body", value=name)


def check_size(size: int, max_bytes: int = MAX_ITEM_BYTES) -> None:
    if size > max_bytes:
        raise BodyTooLarge(f"the body is {size} bytes, over the limit of {max_bytes} bytes (Cosmos DB's item size "
                           "limit unless configured lower): split the record", parameter="body", value=size)


def parse_body(raw: bytes, max_bytes: int = MAX_ITEM_BYTES) -> Any:
    """The JSON value of a request body, checked by :func:`check_document`; BadRequest naming what is wrong."""
    check_size(len(raw), max_bytes)
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest(f"the body is nested deeper than {MAX_DEPTH} levels (Cosmos DB's limit)",
                         parameter="body", value=None) from None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 ({exc.reason} at byte {exc.start}): send UTF-8 JSON",
                         parameter="body", value=None) from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc.msg} at character {exc.pos}); send a JSON "
                         "object", parameter="body", value=None) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise BadRequest(f"the body holds a value Python's JSON reader refuses: {str(exc)[:200]}",
                         parameter="body", value=None) from None
    check_document(value)
    return value


def check_document(value: Any) -> None:
    """BadRequest naming the first field (a JSON path) that Cosmos DB or the archive cannot hold as sent."""
    stack: list[tuple[Any, str, int]] = [(value, "$", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list) and depth > MAX_DEPTH:
            raise BadRequest(f"{path} is nested deeper than {MAX_DEPTH} levels (Cosmos DB's limit)",
                             parameter=path[:200], value=None)
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, f"{path} (a property name)")
                stack.append((child, f"{path}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{n}]", depth + 1) for n, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadRequest(f"{path} is {item!r}, not a finite JSON number (a double): send a finite number",
                             parameter=path[:200], value=str(item))
        elif isinstance(item, str):
            _check_text(item, path)


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest(f"{path} holds a lone surrogate (U+{ord(text[exc.start]):04X} at character {exc.start}), "
                         "which is not Unicode text: send the character it stands for",
                         parameter=path[:200].encode("utf-8", "replace").decode(), value=None) from None


def served_json(document: dict[str, Any]) -> bytes:
    """The response body of a document read from Cosmos DB: its canonical JSON; for a document another writer stored
    with a lone surrogate (``"\\ud800"``, which Cosmos DB accepts and UTF-8 cannot encode), the same text with each
    lone surrogate written as its JSON escape ``\\ud800`` -- valid JSON, the value Cosmos DB itself returns -- rather
    than a 500 for the record and every list of its customer (issue 16). Such a document is never archived (the copy
    sets it aside as unarchivable), so no archived body differs from the canonical form."""
    try:
        return canonical_json(document)
    except UnicodeEncodeError:
        text = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8", "backslashreplace")  # a lone surrogate, always inside a string: \udXXX
