"""A real Airflow 3 backfill of cosmos_archive: `airflow backfill create`, executed by a running scheduler
(LocalExecutor), dag-processor and api-server (the Task SDK execution API) on 127.0.0.1, against the local stack
and Airflow's SQLite metadata DB. `airflow dags test` (tests/test_dag.py) exercises none of that path."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from dataclasses import asdict
from pathlib import Path

import test_dag
from test_dag import AIRFLOW, RUN_DATE, _seed, _settings, _store

from devstack.airflow_services import airflow_services, db_rows, wait_for
from include.cosmos_archiver.slices import slice_grid

# test_dag's module fixture: a migrated SQLite metadata DB with airflow_settings.yaml applied for the stack's ports.
airflow_env = test_dag.airflow_env

# Two backfilled days (logical dates, both inclusive) in two different weekly slices of the seeded data.
FROM, TO = dt.date(2026, 3, 4), dt.date(2026, 3, 5)
DAYS = [FROM + dt.timedelta(days=i) for i in range((TO - FROM).days + 1)]
BACKFILL_TIMEOUT_S = 300  # a loaded 2-core CI machine; a run here takes 20-120 s
_db = db_rows


def _backfill(env: dict[str, str], procs: dict, logs: Path, *extra: str, then_another: bool = False) -> int:
    """Create a backfill of FROM..TO with the CLI; wait until the scheduler has finished all its runs (and, with
    ``then_another``, marked the backfill complete: it accepts no other backfill of the DAG before)."""
    cmd = [AIRFLOW, "backfill", "create", "--dag-id", "cosmos_archive", *extra]
    cmd += ["--from-date", FROM.isoformat(), "--to-date", TO.isoformat()]
    created = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    backfill_id = _db(env, "SELECT max(id) FROM backfill WHERE dag_id='cosmos_archive'")[0][0]

    def finished() -> bool:
        states = _runs(env, backfill_id).values()
        return len(states) == len(DAYS) and all(state in ("success", "failed") for state in states)

    wait_for(f"the runs of backfill {backfill_id}", finished, BACKFILL_TIMEOUT_S, procs, logs, env)

    def complete() -> bool:
        return _db(env, "SELECT completed_at FROM backfill WHERE id=?", backfill_id)[0][0] is not None

    if then_another:  # the scheduler marks backfills complete every 30 s
        wait_for(f"backfill {backfill_id} to be marked complete", complete, 60, procs, logs)
    return backfill_id


def _runs(env: dict[str, str], backfill_id: int) -> dict[str, str]:
    """logical date (YYYY-MM-DD) -> state of the backfill's runs."""
    rows = _db(
        env,
        "SELECT d.logical_date, d.state FROM dag_run d JOIN backfill_dag_run b ON b.dag_run_id=d.id "
        "WHERE b.backfill_id=?",
        backfill_id,
    )
    return {logical[:10]: state for logical, state in rows}


def _task_states(env: dict[str, str], task_id: str) -> dict[tuple[str, int], tuple[str, int]]:
    """(logical date, map_index) -> (state, try_number) of one task in every run."""
    rows = _db(
        env,
        "SELECT d.logical_date, t.map_index, t.state, t.try_number FROM task_instance t "
        "JOIN dag_run d ON d.run_id=t.run_id AND d.dag_id=t.dag_id WHERE t.task_id=?",
        task_id,
    )
    return {(logical[:10], index): (state, tries) for logical, index, state, tries in rows}


def test_backfill_archives_exactly_its_slices_and_a_second_backfill_changes_nothing(
    stack,
    cosmos_database,
    airflow_env,
    tmp_path,
):
    settings = _settings(cosmos_database)
    _seed(cosmos_database, settings)
    store = _store(stack, settings)
    window_start = dt.datetime(FROM.year, FROM.month, FROM.day, tzinfo=dt.UTC)
    expected = slice_grid(window_start, window_start + dt.timedelta(days=len(DAYS)), slice_hours=settings.slice_hours)
    assert len(expected) == 2  # the two days fall into two slices; the seeded data has many more, before and after
    seeded = [RUN_DATE - dt.timedelta(days=day, hours=5) for day in range(0, 140, 2)]
    assert any(at < expected[0].start for at in seeded) and any(at >= expected[-1].end for at in seeded)
    assert dt.datetime.now(dt.UTC) - dt.timedelta(days=settings.cutoff_days) > expected[-1].end  # all of it is cold

    env = {**airflow_env, "AIRFLOW_VAR_COSMOS_ARCHIVE_SETTINGS": json.dumps(asdict(settings))}
    with airflow_services(env, tmp_path) as (env, procs):
        first = _backfill(env, procs, tmp_path, then_another=True)
        assert _runs(env, first) == {d.isoformat(): "success" for d in DAYS}
        # Exactly the backfilled slices, verified, each holding every seeded record of its time range.
        assert store.manifest_statuses() == {s.slice_id: "verified" for s in expected}
        for s in expected:
            assert store.read_manifest(s.slice_id).record_count == sum(1 for at in seeded if s.start <= at < s.end)
        copies = _task_states(env, "archive_slice.copy")
        assert {copies[(d.isoformat(), 0)][0] for d in DAYS} == {"success"}
        assert _db(env, "SELECT count(*) FROM dag_run WHERE backfill_id IS NULL") == [(0,)]  # nothing else ran

        # The same backfill again, re-running the completed runs: each day's slice is verified and purged, so the
        # run ends after its first task (due), every other task skipped.
        before = {b.name: b.etag for b in store.container.list_blobs()}
        second = _backfill(env, procs, tmp_path, "--reprocess-behavior", "completed")
        assert _runs(env, second) == {d.isoformat(): "success" for d in DAYS}
        assert {_task_states(env, "due")[(d.isoformat(), -1)] for d in DAYS} == {("success", 2)}  # re-ran
        assert {_task_states(env, "plan")[(d.isoformat(), -1)][0] for d in DAYS} == {"skipped"}
        assert not [k for k, (state, _) in _task_states(env, "archive_slice.copy").items() if state == "success"]
        assert {b.name: b.etag for b in store.container.list_blobs()} == before
