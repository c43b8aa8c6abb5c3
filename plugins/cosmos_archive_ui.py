"""The archive in the Airflow 3 UI: its status and run reports as tabs of the DAG and of each run, and a halted
archive written into the failed run's note.

What Airflow 3.3 offers, and why these:
- ``fastapi_apps`` mounts the report site (include/cosmos_archiver/reporting/report_site.py) in the api-server at
  ``/cosmos-archive``, behind Airflow's own login and DAG permissions (``requires_access_dag``): the reports live in
  Blob Storage, which a browser cannot open without a signed URL.
- ``external_views`` with ``destination`` "dag" and "dag_run" add tabs to the DAG's page ("Archive status": the
  halt banner and the list of reports) and to every run's page ("Run report"); the UI fills ``{RUN_ID}`` in.
- a listener (``on_dag_run_failed``, called where the run's state is decided: the scheduler, or ``airflow dags
  test``, both with the metadata DB) sets the run's **note** to "Halted since …: slice …, reason, how to clear"
  when the archive is Failed or Halted. The note is shown with the run in the grid and the run's page, and is read
  through the REST API (``GET /api/v2/dags/cosmos_archive/dagRuns/{run_id}``, field ``note``). A DAG doc banner
  would need the DAG file to read the status at parse time, and a tag cannot say which slice or why.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from include.cosmos_archiver.pipeline.run_status import HALT_NOTE_KEY, ArchiveStatus
from include.cosmos_archiver.reporting.archive_status import halt_line

DAG_ID = "cosmos_archive"
NOTE_CHARS = 1000  # DagRunNote.content is String(1000)
URL_PREFIX = "/cosmos-archive"
log = logging.getLogger(__name__)


def report_link(run_id: str) -> str:
    """The report page of a run in the Airflow UI (``[api] base_url``; the page is the run's "Run report" tab)."""
    from urllib.parse import quote

    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
    return f"{base}{URL_PREFIX}/reports/{quote(run_id, safe='')}"


def _report_app() -> Any:
    """The report site with the archive's settings and connection, behind Airflow's authorization."""
    import cosmos_archive_runtime as runtime
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends

    from include.cosmos_archiver.reporting.report_site import create_report_app

    return create_report_app(
        open_store=lambda: runtime.archive_store(runtime.load_settings(), create=False),
        read_status=runtime.read_status,
        dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID))],
    )


class HaltNote:
    """Writes the halt into the note of a failed cosmos_archive run (never raises: a note must not fail a run)."""

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        if getattr(dag_run, "dag_id", None) != DAG_ID:
            return
        try:
            line = _halt_note_of_run(dag_run) or halt_line(_status_from_metadata_db())
            if line:
                _set_note(dag_run, line[:NOTE_CHARS])
        except Exception as exc:
            log.warning("could not write the halt into run %s's note: %s", getattr(dag_run, "run_id", "?"), exc)


def _halt_note_of_run(dag_run: Any) -> str | None:
    """The note this run's halt left (XCom ``HALT_NOTE_KEY``, pushed with the halt notification: the slice, the
    case and its remedy, what the run archived and purged before the halt, how to clear), if it halted."""
    import contextlib
    import json

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    query = select(XComModel.value).where(XComModel.dag_run_id == dag_run.id, XComModel.key == HALT_NOTE_KEY)
    session = object_session(dag_run)
    if session is not None:  # the scheduler's session: read in it, never commit it (its HA locks)
        value = session.scalar(query.limit(1))
    else:  # `airflow dags test` hands over a detached run
        with create_session() as own:
            value = own.scalar(query.limit(1))
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    return str(value) if value else None


def _status_from_metadata_db() -> ArchiveStatus:
    """The status Variable read where the listener runs (the scheduler, `airflow dags test`: the metadata DB and the
    secrets backends through Airflow's ORM Variable; the Task SDK's Variable serves tasks)."""
    import cosmos_archive_runtime as runtime
    from airflow.models.variable import Variable

    return ArchiveStatus.from_json(Variable.get(runtime.STATUS_VARIABLE, default_var=None))


def _set_note(dag_run: Any, text: str) -> None:
    """In the session recording the run's failure (the scheduler's); `airflow dags test` hands over a detached
    run, whose note is written in a session of its own."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy.orm import object_session

    if object_session(dag_run) is not None:
        dag_run.note = text
        return
    with create_session() as session:
        attached = session.get(DagRun, dag_run.id)
        if attached is not None:
            attached.note = text


class CosmosArchiveUiPlugin(AirflowPlugin):
    name = "cosmos_archive_ui"
    listeners: ClassVar[list[Any]] = [HaltNote()]
    external_views: ClassVar[list[dict[str, str]]] = [
        {"name": "Archive status", "href": f"{URL_PREFIX}/status", "destination": "dag",
         "url_route": "cosmos-archive-status"},
        {"name": "Run report", "href": f"{URL_PREFIX}/reports/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "cosmos-archive-report"},
    ]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [{"app": _report_app(), "url_prefix": URL_PREFIX, "name": "cosmos-archive reports"}]
