"""Which slices a run archives: due (older than the cutoff, inside the lookback), not yet verified, oldest first.

Given the source container (the DAG's plan task passes it), planning also follows the purge: with ``purge`` on, a
verified slice whose newest generation is not purged yet is due (copy and validation answer at once, the purge
runs), and a purged slice whose range still holds documents other than stubs (changed after their copy, late
inserts) is due again, its remainder archived as the next generation: one ``COUNT`` over each contiguous run of
purged slices, then one per slice of a run that is not empty. It also counts the records older than
``lookback_days``, which no run archives (reported, never silently left behind).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.slice_grid import check_slice_grid
from include.cosmos_archiver.archive.source_facts import other_spellings_seen
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.ru.budget import RuBudget
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice, cutoff, slice_grid
from include.cosmos_archiver.source.reader import ReadStats, count_remaining, documents_besides


class DueSlicesError(TerminalError, ValueError):
    pass


@dataclass(frozen=True)
class DueSlices:
    due: list[TimeSlice]
    already_verified: int
    not_cold_yet: int
    cutoff: dt.datetime
    deferred: int  # due but beyond max_slices: left for the next run
    purge_pending: int = 0  # verified, newest generation not purged yet (due for its purge)
    remainders: int = 0  # purged, but documents changed/arrived in the range since (due again)
    older_than_lookback: int | None = None  # records no run archives (None: not counted, no container given)
    sweep_ru: float = 0.0

    def describe(self) -> str:
        first = self.due[0].slice_id if self.due else "-"
        last = self.due[-1].slice_id if self.due else "-"
        text = (f"{len(self.due)} slice(s) to archive ({first} .. {last}), {self.already_verified} already verified, "
                f"{self.deferred} deferred to later runs, {self.not_cold_yet} not older than the cutoff "
                f"{self.cutoff.isoformat()}")
        if self.purge_pending or self.remainders:
            text += f"; of those due, {self.purge_pending} await their purge, {self.remainders} hold a remainder"
        if self.older_than_lookback:
            text += (f"; WARNING {self.older_than_lookback} record(s) lie older than lookback_days and are not "
                     "archived by any run: raise lookback_days or run a backfill over their dates")
        elif self.older_than_lookback == 0:
            text += "; no record older than lookback_days"
        return text


def select_due_slices(
    store: ArchiveStore,
    settings: ArchiveSettings,
    *,
    now: dt.datetime,
    window: tuple[dt.datetime, dt.datetime] | None = None,
    max_slices: int | None = None,
    container: ContainerProxy | None = None,
    budget: RuBudget | None = None,
) -> DueSlices:
    """Plan a run. ``window`` (a backfill's or a manual run's range) restricts it to exactly those slices.
    ``container``: follow the purge and count what lies beyond the lookback (module docstring)."""
    limit = cutoff(now, settings.cutoff_days)
    if window is not None:
        start, end = window
        if end <= start:
            raise DueSlicesError(f"window end {end.isoformat()} must be after its start {start.isoformat()}")
        candidates = slice_grid(start, end, slice_hours=settings.slice_hours)
    else:
        candidates = slice_grid(now - dt.timedelta(days=settings.lookback_days), limit,
                                 slice_hours=settings.slice_hours)
    cold = [s for s in candidates if s.end <= limit]
    metadata = store.manifest_metadata()
    check_slice_grid(metadata, settings.slice_hours, store.prefix)
    due = [s for s in cold if metadata.get(s.slice_id, {}).get("status") != "verified"]
    pending: list[TimeSlice] = []
    remainders: list[TimeSlice] = []
    older: int | None = None
    stats = ReadStats()
    if container is not None:
        spellings = other_spellings_seen(store)  # index-served counts unless the source has other spellings
        if settings.purge != "off":
            pending, purged = _purge_states(cold, metadata)
            remainders = _with_remainder(container, purged, settings, budget, stats, metadata, store,
                                         spellings=spellings)
            due = sorted({*due, *pending, *remainders})
        older = records_older_than_lookback(container, settings, now=now, budget=budget, stats=stats,
                                            spellings=spellings)
    deferred = 0
    if max_slices is not None:
        if max_slices < 1:
            raise DueSlicesError(f"max_slices={max_slices} must be at least 1")
        deferred = max(0, len(due) - max_slices)
        due = due[:max_slices]
    return DueSlices(due=due, already_verified=len(cold) - len(due) - deferred,
                     not_cold_yet=len(candidates) - len(cold), cutoff=limit, deferred=deferred,
                     purge_pending=len(pending), remainders=len(remainders), older_than_lookback=older,
                     sweep_ru=round(stats.ru_charged, 2))


def _purge_states(
    cold: list[TimeSlice], metadata: dict[str, dict[str, str]]
) -> tuple[list[TimeSlice], list[TimeSlice]]:
    """(verified slices whose newest generation awaits its purge, verified slices whose newest one is purged)."""
    pending, purged = [], []
    for s in cold:
        meta = metadata.get(s.slice_id, {})
        if meta.get("status") != "verified":
            continue
        if int(meta.get("purged_generation", -1)) >= int(meta.get("generation", 0)):
            purged.append(s)
        else:
            pending.append(s)
    return pending, purged


def _with_remainder(
    container: ContainerProxy, purged: list[TimeSlice], settings: ArchiveSettings, budget: RuBudget | None,
    stats: ReadStats, metadata: dict[str, dict[str, str]], store: ArchiveStore, *, spellings: bool,
) -> list[TimeSlice]:
    """The purged slices whose range holds documents again: one COUNT per contiguous run, then per slice. The
    documents a copy set aside as unarchivable stay in the range: a slice holding no more than those is due only
    when one of them changed since (ids and etags listed, for such slices alone)."""
    def besides_set_aside(s: TimeSlice, held: int) -> bool:
        aside = int(metadata.get(s.slice_id, {}).get("left_out", 0))
        if held > aside:
            return True
        manifest = store.read_manifest(s.slice_id) if held else None
        return manifest is not None and documents_besides(
            container, s, manifest.left_out_versions(), partition_key_path=settings.partition_key_path,
            timestamp_field=settings.timestamp_field, timestamp_kind=settings.timestamp_kind, budget=budget,
            stats=stats) > 0

    def count(start: dt.datetime, end: dt.datetime) -> int:
        return count_remaining(container, TimeSlice(start, end), timestamp_field=settings.timestamp_field,
                               timestamp_kind=settings.timestamp_kind, other_spellings=spellings, budget=budget,
                               stats=stats)

    runs: list[list[TimeSlice]] = []
    for s in sorted(purged):
        if runs and runs[-1][-1].end == s.start:
            runs[-1].append(s)
        else:
            runs.append([s])
    found = []
    for run in runs:
        held = count(run[0].start, run[-1].end)
        if held == 0:
            continue
        found.extend(s for s in run if besides_set_aside(s, held if len(run) == 1 else count(s.start, s.end)))
    return found


def records_older_than_lookback(
    container: ContainerProxy, settings: ArchiveSettings, *, now: dt.datetime, budget: RuBudget | None = None,
    stats: ReadStats | None = None, spellings: bool = True,
) -> int:
    """How many documents (stubs left out) lie before the first slice a scheduled run plans: no run archives them."""
    lookback_start = slice_grid(now - dt.timedelta(days=settings.lookback_days), now,
                                 slice_hours=settings.slice_hours)[0].start
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return count_remaining(container, TimeSlice(epoch, lookback_start), timestamp_field=settings.timestamp_field,
                           timestamp_kind=settings.timestamp_kind, other_spellings=spellings, budget=budget,
                           stats=stats)


def nothing_due(
    store: ArchiveStore, settings: ArchiveSettings, *, now: dt.datetime, window: tuple[dt.datetime, dt.datetime]
) -> str | None:
    """Why a run restricted to ``window`` (a backfilled day, a from_date/to_date run) has nothing to do, from one
    listing of the manifests and no Cosmos DB request: every cold slice of it verified (and, with a purge, purged),
    the rest not cold yet. None when something may be due; then the run plans as usual. Records that changed or
    arrived in a purged slice's range are found by the scheduled runs' plan, which counts them in Cosmos DB."""
    start, end = window
    candidates = slice_grid(start, end, slice_hours=settings.slice_hours)
    limit = cutoff(now, settings.cutoff_days)
    cold = [s for s in candidates if s.end <= limit]
    metadata = store.manifest_metadata()
    if any(metadata.get(s.slice_id, {}).get("status") != "verified" for s in cold):
        return None
    if settings.purge != "off" and _purge_states(cold, metadata)[0]:
        return None
    done = "verified and purged" if settings.purge != "off" else "verified"
    return (f"nothing to do for {start.date()}..{end.date()}: its {len(cold)} cold slice(s) are {done}"
            + (f", {len(candidates) - len(cold)} not older than the cutoff {limit.date()} yet"
               if len(cold) < len(candidates) else ""))
