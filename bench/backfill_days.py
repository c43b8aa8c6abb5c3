"""How long a backfill of N days takes on the local stack, with a real scheduler (LocalExecutor), and the same
backfill again once every day is verified (each day then costs its one short `due` task).

    PYTHONPATH=$PWD .venv/bin/python bench/backfill_days.py --days 30 --records 300

Starts its own local stack and Airflow (SQLite) in a temporary directory, seeds ``--records`` billing records
over the backfilled days (devstack.seed, ``--target-kb`` each), applies airflow_settings.yaml (30-day slices,
purge with a replica), then runs ``airflow backfill create --max-active-runs 1`` over the days (as the README
recommends), and again with ``--reprocess-behavior completed``. Prints wall-clock seconds per backfill and per
day, and the extrapolation to 365 days (a linear one: per-day scheduling overhead dominates; the per-slice work
adds once per 30 days). The machine's other load is not controlled: say what ran beside it.

Measured 2026-12-04 (shared 2-core machine, load average ~11: other engineers' test suites), ``--days 20
--records 200``: first backfill 254 s (20 day runs, 19 ended at due), again 146 s (all 20 ended at due, 7.3 s
per day, up to 30 s of it the scheduler's backfill-complete check).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from azure.cosmos import PartitionKey

from devstack.airflow_services import AIRFLOW, airflow_services, backfill, db_rows
from devstack.seed import SeedSpec, seed_container
from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig, free_port, running_stack
from include.cosmos_archiver.clients import cosmos_client

REPO = Path(__file__).resolve().parents[1]


def _airflow_home(config: StackConfig, home: Path) -> dict[str, str]:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PYTHONPATH": str(REPO), "COSMOS_ARCHIVE_COSMOS_PORT": str(config.cosmos_port),
           "COSMOS_ARCHIVE_BLOB_PORT": str(config.blob_port),
           "COSMOS_ARCHIVE_PROVISIONED_RU": str(int(config.provisioned_ru))}
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run([sys.executable, str(REPO / "scripts/apply_airflow_settings.py")], env=env, check=True,
                   capture_output=True, timeout=120)
    return env


def _day_runs(env: dict[str, str], backfill_id: int) -> tuple[int, int]:
    """(runs, runs that ended at their due task: plan skipped)."""
    rows = db_rows(env, "SELECT t.state FROM task_instance t JOIN dag_run d ON d.run_id=t.run_id AND "
                   "d.dag_id=t.dag_id JOIN backfill_dag_run b ON b.dag_run_id=d.id WHERE b.backfill_id=? AND "
                   "t.task_id='plan'", backfill_id)
    return len(rows), sum(1 for (state,) in rows if state == "skipped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--target-kb", type=int, default=5)
    parser.add_argument("--timeout-s", type=float, default=3600)
    args = parser.parse_args()
    today = dt.datetime.now(dt.UTC).date()
    last = today - dt.timedelta(days=95)  # cold: older than the 90-day cutoff
    first = last - dt.timedelta(days=args.days - 1)
    with tempfile.TemporaryDirectory(prefix="backfill-bench-") as tmp:
        root = Path(tmp)
        config = StackConfig(state_dir=root / "stack", cosmos_port=free_port(), cosmos_backend_port=free_port(),
                             blob_port=free_port(), provisioned_ru=1_000_000)
        with running_stack(config):
            database = cosmos_client(config.cosmos_endpoint, EMULATOR_COSMOS_KEY).create_database_if_not_exists(
                "billing")
            container = database.create_container_if_not_exists("records", PartitionKey("/customerId"))
            end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)
            spec = SeedSpec(records=args.records, target_kb=args.target_kb, months_back=max(1, args.days // 30),
                            end=end)
            seed_container(container, spec)
            (root / "airflow").mkdir()
            env = _airflow_home(config, root / "airflow")
            logs = root / "logs"
            logs.mkdir()
            with airflow_services(env, logs) as (env, procs):
                timings = []
                for label, extra in (("first", ()), ("again", ("--reprocess-behavior", "completed"))):
                    started = time.perf_counter()
                    backfill_id = backfill(env, procs, logs, first.isoformat(), last.isoformat(),
                                           "--max-active-runs", "1", *extra, timeout_s=args.timeout_s)
                    seconds = time.perf_counter() - started
                    runs, short = _day_runs(env, backfill_id)
                    timings.append(seconds)
                    print(f"{label}: {runs} day runs ({short} ended at due) in {seconds:.0f} s = "
                          f"{seconds / max(runs, 1):.1f} s per day; 365 days at this rate: "
                          f"{seconds / max(runs, 1) * 365 / 60:.0f} min", flush=True)
    print(f"{args.days} days {first}..{last}, {args.records} records of ~{args.target_kb} KB, 30-day slices, "
          f"--max-active-runs 1: first backfill {timings[0]:.0f} s, again (all verified) {timings[1]:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
