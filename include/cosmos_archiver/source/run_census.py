"""The census a daily run can afford: what its own slices left behind in Cosmos DB, from index-served counts.

The full census (:mod:`source.census`) accounts for every document of the container; several of its queries
filter on what the index cannot serve (the canonical-spelling test, LENGTH/SUBSTRING; a partition key missing on a
document of any age), so on Azure each loads the whole container (~10 RU per MB loaded, troubleshoot-query-performance:
~15-20 M RU for the seed's 600 GB). It is therefore an explicit, paced, occasional job (the weekly
``cosmos_archive_scrub`` DAG, ``cosmos-archive census``) that prints its cost estimate first
(:mod:`source.census_cost`).

A run needs less: how many documents each of its slices still holds. One index-served ``COUNT`` per slice
(:func:`source.reader.count_remaining`: a range on the timestamp plus IS_DEFINED tests, no document loaded), the
same query the remainder sweep sends. A purged slice that still holds documents (changed after their copy, late
inserts) is archived as its next generation by the next run; a slice the run could not verify still holds all of
its records.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.source_facts import other_spellings_seen
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.planning.due_slices import records_older_than_lookback
from include.cosmos_archiver.ru.budget import RuBudget
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.reader import ReadStats, count_remaining

log = logging.getLogger(__name__)


@dataclass
class RunCensus:
    """Documents left in Cosmos DB per slice of one run, by what the archive says of the slice."""

    slices: int
    left_after_purge: dict[str, int] = field(default_factory=dict)  # purged slices holding documents again
    kept_by_setting: dict[str, int] = field(default_factory=dict)  # verified, purge off or not purged yet
    not_verified: dict[str, int] = field(default_factory=dict)  # the run did not verify them: all still in Cosmos
    older_than_lookback: int = 0  # documents before the first slice any run plans: no run archives them
    ru_charged: float = 0.0
    queries: int = 0

    def line(self) -> str:
        def total(counts: dict[str, int]) -> int:
            return sum(counts.values())

        text = (f"census of this run's {self.slices} slice(s) (index-served counts, {self.queries} queries, "
                f"{self.ru_charged:,.1f} RU): {total(self.left_after_purge)} document(s) in "
                f"{len(self.left_after_purge)} purged slice(s) (changed or late: the next run archives them), "
                f"{total(self.kept_by_setting)} in verified slices not purged, {total(self.not_verified)} in slices "
                "not verified")
        if self.older_than_lookback:
            text += (f"; {self.older_than_lookback} document(s) older than lookback_days are left out (no run "
                     "archives them: raise lookback_days or backfill their dates)")
        return text + "; the full census (every document, with reasons) is the weekly job or `cosmos-archive census`"

    @property
    def has_left_out(self) -> bool:
        return self.older_than_lookback > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "line": self.line()}


def census_of_run(
    container: ContainerProxy,
    store: ArchiveStore,
    settings: ArchiveSettings,
    slices: list[TimeSlice],
    *,
    now: dt.datetime,
    budget: RuBudget | None = None,
) -> RunCensus:
    """Count what each of the run's ``slices`` still holds in Cosmos DB, and what lies before the lookback (see
    the module docstring)."""
    stats = ReadStats()
    spellings = other_spellings_seen(store)
    metadata = store.manifest_metadata()
    census = RunCensus(slices=len(slices))
    for time_slice in slices:
        held = count_remaining(container, time_slice, timestamp_field=settings.timestamp_field,
                               timestamp_kind=settings.timestamp_kind, other_spellings=spellings, budget=budget,
                               stats=stats)
        census.queries += 1
        if not held:
            continue
        meta = metadata.get(time_slice.slice_id, {})
        if meta.get("status") != "verified":
            census.not_verified[time_slice.slice_id] = held
        elif int(meta.get("purged_generation", -1)) >= 0:
            census.left_after_purge[time_slice.slice_id] = held
        else:
            census.kept_by_setting[time_slice.slice_id] = held
    census.older_than_lookback = records_older_than_lookback(container, settings, now=now, budget=budget,
                                                             stats=stats, spellings=spellings)
    census.queries += 1
    census.ru_charged = round(stats.ru_charged, 2)
    log.info("%s", census.line())
    return census
