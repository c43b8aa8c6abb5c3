"""Read a slice one physical partition at a time, in turns, so the archiver's rate is spread over all of them; and
order the purge's deletes so that consecutive ones land on different partitions (:func:`across_partitions`).

azure-cosmos drains a cross-partition query one partition key range after another (its
``_DefaultQueryExecutionContext`` walks the ranges in order), so a slice's copy would put the archiver's whole rate
on one physical partition, whose own RU/s limit (provisioned RU/s divided among partitions; on serverless a
per-partition limit) is what throttles that partition's customers while the account metric shows headroom
(learn.microsoft.com/azure/cosmos-db/partitioning-overview). Feed ranges (``container.read_feed_ranges()``,
``query_items(..., feed_range=...)``, azure-cosmos 4.17.1) address one range each: the copy opens one query per range
and takes a page from each in turn, so with N ranges each physical partition sees 1/N of the copy's paced rate.

The local cosmosdb-server serves one range (``['', 'FF')``) and refuses a query scoped to it with a feed range
("missing partition keys"); with a single range the ordinary cross-partition query is the same read, so
:func:`partition_ranges` answers ``[None]`` then (one unscoped query), and the code is correct with one range.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.source.reader import answered

T = TypeVar("T")


def partition_ranges(container: ContainerProxy) -> list[dict[str, Any] | None]:
    """The container's feed ranges (one per physical partition), or ``[None]`` (one unscoped query) when it has
    a single one. Retried while the endpoint does not answer, then :class:`SourceUnreachableError` names it."""
    ranges = answered(container, lambda remaining: list(container.read_feed_ranges(timeout=remaining)),
                      "its feed ranges")
    return ranges if len(ranges) > 1 else [None]


def range_key(feed_range: dict[str, Any] | None) -> str:
    """A stable text for a feed range (manifests compare per-range counts by it); ``"all"`` for the unscoped one."""
    return "all" if feed_range is None else json.dumps(feed_range, sort_keys=True, separators=(",", ":"))


def in_turns(streams: Iterable[Iterator[T]]) -> Iterator[tuple[int, T]]:
    """(stream index, item), one item from each unfinished stream in turn (round robin) until all are drained."""
    live = list(enumerate(streams))
    while live:
        still = []
        for index, stream in live:
            item = next(stream, _DONE)
            if item is _DONE:
                continue
            still.append((index, stream))
            yield index, item  # type: ignore[misc]
        live = still


_DONE = object()


def across_partitions(keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(partition key, id) keys in an order that spreads consecutive point writes (the purge's deletes) over the
    physical partitions: one record of each logical partition in turn, the logical partitions ordered by a hash of
    their key. A logical partition lives on the physical partition its key's hash falls in (azure-cosmos'
    effective partition key), so neighbours in this order land on unrelated partitions, where key order put a run
    of one customer's (and its neighbours') deletes on one partition. Deterministic, so a resumed purge walks the
    same order (its log skips what is done either way)."""
    by_key: dict[str, list[tuple[str, str]]] = {}
    for key in sorted(keys):
        by_key.setdefault(key[0], []).append(key)
    order = sorted(by_key, key=lambda pk: hashlib.sha256(pk.encode()).digest())
    return [key for _, key in in_turns(iter(by_key[pk]) for pk in order)]
