"""Physical partitions: how many a container has and which one a logical partition key lives on.

API: ``derived_partition_count(data_gb)``; ``partition_of(epk, count)``;
``PartitionKeyDef.from_collection(doc)`` with ``.partition(value_json, count)`` and ``.expression(alias)``.

Rules and sources:
- A physical partition holds up to 50 GB and serves up to 10,000 RU/s (Microsoft Learn "Partitioning and horizontal
  scaling", "Best practices for scaling provisioned throughput": partitions split as data or RU/s grow). The
  default count follows the data size only, ``ceil(GB / 50)``: local configurations set huge RU/s to mean
  "unthrottled", which would otherwise make hundreds of partitions; to model an account whose RU/s force a split,
  set ``physical_partitions`` to ``ceil(RU/s / 10,000)``. Guess: Azure splits at the data's median key, so real
  boundaries follow the data; here the hash space is divided evenly, which is what a uniformly hashed key gives.
- A logical key's physical partition follows its effective partition key (EPK): the hash azure-cosmos computes in
  ``PartitionKey._get_effective_partition_key_string`` (azure/cosmos/partition_key.py, 4.17.1; MurmurHash3-128 for
  hash version 2, whose first byte the SDK masks with 0x3F, so V2 EPKs lie in [00, 40) hex). The gateway reuses
  that function, so the split is the SDK's own. Version 1 EPKs (another encoding) are spread the same way, a guess.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from azure.cosmos.partition_key import PartitionKey

PARTITION_MAX_GB = 50.0
PARTITION_MAX_RU = 10_000.0  # documented; not applied by default (see above)
_V2_SPACE = 0x40 << 24  # first 4 bytes of a V2 EPK are below 0x40000000


def derived_partition_count(data_gb: float) -> int:
    return max(1, math.ceil(data_gb / PARTITION_MAX_GB)) if data_gb > 0 else 1


def partition_of(epk: str, count: int, version: int = 2) -> int:
    if count <= 1 or not epk:
        return 0
    try:
        head = int(epk[:8].ljust(8, "0"), 16)
    except ValueError:
        return 0
    space = _V2_SPACE if version == 2 else 1 << 32
    return min(count - 1, head * count // space)


@dataclass(frozen=True)
class PartitionKeyDef:
    paths: tuple[str, ...] = ("/id",)
    kind: str = "Hash"
    version: int = 2

    @classmethod
    def from_collection(cls, doc: Any) -> PartitionKeyDef:
        pk = (doc or {}).get("partitionKey") or {}
        paths = tuple(pk.get("paths") or ("/id",))
        return cls(paths, str(pk.get("kind") or "Hash"), int(pk.get("version") or 1))

    def epk(self, values: list[Any]) -> str:
        if self.kind == "MultiHash":
            key = PartitionKey(path=list(self.paths), kind="MultiHash", version=self.version)
        else:
            key = PartitionKey(path=self.paths[0], kind="Hash", version=self.version)
        return str(key._get_effective_partition_key_string(values))

    def partition(self, values: Any, count: int) -> int:
        """The physical partition of a key given as the SDK's header value (a JSON list) or a list of values."""
        if count <= 1:
            return 0
        try:
            parsed = json.loads(values) if isinstance(values, str) else values
            if not isinstance(parsed, list) or any(isinstance(v, dict | list) for v in parsed):
                return 0  # the "undefined"/"none" keys ([{}], []): one fixed place, like Azure's
            return partition_of(self.epk(parsed), count, self.version)
        except (ValueError, TypeError):
            return 0

    def key_filter(self, alias: str, header: str) -> str | None:
        """Cosmos SQL restricting to the logical partition named by an ``x-ms-documentdb-partitionkey`` header (what
        Azure does with it; cosmosdb-server ignores the header), or None when it names no plain value."""
        try:
            values = json.loads(header)
        except ValueError:
            return None
        if not isinstance(values, list) or not values or any(isinstance(v, dict | list) for v in values):
            return None
        paths = [alias + "".join("[" + json.dumps(p) + "]" for p in path.strip("/").split("/") if p)
                 for path in self.paths]
        return " AND ".join(f"{expr} = {json.dumps(value)}" for expr, value in zip(paths, values, strict=False))

    def expression(self, alias: str) -> str:
        """Cosmos SQL for the key's values as an array, e.g. ``[c["customerId"]]``."""
        exprs = [alias + "".join("[" + json.dumps(p) + "]" for p in path.strip("/").split("/") if p)
                 for path in self.paths]
        return "[" + ", ".join(exprs) + "]"
