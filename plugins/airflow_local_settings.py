"""Airflow local settings (Airflow imports this module from the plugins folder, which it puts on sys.path).

Only SQLite metadata engines change - the local stack's and the tests' - so several Airflow processes can share one
SQLite file while a backfill is created (see include/cosmos_archiver/local/sqlite_metadata.py). Any other database
gets Airflow's own engine unchanged.
"""

from __future__ import annotations

from typing import Any

from airflow import settings as _airflow_settings
from sqlalchemy.engine import Engine

__all__ = ["create_metadata_engine"]  # the only name Airflow copies into airflow.settings

_airflow_create_metadata_engine = _airflow_settings.create_metadata_engine


def create_metadata_engine(
    sql_alchemy_conn: str, *, engine_args: dict[str, Any], connect_args: dict[str, Any]
) -> Engine:
    if not sql_alchemy_conn.startswith("sqlite"):
        return _airflow_create_metadata_engine(sql_alchemy_conn, engine_args=engine_args, connect_args=connect_args)
    # Imported here, not at the top: every Airflow process imports this module at start, and a deployment on
    # another database need not have include/ on its path that early.
    from devstack.sqlite_metadata import take_write_lock_on_savepoint, with_busy_timeout

    engine = _airflow_create_metadata_engine(
        sql_alchemy_conn, engine_args=engine_args, connect_args=with_busy_timeout(connect_args)
    )
    return take_write_lock_on_savepoint(engine)
