"""`cosmos-archive scrub`: re-hash archived files and records against their manifests (no Cosmos DB reads)."""

from __future__ import annotations

import argparse

from include.cosmos_archiver.archive.scrub import scrub_archive
from include.cosmos_archiver.cli.main import printed_here
from include.cosmos_archiver.cli.options import add_settings_option, positive_number, settings_from
from include.cosmos_archiver.cli.targets import archive_store


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with printed_here(scrub_archive.__module__):
        report = scrub_archive(
            archive_store(settings), settings, slice_ids=args.slice or None,
            max_bytes=int(args.max_mb * 1e6) if args.max_mb else None,
            max_bytes_per_s=args.mb_per_s * 1e6 if args.mb_per_s else None)
    for scrubbed in report.damaged:
        print(scrubbed.message())
    print(report.line())
    return 1 if report.damaged else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("scrub", help="re-hash verified slices at rest; exit 1 if any is damaged")
    add_settings_option(parser)
    parser.add_argument("--slice", action="append", help="a slice id to scrub (repeatable; default: all verified)")
    parser.add_argument("--max-mb", type=positive_number, help="IO budget: stop after reading this many MB "
                        "(oldest-scrubbed slices first; the rest wait for the next scrub)")
    parser.add_argument("--mb-per-s", type=positive_number, help="IO budget: read at most this many MB per second")
    parser.set_defaults(func=_run)
