"""Apply airflow_settings.yaml (Astro CLI format) to the Airflow metadata DB: connections, pools, variables.

Idempotent: existing entries with the same id are replaced. Values may use ${VAR:-default} from the environment.
Usage: python scripts/apply_airflow_settings.py [path/to/airflow_settings.yaml] (with the repo root on PYTHONPATH,
as scripts/env.sh sets it)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from devstack.airflow_settings import load


def apply(path: Path) -> dict[str, int]:
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session

    doc = load(path)
    counts = {"connections": 0, "pools": 0, "variables": 0}
    with create_session() as session:
        for item in doc.get("connections") or []:
            conn_id = item["conn_id"]
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
            extra = item.get("conn_extra")
            session.add(Connection(
                conn_id=conn_id, conn_type=item["conn_type"], host=item.get("conn_host"),
                schema=item.get("conn_schema"), login=item.get("conn_login"), password=item.get("conn_password"),
                port=item.get("conn_port"), extra=json.dumps(extra) if isinstance(extra, dict) else extra,
            ))
            counts["connections"] += 1
        for item in doc.get("pools") or []:
            session.query(Pool).filter(Pool.pool == item["pool_name"]).delete()
            session.add(Pool(pool=item["pool_name"], slots=int(item["pool_slot"]),
                             description=item.get("pool_description", ""), include_deferred=False))
            counts["pools"] += 1
        for item in doc.get("variables") or []:
            session.query(Variable).filter(Variable.key == item["variable_name"]).delete()
            session.add(Variable(key=item["variable_name"], val=str(item["variable_value"])))
            counts["variables"] += 1
    return counts


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "airflow_settings.yaml")
    counts = apply(target)
    print(f"applied {target.name}: {counts['connections']} connections, {counts['pools']} pools, "
          f"{counts['variables']} variables")
