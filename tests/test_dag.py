"""The cosmos_archive DAG run the way operators and CI run it: `airflow dags test` against the real local stack,
Airflow's own SQLite metadata DB, and the project's airflow_settings.yaml."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devstack import drills
from devstack.stack import free_port
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import blob_container
from include.cosmos_archiver.planning.due_slices import select_due_slices
from include.cosmos_archiver.readthrough.repository import ReadThroughRepository
from include.cosmos_archiver.settings import ArchiveSettings

REPO = Path(__file__).resolve().parents[1]
RUN_DATE = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="module")
def airflow_env(stack, tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(REPO),
        "COSMOS_ARCHIVE_COSMOS_PORT": str(stack.cosmos_port),
        "COSMOS_ARCHIVE_BLOB_PORT": str(stack.blob_port),
        "COSMOS_ARCHIVE_PROVISIONED_RU": str(int(stack.provisioned_ru)),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    applied = subprocess.run(
        [sys.executable, str(REPO / "scripts/apply_airflow_settings.py")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "2 connections, 1 pools, 2 variables" in applied.stdout
    return env


class _Webhook(list):
    env: dict[str, str]


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    """A real HTTP endpoint on 127.0.0.1 that records the JSON bodies posted to it."""
    received = _Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.env = {
        "AIRFLOW_CONN_COSMOS_ARCHIVE_WEBHOOK": json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{server.server_address[1]}/hook"}
        )
    }
    yield received
    server.shutdown()
    server.server_close()


def _settings(database, **overrides) -> ArchiveSettings:
    return ArchiveSettings(
        database=database.id,
        container=f"c-{uuid.uuid4().hex[:10]}",
        timestamp_field="issuedAt",
        timestamp_kind="iso8601",
        cutoff_days=90,
        lookback_days=125,
        slice_hours=168,
        blob_container=f"dag-{uuid.uuid4().hex[:10]}",
        **overrides,
    )


def _seed(database, settings: ArchiveSettings, per_week: int = 3) -> dict[str, int]:
    """Records spread over the weeks before RUN_DATE; returns records per due slice id."""
    from azure.cosmos import PartitionKey

    container = database.create_container(settings.container, PartitionKey(settings.partition_key_path))
    for day in range(0, 140, 2):
        at = RUN_DATE - dt.timedelta(days=day, hours=5)
        container.upsert_item(
            {
                "id": f"inv-{day}",
                "customerId": f"cust-{day % 4}",
                "issuedAt": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "total": str(day * 1.5),
            }
        )
    return container


def _dags_test(
    env: dict[str, str], settings: ArchiveSettings, conf: dict | None = None, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    from dataclasses import asdict

    run_env = {**env, "AIRFLOW_VAR_COSMOS_ARCHIVE_SETTINGS": json.dumps(asdict(settings)), **(extra_env or {})}
    cmd = [AIRFLOW, "dags", "test", "cosmos_archive", RUN_DATE.strftime("%Y-%m-%d")]
    if conf:
        cmd += ["-c", json.dumps(conf)]
    return subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=600)


def _task_instances(env: dict[str, str]) -> dict[tuple[str, int], tuple[str, str | None, str | None]]:
    """(task_id, map_index) -> (state, start, end) of the latest run's task instances."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        run_id = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id='cosmos_archive' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        rows = db.execute(
            "SELECT task_id, map_index, state, start_date, end_date FROM task_instance WHERE run_id=?", (run_id,)
        )
        return {(task, index): (state, start, end) for task, index, state, start, end in rows}


def _tries(env: dict[str, str], task_id: str) -> dict[int, tuple[str, int]]:
    """map_index -> (state, try_number) of one task in the latest run."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        run_id = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id='cosmos_archive' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        rows = db.execute(
            "SELECT map_index, state, try_number FROM task_instance WHERE run_id=? AND task_id=?", (run_id, task_id)
        )
        return {index: (state, tries) for index, state, tries in rows}


def _rendered_map_indexes(env: dict[str, str], task_id: str) -> dict[int, str | None]:
    """map_index -> the name the UI shows (map_index_template) of one task in the latest run."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        run_id = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id='cosmos_archive' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        rows = db.execute("SELECT map_index, rendered_map_index FROM task_instance WHERE run_id=? AND task_id=?",
                          (run_id, task_id))
        return dict(rows)


def _run_note(env: dict[str, str]) -> str | None:
    """The note of the latest cosmos_archive run (shown with the run in the UI; ``note`` in the REST API)."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        row = db.execute("SELECT n.content FROM dag_run r LEFT JOIN dag_run_note n ON n.dag_run_id = r.id "
                         "WHERE r.dag_id='cosmos_archive' ORDER BY r.id DESC LIMIT 1").fetchone()
        return row[0] if row else None


def _run_state(env: dict[str, str]) -> str:
    """The state of the latest cosmos_archive run: what the Airflow UI shows green or red."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        query = "SELECT state FROM dag_run WHERE dag_id='cosmos_archive' ORDER BY id DESC LIMIT 1"
        return db.execute(query).fetchone()[0]


def _task_states(env: dict[str, str]) -> dict[tuple[str, int], str]:
    return {key: value[0] for key, value in _task_instances(env).items()}


def _store(stack, settings: ArchiveSettings) -> ArchiveStore:
    return ArchiveStore(blob_container(stack.blob_connection_string, settings.blob_container), settings.blob_prefix)


@contextmanager
def _adf_standin(stack, settings: ArchiveSettings, wrap=None) -> Iterator[dict[str, str]]:
    """The loopback ADF stand-in copying with ``settings`` (its copy runner wrapped by ``wrap``, e.g. a drill);
    yields the environment that gives the DAG its ``cosmos_archive_adf`` connection."""
    from devstack.adf_standin.copy_runner import copy_runner
    from devstack.adf_standin.server import AdfStandin
    from devstack.stack import EMULATOR_COSMOS_KEY
    from devstack.tls import ensure_local_tls

    tls = ensure_local_tls(stack.state_dir)
    run_copy = copy_runner(stack.cosmos_endpoint, EMULATOR_COSMOS_KEY, stack.blob_connection_string, settings)
    with AdfStandin(wrap(run_copy) if wrap else run_copy, tls_cert=tls.server_cert, tls_key=tls.server_key) as standin:
        yield {"AIRFLOW_CONN_COSMOS_ARCHIVE_ADF": json.dumps({"conn_type": "azure_data_factory", "extra": {
            "subscriptionId": "00000000-0000-0000-0000-0000000000aa", "resource_group_name": "cosmos-archive-local",
            "factory_name": "cosmos-archive-local", "local_base_url": standin.base_url, "check_interval_s": 2,
            "local_ca_bundle": str(tls.ca_bundle)}})}


def test_dagbag_imports_without_errors(airflow_env):
    code = (
        "from airflow.dag_processing.dagbag import DagBag; b = DagBag(); "
        "print(b.import_errors); d = b.get_dag('cosmos_archive'); "
        "print(sorted(d.task_ids + b.get_dag('cosmos_archive_scrub').task_ids))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=airflow_env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    errors, tasks = out.strip().splitlines()[-2:]
    assert errors == "{}"
    for task in (
        "preflight",
        "plan",
        "archive_slice.copy",
        "archive_slice.validate",
        "archive_slice.decide",
        "archive_slice.purge",
        "archive_slice.halt",
        "reopen",
        "compact_index",
        "census",
        "scrub",
        "erase_deleted",
    ):
        assert task in tasks


def test_dags_test_archives_due_slices_and_a_rerun_changes_nothing(stack, cosmos_database, airflow_env):
    settings = _settings(cosmos_database)
    container = _seed(cosmos_database, settings)
    store = _store(stack, settings)
    due = select_due_slices(store, settings, now=RUN_DATE).due
    assert len(due) >= 4

    # The success notification goes to a webhook nobody listens on: logged, and the run still succeeds.
    unreachable = {
        "AIRFLOW_CONN_COSMOS_ARCHIVE_WEBHOOK": json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{free_port()}/hook"}
        ),
        "AIRFLOW_VAR_COSMOS_ARCHIVE_NOTIFY": json.dumps({"channels": ["webhook"], "on_success": True}),
    }
    run = _dags_test(airflow_env, settings, extra_env=unreachable)
    assert "state=success" in run.stdout + run.stderr, run.stdout[-3000:] + run.stderr[-3000:]
    assert "notification over webhook FAILED" in run.stdout + run.stderr
    assert _run_state(airflow_env) == "success" and _task_states(airflow_env)[("run_outcome", -1)] == "skipped"
    statuses = store.manifest_statuses()
    assert statuses == {s.slice_id: "verified" for s in due}
    archived = sum(store.read_manifest(s.slice_id).record_count for s in due)
    expected = sum(
        1 for day in range(0, 140, 2) if due[0].start <= RUN_DATE - dt.timedelta(days=day, hours=5) < due[-1].end
    )
    assert archived == expected
    # purged: what the archive holds left Cosmos DB, and the read-through repository serves it from the archive
    left = {d["id"] for d in container.query_items("SELECT c.id FROM c", enable_cross_partition_query=True)}
    archived_ids = {r.id for s in due for r in store.read_manifest(s.slice_id).records}
    assert archived_ids and not archived_ids & left
    assert all(store.read_manifest(s.slice_id).purge["state"] == "complete" for s in due)
    one = store.read_manifest(due[0].slice_id).records[0]
    found = ReadThroughRepository(container, store, settings).get(one.id, one.partition_key)
    assert found is not None and found.source == "archive" and json.loads(found.body)["id"] == one.id
    states = _task_states(airflow_env)
    assert states[("census", -1)] == "success" and states[("compact_index", -1)] == "success"

    named = _rendered_map_indexes(airflow_env, "archive_slice.copy")  # the grid names mapped tasks by slice
    assert sorted(named.values()) == [s.slice_id for s in due], named

    before = {b.name: b.etag for b in store.container.list_blobs()}
    again = _dags_test(airflow_env, settings)
    assert "state=success" in again.stdout + again.stderr
    assert {b.name: b.etag for b in store.container.list_blobs()} == before
    assert not [k for k, v in _task_states(airflow_env).items() if k[0] == "archive_slice.copy" and v == "success"]


def test_dags_test_archives_through_the_adf_standin(stack, cosmos_database, airflow_env):
    """The ADF branch end to end: the provider's operator (deferrable) -> loopback ADF REST stand-in writing ADF's
    layout -> index_adf_output -> validate, all inside `airflow dags test`."""
    settings = _settings(cosmos_database)
    _seed(cosmos_database, settings)
    store = _store(stack, settings)
    due = select_due_slices(store, settings, now=RUN_DATE).due
    with _adf_standin(stack, settings) as adf:
        run = _dags_test(airflow_env, settings, extra_env=adf)

    logs = run.stdout + run.stderr
    assert "state=success" in logs, logs[-4000:]
    states = _task_states(airflow_env)
    assert {states[("archive_slice.copy_adf", i)] for i in range(len(due))} == {"success"}
    assert {states[("archive_slice.copy", i)] for i in range(len(due))} == {"skipped"}
    assert store.manifest_statuses() == {s.slice_id: "verified" for s in due}
    manifests = [store.read_manifest(s.slice_id) for s in due]
    assert {m.executor for m in manifests} == {"adf"}
    assert all(f.path.split("/")[-1].startswith("adf_") for m in manifests for f in m.files)
    # each slice's index_adf_output found its own pipeline run (copy_adf's run_id XCom, same map index) and took
    # read_since from the run's runStart: earlier than the manifest, which was written after the run ended
    assert all(any(n.startswith("copied by Azure Data Factory pipeline run ") for n in m.notes) for m in manifests)
    assert all(m.read_since is not None and m.read_since < dt.datetime.fromisoformat(m.copied_at).timestamp() - 1
               for m in manifests), [(m.read_since, m.copied_at) for m in manifests]


def test_validation_copies_again_through_adf_and_a_persistent_failure_halts_newer_slices(
    stack, cosmos_database, airflow_env, webhook
):
    """Drills from the dev kit, not the DAG: the ADF stand-in's copies of due[0] are damaged once, those of due[1]
    every time. due[0] is copied again through ADF (not the local executor) and verified; due[1] fails twice,
    the archive goes Failed -> Halted with one notification, and newer slices not yet started are skipped."""
    settings = _settings(cosmos_database)
    _seed(cosmos_database, settings)
    store = _store(stack, settings)
    due = select_due_slices(store, settings, now=RUN_DATE).due
    healed, bad = due[0], due[1]
    drilled: list[drills.DamagingCopies] = []

    def damaging(run_copy):
        drilled.append(drills.DamagingCopies(run_copy, store, {healed.slice_id: 1, bad.slice_id: None}))
        return drilled[0]

    with _adf_standin(stack, settings, wrap=damaging) as adf:
        run = _dags_test(
            airflow_env,
            settings,
            conf={"validation_attempts": 2, "validation_backoff_s": 0},
            extra_env={**webhook.env, **adf},
        )
    logs = run.stdout + run.stderr
    tis = _task_instances(airflow_env)
    statuses = store.manifest_statuses()

    assert statuses.get(healed.slice_id) == "verified", (tis, logs[-4000:])
    assert store.read_manifest(healed.slice_id).executor == "adf"
    assert drilled[0].copies[healed.slice_id] == 2 and drilled[0].copies[bad.slice_id] == 2  # copied again by ADF
    assert f"re-copying {healed.slice_id} through adf" in logs
    assert {tis[("archive_slice.copy", i)][0] for i in range(len(due))} == {"skipped"}  # never the local executor
    assert statuses[bad.slice_id] == "failed"
    assert tis[("archive_slice.halt", 1)][0] == "failed", logs[-4000:]  # the reason is logged
    assert tis[("run_outcome", -1)][0] == "failed" and tis[("report", -1)][0] == "success"
    assert _run_state(airflow_env) == "failed"  # the run shows red, and the report was still written
    failure_known = tis[("archive_slice.validate", 1)][2]
    # "Remaining" slices are the newer ones not yet started when the failure was known: all skipped, none verified.
    remaining = [i for i in range(2, len(due)) if tis[("archive_slice.validate", i)][0] == "skipped"]
    for i in range(2, len(due)):
        state, started, _ = tis[("archive_slice.validate", i)]
        if i not in remaining:
            assert started is not None and started < failure_known, (i, state, started, failure_known)
        else:
            assert statuses.get(due[i].slice_id) != "verified"
            assert "newer slices are not archived" in logs
    halts = [w for w in webhook if w["event"] == "halted"]
    assert len(halts) == 1, webhook  # one halt notification, from the halt of the failing slice
    assert bad.slice_id in json.dumps(halts[0])
    # the census's notice: the seeded records older than lookback_days are left out, and it says so
    attention = [w for w in webhook if w["event"] == "attention"]
    assert len(attention) == 1 and "older than lookback" in attention[0]["text"], webhook
    status = subprocess.run(
        [AIRFLOW, "variables", "get", "cosmos_archive_status"],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(status.stdout.strip().splitlines()[-1])["status"] == "Halted"

    # A halted archive starts nothing new until an operator clears the status.
    blocked = _dags_test(airflow_env, settings)
    assert "Halted since" in blocked.stdout + blocked.stderr and bad.slice_id in blocked.stdout + blocked.stderr
    assert _tries(airflow_env, "preflight") == {-1: ("failed", 1)}  # terminal: not retried
    assert _run_state(airflow_env) == "failed"
    subprocess.run(
        [AIRFLOW, "variables", "delete", "cosmos_archive_status"],
        env=airflow_env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_missing_connection_fails_fast_naming_it(stack, cosmos_database, airflow_env):
    settings = _settings(cosmos_database)
    subprocess.run([AIRFLOW, "connections", "delete", "cosmos_archive_blob"], env=airflow_env, check=True,
                   capture_output=True, timeout=120)
    try:
        run = _dags_test(airflow_env, settings)
    finally:
        subprocess.run([sys.executable, str(REPO / "scripts/apply_airflow_settings.py")], env=airflow_env,
                       check=True, capture_output=True, timeout=120)
    logs = run.stdout + run.stderr
    states = _task_states(airflow_env)
    assert "Airflow connection 'cosmos_archive_blob'" in logs and "is not defined" in logs
    assert _tries(airflow_env, "preflight") == {-1: ("failed", 1)}  # terminal: not retried
    assert states.get(("plan", -1)) in (None, "upstream_failed")
    assert _run_state(airflow_env) == "failed"


def test_a_bad_setting_fails_its_task_once_without_retries(stack, cosmos_database, airflow_env):
    """preflight has the DAG's default retries (2, exponential back-off); a bad setting is a TerminalError, so
    the task fails at its first try and says what to fix, instead of waiting minutes for retries that must fail."""
    settings = _settings(cosmos_database)
    started = dt.datetime.now(dt.UTC)
    run = _dags_test(airflow_env, settings,
                     extra_env={"AIRFLOW_VAR_COSMOS_ARCHIVE_SETTINGS": json.dumps({"cutoff_days": -1})})
    logs = run.stdout + run.stderr
    assert "Variable cosmos_archive_settings: cutoff_days=-1 must be a positive integer" in logs, logs[-3000:]
    assert "Task failed with exception" not in logs  # one line, no traceback (the task runner's words for one)
    assert _tries(airflow_env, "preflight") == {-1: ("failed", 1)}
    assert _task_states(airflow_env).get(("plan", -1)) in (None, "upstream_failed")
    assert _run_state(airflow_env) == "failed"
    assert dt.datetime.now(dt.UTC) - started < dt.timedelta(minutes=2)  # no retry_delay was waited


def test_a_halted_archive_fails_the_next_run_in_one_line_and_writes_its_note(stack, cosmos_database, airflow_env):
    """After a halt, a run's first failing task (preflight) says "Halted since ..." in one line, without a traceback
    and without retries, and the run's note names the slice, the reason and how to clear it."""
    settings = _settings(cosmos_database)
    _seed(cosmos_database, settings)  # census and compact_index run whatever happened
    halted = {"status": "Halted", "run_id": "scheduled__2026-05-31T00:00:00+00:00", "failed_slice": "2026/02/05",
              "failed_slice_start": "2026-02-05T00:00:00+00:00", "since": "2026-05-31T01:02:03+00:00",
              "reason": "slice 2026/02/05: validation FAILED (source 3, archive 2); 1 missing from archive: c-1/x"}
    run = _dags_test(airflow_env, settings, extra_env={"AIRFLOW_VAR_COSMOS_ARCHIVE_STATUS": json.dumps(halted)})
    logs = run.stdout + run.stderr
    line = "Halted since 2026-05-31T01:02:03+00:00: slice 2026/02/05 failed in run scheduled__2026-05-31"
    assert line in logs, logs[-3000:]
    assert "ArchiveHaltedError" not in logs and "HaltedExit" not in logs  # no traceback of the halt
    assert "run failed: a task of this run failed" in logs and "Task failed with exception" not in logs  # no task's
    assert _tries(airflow_env, "preflight") == {-1: ("failed", 1)}  # not retried
    assert _run_state(airflow_env) == "failed"
    note = _run_note(airflow_env)
    assert note is not None and note.startswith(line) and "1 missing from archive: c-1/x" in note
    assert "airflow variables delete cosmos_archive_status" in note
