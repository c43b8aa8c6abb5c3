"""A real Airflow 3 on loopback for tests and benches: api-server (the Task SDK's execution API), dag-processor and
scheduler (LocalExecutor), each in its own process group on 127.0.0.1 against a SQLite metadata DB, all stopped
(by process group) when the block ends. Used by tests/test_backfill.py and bench/backfill_days.py."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from devstack.stack import free_port

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
START_TIMEOUT_S = 120


def db_rows(env: dict[str, str], query: str, *args) -> list[tuple]:
    """Rows of a query on the Airflow home's SQLite metadata DB."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db", timeout=30) as db:
        return db.execute(query, args).fetchall()


def wait_for(what: str, ready: Callable[[], bool], timeout_s: float, procs: dict[str, subprocess.Popen], logs: Path,
             env: dict[str, str] | None = None) -> None:
    """Wait for ``ready()``; a service exiting or a timeout raises AssertionError naming the unfinished task
    instances (with ``env``) and the tails of the services' logs."""
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
    pending = db_rows(env, "SELECT run_id, task_id, map_index, state, try_number FROM task_instance WHERE state IS "
                      "NULL OR state NOT IN ('success', 'skipped', 'removed')") if env else []
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; unfinished tasks: {pending}\n{tails}")


def _api_up(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    return check


@contextmanager
def airflow_services(env: dict[str, str], logs: Path, dag_id: str = "cosmos_archive"
                     ) -> Iterator[tuple[dict[str, str], dict[str, subprocess.Popen]]]:
    """api-server, dag-processor and scheduler, started once ``dag_id`` is parsed and unpaused; stopped after."""
    port = free_port()
    env = {
        **env,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,  # shared by the api-server and the task supervisors
        "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
        # Only backfills run: no scheduled run of the (unpaused) DAG may archive anything else.
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
                procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for("the api-server", _api_up(port), START_TIMEOUT_S, procs, logs)
        wait_for("the DAG to be parsed",
                 lambda: bool(db_rows(env, "SELECT 1 FROM dag WHERE dag_id=? AND is_paused=0", dag_id)),
                 START_TIMEOUT_S, procs, logs)
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


def backfill(env: dict[str, str], procs: dict[str, subprocess.Popen], logs: Path, from_date: str, to_date: str,
             *extra: str, timeout_s: float, dag_id: str = "cosmos_archive") -> int:
    """Create a backfill of ``from_date``..``to_date`` (both inclusive) with the CLI and wait until the scheduler
    has finished all its runs and marked it complete; its id."""
    cmd = [AIRFLOW, "backfill", "create", "--dag-id", dag_id, *extra, "--from-date", from_date, "--to-date", to_date]
    created = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    backfill_id = db_rows(env, "SELECT max(id) FROM backfill WHERE dag_id=?", dag_id)[0][0]

    def complete() -> bool:  # the scheduler marks a backfill complete (every 30 s) once no run is unfinished
        return db_rows(env, "SELECT completed_at FROM backfill WHERE id=?", backfill_id)[0][0] is not None

    wait_for(f"backfill {backfill_id} to complete", complete, timeout_s, procs, logs, env)
    return backfill_id
