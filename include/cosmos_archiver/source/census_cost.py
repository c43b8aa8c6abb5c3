"""What the full census (:mod:`source.census`) will cost, printed before it runs.

Two cheap reads measure the container: an index-served ``SELECT VALUE COUNT(1) FROM c`` (loads nothing) and a
small sample (``SELECT TOP n *``) for the average document size. Of the census' queries, three filter on what the
index cannot serve and so load every document they scope on Azure: the partition-key-missing count (its
canonical-spelling test uses LENGTH/SUBSTRING), the placed counts of the older/waiting/hot ranges (together, the
whole container once), and the scan for other spellings (every string timestamp); a verified slice that still
holds documents is loaded twice more (held, changed since). The estimate is those loads at Microsoft's ~10 RU per
MB loaded (:mod:`planning.published`); the census then reports what it really spent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.planning.published import QUERY_RU_PER_MB_LOADED, SOURCE_QUERY
from include.cosmos_archiver.ru.paid_requests import CHARGE_HEADER

FULL_LOADS = 3  # whole-container loads of one census (see the module docstring)


@dataclass(frozen=True)
class CensusCost:
    documents: int
    avg_kb: float
    loads: int
    ru_per_mb: float
    sample_ru: float  # what measuring it cost

    @property
    def ru(self) -> float:
        return self.documents * self.avg_kb / 1000.0 * self.ru_per_mb * self.loads  # decimal KB/MB

    def line(self) -> str:
        return (f"full census estimate: ~{self.ru:,.0f} RU ({self.documents:,} documents x ~{self.avg_kb:,.1f} KB "
                f"loaded {self.loads} times at ~{self.ru_per_mb:.2f} RU per MB, {SOURCE_QUERY}; measuring this "
                f"cost {self.sample_ru:,.1f} RU)")


def estimate_census_cost(container: ContainerProxy, *, sample: int = 10,
                         ru_per_mb: float = QUERY_RU_PER_MB_LOADED) -> CensusCost:
    """Count and sample the container (see the module docstring); ``ru_per_mb``: a survey's calibration."""
    charged = [0.0]

    def hook(headers, _result) -> None:
        charged[0] += float(headers.get(CHARGE_HEADER, 0) or 0)

    documents = sum(int(n) for n in container.query_items(
        "SELECT VALUE COUNT(1) FROM c", enable_cross_partition_query=True, response_hook=hook))
    docs = list(container.query_items(f"SELECT TOP {int(sample)} * FROM c", enable_cross_partition_query=True,
                                      response_hook=hook))
    sizes = [len(json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()) / 1000.0 for d in docs]
    return CensusCost(documents=documents, avg_kb=sum(sizes) / len(sizes) if sizes else 0.0, loads=FULL_LOADS,
                      ru_per_mb=ru_per_mb, sample_ru=round(charged[0], 2))
