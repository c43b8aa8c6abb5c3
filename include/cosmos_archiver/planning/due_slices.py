"""Which slices a run archives: due (older than the cutoff, inside the lookback), not yet verified, oldest first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice, cutoff, plan_slices


class PlanError(TerminalError, ValueError):
    pass


@dataclass(frozen=True)
class SlicePlan:
    due: list[TimeSlice]
    already_verified: int
    not_cold_yet: int
    cutoff: dt.datetime
    deferred: int  # due but beyond max_slices: left for the next run

    def describe(self) -> str:
        first = self.due[0].slice_id if self.due else "-"
        last = self.due[-1].slice_id if self.due else "-"
        return (f"{len(self.due)} slice(s) to archive ({first} .. {last}), {self.already_verified} already verified, "
                f"{self.deferred} deferred to later runs, {self.not_cold_yet} not older than the cutoff "
                f"{self.cutoff.isoformat()}")


def plan_due_slices(
    store: ArchiveStore,
    settings: ArchiveSettings,
    *,
    now: dt.datetime,
    window: tuple[dt.datetime, dt.datetime] | None = None,
    max_slices: int | None = None,
) -> SlicePlan:
    """Plan a run. ``window`` (a backfill's or a manual run's range) restricts it to exactly those slices."""
    limit = cutoff(now, settings.cutoff_days)
    if window is not None:
        start, end = window
        if end <= start:
            raise PlanError(f"window end {end.isoformat()} must be after its start {start.isoformat()}")
        candidates = plan_slices(start, end, slice_hours=settings.slice_hours)
    else:
        candidates = plan_slices(now - dt.timedelta(days=settings.lookback_days), limit,
                                 slice_hours=settings.slice_hours)
    cold = [s for s in candidates if s.end <= limit]
    statuses = store.manifest_statuses()
    due = [s for s in cold if statuses.get(s.slice_id) != "verified"]
    deferred = 0
    if max_slices is not None:
        if max_slices < 1:
            raise PlanError(f"max_slices={max_slices} must be at least 1")
        deferred = max(0, len(due) - max_slices)
        due = due[:max_slices]
    return SlicePlan(due=due, already_verified=len(cold) - len(due) - deferred,
                     not_cold_yet=len(candidates) - len(cold), cutoff=limit, deferred=deferred)
