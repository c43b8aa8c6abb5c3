"""How many RU a Cosmos DB request costs, in a model calibrated to the seed case (~300 KB document ≈ 300 RU).

API:
- ``classify(method, path, headers) -> RequestKind``: operation type (``Read``, ``Create``, ``Upsert``, ``Replace``,
  ``Delete``, ``Patch``, ``Query``, ``ReadFeed``, ``Batch``, ``Metadata``), database/collection names and the
  document link, parsed from a Cosmos REST request.
- ``ChargeModel``: the tunable rates; ``estimate(kind, request_bytes, known_doc_bytes)`` before the backend answers
  and ``charge(kind, status, request_bytes, response_bytes, known_doc_bytes)`` once it has.

Rates (defaults): reads 1 RU/KB, writes 5 RU/KB of the written (or, for deletes, the known) document, queries and
feeds 1 RU/KB of the page returned plus a per-page overhead, 404 and other errors 1 RU, metadata 1 RU, all with a
minimum of 1 RU. Real Cosmos DB charges depend on indexing and consistency; this is the shape, not the decimals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

WRITE_OPERATIONS = frozenset({"Create", "Upsert", "Replace", "Delete", "Patch", "Batch"})
PAGED_OPERATIONS = frozenset({"Query", "ReadFeed"})


@dataclass(frozen=True)
class RequestKind:
    operation: str
    database: str = ""
    collection: str = ""
    doc_link: str = ""  # "dbs/<db>/colls/<coll>/docs/<id>" for point operations, else ""

    @property
    def is_write(self) -> bool:
        return self.operation in WRITE_OPERATIONS

    @property
    def is_paged(self) -> bool:
        return self.operation in PAGED_OPERATIONS


def _flag(headers: Mapping[str, str], name: str) -> bool:
    return str(headers.get(name, "")).strip().lower() == "true"


def classify(method: str, path: str, headers: Mapping[str, str]) -> RequestKind:
    """Parse a Cosmos REST request (name-based links, as azure-cosmos sends them). ``headers`` keys lower-case."""
    parts = [p for p in path.split("?", 1)[0].strip("/").split("/") if p]
    database = parts[1] if len(parts) >= 2 and parts[0] == "dbs" else ""
    collection = parts[3] if len(parts) >= 4 and parts[2] == "colls" else ""
    method = method.upper()
    if len(parts) >= 5 and parts[4] == "docs":
        if len(parts) == 5:
            if method == "GET":
                return RequestKind("ReadFeed", database, collection)
            if method == "POST":
                content_type = headers.get("content-type", "")
                if _flag(headers, "x-ms-documentdb-isquery") or "query+json" in content_type:
                    return RequestKind("Query", database, collection)
                if _flag(headers, "x-ms-cosmos-is-batch-request") or _flag(headers, "x-ms-cosmos-batch-atomic"):
                    return RequestKind("Batch", database, collection)
                op = "Upsert" if _flag(headers, "x-ms-documentdb-is-upsert") else "Create"
                return RequestKind(op, database, collection)
        elif len(parts) == 6:
            link = "/".join(parts[:6])
            op = {"GET": "Read", "PUT": "Replace", "DELETE": "Delete", "PATCH": "Patch"}.get(method, "Metadata")
            return RequestKind(op, database, collection, link)
    return RequestKind("Metadata", database, collection)


@dataclass(frozen=True)
class ChargeModel:
    read_ru_per_kb: float = 1.0
    write_ru_per_kb: float = 5.0
    query_page_overhead_ru: float = 2.0
    min_ru: float = 1.0
    min_write_ru: float = 5.0
    error_ru: float = 1.0
    metadata_ru: float = 1.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value >= 0:
                raise ValueError(f"charge model {name}={value!r} must be a number >= 0")

    def _write(self, size: int) -> float:
        return max(self.min_write_ru, self.write_ru_per_kb * size / 1024)

    def _read(self, size: int) -> float:
        return max(self.min_ru, self.read_ru_per_kb * size / 1024)

    def estimate(self, kind: RequestKind, request_bytes: int, known_doc_bytes: int | None, page_guess: float) -> float:
        """RU to reserve before the backend answers. ``page_guess``: the caller's running guess for paged reads."""
        op = kind.operation
        if op == "Metadata":
            return self.metadata_ru
        if op == "Delete":
            return self._write(known_doc_bytes or 0)
        if kind.is_write:
            return self._write(request_bytes)
        if kind.is_paged:
            return max(self.query_page_overhead_ru, page_guess)
        return self._read(known_doc_bytes or 0)

    def charge(
        self, kind: RequestKind, status: int, request_bytes: int, response_bytes: int, known_doc_bytes: int | None
    ) -> float:
        """The RU a completed request costs, from what it sent and what the backend answered."""
        op = kind.operation
        if op == "Metadata":
            return self.metadata_ru
        if status >= 400:
            return self.error_ru
        if op == "Delete":
            return self._write(known_doc_bytes or 0)
        if kind.is_write:
            return self._write(request_bytes)
        if kind.is_paged:
            return max(self.min_ru, self.query_page_overhead_ru + self.read_ru_per_kb * response_bytes / 1024)
        return self._read(response_bytes)
