"""Airflow's own SQLite metadata engine, as the project's Airflow processes build it
(plugins/airflow_local_settings.py): a transaction opened by a savepoint - how Airflow's backfill creates each run -
waits its turn when another process commits while it reads, instead of failing with "database is locked" (the CI
failure of a real backfill)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from test_dag import AIRFLOW, REPO

# In a fresh Airflow process: a session opens a savepoint and reads; another process's connection (a thread with its
# own sqlite3 connection here) writes and commits; then the session inserts and commits.
_RACE = r"""
import json, sqlite3, sys, threading, time
from airflow import settings
from sqlalchemy import text

db = settings.engine.url.database
with settings.engine.begin() as conn:
    conn.exec_driver_sql("CREATE TABLE probe (writer TEXT)")
session = settings.Session()
outcome = {"engine_factory": settings.create_metadata_engine.__module__}
try:
    with session.begin_nested():
        session.execute(text("SELECT count(*) FROM probe")).all()

        def other_process() -> None:
            other = sqlite3.connect(db, timeout=30)
            other.execute("INSERT INTO probe VALUES ('other')")
            other.commit()
            other.close()

        writer = threading.Thread(target=other_process)
        writer.start()
        time.sleep(1.0)  # the other writer commits now unless the session holds the write lock
        session.execute(text("INSERT INTO probe VALUES ('session')"))
    session.commit()
    writer.join(30)
    outcome["rows"] = sorted(r for (r,) in session.execute(text("SELECT writer FROM probe")))
except Exception as exc:
    session.rollback()
    writer.join(30)
    outcome["error"] = str(exc).splitlines()[0]
print(json.dumps(outcome))
"""


def _airflow_env(home: Path, plugins_folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "PYTHONPATH": str(REPO),
    }


def _plugins_without_local_settings(tmp_path: Path) -> Path:
    """The project's plugins folder (the DAG imports its modules) less airflow_local_settings.py."""
    folder = tmp_path / "plugins-without-local-settings"
    folder.mkdir()
    for plugin in (REPO / "plugins").glob("*.py"):
        if plugin.name != "airflow_local_settings.py":
            (folder / plugin.name).symlink_to(plugin)
    return folder


def _race(home: Path, plugins_folder: Path) -> dict:
    home.mkdir()
    env = _airflow_env(home, plugins_folder)
    done = subprocess.run([sys.executable, "-c", _RACE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_savepoint_transaction_waits_for_a_concurrent_writer_instead_of_failing(tmp_path: Path) -> None:
    outcome = _race(tmp_path / "airflow", REPO / "plugins")
    assert outcome == {"engine_factory": "airflow_local_settings", "rows": ["other", "session"]}


def test_without_the_local_settings_the_same_race_fails(tmp_path: Path) -> None:
    """Airflow's default engine, same race: the failure the local settings exist for (so the test above can fail)."""
    outcome = _race(tmp_path / "airflow", _plugins_without_local_settings(tmp_path))
    assert outcome["engine_factory"] == "airflow.settings"
    assert outcome["error"] == "(sqlite3.OperationalError) database is locked"


# Another Airflow process's writes, as often as a busy scheduler's; bounded in time, stopped by the test.
_WRITER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=60)
db.execute("CREATE TABLE IF NOT EXISTS other_writer (at REAL)")
db.commit()
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    db.execute("INSERT INTO other_writer VALUES (?)", (time.time(),))
    db.commit()
    time.sleep(0.005)
"""
BACKFILL_DAYS = 10


def test_airflow_backfill_create_succeeds_while_another_process_commits(tmp_path: Path) -> None:
    """The CLI call that failed in CI, `airflow backfill create`, against a DB another process commits to every 5 ms:
    each backfill is created whole with the local settings; without them the same call fails "database is locked"."""
    home = tmp_path / "airflow"
    home.mkdir()
    env = _airflow_env(home, REPO / "plugins")
    for argv in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([AIRFLOW, *argv], env=env, check=True, capture_output=True, timeout=300)
    db = home / "airflow.db"

    def backfill_create(plugins_folder: Path) -> subprocess.CompletedProcess:
        cmd = [AIRFLOW, "backfill", "create", "--dag-id", "cosmos_archive", "--reprocess-behavior", "completed"]
        cmd += ["--from-date", "2026-03-01", "--to-date", f"2026-03-{BACKFILL_DAYS:02d}"]
        created = subprocess.run(cmd, env={**env, "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder)},
                                 capture_output=True, text=True, timeout=120)
        with sqlite3.connect(db, timeout=60) as conn:  # let the next backfill of the DAG start (no scheduler here)
            conn.execute("UPDATE backfill SET completed_at = datetime('now') WHERE completed_at IS NULL")
        return created

    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(db), "90"])
    try:
        plugins_without = _plugins_without_local_settings(tmp_path)
        without = [backfill_create(plugins_without) for _ in range(3)]
        created = [backfill_create(REPO / "plugins") for _ in range(3)]
        assert writer.poll() is None, "the other writer stopped before the backfills were done"
    finally:
        writer.kill()
        writer.wait(10)

    assert any(c.returncode != 0 and "database is locked" in c.stderr for c in without), [c.returncode for c in without]
    assert [c.returncode for c in created] == [0, 0, 0], [c.stderr[-2000:] for c in created if c.returncode]
    with sqlite3.connect(db) as conn:  # the last three backfills are the ones created with the local settings
        runs = conn.execute(
            "SELECT b.id, count(r.id) FROM backfill b LEFT JOIN backfill_dag_run r ON r.backfill_id = b.id "
            "GROUP BY b.id ORDER BY b.id DESC LIMIT 3"
        ).fetchall()
    assert [count for _, count in runs] == [BACKFILL_DAYS] * 3, runs  # each created whole, a run for each day
