"""How many RU a Cosmos DB request costs: Microsoft's published figures (preset ``published``, the default), or the
seed's flat model (preset ``seed``, kept for comparison).

API:
- ``classify(method, path, headers) -> RequestKind``: operation type (``Read``, ``Create``, ``Upsert``, ``Replace``,
  ``Delete``, ``Patch``, ``Query``, ``QueryPlan``, ``ReadFeed``, ``Batch``, ``Metadata``), database/collection names
  and the document link, parsed from a Cosmos REST request.
- ``ChargeModel``: ``point(operation, doc_bytes)``, ``query(load)`` (a ``QueryLoad``: what a page made the service
  load and return), ``consistency_factor(level)``, ``estimate(...)`` before the backend answers; ``SEED`` and
  ``PUBLISHED`` are the two presets (``ChargeModel.preset_named(name)``).

Published model (preset ``published``), each rule with its source (all checked 2026-12-04, /work/shared/README.md):
- Point reads and writes by item size, linearly interpolated on the size table of Microsoft Learn
  "Understand request unit consumption" (session/eventual consistency): read/write RU at 1, 16, 64, 128, 256, 512,
  1,024 and 2,048 KB (``SIZE_TABLE``). Below 1 KB: the 1 KB figures (1 RU read, 4.95 RU write; Azure's minimum
  charges). Create, upsert, replace, patch and delete are all charged the table's write column: for the size written
  (create/upsert/replace), the size of the item removed (delete), the item's stored size (patch; guess: Azure
  charges a patch about like a write of the resulting item). A replace is charged as a delete of the old version
  plus a write of the new one (shared README, facts of 2026-12-01: "replace ~ delete of the old + insert of the
  new"), when the gateway knows the old size (it reads it, uncharged, before the replace); an upsert that replaces
  is charged one write of the new size (guess: the gateway does not look the old version up for upserts).
- Strong and Bounded Staleness reads (point reads, queries, feeds) cost twice as much (Microsoft Learn
  "Optimize cost of reads and writes": "reads ... consume approximately two times more RUs").
- Queries are charged by the documents they make the service load, not by what they return: Microsoft Learn
  "Troubleshoot query issues" shows ``SELECT VALUE c.description ... WHERE UPPER(c.description) = ...`` retrieving
  ~400 MB (60,951 documents) and returning 510 bytes for ~4,060 RU: ``query_ru_per_mb_loaded`` = 4,060 / 400 =
  10.15 RU per MB (10^6 bytes) loaded. That one data point cannot separate a per-document from a per-byte cost;
  ``query_ru_per_doc_loaded`` (default 0) is there to try other splits. Which documents a query loads is decided by
  query_shape.py (the index-served part of the filter bounds the scope; an unindexed predicate loads all of it).
- Guesses, no published figure found: ``query_page_ru`` = 2.3 RU per page (the commonly quoted minimum query charge;
  it covers the parse/plan and the round trip), ``index_lookup_ru`` = 0.0025 RU per index entry a query matches
  (what a COUNT answered from the index pays), errors (404 etc.) 1 RU, metadata 1 RU, a query plan request 1 RU.

Seed preset (``seed``): the design seed's "~300 RU per 300 KB": reads 1 RU/KB, writes 5 RU/KB, queries and feeds
1 RU/KB of the page *returned* plus 2 RU per page (the gateway's behaviour before issue 17).
"""

from __future__ import annotations

import itertools
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

    @property
    def is_metadata(self) -> bool:
        return self.operation in ("Metadata", "QueryPlan")


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
                if _flag(headers, "x-ms-cosmos-is-query-plan-request"):
                    return RequestKind("QueryPlan", database, collection)
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


SIZE_TABLE: tuple[tuple[float, float, float], ...] = (
    # (KB, read RU, write RU): Microsoft Learn, understand-request-unit-consumption (checked 2026-12-04)
    (1, 1.00, 4.95),
    (16, 1.67, 9.52),
    (64, 4.76, 22.67),
    (128, 9.95, 48.19),
    (256, 20.28, 98.29),
    (512, 40.95, 184.57),
    (1024, 145.90, 625.00),
    (2048, 291.80, 1250.00),
)
PRESETS = ("published", "seed")
DOUBLED_READ_CONSISTENCY = frozenset({"strong", "boundedstaleness"})
MB = 1_000_000


def interpolate(kb: float, column: int) -> float:
    """The size table's figure (column 1 read, 2 write) at ``kb``, linear between rows, the last slope beyond."""
    rows = SIZE_TABLE
    if kb <= rows[0][0]:
        return rows[0][column]
    for low, high in itertools.pairwise(rows):
        if kb <= high[0]:
            return low[column] + (high[column] - low[column]) * (kb - low[0]) / (high[0] - low[0])
    low, high = rows[-2], rows[-1]
    return high[column] + (high[column] - low[column]) * (kb - high[0]) / (high[0] - low[0])


@dataclass(frozen=True)
class QueryLoad:
    """What one query (or feed) page made the service do: documents loaded from storage (count and bytes), documents
    returned, index entries matched, and whether the whole filter was served by the index."""

    loaded_docs: float = 0.0
    loaded_bytes: float = 0.0
    output_docs: int = 0
    output_bytes: int = 0
    index_lookups: float = 0.0
    index_only: bool = True


@dataclass(frozen=True)
class ChargeModel:
    preset: str = "published"
    query_ru_per_mb_loaded: float = 10.15
    query_ru_per_doc_loaded: float = 0.0
    query_page_ru: float = 2.3
    index_lookup_ru: float = 0.0025
    consistency_read_factor: float = 2.0
    # seed preset
    read_ru_per_kb: float = 1.0
    write_ru_per_kb: float = 5.0
    query_page_overhead_ru: float = 2.0
    min_ru: float = 1.0
    min_write_ru: float = 5.0
    # both
    error_ru: float = 1.0
    metadata_ru: float = 1.0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"charge model preset {self.preset!r} must be one of {', '.join(PRESETS)}")
        for name, value in vars(self).items():
            if name != "preset" and not value >= 0:
                raise ValueError(f"charge model {name}={value!r} must be a number >= 0")

    @classmethod
    def preset_named(cls, name: str, **overrides: float) -> ChargeModel:
        return cls(preset=name, **overrides)

    @property
    def seed(self) -> bool:
        return self.preset == "seed"

    def consistency_factor(self, level: str | None) -> float:
        """Reads under Strong or Bounded Staleness cost ``consistency_read_factor`` times more (both presets)."""
        return self.consistency_read_factor if (level or "").strip().lower() in DOUBLED_READ_CONSISTENCY else 1.0

    def point(self, operation: str, doc_bytes: int) -> float:
        """A point read or write of an item of ``doc_bytes`` (session consistency)."""
        kb = doc_bytes / 1024
        write = operation in WRITE_OPERATIONS
        if self.seed:
            if write:
                return max(self.min_write_ru, self.write_ru_per_kb * kb)
            return max(self.min_ru, self.read_ru_per_kb * kb)
        return interpolate(kb, 2 if write else 1)

    def query(self, load: QueryLoad) -> float:
        """One query or feed page (session consistency)."""
        if self.seed:
            return max(self.min_ru, self.query_page_overhead_ru + self.read_ru_per_kb * load.output_bytes / 1024)
        return (
            self.query_page_ru
            + self.query_ru_per_mb_loaded * load.loaded_bytes / MB
            + self.query_ru_per_doc_loaded * load.loaded_docs
            + self.index_lookup_ru * load.index_lookups
        )

    def estimate(self, kind: RequestKind, request_bytes: int, known_doc_bytes: int | None, page_guess: float) -> float:
        """RU to reserve before the backend answers. ``page_guess``: the caller's running guess for paged reads."""
        op = kind.operation
        if op in ("Metadata", "QueryPlan"):
            return self.metadata_ru
        if op in ("Delete", "Patch"):
            return self.point(op, known_doc_bytes or 0)
        if op == "Replace" and known_doc_bytes and not self.seed:
            return self.point("Delete", known_doc_bytes) + self.point(op, request_bytes)
        if kind.is_write:
            return self.point(op, request_bytes)
        if kind.is_paged:
            return max(self.query_page_ru if not self.seed else self.query_page_overhead_ru, page_guess)
        return self.point(op, known_doc_bytes or 0)

    def charge_point(self, kind: RequestKind, status: int, request_bytes: int, response_bytes: int,
                     known_doc_bytes: int | None) -> float:
        """A completed non-paged request, from what it sent and what the backend answered."""
        op = kind.operation
        if op in ("Metadata", "QueryPlan"):
            return self.metadata_ru
        if status >= 400:
            return self.error_ru
        if op in ("Delete", "Patch"):
            return self.point(op, known_doc_bytes or (response_bytes if op == "Patch" else 0))
        if op == "Replace" and known_doc_bytes and not self.seed:
            return self.point("Delete", known_doc_bytes) + self.point(op, request_bytes)
        if kind.is_write:
            return self.point(op, request_bytes)
        return self.point(op, response_bytes)
