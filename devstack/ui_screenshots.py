"""Screenshots of what the operator sees in the Airflow 3 UI: the DAG page, a halted run (its note and the one-line
log of its first failing task), the "Archive status" tab and the run report (tab and page).

A dev tool, not a test. It needs headless Chromium from Debian's packages (``apt-get install -y chromium``; no
selenium: Chromium's own ``--screenshot`` renders each page) and an Airflow home that holds the runs (after
``KEEP_STACK=1 bin/archive-local``, with the stack still up so the report can be read from the archive). It starts
its own ``airflow api-server`` on a free 127.0.0.1 port with the simple auth manager's all-admins mode (no login
form; a second Airflow needs ``AIRFLOW__API__BASE_URL``), takes the pictures, and stops that server by its PID.

    source scripts/env.sh; python -m devstack.ui_screenshots --out docs/img
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from devstack.stack import free_port

DAG_ID = "cosmos_archive"


def latest_runs(airflow_home: Path) -> tuple[str | None, str | None]:
    """(the newest successful run id, the newest failed run id) of the archive DAG."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        def newest(state: str) -> str | None:
            row = db.execute("SELECT run_id FROM dag_run WHERE dag_id=? AND state=? ORDER BY id DESC LIMIT 1",
                             (DAG_ID, state)).fetchone()
            return row[0] if row else None

        return newest("success"), newest("failed")


def pages(ok_run: str | None, failed_run: str | None) -> list[tuple[str, str]]:
    """(file name, path) of each picture (the report page is taken whole: its slice table must fit)."""
    shots = [("dag-grid.png", f"/dags/{DAG_ID}"),
             ("archive-status-tab.png", f"/dags/{DAG_ID}/plugin/cosmos-archive-status")]
    if failed_run:
        run = f"/dags/{DAG_ID}/runs/{quote(failed_run, safe='')}"
        shots += [("halted-run.png", run), ("halted-run-preflight-log.png", f"{run}/tasks/preflight")]
    if ok_run:
        run = f"/dags/{DAG_ID}/runs/{quote(ok_run, safe='')}"
        shots += [("run-report-tab.png", f"{run}/plugin/cosmos-archive-report"),
                  ("run-report.png", f"/cosmos-archive/reports/{quote(ok_run, safe='')}")]
    return shots


def screenshot(url: str, target: Path, *, width: int = 1400, height: int = 1000, wait_ms: int = 20000) -> None:
    subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}",
                    f"--screenshot={target}", url], check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--ok-run", help="the run whose report to show (default: the newest successful one)")
    parser.add_argument("--failed-run", help="the halted run to show (default: the newest failed one)")
    args = parser.parse_args()
    home = Path(os.environ["AIRFLOW_HOME"])
    ok_run, failed_run = latest_runs(home)
    ok_run, failed_run = args.ok_run or ok_run, args.failed_run or failed_run
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True", "AIRFLOW__API__BASE_URL": base}
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "api-server.log", "w") as server_log:
        server = subprocess.Popen(["airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                  stdout=server_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the api-server did not answer on {base}; see {args.out / 'api-server.log'}") \
                        from None
                time.sleep(2)
        for name, path in pages(ok_run, failed_run):
            screenshot(f"{base}{path}", args.out / name, height=2300 if name == "run-report.png" else 1000)
            print(f"{args.out / name}: {path}")
        (args.out / "api-server.log").unlink()
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
