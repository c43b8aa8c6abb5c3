"""`cosmos-archive reopen --slices FROM..TO`: archive verified slices again, keeping the old copy until the new one
is verified."""

from __future__ import annotations

import argparse

from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.cli.options import add_settings_option, settings_from
from include.cosmos_archiver.cli.targets import archive_store, source_container
from include.cosmos_archiver.pipeline.reopen import ReopenError, parse_slice_range, reopen_slices
from include.cosmos_archiver.source.preflight import check_source


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        slices = parse_slice_range(args.slices, settings.slice_hours)
    except ReopenError as exc:
        raise UsageError(f"--slices: {exc}") from None
    container = source_container(settings)
    check_source(container, settings)
    results = reopen_slices(container, archive_store(settings), slices, settings)
    for result in results:
        print(result.message)
    return 0 if all(r.verified for r in results) else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("reopen", help="re-archive verified slices (old copy kept until re-verified)")
    add_settings_option(parser)
    parser.add_argument("--slices", required=True,
                        help="FROM..TO, both included: slice ids (2026/02/25..2026/02/27) or dates (2026-02-25)")
    parser.set_defaults(func=_run)
