"""Which item ids the billing API accepts: exactly those Cosmos DB can address as ONE document, nothing else.

Cosmos DB's rules for an item id (each a source):

- not ``/``, ``\\``, ``?`` or ``#``: "The following characters are restricted and cannot be used in the Id property"
  (Resource.Id / DatabaseProperties.Id remarks, Microsoft Learn .NET reference); azure-cosmos 4.17.1 refuses the
  same plus tab, CR and LF (``_base._VALID_COSMOS_RESOURCE = ^[^/\\\\#?\\t\\r\\n]*$``) and an id ending in a space
  or a newline (``_base._validate_resource``);
- at most 1,023 bytes (Azure Cosmos DB service quotas, per-item limits: "Maximum length of id: 1,023 bytes"; older
  SDKs allowed 255 characters);
- not empty (every item has an id).

Two rules are the HTTP layer's, not the service's: ``.`` and ``..`` are dot segments, which an HTTP client removes
before it sends ``dbs/<db>/colls/<coll>/docs/<id>`` (RFC 3986 5.2.4; requests/urllib3 do), so they address the
container's feed or the container itself; and an id that is a percent-encoding of a refused one (``%2E``,
``%252E``, ``a%2Fb``) is refused too: a proxy or gateway that decodes the path once more would address something
other than the document. That last rule is stricter than Cosmos DB (which stores ``%2E`` as those three
characters): a deliberate guess at what the layers in between may do.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from include.cosmos_archiver.readthrough.errors import BadRequest

MAX_ID_BYTES = 1023
_REFUSED = re.compile(r"[/\\?#\t\r\n]")
ID_SCHEMA_PATTERN = r"^(?!\.\.?$)[^/\\?#\t\r\n%]*[^/\\?#\t\r\n% ]$"
"""For the OpenAPI schema (what a client should send): the rules above, ``%`` left out so that no generated id
needs the decoding rule. The check itself is :func:`check_id`."""
ID_RULE = ("an id is 1 to 1,023 UTF-8 bytes without / \\ ? # tab CR LF, does not end with a space or newline, is "
           "not . or .., and does not percent-decode to such a value (Cosmos DB's item id rules)")


def id_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an item id, or None when Cosmos DB addresses it as exactly one document."""
    if not isinstance(value, str):
        return f"it is {type(value).__name__}, not a string"
    if value == "":
        return "it is empty"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "it holds a lone surrogate (not UTF-8)"
    if size > MAX_ID_BYTES:
        return f"it is {size} UTF-8 bytes (at most {MAX_ID_BYTES})"
    seen = value
    for _ in range(8):  # each round one more decoding a layer in between might apply
        if seen in (".", ".."):
            return f"{seen!r} is a dot segment: it addresses the container, not a document"
        refused = _REFUSED.search(seen)
        if refused:
            return f"it contains {refused.group()!r}"
        if seen.endswith((" ", "\n")):
            return "it ends with a space"
        decoded = unquote(seen)
        if decoded == seen:
            return None
        seen = decoded
    return "it is percent-encoded too many times"


def check_id(value: Any, parameter: str = "id") -> str:
    """``value`` if it is an id Cosmos DB addresses as one document, else BadRequest naming the rule."""
    problem = id_problem(value)
    if problem is not None:
        shown = value[:200] if isinstance(value, str) else value
        raise BadRequest(f"{parameter}={shown!r} is not a valid id: {problem}; {ID_RULE}", parameter=parameter,
                         value=shown)
    return value
