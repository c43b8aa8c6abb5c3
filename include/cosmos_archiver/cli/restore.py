"""`cosmos-archive restore`: write archived records back into Cosmos DB (hashes checked first, nothing overwritten)."""

from __future__ import annotations

import argparse

from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.cli.options import add_settings_option, positive_number, settings_from, slice_id
from include.cosmos_archiver.cli.targets import archive_store, source_container
from include.cosmos_archiver.pipeline.restore import (
    RestoreIntegrityError,
    parse_record_ids,
    restore_records,
    restore_slice,
)
from include.cosmos_archiver.ru.settings import RateControlSettings
from include.cosmos_archiver.ru.static_budget import StaticBudget


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    budget = StaticBudget(RateControlSettings(provisioned_ru_s=args.max_ru_s, ceiling=1.0, assumed_client_load=0.0))
    container = source_container(settings, user_agent="cosmos-archive-restore")
    store = archive_store(settings)
    try:  # a RestoreError (unknown slice, unknown ids) is terminal: main prints it and exits 2
        if args.ids:
            result = restore_records(container, store, parse_record_ids(args.ids), settings, slice_id=args.slice,
                                     budget=budget)
        else:
            result = restore_slice(container, store, args.slice, settings, budget=budget)
    except RestoreIntegrityError as exc:
        print(f"cosmos-archive: restore refused: {exc}")
        return 1
    print(result.message())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "restore", help="write archived records back into Cosmos DB (conditional create, hashes checked first)",
        description="Restore a whole slice (--slice 2025/03/01) or records (--ids PK/ID,...; with --slice only "
        "that slice is searched). The newest archived version of each record is written without its system "
        "properties; a record that exists in Cosmos again is not overwritten and is reported.")
    p.add_argument("--slice", type=slice_id, help="slice id, e.g. 2025/03/01 (see `cosmos-archive summary`)")
    p.add_argument("--ids", help="comma-separated PARTITION_KEY/ID of the records to restore")
    p.add_argument("--max-ru-s", type=positive_number, default=1000.0, help="RU/s the restore may spend (default 1000)")
    add_settings_option(p)
    p.set_defaults(func=_run_checked)


def _run_checked(args: argparse.Namespace) -> int:
    if not args.slice and not args.ids:
        raise UsageError("give --slice ID or --ids PK/ID,... (what to restore)")
    return _run(args)
