"""
### cosmos_archive_scrub — re-check the verified archive at rest, weekly

Runbook:

1. **scrub** re-hashes the archived Parquet files and every record in them against their slice manifests (Blob
   reads only, no Cosmos DB RU), least recently scrubbed slices first, within an IO budget (`max_mb` per run at
   `mb_per_s`); what the budget leaves is taken by the next run. A damaged slice (a flipped byte, a truncated or
   missing part) gets a `_scrub.json` beside its manifest naming the files and records: its purge is refused from
   then on, `cosmos-archive summary` exits non-zero, and this run notifies and turns red.
2. **erase_deleted** (right to erasure): records deleted through the billing API (a tombstone in Cosmos DB) are
   removed from the archived Parquet part that still holds them; the part and its manifest are rewritten and
   proven by hashes. Runs after the scrub, so it never rewrites a damaged slice unnoticed.
3. **census** (the full one: every document of the source by what became of it — archived, hot, waiting, or left
   out with a reason, named — and whether the source spells timestamps other than canonical UTC) logs its cost
   estimate first, then runs paced by the archiver's RU governance (it loads the whole container a few times on
   Azure, which is why the daily run counts only its own slices). Anything left out is a warning and a
   notification.
4. To repair a damaged slice: re-open it from its source if its records are still in Cosmos DB (DAG
   `cosmos_archive`, param `reopen_slices`), or restore the damaged blob from a soft-deleted version or blob
   versioning (docs/azure.md, "Storage protection"); then scrub it again (param `slices`).
"""

from __future__ import annotations

import datetime as dt
import logging

import cosmos_archive_notify as notify
import cosmos_archive_runtime as runtime
from airflow.sdk import Param, dag, get_current_context, task

from include.cosmos_archiver.archive.scrub import ScrubDamagedError, scrub_archive
from include.cosmos_archiver.readthrough.erasure import erase_deleted as erase_tombstoned
from include.cosmos_archiver.source.census import take_census
from include.cosmos_archiver.source.census_cost import estimate_census_cost

log = logging.getLogger("cosmos_archive_scrub")
MB = 1_000_000


@dag(
    dag_id="cosmos_archive_scrub",
    schedule="@weekly",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["archive", "cosmos", "billing", "scrub"],
    default_args={"owner": "billing-data", "retries": 2, "retry_delay": dt.timedelta(minutes=5)},
    params={
        "max_mb": Param(50_000, type="integer", minimum=1, description="Most MB re-read in one run"),
        "mb_per_s": Param(50.0, type="number", exclusiveMinimum=0, description="Read pace, MB/s"),
        "slices": Param([], type="array", description="Only these slice ids (empty: every verified slice)"),
    },
)
def cosmos_archive_scrub():
    @task
    @runtime.archive_errors()
    def scrub() -> dict:
        ctx = get_current_context()
        params = ctx["params"]
        settings = runtime.load_settings()
        store = runtime.archive_store(settings)  # damaged parts are repaired from the replica (archive.replica)
        report = scrub_archive(store, settings, slice_ids=params["slices"] or None,
                               max_bytes=int(params["max_mb"]) * MB, max_bytes_per_s=float(params["mb_per_s"]) * MB,
                               replica=runtime.archive_replica(settings, store))
        log.info("%s", report.line())
        if report.damaged:
            text = "\n".join(s.message() for s in report.damaged)
            notify.notify_attention(ctx, topic="damaged archive slices", text=text,
                                    payload={"damaged": [s.slice_id for s in report.damaged]})
            raise ScrubDamagedError(f"{report.line()}:\n{text}")
        return {"line": report.line(), "damaged": [], "not_reached": report.not_reached}

    @task
    @runtime.archive_errors()
    def erase_deleted() -> dict:
        """Right to erasure: rewrite the archived parts that still hold records deleted through the billing API
        (their tombstones are in Cosmos DB), proven by re-hashing every part and record; idempotent."""
        settings = runtime.load_settings()
        container, _ = runtime.paced_source(settings)
        erased = erase_tombstoned(container, runtime.archive_store(settings), settings)
        for part in erased:
            log.info("erased: %s", part)
        return {"parts_rewritten": len(erased)}

    @task(trigger_rule="all_done")
    @runtime.archive_errors()
    def census() -> dict:
        """The full census, paced: every document accounted for; its cost estimate is logged first."""
        ctx = get_current_context()
        settings = runtime.load_settings()
        container, budget = runtime.paced_source(settings)
        log.info("census: %s", estimate_census_cost(container).line())
        counted = take_census(container, runtime.archive_store(settings), settings, now=dt.datetime.now(dt.UTC),
                              budget=budget)
        log.info("census: %s (%s RU)", counted.line(), counted.ru_charged)
        if counted.has_left_out or counted.slices_to_reopen:
            log.warning("census: documents need an operator: %s", counted.details())
            notify.notify_attention(ctx, topic="documents the archive leaves out", text=counted.details(),
                                    payload=counted.to_dict())
        return counted.to_dict()

    scrub() >> erase_deleted() >> census()


cosmos_archive_scrub()
