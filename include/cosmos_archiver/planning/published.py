"""Microsoft's published Cosmos DB figures the plan defaults to, each with its source (checked 2026-12-04, see
../shared/README.md). The survey (:mod:`planning.survey`) replaces them with an account's measured charges.

- Point operations by item size, session/eventual consistency (learn.microsoft.com/azure/cosmos-db/
  understand-request-unit-consumption, "point operations" table): read / write RU at 1, 16, 64, 128, 256, 512,
  1,024 and 2,048 KB. A delete is charged like a write of the item's size (same page: "delete ~ size-based write
  charge"); between the table's sizes the charge is interpolated linearly (a guess: the page gives points only).
- Queries: charged by the documents they load, not what they return: troubleshoot-query-performance's example
  retrieves 400 MB for ~4,060 RU, ~10.15 RU per MB loaded. A COUNT whose filter the index serves loads nothing;
  its charge here is a few RU per physical partition (a guess: the page gives no figure for it).
- Strong and Bounded Staleness consistency double read charges (optimize-cost-reads-writes).
- Physical partitions: up to 50 GB each (learn.microsoft.com/azure/cosmos-db/partitioning-overview).
- Serverless: RU billed per million consumed; the docs' examples use $0.25 per million ("demonstration only").
  Provisioned standard throughput: $0.008 per 100 RU/s per hour (list price, single region).
"""

from __future__ import annotations

import bisect

SOURCE_POINT = "learn.microsoft.com/azure/cosmos-db/understand-request-unit-consumption (point operations table)"
SOURCE_QUERY = "learn.microsoft.com/azure/cosmos-db/nosql/troubleshoot-query-performance (4,060 RU for 400 MB loaded)"
SOURCE_SERVERLESS = "learn.microsoft.com/azure/cosmos-db/serverless (billing example, $0.25 per million RU)"

POINT_SIZES_KB = (1.0, 16.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0)
POINT_READ_RU = (1.00, 1.67, 4.76, 9.95, 20.28, 40.95, 145.90, 291.80)
POINT_WRITE_RU = (4.95, 9.52, 22.67, 48.19, 98.29, 184.57, 625.00, 1250.00)
QUERY_RU_PER_MB_LOADED = 4060.0 / 400.0
INDEX_COUNT_RU = 3.0  # an index-served COUNT per physical partition (guess; no published figure)
QUERY_PAGE_RU = 2.9  # the smallest query charge (~2.8-3 RU for an index-served query page; guess)
SERVERLESS_USD_PER_MILLION_RU = 0.25
PARTITION_MAX_GB = 50.0  # a physical partition holds up to 50 GB (partitioning-overview): the count by data size


def _interpolate(size_kb: float, charges: tuple[float, ...]) -> float:
    if size_kb <= POINT_SIZES_KB[0]:
        return charges[0]
    if size_kb >= POINT_SIZES_KB[-1]:
        return charges[-1] * size_kb / POINT_SIZES_KB[-1]
    i = bisect.bisect_left(POINT_SIZES_KB, size_kb)
    low, high = POINT_SIZES_KB[i - 1], POINT_SIZES_KB[i]
    return charges[i - 1] + (charges[i] - charges[i - 1]) * (size_kb - low) / (high - low)


def point_read_ru(size_kb: float) -> float:
    """RU of one point read of an item of ``size_kb`` decimal KB (the plan's unit; the table's KB are 1,024 bytes)."""
    return _interpolate(size_kb * 1000 / 1024, POINT_READ_RU)


def delete_ru(size_kb: float) -> float:
    """RU of deleting (or writing) an item of ``size_kb`` decimal KB (published write column, interpolated)."""
    return _interpolate(size_kb * 1000 / 1024, POINT_WRITE_RU)


def query_load_ru(size_kb: float) -> float:
    """RU a query spends per document of ``size_kb`` KB it must load (~10 RU per MB loaded; KB and MB decimal, as
    the plan's sizes and the query metrics' ``retrievedDocumentSize`` bytes are)."""
    return QUERY_RU_PER_MB_LOADED * size_kb / 1000.0
