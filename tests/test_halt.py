"""A halt stops at once and says so (issue 19 item 3), through a real `airflow dags test` run and the api-server.

The ADF stand-in damages every copy of one slice while newer slices are due. The slice fails for good at its
first validation; from then on no newer slice is purged; the halt notification and the run's note list exactly
what the run archived and purged before the halt; the note is readable through Airflow's REST API on the run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
from contextlib import suppress
from pathlib import Path

import test_dag
from test_dag import AIRFLOW, RUN_DATE, _adf_standin, _dags_test, _seed, _settings, _store, _task_instances

from devstack import drills
from devstack.stack import free_port
from include.cosmos_archiver.pipeline.run_status import HALT_NOTE_KEY
from include.cosmos_archiver.planning.due_slices import select_due_slices
from include.cosmos_archiver.source.reader import count_slice

airflow_env = test_dag.airflow_env
webhook = test_dag.webhook


def _get(url: str, token: str | None = None) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def _rest_api(env: dict[str, str], paths: list[str], logs) -> list[dict]:
    """GET each of ``paths`` under /api/v2 from an api-server of our own (all-admins simple auth)."""
    port = free_port()
    api_env = {**env, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
               "AIRFLOW__API_AUTH__JWT_SECRET": "test-halt-only", "AIRFLOW__API__SECRET_KEY": "test-halt-only"}
    with open(logs / "api-server.log", "wb") as log:
        proc = subprocess.Popen([AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                env=api_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                token = _get(f"{base}/auth/token")["access_token"]
                break
            except OSError:
                log_tail = (logs / "api-server.log").read_text()[-3000:]
                assert proc.poll() is None and time.monotonic() < deadline, log_tail
                time.sleep(1)
        return [_get(f"{base}/api/v2/{path}", token) for path in paths]
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_a_slice_failing_for_good_stops_newer_purges_and_the_run_says_what_it_did(
    stack, cosmos_database, airflow_env, webhook, tmp_path
):
    settings = _settings(cosmos_database)
    container = _seed(cosmos_database, settings)
    store = _store(stack, settings)
    due = select_due_slices(store, settings, now=RUN_DATE).due
    assert len(due) >= 4
    bad = due[1]
    in_cosmos = _counts(container, settings, due)

    def damaging(run_copy):
        return drills.DamagingCopies(run_copy, store, {bad.slice_id: None})

    with _adf_standin(stack, settings, wrap=damaging) as adf:
        run = _dags_test(airflow_env, settings, conf={"validation_attempts": 1, "validation_backoff_s": 0},
                         extra_env={**webhook.env, **adf})
    logs = run.stdout + run.stderr
    tis = _task_instances(airflow_env)
    halt_started = tis[("archive_slice.halt", 1)][1]
    assert tis[("archive_slice.halt", 1)][0] == "failed", logs[-4000:]

    # No slice newer than the failed one is purged: Cosmos DB still holds all their records.
    for newer in due[2:]:
        manifest = store.read_manifest(newer.slice_id)
        assert manifest is None or manifest.purge is None, (newer.slice_id, manifest and manifest.purge)
    left = _counts(container, settings, due)
    assert all(left[s.slice_id] == in_cosmos[s.slice_id] for s in due[1:]), (left, in_cosmos)

    # The notice lists exactly what the run had archived and purged when the halt was notified.
    def done_before_halt(task_id: str) -> list[str]:  # this run's slices whose task succeeded before the halt
        return [s.slice_id for i, s in enumerate(due) if tis.get((task_id, i), ("",))[0] == "success"
                and tis[(task_id, i)][2] < halt_started]

    verified = {s for s, status in store.manifest_statuses().items() if status == "verified"}
    archived_before = [s for s in done_before_halt("archive_slice.validate") if s in verified]
    purged_before = done_before_halt("archive_slice.purge")
    assert due[0].slice_id in archived_before and bad.slice_id not in archived_before
    (halt,) = [w for w in webhook if w["event"] == "halted"]
    text = json.dumps(halt)
    archived_line = f"archived and verified {len(archived_before)} slice(s): {', '.join(archived_before)};"
    assert archived_line in text, text
    assert f"purged {len(purged_before)} slice(s)" in text, text
    for slice_id in purged_before:
        records = store.read_manifest(slice_id).purge["counts"]["purged"]
        assert f"{slice_id} ({records} records)" in text, text
    assert "Case: records differ between Cosmos DB and the archive" in text, text  # the stand-in's copy was wrong

    # The reason, readable through the REST API on the run: the halt task's XCom, and the run's note (written by
    # the DagRun listener of plugins/cosmos_archive_ui.py when the run failed).
    run_id = _latest_run_id(airflow_env)
    quoted = urllib.request.quote(run_id, safe="")
    run, xcom = _rest_api(airflow_env, [
        f"dags/cosmos_archive/dagRuns/{quoted}",
        f"dags/cosmos_archive/dagRuns/{quoted}/taskInstances/archive_slice.halt/xcomEntries/{HALT_NOTE_KEY}"
        "?map_index=1&deserialize=true",
    ], tmp_path)
    for note in (run["note"], str(xcom["value"])):
        assert note.startswith("HALTED since") and bad.slice_id in note, note
        assert archived_line in note and "To resume" in note, note


def _counts(container, settings, slices) -> dict[str, int]:
    return {s.slice_id: count_slice(container, s, timestamp_field=settings.timestamp_field,
                                    timestamp_kind=settings.timestamp_kind) for s in slices}


def _latest_run_id(env: dict[str, str]) -> str:
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        return db.execute("SELECT run_id FROM dag_run WHERE dag_id='cosmos_archive' ORDER BY id DESC LIMIT 1"
                          ).fetchone()[0]
