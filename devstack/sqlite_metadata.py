"""Airflow's SQLite metadata DB shared by several local processes (scheduler, dag-processor, api-server, CLI).

Airflow opens SQLite in WAL mode, so readers never wait and writers take turns. Two gaps remain when a backfill is
created while the scheduler runs (`airflow backfill create`, or Backfill in the UI of `airflow standalone`):

- Python's sqlite3, in its default (legacy) transaction control, sends no BEGIN before a SAVEPOINT, so
  ``session.begin_nested()`` - which Airflow's backfill uses for each run it creates - opens a *deferred*
  transaction: it reads first and upgrades to a writer at its first INSERT. If another process committed in between,
  SQLite answers "database is locked" at once (SQLITE_BUSY_SNAPSHOT), without waiting, and the backfill fails half
  created. Taking the write lock when such a transaction starts (``BEGIN IMMEDIATE``) makes it wait its turn
  instead, like any other writer.
- sqlite3 waits 5 s for a turn; a busy 2-core machine can keep a writer longer than that.

Production runs Airflow on PostgreSQL, where neither applies; ``plugins/airflow_local_settings.py`` applies this to
SQLite engines only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

BUSY_TIMEOUT_S = 60.0


def with_busy_timeout(connect_args: dict[str, Any]) -> dict[str, Any]:
    """The connect args with sqlite3's busy timeout raised to ``BUSY_TIMEOUT_S`` unless one is configured."""
    return {"timeout": BUSY_TIMEOUT_S, **connect_args}


def _begin_immediate_before_outer_savepoint(conn: Connection, name: str | None) -> None:
    if not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def take_write_lock_on_savepoint(engine: Engine) -> Engine:
    """A SAVEPOINT that would open a deferred transaction opens ``BEGIN IMMEDIATE`` first, so the savepoint nests
    in a transaction that already holds the write lock (and its RELEASE no longer commits on its own)."""
    event.listen(engine, "savepoint", _begin_immediate_before_outer_savepoint)
    return engine
