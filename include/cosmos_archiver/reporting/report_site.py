"""The run reports as web pages: the archive's status (a halt banner) with its reports listed, and each run's report.

The reports live in the archive (``<prefix>/_reports/<run id>/report.html``), where a browser cannot open them
(Azure and Azurite answer 403 without a signed URL). This app reads them with the archive's own credentials and
serves them; the Airflow plugin ``plugins/cosmos_archive_ui.py`` mounts it in the api-server behind Airflow's login
and shows both pages as tabs of the DAG and of each run. No Airflow import here.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.pipeline.run_status import ArchiveStatus
from include.cosmos_archiver.reporting.archive_status import BANNER_STYLE, banner_html
from include.cosmos_archiver.reporting.run_report import list_reports, read_report_html

PAGE_STYLE = BANNER_STYLE + """
body { font-family: system-ui, sans-serif; margin: 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; } th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
.mono { font-family: monospace; }
"""


def create_report_app(open_store: Callable[[], ArchiveStore], read_status: Callable[[], ArchiveStatus],
                      dependencies: Sequence[Any] = ()) -> FastAPI:
    """``open_store``/``read_status`` are called per request (settings may change); ``dependencies`` guard every
    route (the api-server passes Airflow's own authorization)."""
    app = FastAPI(title="cosmos-archive reports", dependencies=list(dependencies))

    @app.get("/status", response_class=HTMLResponse)
    def status_page() -> HTMLResponse:
        e = html.escape
        out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>cosmos-archive status</title>"
               f"<style>{PAGE_STYLE}</style></head><body>", banner_html(read_status()), "<h2>Run reports</h2>"]
        reports = list_reports(open_store())
        if not reports:
            out.append("<p>No run report in the archive yet: the <code>report</code> task writes one per run that "
                       "planned slices.</p>")
        else:
            out.append("<table><tr><th>Run</th><th>Written (UTC)</th></tr>")
            out += [f'<tr><td><a class="mono" href="reports/{quote(run_id, safe="")}">{e(run_id)}</a></td>'
                    f"<td>{e(written.isoformat(timespec='seconds') if written else '?')}</td></tr>"
                    for run_id, written in reports]
            out.append("</table>")
        out.append("</body></html>")
        return HTMLResponse("\n".join(out))

    @app.get("/reports/{run_id}", response_class=HTMLResponse)
    def report_page(run_id: str) -> HTMLResponse:
        page = read_report_html(open_store(), run_id)
        if page is None:
            return HTMLResponse(
                f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{PAGE_STYLE}</style></head><body>"
                f"<p>No report for run <span class='mono'>{html.escape(run_id)}</span> in the archive: its "
                "<code>report</code> task has not run yet, or the run planned no slice.</p>"
                f"{banner_html(read_status())}</body></html>", status_code=404)
        return HTMLResponse(page)

    return app
