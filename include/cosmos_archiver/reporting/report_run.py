"""Write the run report of one archive run: the manifests of the slices it planned, and the RU usage (business +
archiver) since its first copy started, for the plot."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.pipeline.run_status import ArchiveStatus
from include.cosmos_archiver.reporting.run_report import RunReport, build_run_report
from include.cosmos_archiver.reporting.run_work import SliceCounters, SliceFacts, progress, slice_work
from include.cosmos_archiver.ru.governance import RuGovernance
from include.cosmos_archiver.settings import ArchiveSettings

log = logging.getLogger(__name__)
MAX_USAGE_WINDOW = dt.timedelta(hours=6)


@dataclass(frozen=True)
class WrittenReport:
    url: str
    report: RunReport
    manifests: list[Manifest]
    planned: int

    @property
    def all_verified(self) -> bool:
        """Every planned slice has a manifest, and every manifest says verified."""
        return len(self.manifests) == self.planned and all(m.status == "verified" for m in self.manifests)

    @property
    def records(self) -> int:
        return sum(m.record_count for m in self.manifests)


def report_run(
    store: ArchiveStore, governance: RuGovernance, run_id: str, slice_ids: list[str], *, now: dt.datetime | None = None,
    settings: ArchiveSettings | None = None, before: list[SliceCounters] | None = None,
    started: dt.datetime | None = None, status: ArchiveStatus | None = None,
) -> WrittenReport:
    """Build and upload the report next to the manifests; return its URL and what it was built from.

    With ``before`` (each slice's counters when the run reached it) the rows count this run's work; with
    ``settings`` the report adds the whole archive's progress, ETA and money; ``status`` adds the halt banner."""
    now = now or dt.datetime.now(dt.UTC)
    manifests = [m for m in (store.read_manifest(s) for s in slice_ids) if m is not None]
    first_copy = min((dt.datetime.fromisoformat(m.copied_at) - dt.timedelta(seconds=m.timings_s.get("total", 0))
                      for m in manifests), default=None)
    work = None
    if before is not None:
        known = {c.slice_id: c for c in before}
        work = {m.slice_id: w for m in manifests
                if m.slice_id in known and (w := slice_work(known[m.slice_id], m)) is not None}
    overall = None
    if settings is not None:
        overall = progress(archive_facts(store), settings, now=now, provisioned_ru_s=governance.provisioned_ru_s,
                           account_mode=governance.account_mode or "serverless",
                           ceiling=governance.ceiling)
    report = build_run_report(run_id, manifests, [], _usage_since(governance, started or first_copy, now),
                              governance.ceiling * governance.provisioned_ru_s, governance.provisioned_ru_s, now=now,
                              work=work, progress=overall, started=started, halt=status)
    urls = report.write(store, run_id)
    return WrittenReport(urls[0], report, manifests, len(slice_ids))


def archive_facts(store: ArchiveStore) -> list[SliceFacts]:
    """Every slice's progress figures from one listing of the manifests' metadata; a manifest read only where its
    metadata predates them (each is rewritten with them at its next change)."""
    facts = []
    for slice_id, meta in store.manifest_metadata().items():
        fact = SliceFacts.from_metadata(slice_id, meta)
        if fact is None and (manifest := store.read_manifest(slice_id)) is not None:
            fact = SliceFacts.of(manifest)
        if fact is not None:
            facts.append(fact)
    return facts


def _usage_since(governance: RuGovernance, started: dt.datetime | None,
                 now: dt.datetime) -> list[tuple[dt.datetime, float]] | None:
    """Total RU/s since ``started`` (+1 min, at most 6 h); None without a metrics source or when it fails."""
    source = governance.usage_source()
    if source is None or started is None:
        return None
    try:
        window = min(now - started + dt.timedelta(minutes=1), MAX_USAGE_WINDOW)
        return [(s.timestamp, s.total_ru_per_s) for s in source.recent(window) if s.total_ru_per_s is not None]
    except Exception as exc:  # the report is for people; a metrics hiccup must not fail the run
        log.warning("RU usage for the report is unavailable: %s", exc)
        return None
    finally:
        source.close()
