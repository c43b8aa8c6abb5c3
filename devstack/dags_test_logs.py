"""Give the demo's `airflow dags test` run its task logs where the Airflow UI reads them.

`airflow dags test` runs every task in its own process and writes their logs to its stdout only, so the api-server
answers "log not found" for each of them. It runs the tasks one after the other and marks each one's lines with
``[DAG TEST] starting task_id=T map_index=M`` ... ``[DAG TEST] end task task_id=T map_index=M``: this cuts the
captured output at those marks into ``$AIRFLOW_HOME/logs/`` in Airflow's default ``log_filename_template``
(``dag_id=…/run_id=…/task_id=…/[map_index=…/]attempt=N.log``; the api-server reads plain text lines as well as
JSON ones). Usage: ``python -m devstack.dags_test_logs LOG RUN_ID`` (bin/archive-local does it).
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
from collections import defaultdict
from pathlib import Path

START = re.compile(r"\[DAG TEST\] starting task_id=(?P<task>\S+) map_index=(?P<index>-?\d+)")
END = re.compile(r"\[DAG TEST\] end task task_id=(?P<task>\S+) map_index=(?P<index>-?\d+)")


def task_segments(lines: list[str]) -> dict[tuple[str, int], list[str]]:
    """(task_id, map_index) -> its log lines (a deferred task's segments joined in order)."""
    segments: dict[tuple[str, int], list[str]] = defaultdict(list)
    current: tuple[str, int] | None = None
    for line in lines:
        if match := START.search(line):
            current = (match["task"], int(match["index"]))
        if current is not None:
            segments[current].append(line)
        if (match := END.search(line)) and current == (match["task"], int(match["index"])):
            current = None
    return dict(segments)


def write_task_logs(log: Path, run_id: str, airflow_home: Path, dag_id: str = "cosmos_archive") -> int:
    """Write each task's lines of ``log`` to the file the api-server reads for it; returns the files written."""
    segments = task_segments(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True))
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        tries = {(task, index): number for task, index, number in db.execute(
            "SELECT task_id, map_index, try_number FROM task_instance WHERE dag_id=? AND run_id=?", (dag_id, run_id))}
    written = 0
    for (task, index), lines in segments.items():
        folder = airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task}"
        if index >= 0:
            folder /= f"map_index={index}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"attempt={max(1, tries.get((task, index), 1))}.log").write_text("".join(lines), encoding="utf-8")
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="the captured output of `airflow dags test`")
    parser.add_argument("run_id")
    args = parser.parse_args()
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    print(f"wrote {write_task_logs(args.log, args.run_id, home)} task logs under {home / 'logs'}")


if __name__ == "__main__":
    main()
