"""The one place that writes a halted run's note: a listener on DagRun failure (it runs in the scheduler, which owns
the metadata DB; a task cannot write a DagRun note through Airflow 3's Task Execution API).

When a ``cosmos_archive`` run fails and one of its tasks pushed the halt note (XCom ``cosmos_archive_halt``, pushed
by the DAG's halt notification: the failed slice, the case and what to do, what the run archived and purged before
it, how to clear the status), the note becomes the run's DagRun note: shown on the run's page in the UI and
returned as ``note`` by ``GET /api/v2/dags/cosmos_archive/dagRuns/{run_id}``. Listener API: Airflow's
``airflow.listeners.spec.dagrun.on_dag_run_failed`` (called in the scheduler's session, committed with it).
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

DAG_ID = "cosmos_archive"
HALT_NOTE_KEY = "cosmos_archive_halt"  # include.cosmos_archiver.pipeline.run_status.HALT_NOTE_KEY
log = logging.getLogger(__name__)


def _text(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return value if isinstance(value, str) else json.dumps(value)


class _HaltNoteListener:
    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        if dag_run.dag_id != DAG_ID:
            return
        from airflow.models.xcom import XComModel
        from sqlalchemy import select
        from sqlalchemy.orm import object_session

        session = object_session(dag_run)
        if session is None:
            return
        value = session.scalar(select(XComModel.value).where(XComModel.dag_run_id == dag_run.id,
                                                             XComModel.key == HALT_NOTE_KEY).limit(1))
        if value is not None:
            dag_run.note = _text(value)[:1000]  # the DagRun note column holds 1000 characters
            log.info("run %s: halt note written", dag_run.run_id)


class CosmosArchiveHaltNotePlugin(AirflowPlugin):
    name = "cosmos_archive_halt_note"
    listeners: ClassVar[list[Any]] = [_HaltNoteListener()]
