"""How many documents (and bytes) a query makes Cosmos DB load, measured by asking the backend, page by page.

API: ``ScopeFigures`` (scope and matched documents, in total and per physical partition);
``probe_sql(shape, pk_expression)`` (the backend query that measures them); ``figures_from_rows(rows, pk_def,
count)``; ``QueryRuns`` (the figures of the queries being paged, so that every page is charged its share);
``page_load(shape, figures, run, output_docs, output_bytes, last_page) -> (QueryLoad, {partition: share})``;
``format_query_metrics(load, figures, elapsed_ms)`` (the ``x-ms-documentdb-query-metrics`` header).

Design: the charge follows the documents loaded, not the bytes returned. Before forwarding a query's first page the
gateway runs, uncharged, ``SELECT LENGTH(ToString(c)) AS s, [pk...] AS k, (<whole filter>) AS m FROM c WHERE
<index-served part>`` with the query's parameters and partition key: one small row per document in the scope the
index leaves (query_shape.py), with its stored size, its partition key and whether the whole filter matches it.
An index-only query loads only what it matches; otherwise it loads the whole scope. Each page is charged
``output documents / matched documents`` of that load (a TOP query: only ``TOP / matched`` of it in all), the last
page (no continuation) whatever is left, so a drained query pays exactly its load whatever the page size. An
aggregate loads its scope on its first page, or nothing (index lookups only) when the index serves its whole
filter. Sizes are the JSON text length of the stored document (system properties included), as Cosmos counts
``retrievedDocumentSize``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from devstack.ru_gateway.charge_model import QueryLoad
from devstack.ru_gateway.partitions import PartitionKeyDef
from devstack.ru_gateway.query_shape import QueryShape

_RUNS_LIMIT = 2000


@dataclass
class ScopeFigures:
    scope_docs: int = 0
    scope_bytes: int = 0
    matched_docs: int = 0
    matched_bytes: int = 0
    # partition -> [scope docs, scope bytes, matched docs, matched bytes]
    per_partition: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class QueryRun:
    figures: ScopeFigures
    charged: float = 0.0  # fraction of the run's total load charged so far


def probe_sql(shape: QueryShape, pk_expression: str, key_filter: str | None = None) -> str:
    """``key_filter``: the logical partition a single-partition query is confined to (partitions.key_filter)."""
    a = shape.alias
    scope = f"({key_filter}) AND {shape.scope}" if key_filter else shape.scope
    # named columns, not an array (cosmosdb-server drops undefined array elements, shifting the others) nor an
    # object literal with "= true" (its parser takes ~30 s on those for the product's longer filters)
    return f"SELECT LENGTH(ToString({a})) AS s, {pk_expression} AS k, ({shape.where}) AS m FROM {a} WHERE {scope}"


def figures_from_rows(rows: list[Any], pk_def: PartitionKeyDef, count: int) -> ScopeFigures:
    figures = ScopeFigures()
    for row in rows:
        if not isinstance(row, dict):
            continue
        size = int(row.get("s") or 0)
        matched = row.get("m") is True
        key = row.get("k")
        p = pk_def.partition(key if isinstance(key, list) else [key], count)
        cell = figures.per_partition.setdefault(p, [0, 0, 0, 0])
        cell[0] += 1
        cell[1] += size
        cell[2] += matched
        cell[3] += size if matched else 0
        figures.scope_docs += 1
        figures.scope_bytes += size
        figures.matched_docs += matched
        figures.matched_bytes += size if matched else 0
    return figures


class QueryRuns:
    """The figures of queries being paged, by a key naming the run (collection, query, parameters, partition)."""

    def __init__(self) -> None:
        self._runs: OrderedDict[Hashable, QueryRun] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> QueryRun | None:
        with self._lock:
            return self._runs.get(key)

    def start(self, key: Hashable, figures: ScopeFigures) -> QueryRun:
        run = QueryRun(figures)
        with self._lock:
            self._runs[key] = run
            while len(self._runs) > _RUNS_LIMIT:
                self._runs.popitem(last=False)
        return run

    def end(self, key: Hashable) -> None:
        with self._lock:
            self._runs.pop(key, None)


def page_load(
    shape: QueryShape, run: QueryRun, output_docs: int, output_bytes: int, last_page: bool
) -> tuple[QueryLoad, dict[int, float]]:
    """The load one page is charged, and each physical partition's share of it (summing to 1 when any)."""
    figures = run.figures
    if shape.aggregate:
        fraction = 0.0 if run.charged >= 1.0 else 1.0
        total = 1.0
    else:
        matched = figures.matched_docs
        total = 1.0 if shape.top is None or matched <= shape.top else shape.top / matched
        fraction = output_docs / matched if matched else 0.0
        if last_page:
            fraction = total - run.charged
        fraction = max(0.0, min(fraction, total - run.charged))
    run.charged += fraction if not shape.aggregate else 1.0
    index_only = shape.index_only
    if index_only:
        docs = figures.matched_docs * fraction
        size = figures.matched_bytes * fraction
    else:
        docs = figures.scope_docs * fraction
        size = figures.scope_bytes * fraction
    weights = {p: (c[3] if index_only else c[1]) or (c[2] if index_only else c[0]) / 1e6
               for p, c in figures.per_partition.items()}
    if shape.aggregate and index_only:
        load = QueryLoad(0.0, 0.0, output_docs, output_bytes, figures.matched_docs if fraction else 0.0, True)
    else:  # index entries read: the scope's, when an indexed predicate bounds it (a full scan reads no index)
        lookups = docs if shape.scope != "true" else 0.0
        load = QueryLoad(docs, size, output_docs, output_bytes, lookups, index_only)
    weight_sum = sum(weights.values())
    shares = {p: w / weight_sum for p, w in weights.items() if w} if weight_sum else {}
    return load, shares


def format_query_metrics(load: QueryLoad, figures: ScopeFigures | None, elapsed_ms: float) -> str:
    """Cosmos DB's ``x-ms-documentdb-query-metrics`` header: ``key=value`` pairs joined by ``;``, the keys the
    service sends (as parsed by the .NET SDK's QueryMetrics / BackendMetrics; azure-cosmos 4.17.1 only passes the
    header through). Times are the gateway's measured backend time, split by a guess."""
    retrieved = round(load.loaded_docs)
    ratio = 1.0
    if figures is not None and figures.scope_docs:
        ratio = figures.matched_docs / figures.scope_docs
    pairs = [
        ("totalExecutionTimeInMs", elapsed_ms),
        ("queryCompileTimeInMs", 0.01),
        ("queryLogicalPlanBuildTimeInMs", 0.01),
        ("queryPhysicalPlanBuildTimeInMs", 0.01),
        ("queryOptimizationTimeInMs", 0.0),
        ("VMExecutionTimeInMs", elapsed_ms * 0.9),
        ("indexLookupTimeInMs", elapsed_ms * 0.05),
        ("documentLoadTimeInMs", elapsed_ms * 0.6),
        ("systemFunctionExecuteTimeInMs", 0.0),
        ("userFunctionExecuteTimeInMs", 0.0),
        ("retrievedDocumentCount", retrieved),
        ("retrievedDocumentSize", round(load.loaded_bytes)),
        ("outputDocumentCount", load.output_docs),
        ("outputDocumentSize", load.output_bytes),
        ("writeOutputTimeInMs", 0.0),
        ("indexUtilizationRatio", ratio),
    ]
    return ";".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in pairs)
