"""
### cosmos_archive — move cold billing records from Cosmos DB to Blob Storage as verified Parquet

Runbook, in the order the tasks run:

1. **ru_gate** waits until Cosmos RU usage has stayed under the safe ceiling (default 80 % of provisioned RU/s,
   business traffic included) for a while. It holds no worker slot while it waits.
2. **plan** lists the slices that are due: older than the cutoff (90 days), inside the lookback, not yet
   verified, oldest first, at most `max_slices` per run. A backfill or a run with `from_date`/`to_date` archives
   exactly the slices of its range. Verified slices are never touched again.
3. For each slice (dynamic task mapping; concurrency = slots of the `cosmos_archive` pool):
   **copy** (Azure Data Factory when the `cosmos_archive_adf` connection exists, else the local executor)
   -> **validate** (re-reads source and archive, compares every record's sha256; on a mismatch it re-copies and
   tries again with back-off) -> **decide**: continue, or on persistent failure **halt**: status Failed, notify,
   status Halted; every newer slice is then skipped with the reason in its log.
4. **report** writes a run report (per slice count, bytes, RU, duration, hash result, RU plot) next to the data.
5. **run_outcome** fails the run (red) when any task above failed — a halt, a plan or copy error — since the
   report runs whatever happened and would otherwise be the only final task (Airflow's "watcher" pattern).

A **Halted** archive starts no new slices until an operator clears the status: Admin > Variables >
`cosmos_archive_status` = `{"status": "Running"}` (or `airflow variables delete cosmos_archive_status`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import cosmos_archive_notify as notify
import cosmos_archive_runtime as runtime
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from cosmos_archive_adf import CosmosArchiveAdfRunPipelineOperator
from cosmos_archive_gate import ArchiveRuGate

from devstack import drills
from include.cosmos_archiver.adf.indexing import index_adf_slice
from include.cosmos_archiver.adf.parameters import pipeline_parameters
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.run_status import CLEAR_HINT, halt_reason
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.planning.due_slices import select_due_slices
from include.cosmos_archiver.reporting.run_report import build_run_report
from include.cosmos_archiver.slices import TimeSlice

log = logging.getLogger("cosmos_archive")
POOL = "cosmos_archive"


@dag(
    dag_id="cosmos_archive",
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["archive", "cosmos", "billing"],
    default_args={
        "owner": "billing-data",
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "pool": POOL,
    },
    params={
        "max_slices": Param(60, type="integer", minimum=1, description="Most slices archived in one run"),
        "from_date": Param(None, type=["null", "string"], format="date",
                           description="Archive exactly the slices from this date (with to_date)"),
        "to_date": Param(None, type=["null", "string"], format="date", description="End of that range (exclusive)"),
        "validation_attempts": Param(3, type="integer", minimum=1, description="Copy+validate attempts per slice"),
        "validation_backoff_s": Param(30.0, type="number", minimum=0, description="First back-off, doubled each try"),
        "drill_corrupt_slices": Param([], type="array",
                                      description="Failure drill: slice ids whose archive is damaged after each copy"),
    },
)
def cosmos_archive():
    @task(pool=None, retries=0)
    def preflight() -> dict:
        """Fail fast, before any work, on a missing connection or a bad setting."""
        settings = runtime.load_settings()
        governance = runtime.load_ru_governance()
        runtime.require_connection(runtime.COSMOS_CONN_ID, "Azure Cosmos DB source")
        runtime.require_connection(runtime.BLOB_CONN_ID, "Azure Blob Storage sink")
        status = runtime.read_status()
        log.info("settings: %s; RU governance: %s; archive status: %s", settings, governance, status.status)
        if status.status != "Running":
            raise AirflowFailException(
                f"the archive is {status.status} since {status.since}: slice {status.failed_slice} failed validation "
                f"in run {status.run_id} ({status.reason}); no slice starts until an operator clears it: {CLEAR_HINT}"
            )
        return {"status": status.status}

    @task(pool=None, retries=0)
    def plan() -> list[dict]:
        ctx = get_current_context()
        params, run = ctx["params"], ctx["dag_run"]
        settings = runtime.load_settings()
        window = None
        now = ctx["data_interval_end"] or ctx["logical_date"]
        if run.run_type == "backfill":
            now = dt.datetime.now(dt.UTC)  # a backfill's logical date is in the past: due means cold today
        if params.get("from_date") or params.get("to_date"):
            if not (params.get("from_date") and params.get("to_date")):
                raise ValueError("give both from_date and to_date (YYYY-MM-DD), or neither")
            window = (_utc_date(params["from_date"]), _utc_date(params["to_date"]))
        elif run.run_type == "backfill":
            # "@daily" is a CronTriggerTimetable in Airflow 3: the data interval is empty (start == end == the
            # logical date), so a backfill run archives the slices of its logical date's day.
            start = ctx["data_interval_start"]
            window = (start, max(ctx["data_interval_end"], start + dt.timedelta(days=1)))
        result = select_due_slices(runtime.archive_store(settings), settings, now=now, window=window,
                                 max_slices=params["max_slices"])
        log.info("plan: %s", result.describe())
        return [s.to_dict() for s in result.due]

    @task_group(group_id="archive_slice")
    def archive_slice(time_slice: dict):
        @task.branch(pool=None, retries=0)
        def route(time_slice: dict) -> str:
            """Skip a halted slice; copy through ADF when its connection exists, else with the local executor."""
            _skip_if_halted(TimeSlice.from_dict(time_slice), get_current_context()["run_id"])
            return f"archive_slice.{_copy_path()}"

        @task
        def copy(time_slice: dict) -> dict:
            _only_on_path("copy")
            ctx = get_current_context()
            settings = runtime.load_settings()
            the_slice = TimeSlice.from_dict(time_slice)
            store = runtime.archive_store(settings)
            container, budget = runtime.paced_source(settings)
            # another run's complete copy (a backfill's days share slices) is left to validation to judge
            manifest = copy_slice(container, store, the_slice, settings, budget=budget, reuse_copied=True)
            _maybe_drill(store, the_slice, ctx["params"])
            log.info("copy %s: %s", the_slice.slice_id, manifest.summary())
            return manifest.summary()

        @task(pool=None)
        def adf_parameters(time_slice: dict) -> dict:
            """Pipeline parameters; pageSize/parallelCopies from the RU/s the controller grants right now."""
            _only_on_path("adf_parameters")
            settings = runtime.load_settings()
            suggestion = runtime.load_ru_governance().adf_copy_settings()
            log.info("ADF copy sized for %.0f RU/s: pageSize %d, parallelCopies %d",
                     suggestion.budget_ru_s, suggestion.page_size, suggestion.parallel_copies)
            return pipeline_parameters(TimeSlice.from_dict(time_slice), settings, page_size=suggestion.page_size,
                                       parallel_copies=suggestion.parallel_copies)

        @task
        def index_adf_output(time_slice: dict) -> dict:
            """ADF writes no hashes: build the slice's manifest from the files it wrote (validation re-reads both)."""
            ctx = get_current_context()
            settings = runtime.load_settings()
            the_slice = TimeSlice.from_dict(time_slice)
            store = runtime.archive_store(settings)
            manifest = index_adf_slice(store, the_slice, settings)
            _maybe_drill(store, the_slice, ctx["params"])
            log.info("ADF copy of %s: %s", the_slice.slice_id, manifest.summary())
            return manifest.summary()

        @task(trigger_rule="none_failed_min_one_success")
        def validate(time_slice: dict) -> dict:
            ctx = get_current_context()
            params = ctx["params"]
            settings = runtime.load_settings()
            the_slice = TimeSlice.from_dict(time_slice)
            _skip_if_halted(the_slice, ctx["run_id"])
            store = runtime.archive_store(settings)
            container, budget = runtime.paced_source(settings)  # re-reading the source is paced and reported too
            attempts, backoff = params["validation_attempts"], float(params["validation_backoff_s"])
            for attempt in range(1, attempts + 1):
                result = validate_slice(container, store, the_slice, settings, budget=budget)
                log.info("validate %s attempt %d/%d: %s", the_slice.slice_id, attempt, attempts, result.message())
                if result.ok or attempt == attempts:
                    break
                log.warning("re-copying %s in %.0fs: a record may have changed while it was copied",
                            the_slice.slice_id, backoff)
                time.sleep(backoff)
                backoff *= 2
                copy_slice(container, store, the_slice, settings, budget=budget)  # "failed": re-copied
                _maybe_drill(store, the_slice, params)
            outcome = {**time_slice, "ok": result.ok, "message": result.message(), "attempts": attempt,
                       "validation": result.to_dict()}
            if not result.ok:
                # The failure is known now: from here on, newer slices that have not started are skipped.
                status = runtime.read_status()
                if status.status == "Running":
                    runtime.write_status(status.failed(ctx["run_id"], the_slice.slice_id, time_slice["start"],
                                                       result.message()))
                log.error("status Failed: slice %s failed validation %d times", the_slice.slice_id, attempt)
            return outcome

        @task.branch
        def decide(validated: dict) -> str:
            return "archive_slice.continue_archiving" if validated["ok"] else "archive_slice.halt"

        @task(pool=None, retries=0)
        def halt(validated: dict) -> None:
            if validated["ok"]:  # belt and braces: only a failed slice may halt the archive
                raise AirflowSkipException(f"slice {validated['slice_id']} is verified; nothing to halt")
            ctx = get_current_context()
            status = runtime.read_status()
            if status.status == "Halted" or status.failed_slice != validated["slice_id"]:
                log.error("slice %s failed too; the archive was already stopped by slice %s",
                          validated["slice_id"], status.failed_slice)
                raise AirflowFailException(f"slice {validated['slice_id']} failed validation: {validated['message']}")
            notify.notify_halt(
                ctx, slice_id=validated["slice_id"], reason=validated["message"], validation=validated["validation"],
                slice_start=validated["start"], slice_end=validated["end"], attempts=validated["attempts"],
                manifest_path=runtime.archive_store(runtime.load_settings()).manifest_path(validated["slice_id"]),
            )
            runtime.write_status(status.halted())
            raise AirflowFailException(
                f"status Halted: slice {validated['slice_id']} failed validation {validated['attempts']} times; "
                "newer slices of this run are skipped and later runs wait for an operator to clear the status"
            )

        routed = route(time_slice)
        copied_locally = copy(time_slice)
        adf_params = adf_parameters(time_slice)
        adf_run = CosmosArchiveAdfRunPipelineOperator(
            task_id="copy_adf", azure_data_factory_conn_id=runtime.ADF_CONN_ID, parameters=adf_params,
            check_interval=30, timeout=12 * 3600, deferrable=True,
        )
        copied_by_adf = index_adf_output(time_slice)
        routed >> [copied_locally, adf_params]
        adf_run >> copied_by_adf
        validated = validate(time_slice)
        [copied_locally, copied_by_adf] >> validated
        decide(validated) >> [EmptyOperator(task_id="continue_archiving", pool=None), halt(validated)]

    @task(pool=None, retries=0, trigger_rule="all_done")
    def report(planned: list[dict]) -> str | None:
        """Per slice count, bytes, RU, duration and hash result, with an RU plot, next to the manifests."""
        if not planned:
            log.info("nothing was planned: no report")
            return None
        ctx = get_current_context()
        settings = runtime.load_settings()
        store = runtime.archive_store(settings)
        manifests = [m for m in (store.read_manifest(s["slice_id"]) for s in planned) if m is not None]
        governance = runtime.load_ru_governance()
        started = min((dt.datetime.fromisoformat(m.copied_at) - dt.timedelta(seconds=m.timings_s.get("total", 0))
                       for m in manifests), default=None)
        usage = _usage_during_run(governance, started)
        result = build_run_report(ctx["run_id"], manifests, [], usage, governance.ceiling * governance.provisioned_ru_s,
                                  governance.provisioned_ru_s)
        urls = result.write(store, ctx["run_id"])
        log.info("run report: %s (%s)", urls[0], result.totals.as_dict())
        if all(m.status == "verified" for m in manifests) and len(manifests) == len(planned):
            notify.notify_success(ctx, slices_verified=len(manifests),
                                  records=sum(m.record_count for m in manifests), report_url=urls[0])
        return urls[0]

    @task(pool=None, retries=0, trigger_rule="one_failed")
    def run_outcome() -> None:
        """Runs only when a task of this run failed: makes the run itself fail, so it shows red."""
        raise AirflowFailException("a task of this run failed (see the red tasks and the run report): run failed")

    checked = preflight()
    ru_gate = ArchiveRuGate(task_id="ru_gate", pool=None, retries=0, mode="reschedule", poke_interval=60,
                            timeout=6 * 3600)
    slices = plan()
    checked >> ru_gate >> slices
    archived = archive_slice.expand(time_slice=slices)
    reported = report(slices)
    archived >> reported
    [checked, ru_gate, slices, archived, reported] >> run_outcome()


def _utc_date(value: str) -> dt.datetime:
    day = dt.date.fromisoformat(value)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _usage_during_run(governance, started: dt.datetime | None) -> list[tuple[dt.datetime, float]] | None:
    """Total RU/s (business + archiver) since the first copy started (+1 min), for the report's plot."""
    source = governance.usage_source()
    if source is None or started is None:
        return None
    try:
        window = min(dt.datetime.now(dt.UTC) - started + dt.timedelta(minutes=1), dt.timedelta(hours=6))
        return [(s.timestamp, s.total_ru_per_s) for s in source.recent(window) if s.total_ru_per_s is not None]
    except Exception as exc:  # the report is for people; a metrics hiccup must not fail the run
        log.warning("RU usage for the report is unavailable: %s", exc)
        return None
    finally:
        source.close()


def _copy_path() -> str:
    return "adf_parameters" if runtime.connection_exists(runtime.ADF_CONN_ID) else "copy"


def _only_on_path(task: str) -> None:
    # The branch already skips the other path; this keeps it so where a branch's skip of mapped task instances
    # does not take effect (seen with `airflow dags test` on Airflow 3.3).
    if _copy_path() != task:
        raise AirflowSkipException(f"the copy runs through {_copy_path()} for this configuration")


def _skip_if_halted(the_slice: TimeSlice, run_id: str) -> None:
    reason = halt_reason(runtime.read_status(), run_id, the_slice.start)
    if reason:
        log.warning("slice %s skipped: %s", the_slice.slice_id, reason)
        raise AirflowSkipException(reason)


def _maybe_drill(store, the_slice: TimeSlice, params: dict) -> None:
    if the_slice.slice_id in (params.get("drill_corrupt_slices") or []):
        path = drills.corrupt_slice(store, the_slice.slice_id)
        log.warning("FAILURE DRILL: flipped one byte of %s", path)


cosmos_archive()
