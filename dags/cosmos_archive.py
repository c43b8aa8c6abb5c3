"""
### cosmos_archive — move cold billing records from Cosmos DB to Blob Storage as verified Parquet

Runbook, in the order the tasks run:

First, **due** (a backfilled day, or a run with `from_date`/`to_date`, both inclusive): when every slice of its range is
   already verified (and purged), the run ends here, one short task; every other task is skipped.
0. **preflight** checks the settings, the connections, the archive status, and the source: the database and
   container exist, and sampled documents carry the timestamp field and the partition key (else it names them
   and shows a sample document's keys). A wrong setting fails here, once, before anything is archived.
1. **ru_gate** waits until Cosmos RU usage has stayed under the safe ceiling (default 80 % of provisioned RU/s,
   business traffic included) for a while. It holds no worker slot while it waits.
   **reopen** (param `reopen_slices`, e.g. `2025/05/12..2025/06/11`) re-archives verified slices an operator
   names (a setting was wrong, a scrub found damage): the old copy is kept until the new one is verified.
2. **plan** lists the slices that are due: older than the cutoff (90 days), inside the lookback, not yet
   verified, or verified but awaiting their purge, or purged with documents back in their range (changed or
   late); oldest first, at most `max_slices` per run. Its log warns of records older than `lookback_days`. A
   backfill or a run with `from_date`/`to_date` archives exactly the slices of its range. Verified files are
   never rewritten.
3. For each slice (dynamic task mapping; concurrency = slots of the `cosmos_archive` pool):
   **copy** (Azure Data Factory when the `cosmos_archive_adf` connection exists, else the local executor; a slice
   whose purge has started always locally) -> **validate** (the archive re-read against the sha256 taken at copy
   time and the source's ids and etags listed; `validation: deep` or an ADF copy re-reads the source too; on a
   mismatch it acts by the cause, which every message names: records that differ, or a damaged archive not
   purged yet, are copied again the same way and tried again with back-off, `validation_attempts` times; a
   damaged part of a slice whose purge has started is repaired from the replica, never copied again or waited
   for; failing for good: status Failed at once) -> **decide** -> **purge**, or **halt**: notify once, status
   Halted; from the failure on, no newer slice of any run starts its copy, validation or purge (the reason is in
   its log), and the notice and the run's note list what the run archived and purged before the halt.
   **purge** (verified slices only; setting `purge` = off | delete | stub): the archive is re-verified from Blob,
   every part is copied to the replica container and proven by its sha256 (or the storage account's versioning,
   soft delete or immutability is the way back: settings `replica_container`, `storage_account_id`), then each
   record is deleted (or replaced by a stub) on the `_etag` it was archived with; a record changed
   since its copy stays in Cosmos and the next run archives it as a new generation of the slice; a damaged archive
   deletes nothing and halts like a failed validation. A killed purge resumes from its log (`_purge-*.jsonl`)
   beside the manifest. (Rules: `include/cosmos_archiver/pipeline/slice_workflow.py`.)
   Before the purge the slice is written to the read-through index (include/cosmos_archiver/readthrough/), so
   the billing API finds each record in the archive the moment it leaves Cosmos DB; **compact_index** then folds
   the run's index entries into their shards.
4. **census** counts what this run's slices still hold in Cosmos DB (index-served counts, a few RU per slice):
   documents changed or arrived after a purge are archived by the next run. The full census of every document
   (archived, hot, waiting, or left out with a reason, named, with a notification) loads the whole container on
   Azure, so it is the weekly **cosmos_archive_scrub** DAG's (or `cosmos-archive census`), which prints its cost
   estimate first.
5. **report** writes the run report next to the data: this run's work per slice and step (copy, validate,
   purge, sweep: records, MB, RU, money), the whole archive's progress, ETA and money, and a halt banner. Open it
   in the run's **Run report** tab (or the DAG's **Archive status** tab, which lists every report).
6. **run_outcome** fails the run (red) when any task above failed — a halt, a plan or copy error — since the
   report runs whatever happened and would otherwise be the only final task (Airflow's "watcher" pattern).

A **Halted** archive starts no new slices until an operator clears the status: Admin > Variables >
`cosmos_archive_status` = `{"status": "Running"}` (or `airflow variables delete cosmos_archive_status`).
The failed run's **note** and the **Archive status** tab say since when, which slice, why and how to clear it;
every later run fails in `preflight` with that one line ("Halted since …"). Mapped tasks are named by slice.

**Retries**: a task failing on something that cannot heal by itself (a bad setting, a missing connection, a slice
that failed validation) fails once, without retries, and its log says what to fix. Anything else (a slice lease
held by another run, throttling, a service unreachable) is retried twice with exponential back-off, except in
ru_gate, route, halt, report and run_outcome, which are never retried.
"""

from __future__ import annotations

import datetime as dt
import logging

import cosmos_archive_notify as notify
import cosmos_archive_runtime as runtime
from airflow.sdk import Param, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowSkipException
from cosmos_archive_adf import CosmosArchiveAdfRunPipelineOperator
from cosmos_archive_gate import ArchiveRuGate
from cosmos_archive_ui import report_link

from include.cosmos_archiver.archive.manifest import left_out_name
from include.cosmos_archiver.archive.replica import repair_damaged
from include.cosmos_archiver.archive.source_facts import note_other_spellings
from include.cosmos_archiver.pipeline.copy import copy_slice, needs_local_copy
from include.cosmos_archiver.pipeline.purge import PurgeResult, purge_slice
from include.cosmos_archiver.pipeline.reopen import ReopenError, parse_slice_range, reopen_slices
from include.cosmos_archiver.pipeline.run_status import HALT_NOTE_KEY, RunActivity, halt_note
from include.cosmos_archiver.pipeline.slice_workflow import SliceOutcome, SliceWorkflow, run_window
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.planning.due_slices import nothing_due, select_due_slices
from include.cosmos_archiver.readthrough.index import compact_index as compact_archive_index
from include.cosmos_archiver.readthrough.index import index_for_purge
from include.cosmos_archiver.reporting.report_run import report_run
from include.cosmos_archiver.reporting.run_work import SliceCounters, copy_line, slice_work
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.preflight import check_source, check_way_back
from include.cosmos_archiver.source.run_census import census_of_run

log = logging.getLogger("cosmos_archive")
POOL = "cosmos_archive"
COPY_TASK = {"adf": "adf_parameters", "local": "copy"}  # the first task of each copy route
NEXT_TASK = {"continue": "purge", "halt": "halt"}  # what decide picks after validate
# Mapped task instances are named by their slice in the grid ("2026/03/01"), not numbered 0..n.
BEFORE = "before"  # the XCom key of a slice's counters when the run reaches it
SLICE_NAME = {"map_index_template": "{{ slice_of(task) }}"}
# ... and their log holds one line per event (the task's own), not the returned dict again (it stays the XCom)
QUIET_SLICE = {**SLICE_NAME, "show_return_value_in_logs": False}


def slice_of(task) -> str:
    """The slice a mapped task of archive_slice works on: from its resolved argument (``time_slice``, or the
    ``validated`` outcome; the TaskFlow operator holds them in ``op_args``), or the ADF operator's output folder."""
    arguments = [*(getattr(task, "op_args", None) or ()), *(getattr(task, "op_kwargs", None) or {}).values()]
    for value in arguments:
        if isinstance(value, dict) and value.get("slice_id"):
            return str(value["slice_id"])
    parameters = getattr(task, "parameters", None)
    return str(parameters.get("outputPath", "")) if isinstance(parameters, dict) else ""


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
        "retry_policy": runtime.NOT_RETRIED,
    },
    user_defined_macros={"slice_of": slice_of},
    params={
        "max_slices": Param(60, type="integer", minimum=1, description="Most slices archived in one run"),
        "from_date": Param(None, type=["null", "string"], format="date",
                           description="Archive exactly the slices from this date (with to_date)"),
        "to_date": Param(None, type=["null", "string"], format="date",
                         description="Last day of that range (inclusive, like a backfill's To)"),
        "validation_attempts": Param(3, type="integer", minimum=1, description="Copy+validate attempts per slice"),
        "validation_backoff_s": Param(30.0, type="number", minimum=0, description="First back-off, doubled each try"),
        "reopen_slices": Param(None, type=["null", "string"],
                               description="Re-archive these verified slices first: FROM..TO slice ids or dates, "
                                           "e.g. 2025/05/12..2025/06/11; the old copy is kept until the new one "
                                           "is verified"),
    },
)
def cosmos_archive():
    @task.short_circuit(pool=None, retries=0)
    @runtime.archive_errors()
    def due() -> bool:
        """A backfilled day (or a from_date/to_date run) whose slices are all verified, and purged, is done here:
        one short task, every other task skipped. Any other run goes on."""
        ctx = get_current_context()
        now, window = run_window(runtime.run_dates(ctx))
        if window is None or ctx["params"].get("reopen_slices"):
            return True
        settings = runtime.load_settings()
        reason = nothing_due(runtime.archive_store(settings), settings, now=now, window=window)
        log.info("due: %s", reason or "slices of this run's range are due: planning them")
        return reason is None

    @task(pool=None)
    @runtime.archive_errors()
    def preflight() -> dict:
        """Fail fast, before any work, on a missing connection, a bad setting or a halted archive."""
        settings, governance = runtime.load_settings(), runtime.load_ru_governance()
        runtime.require_connection(runtime.COSMOS_CONN_ID, "Azure Cosmos DB source")
        runtime.require_connection(runtime.BLOB_CONN_ID, "Azure Blob Storage sink")
        status = runtime.slice_workflow(get_current_context()["params"]).ensure_running()
        # the container exists; its documents carry the timestamp field and partition key the settings name
        sampled = check_source(runtime.cosmos_container(settings), settings)
        log.info("source: %s", sampled.line())
        if sampled.other_spellings:  # slice queries look for non-canonical timestamps only where the source has them
            note_other_spellings(runtime.archive_store(settings), found_by="preflight's sample",
                                 count=sampled.other_spellings)
        # a purge needs a second way back: a verified replica, or a storage account that keeps one
        log.info("purge: %s", check_way_back(settings, runtime.storage_protection(settings)))
        log.info("settings: %s; RU governance: %s; archive status: %s", settings, governance, status.status)
        return {"status": status.status}

    @task(pool=None)
    @runtime.archive_errors()
    def plan() -> list[dict]:
        ctx = get_current_context()
        settings = runtime.load_settings()
        now, window = run_window(runtime.run_dates(ctx))
        container, budget = runtime.paced_source(settings)  # counts: purges pending, remainders, beyond lookback
        result = select_due_slices(runtime.archive_store(settings), settings, now=now, window=window,
                                   max_slices=ctx["params"]["max_slices"], container=container, budget=budget)
        log.info("plan: %s", result.describe())
        return [s.to_dict() for s in result.due]

    @task
    @runtime.archive_errors()
    def reopen() -> list[str]:
        """Re-archive the verified slices an operator named (param reopen_slices): copy, validate, and only then
        replace the old copy. Nothing to do without the param."""
        ctx = get_current_context()
        if not ctx["params"].get("reopen_slices"):
            return []
        settings = runtime.load_settings()
        container, budget = runtime.paced_source(settings)
        results = reopen_slices(container, runtime.archive_store(settings),
                                parse_slice_range(ctx["params"]["reopen_slices"], settings.slice_hours), settings,
                                budget=budget)
        for result in results:
            log.info("re-open: %s", result.message)
        failed = [r.message for r in results if not r.verified]
        if failed:
            raise ReopenError(f"{len(failed)} re-opened slice(s) did not verify (their old copy is kept): "
                              + "; ".join(failed))
        return [r.slice_id for r in results]

    @task(pool=None, trigger_rule="all_done")
    @runtime.archive_errors()
    def compact_index() -> dict:
        """Fold the slices indexed by this run into the read-through index's shards (point reads stay one shard)."""
        folded = compact_archive_index(runtime.archive_store(runtime.load_settings()))
        log.info("read-through index: %s", folded)
        return folded

    @task(pool=None, trigger_rule="all_done")
    @runtime.archive_errors()
    def census(planned: list[dict]) -> dict:
        """What this run's slices still hold in Cosmos DB, from index-served counts (a few RU per slice). The full
        census of every document, with the reasons for each left out, is the weekly cosmos_archive_scrub DAG's."""
        ctx = get_current_context()
        settings = runtime.load_settings()
        container, budget = runtime.paced_source(settings)
        now, _ = run_window(runtime.run_dates(ctx))
        counted = census_of_run(container, runtime.archive_store(settings), settings,
                                [TimeSlice.from_dict(s) for s in planned or []], now=now, budget=budget)
        log.info("census: %s", counted.line())
        if counted.has_left_out:
            notify.notify_attention(ctx, topic="documents the archive leaves out", text=counted.line(),
                                    payload=counted.to_dict())
        return counted.to_dict()

    @task_group(group_id="archive_slice")
    def archive_slice(time_slice: dict):
        @task.branch(pool=None, retries=0, **SLICE_NAME)
        @runtime.archive_errors()
        def route(time_slice: dict) -> str:
            """Skip a halted slice; copy through ADF when its connection exists, else with the local executor."""
            ctx = get_current_context()
            the_slice = TimeSlice.from_dict(time_slice)
            runtime.slice_workflow(ctx["params"]).ensure_may_start(the_slice, ctx["run_id"])
            store = runtime.archive_store(runtime.load_settings())
            # the slice's counters before this run works on it: the report counts this run's work from them
            ctx["ti"].xcom_push(key=BEFORE, value=SliceCounters.of(the_slice.slice_id,
                                                                   store.read_manifest(the_slice.slice_id)).to_dict())
            return f"archive_slice.{COPY_TASK[runtime.copy_route(store, the_slice)]}"

        @task(**QUIET_SLICE)
        @runtime.archive_errors()
        def copy(time_slice: dict) -> dict:
            ctx = get_current_context()
            settings = runtime.load_settings()
            store, the_slice = runtime.archive_store(settings), TimeSlice.from_dict(time_slice)
            _only_on_route("local", store, the_slice)
            # an older slice may have failed for good since route ran: then this one starts no copy
            runtime.slice_workflow(ctx["params"]).ensure_may_start(the_slice, ctx["run_id"])
            container, budget = runtime.paced_source(settings)
            # another run's complete copy (a backfill's days share slices) is left to validation to judge
            manifest = copy_slice(container, store, the_slice, settings, budget=budget, reuse_copied=True)
            log.info("%s", _copy_line(manifest))
            if manifest.left_out and manifest.status == "copied":  # set aside, named; the slice goes on
                names = [left_out_name(e) for e in manifest.left_out]
                notify.notify_attention(
                    get_current_context(), text="\n".join(names),
                    payload={"slice_id": the_slice.slice_id, "left_out": names},
                    topic=f"documents of slice {the_slice.slice_id} the copy cannot archive (left in Cosmos DB)")
            return manifest.summary()

        @task(pool=None, **SLICE_NAME)
        @runtime.archive_errors()
        def adf_parameters(time_slice: dict) -> dict:
            """Pipeline parameters; pageSize/parallelCopies from the RU/s the controller grants right now."""
            settings, the_slice = runtime.load_settings(), TimeSlice.from_dict(time_slice)
            _only_on_route("adf", runtime.archive_store(settings), the_slice)
            return runtime.adf_parameters(the_slice, settings)

        @task(**QUIET_SLICE)
        @runtime.archive_errors()
        def index_adf_output(time_slice: dict) -> dict:
            """ADF writes no hashes: build the slice's manifest from the files it wrote (validation re-reads both)."""
            ti, settings = get_current_context()["ti"], runtime.load_settings()
            run_id = ti.xcom_pull(task_ids="archive_slice.copy_adf", key="run_id", map_indexes=ti.map_index)
            manifest = runtime.index_adf_copy(runtime.archive_store(settings), TimeSlice.from_dict(time_slice),
                                              settings, run_id=run_id)
            log.info("ADF %s", _copy_line(manifest))
            return manifest.summary()

        @task(trigger_rule="none_failed_min_one_success", **QUIET_SLICE)
        @runtime.archive_errors()
        def validate(time_slice: dict) -> dict:
            """Validate; on a mismatch copy again the slice's own way (ADF or local) and validate again."""
            ctx = get_current_context()
            settings = runtime.load_settings()
            store = runtime.archive_store(settings)
            container, budget = runtime.paced_source(settings)  # re-reading the source is paced and reported too
            the_slice = TimeSlice.from_dict(time_slice)
            return runtime.slice_workflow(ctx["params"]).validate(
                the_slice, ctx["run_id"], route=runtime.copy_route(store, the_slice),
                check=lambda s: validate_slice(container, store, s, settings, budget=budget),
                copiers=runtime.copy_again(settings, store, container, budget),
                # a damaged part of a purged slice is repaired from the replica, never copied again from Cosmos
                purge_started=lambda s: needs_local_copy(store, s.slice_id),
                repair=lambda s: repair_damaged(store, runtime.archive_replica(settings, store), s.slice_id, settings),
            ).to_dict()

        @task.branch(**SLICE_NAME)
        def decide(validated: dict) -> str:
            return f"archive_slice.{NEXT_TASK[SliceWorkflow.next_step(SliceOutcome.from_dict(validated))]}"

        @task(**QUIET_SLICE)
        @runtime.archive_errors()
        def purge(validated: dict) -> dict:
            """Delete (or stub) the verified slice's records on their archived etag, after re-verifying the archive
            from Blob; a damaged archive halts like a failed validation. Setting ``purge``: off | delete | stub."""
            ctx = get_current_context()
            settings = runtime.load_settings()
            store = runtime.archive_store(settings)
            container, budget = runtime.paced_source(settings)  # Low priority / throughput bucket, paced

            def index_then_purge(the_slice: TimeSlice) -> PurgeResult:
                # the read-through index finds every record of the slice before any of them leaves Cosmos DB
                index_for_purge(store, the_slice.slice_id, partition_key_path=settings.partition_key_path)
                return purge_slice(container, store, the_slice, settings, budget=budget,
                                   protection=runtime.storage_protection(settings),
                                   replica=runtime.archive_replica(settings, store))

            return runtime.slice_workflow(ctx["params"]).purge(
                SliceOutcome.from_dict(validated), ctx["run_id"], purge=index_then_purge,
                notify=_notify_halt(ctx, store, validated["slice_id"]),
            ).to_dict()

        @task(pool=None, retries=0, **SLICE_NAME)
        @runtime.archive_errors()
        def halt(validated: dict) -> None:
            """Failed -> notify once -> Halted; fails the task (red) in any case."""
            ctx = get_current_context()
            store = runtime.archive_store(runtime.load_settings())
            runtime.slice_workflow(ctx["params"]).halt(SliceOutcome.from_dict(validated),
                                                      notify=_notify_halt(ctx, store, validated["slice_id"]))

        routed = route(time_slice)
        copied_locally = copy(time_slice)
        adf_params = adf_parameters(time_slice)
        adf_run = CosmosArchiveAdfRunPipelineOperator(
            task_id="copy_adf", azure_data_factory_conn_id=runtime.ADF_CONN_ID, parameters=adf_params,
            check_interval=runtime.ADF_CHECK_INTERVAL_S, timeout=runtime.ADF_TIMEOUT_S, deferrable=True, **SLICE_NAME,
        )
        copied_by_adf = index_adf_output(time_slice)
        routed >> [copied_locally, adf_params]
        adf_run >> copied_by_adf
        validated = validate(time_slice)
        [copied_locally, copied_by_adf] >> validated
        decide(validated) >> [purge(validated), halt(validated)]

    @task(pool=None, retries=0, trigger_rule="all_done")
    @runtime.archive_errors()
    def report(planned: list[dict]) -> str | None:
        """This run's work per slice and step (copy, validate, purge, sweep), the whole archive's progress, ETA and
        money, and a halt banner; written next to the manifests and served in the UI (the run's "Run report" tab)."""
        if not planned:
            log.info("nothing was planned: no report")
            return None
        ctx = get_current_context()
        settings = runtime.load_settings()
        # map_indexes given: a list even when one slice was planned (else xcom_pull returns that one dict)
        before = [SliceCounters.from_dict(c) for c in ctx["ti"].xcom_pull(
            task_ids="archive_slice.route", key=BEFORE, map_indexes=range(len(planned))) or [] if c]
        written = report_run(runtime.archive_store(settings), runtime.load_ru_governance(), ctx["run_id"],
                             [s["slice_id"] for s in planned], settings=settings, before=before,
                             started=ctx["dag_run"].start_date, status=runtime.read_status())
        started = ctx["dag_run"].start_date
        took = f", {(dt.datetime.now(dt.UTC) - started).total_seconds():,.0f} s since it started" if started else ""
        log.info("run report: %s (%s%s)", report_link(ctx["run_id"]), written.report.line(), took)
        if written.all_verified:
            notify.notify_success(ctx, slices_verified=len(written.manifests), records=written.report.totals.records,
                                  report_url=report_link(ctx["run_id"]))
        return written.url

    @task(pool=None, retries=0, trigger_rule="one_failed")
    def run_outcome() -> None:
        """Runs only when a task of this run failed: makes the run itself fail, so it shows red."""
        raise runtime.OneLineExit("run failed: a task of this run failed; its own log says what went wrong and what "
                                  "to do (the red tasks in the grid; the run's note on a halt; the run report)")

    settled = due()
    checked = preflight()
    settled >> checked
    ru_gate = ArchiveRuGate(task_id="ru_gate", pool=None, retries=0, mode="reschedule", poke_interval=60,
                            timeout=6 * 3600)
    reopened = reopen()
    slices = plan()
    checked >> ru_gate >> reopened >> slices
    archived = archive_slice.expand(time_slice=slices)
    compacted = compact_index()
    counted = census(slices)
    reported = report(slices)
    archived >> compacted >> counted >> reported
    [checked, ru_gate, reopened, slices, archived, compacted, counted, reported] >> run_outcome()


def _only_on_route(route: str, store, the_slice: TimeSlice) -> None:
    # The branch already skips the other route; this keeps it so where a branch's skip of mapped task instances
    # does not take effect (apache/airflow issue 67265, seen with `airflow dags test` on Airflow 3.3).
    chosen = runtime.copy_route(store, the_slice)
    if chosen != route:
        raise AirflowSkipException(f"slice {the_slice.slice_id} is copied through {COPY_TASK[chosen]}")


def _copy_line(manifest) -> str:
    """The copy's one log line: what THIS run copied of the slice (from the counters its route task took)."""
    taken = get_current_context()["ti"].xcom_pull(task_ids="archive_slice.route", key=BEFORE)
    before = SliceCounters.from_dict(taken) if isinstance(taken, dict) else None
    work = slice_work(before, manifest)
    return copy_line(work, manifest.timings_s.get("total", 0.0)) if work else str(manifest.summary())


def _notify_halt(ctx, store, slice_id: str):
    """The halt notification of one slice (sent once per archive by the slice workflow): the reason with its remedy
    and exactly what this run archived and purged before it; the same text becomes the run's note (XCom
    HALT_NOTE_KEY, written into the DagRun note by the listener in plugins/cosmos_archive_ui.py)."""
    manifest_path = store.manifest_path(slice_id)

    def send(o: SliceOutcome) -> None:
        activity = _run_activity(ctx["ti"])
        ctx["ti"].xcom_push(HALT_NOTE_KEY, halt_note(runtime.read_status(), activity))
        notify.notify_halt(ctx, slice_id=o.slice_id, reason=f"{o.message}. {activity.line()}",
                           validation=o.validation, slice_start=o.start, slice_end=o.end, attempts=o.attempts,
                           manifest_path=manifest_path)

    return send


def _run_activity(ti) -> RunActivity:
    """What this run's mapped validate and purge tasks have done so far (their XComs, one per planned slice)."""
    planned = range(len(ti.xcom_pull(task_ids="plan", map_indexes=None) or []))
    return RunActivity.from_results(ti.xcom_pull(task_ids="archive_slice.validate", map_indexes=planned),
                                    ti.xcom_pull(task_ids="archive_slice.purge", map_indexes=planned))


cosmos_archive()
