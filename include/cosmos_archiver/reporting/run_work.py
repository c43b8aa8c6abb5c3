"""What ONE run did to each slice, and where the whole archive stands: the numbers of the run report.

A manifest holds a slice's whole history (every generation, RU per step summed over every run). A run's own work
is the difference between the manifest when the run started on the slice (:class:`SliceCounters`, taken by the
DAG's first task of each slice) and the manifest at the report: records and bytes of the generations it copied,
RU per step (copy, validate, purge, sweep), and the records its purge removed. A slice the run found verified
and purged shows zeros, not the slice's totals.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.planning.capacity import Prices
from include.cosmos_archiver.planning.published import SERVERLESS_USD_PER_MILLION_RU
from include.cosmos_archiver.planning.step_plan import ChargeFigures, PlanTarget, StepModel, plan_steps
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import cutoff, slice_grid

STEPS = ("copy", "validate", "purge", "sweep")
PURGE_COUNTS = ("purged", "stubbed", "changed", "gone")


@dataclass(frozen=True)
class SliceFacts:
    """What the archive-wide progress needs of a slice, read from its manifest's blob metadata (one listing for the
    whole archive) rather than from the manifest itself, which grows with the slice's records."""

    slice_id: str
    status: str
    purge_complete: bool
    record_count: int
    record_bytes: int
    ru_steps: dict[str, float]

    @classmethod
    def of(cls, manifest: Manifest) -> SliceFacts:
        return cls(manifest.slice_id, manifest.status, manifest.purged_generation >= 0, manifest.record_count,
                   manifest.record_bytes, dict(manifest.ru_steps))

    @classmethod
    def from_metadata(cls, slice_id: str, meta: dict[str, str]) -> SliceFacts | None:
        """None when the metadata lacks a figure (a manifest written before it was kept there): read the manifest."""
        try:
            return cls(slice_id, meta["status"], int(meta["purged_generation"]) >= 0, int(meta["records"]),
                       int(meta["record_bytes"]), {k: float(v) for k, v in json.loads(meta["ru_steps"]).items()})
        except (KeyError, ValueError, TypeError, AttributeError):
            return None


@dataclass(frozen=True)
class SliceCounters:
    """A slice's manifest counters at one moment (JSON-able, for an XCom)."""

    slice_id: str
    exists: bool = False
    copied_at: str | None = None
    generation: int = -1
    verified_generation: int = -1
    ru_steps: dict[str, float] = field(default_factory=dict)
    purge_generation: int = -1
    purge_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, slice_id: str, manifest: Manifest | None) -> SliceCounters:
        if manifest is None:
            return cls(slice_id)
        purge = manifest.purge or {}
        return cls(slice_id, True, manifest.copied_at, manifest.generation, manifest.verified_generation,
                   dict(manifest.ru_steps), int(purge.get("generation", -1)),
                   {k: int(v) for k, v in (purge.get("counts") or {}).items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SliceCounters:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class SliceWork:
    """One slice's work in one run."""

    slice_id: str
    records: int  # records copied (the generations this run wrote)
    record_bytes: int  # their canonical JSON bytes
    file_bytes: int  # the Parquet bytes of those generations
    ru: dict[str, float]  # RU per step spent by this run
    purge_counts: dict[str, int]  # what this run's purge did (purged/stubbed, changed since copy, already gone)

    @property
    def total_ru(self) -> float:
        return sum(self.ru.values())

    @property
    def removed(self) -> int:
        return self.purge_counts.get("purged", 0) + self.purge_counts.get("stubbed", 0)


def generation_bytes(manifest: Manifest, generation: int) -> int:
    """Canonical JSON bytes of one generation's records (manifests written before this was recorded: the
    slice's bytes shared out by record count)."""
    recorded = manifest.generation_bytes.get(str(generation))
    if recorded is not None:
        return int(recorded)
    records = [r for r in manifest.records if r.generation == generation]
    return round(manifest.record_bytes * len(records) / len(manifest.records)) if manifest.records else 0


def slice_work(before: SliceCounters | None, after: Manifest | None) -> SliceWork | None:
    """The run's work on a slice: ``after`` minus ``before``; None when the run never reached the slice."""
    if after is None:
        return None
    before = before or SliceCounters(after.slice_id)
    if after.copied_at != before.copied_at:
        # re-copying an unverified generation rewrites it; after a verified one the copy appends the next
        first = before.generation if before.verified_generation < before.generation else before.generation + 1
        copied = range(max(first, 0), after.generation + 1)
    else:
        copied = range(0)
    ru = {s: round(after.ru_steps.get(s, 0.0) - before.ru_steps.get(s, 0.0), 2) for s in STEPS}
    purge = after.purge or {}
    counts = {k: int(v) for k, v in (purge.get("counts") or {}).items() if k in PURGE_COUNTS}
    # the purge log's counts run over the slice's generations (and a resumed purge): this run added the difference;
    # a log started afresh (a re-opened slice) counts from zero
    added = {k: v - before.purge_counts.get(k, 0) for k, v in counts.items()}
    counts = counts if any(v < 0 for v in added.values()) else added
    return SliceWork(
        slice_id=after.slice_id,
        records=sum(1 for r in after.records if r.generation in copied),
        record_bytes=sum(generation_bytes(after, g) for g in copied),
        file_bytes=sum(f.bytes for f in after.files if f.generation in copied),
        ru={s: v for s, v in ru.items() if v},
        purge_counts={k: v for k, v in counts.items() if v},
    )


def copy_line(work: SliceWork, seconds: float) -> str:
    """One log line for a slice's copy in this run: records, MB, RU, seconds."""
    return (f"copy {work.slice_id}: {work.records:,} records, {work.record_bytes / 1e6:,.2f} MB JSON, "
            f"{work.file_bytes / 1e6:,.2f} MB Parquet, {work.ru.get('copy', 0.0) + work.ru.get('sweep', 0.0):,.1f} RU, "
            f"{seconds:,.1f} s")


@dataclass(frozen=True)
class Progress:
    """The whole archive: slices done and left in the window every run covers, and what the rest costs."""

    slices_in_window: int
    slices_done: int  # verified, and purged unless the purge is off
    records_archived: int
    bytes_archived: int  # canonical JSON bytes of the done slices' records: Cosmos storage they no longer take
    eta_s: float | None  # the left slices at the archive's RU headroom (None: nothing measured yet)
    serverless_usd_left: float | None
    provisioned_usd_left: float | None
    basis: str

    @property
    def slices_left(self) -> int:
        return self.slices_in_window - self.slices_done


def progress(slices: list[SliceFacts], settings: ArchiveSettings, *, now: dt.datetime, provisioned_ru_s: float,
             ceiling: float, account_mode: str = "serverless") -> Progress:
    """Slices done/left over the window (lookback .. cutoff) and, from what the done slices cost per record, the
    ETA and money of the rest under planning/capacity.py's step model (business load: its default share), at the
    rate the account mode allows (serverless: the archiver's cap, as the controller paces an unknown mode)."""
    limit = cutoff(now, settings.cutoff_days)
    window = [s for s in slice_grid(now - dt.timedelta(days=settings.lookback_days), limit,
                                    slice_hours=settings.slice_hours) if s.end <= limit]  # as planning's cold slices
    ids = {s.slice_id for s in window}
    done = [m for m in slices if m.slice_id in ids and m.status == "verified"
            and (settings.purge == "off" or m.purge_complete)]
    records = sum(m.record_count for m in done)
    nbytes = sum(m.record_bytes for m in done)
    left = len(window) - len(done)
    if not records:
        return Progress(len(window), len(done), 0, 0, None, None, None, "nothing archived yet to measure from")
    per_record = {s: sum(m.ru_steps.get(s, 0.0) for m in done) / records for s in STEPS}
    records_left = round(left * records / len(done))
    size_kb = nbytes / records / 1000
    measured = ChargeFigures(  # the charges per record measured so far, in the plan's terms
        ru_per_mb_loaded=per_record["copy"] / size_kb * 1000 if size_kb else 0.0, query_page_ru=0.0,
        count_ru=per_record["validate"] * records / len(done), delete_ru=per_record["purge"], physical_partitions=1,
        source="the RU per record measured so far")
    target = PlanTarget(records=records_left, avg_size_kb=size_kb, ru_s=provisioned_ru_s, account_mode=account_mode,
                        ceiling=ceiling)
    plan = plan_steps(target, StepModel(validation="fast", purge=settings.purge, remainder_fraction=0.0, slices=left,
                                        census_weeks=0.0), measured)
    work = [s for s in plan.steps if s.step in ("copy", "validation", "purge")]
    eta = sum(s.seconds for s in work)
    ru = sum(s.ru for s in work)
    basis = (f"~{records_left:,} records in {left} slices left (the done slices' {records / len(done):,.0f} per "
             f"slice), at the RU per record measured so far (copy {per_record['copy']:.1f}, validate "
             f"{per_record['validate']:.2f}, purge {per_record['purge']:.1f}), {target.rate_ru_s:,.0f} RU/s "
             f"({account_mode} account; business load at the model's default share); serverless at "
             f"${SERVERLESS_USD_PER_MILLION_RU:g} per million RU")
    provisioned_usd = target.rate_ru_s / 100.0 * Prices().cosmos_ru_per_100_ru_s_hour * eta / 3600.0
    return Progress(len(window), len(done), records, nbytes, None if math.isinf(eta) else eta,
                    ru / 1e6 * SERVERLESS_USD_PER_MILLION_RU, provisioned_usd, basis)
