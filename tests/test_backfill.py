"""A real Airflow 3 backfill of cosmos_archive: `airflow backfill create`, executed by a running scheduler
(LocalExecutor), dag-processor and api-server (the Task SDK execution API) on 127.0.0.1, against the local stack
and Airflow's SQLite metadata DB. `airflow dags test` (tests/test_dag.py) exercises none of that path."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path

import test_dag
from test_dag import AIRFLOW, RUN_DATE, _seed, _settings, _store

from devstack.stack import free_port
from include.cosmos_archiver.slices import slice_grid

# test_dag's module fixture: a migrated SQLite metadata DB with airflow_settings.yaml applied for the stack's ports.
airflow_env = test_dag.airflow_env

# Two backfilled days (logical dates, both inclusive) in two different weekly slices of the seeded data.
FROM, TO = dt.date(2026, 3, 4), dt.date(2026, 3, 5)
DAYS = [FROM + dt.timedelta(days=i) for i in range((TO - FROM).days + 1)]
START_TIMEOUT_S = 120
BACKFILL_TIMEOUT_S = 180


def _db(env: dict[str, str], query: str, *args) -> list[tuple]:
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db", timeout=30) as db:
        return db.execute(query, args).fetchall()


def _wait(what: str, ready, timeout_s: float, procs: dict[str, subprocess.Popen], logs: Path, env=None) -> None:
    """Wait for ``ready()``; a timeout names the unfinished task instances (with ``env``) and the services' logs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                tail = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"airflow {name} exited with {proc.returncode} while waiting for {what}:\n{tail}")
        if ready():
            return
        time.sleep(1)
    tails = "\n".join(f"--- {n}:\n{(logs / f'{n}.log').read_text(errors='replace')[-1500:]}" for n in procs)
    pending = _db(env, "SELECT run_id, task_id, map_index, state, try_number FROM task_instance WHERE state IS NULL "
                  "OR state NOT IN ('success', 'skipped', 'removed')") if env else []
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; unfinished tasks: {pending}\n{tails}")


def _api_up(port: int):
    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    return check


@contextmanager
def _airflow_services(env: dict[str, str], logs: Path) -> Iterator[tuple[dict[str, str], dict]]:
    """api-server, dag-processor and scheduler (LocalExecutor), each in its own process group, all stopped after."""
    port = free_port()
    env = {
        **env,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,  # shared by the api-server and the task supervisors
        "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
        # Only the backfill's runs: no scheduled run of the (unpaused) DAG may archive anything else.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    commands = {
        "api-server": [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        "dag-processor": [AIRFLOW, "dag-processor"],
        "scheduler": [AIRFLOW, "scheduler", "--skip-serve-logs"],  # task logs are local files; no log server port
    }
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, argv in commands.items():
            with open(logs / f"{name}.log", "wb") as log:
                procs[name] = subprocess.Popen(
                    argv,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        _wait("the api-server", _api_up(port), START_TIMEOUT_S, procs, logs)
        _wait(
            "the DAG to be parsed",
            lambda: _db(env, "SELECT 1 FROM dag WHERE dag_id='cosmos_archive' AND is_paused=0"),
            START_TIMEOUT_S,
            procs,
            logs,
        )
        yield env, procs
    finally:
        for proc in reversed(procs.values()):
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


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

    _wait(f"the runs of backfill {backfill_id}", finished, BACKFILL_TIMEOUT_S, procs, logs, env)

    def complete() -> bool:
        return _db(env, "SELECT completed_at FROM backfill WHERE id=?", backfill_id)[0][0] is not None

    if then_another:  # the scheduler marks backfills complete every 30 s
        _wait(f"backfill {backfill_id} to be marked complete", complete, 60, procs, logs)
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
    with _airflow_services(env, tmp_path) as (env, procs):
        first = _backfill(env, procs, tmp_path, then_another=True)
        assert _runs(env, first) == {d.isoformat(): "success" for d in DAYS}
        # Exactly the backfilled slices, verified, each holding every seeded record of its time range.
        assert store.manifest_statuses() == {s.slice_id: "verified" for s in expected}
        for s in expected:
            assert store.read_manifest(s.slice_id).record_count == sum(1 for at in seeded if s.start <= at < s.end)
        copies = _task_states(env, "archive_slice.copy")
        assert {copies[(d.isoformat(), 0)][0] for d in DAYS} == {"success"}
        assert _db(env, "SELECT count(*) FROM dag_run WHERE backfill_id IS NULL") == [(0,)]  # nothing else ran

        # The same backfill again, re-running the completed runs: the plan finds both slices verified.
        before = {b.name: b.etag for b in store.container.list_blobs()}
        second = _backfill(env, procs, tmp_path, "--reprocess-behavior", "completed")
        assert _runs(env, second) == {d.isoformat(): "success" for d in DAYS}
        assert {_task_states(env, "plan")[(d.isoformat(), -1)] for d in DAYS} == {("success", 2)}  # re-ran
        assert not [k for k, (state, _) in _task_states(env, "archive_slice.copy").items() if state == "success"]
        assert {b.name: b.etag for b in store.container.list_blobs()} == before
