"""`cosmos-archive save-report`: copy a run's report (report.html, ru.png) out of the archive into a local folder.

The DAG's report task writes them next to the manifests (``<prefix>/_reports/<run_id>/``); the local stack keeps
its Blob data in Azurite, which is gone once the stack stops, so ``bin/archive-local`` saves them under the state
directory's logs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError

from devstack.stack import StackConfig
from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.cli.options import add_settings_option, settings_from
from include.cosmos_archiver.cli.targets import archive_store
from include.cosmos_archiver.reporting.run_report import REPORT_HTML, REPORT_PNG, report_dir, safe_run_id


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    store = archive_store(settings)
    source = report_dir(store, args.run_id)
    target = Path(args.to) if args.to else StackConfig.from_env().log_dir / f"report-{safe_run_id(args.run_id)}"
    saved = []
    for name in (REPORT_HTML, REPORT_PNG):
        try:
            data = store.download(f"{source}/{name}")
        except ResourceNotFoundError:
            if name == REPORT_HTML:
                raise UsageError(f"no run report at {store.url(source + '/' + name)}: is --run-id {args.run_id!r} "
                                 "the id of a run that planned slices (see its log's 'run report:' line)?") from None
            continue
        target.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)
        saved.append(target / name)
    print("run report saved: " + ", ".join(str(p) for p in saved))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("save-report", help="copy a run's report (HTML, RU plot) out of the archive")
    parser.add_argument("--run-id", required=True, help="the DAG run id, e.g. manual__2026-12-02T03:00:00+00:00")
    parser.add_argument("--to", help="folder to write into (default: <state dir>/logs/report-<run id>)")
    add_settings_option(parser)
    parser.set_defaults(func=_run)
