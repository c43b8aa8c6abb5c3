"""`cosmos-archive census`: every document of the source container, counted by what became of it.

The full census loads the whole container several times on Azure (source.census_cost): it prints its cost estimate
first, then runs paced at ``--ru-per-s`` (``--estimate-only`` stops after the estimate)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from include.cosmos_archiver.cli.main import UsageError, printed_here
from include.cosmos_archiver.cli.options import add_settings_option, count, settings_from
from include.cosmos_archiver.cli.targets import archive_store, source_container
from include.cosmos_archiver.ru.settings import RateControlSettings
from include.cosmos_archiver.ru.static_budget import StaticBudget
from include.cosmos_archiver.slices import SliceError, slice_of
from include.cosmos_archiver.source.census import MAX_LISTED, take_census
from include.cosmos_archiver.source.census_cost import estimate_census_cost

DEFAULT_RU_PER_S = 500.0


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now(dt.UTC)
    except ValueError:
        raise UsageError(f"--now {args.now!r} is not an ISO date/time, e.g. 2026-06-01T00:00:00+00:00") from None
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    try:  # the cutoff and the lookback are counted back from it: both must be instants a slice can hold
        slice_of(now - dt.timedelta(days=max(settings.cutoff_days, settings.lookback_days)), settings.slice_hours)
        slice_of(now, settings.slice_hours)
    except (OverflowError, SliceError):
        raise UsageError(f"--now {args.now!r} is too close to year 1 or 9999: the cutoff and lookback counted back "
                         "from it must be dates") from None
    if not args.ru_per_s > 0:
        raise UsageError(f"--ru-per-s {args.ru_per_s!r} must be a rate above 0 RU/s")
    container = source_container(settings)
    cost = estimate_census_cost(container)
    print(f"{cost.line()}; at {args.ru_per_s:,.0f} RU/s ~{cost.ru / args.ru_per_s / 3600:,.1f} h", flush=True,
          file=sys.stderr if args.json else sys.stdout)  # stdout stays one JSON document
    if args.estimate_only:
        return 0
    budget = StaticBudget(RateControlSettings(provisioned_ru_s=args.ru_per_s, ceiling=1.0, assumed_client_load=0.0))
    with printed_here(take_census.__module__):
        census = take_census(container, archive_store(settings), settings, now=now,
                             max_listed=args.max_listed, exact=args.exact, budget=budget)
    print(json.dumps(census.to_dict(), indent=1) if args.json else census.details())
    return 1 if census.has_left_out or census.slices_to_reopen or not census.balanced else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "census", help="count the source's documents: archived, hot, waiting, left out (with ids and reasons)",
        description="Exit status 1 when a document is left out or a verified slice needs re-opening.")
    add_settings_option(parser)
    parser.add_argument("--now", help="the moment the cutoff is counted from (default: now, UTC)")
    parser.add_argument("--max-listed", type=count, default=MAX_LISTED, help="ids listed per left-out reason")
    parser.add_argument("--exact", action="store_true",
                        help="compare every verified slice's keys with the source (reads ids of all of them)")
    parser.add_argument("--json", action="store_true", help="print the census as JSON")
    parser.add_argument("--ru-per-s", type=float, default=DEFAULT_RU_PER_S,
                        help=f"pace of the census' queries (default {DEFAULT_RU_PER_S:g} RU/s)")
    parser.add_argument("--estimate-only", action="store_true", help="print the cost estimate, run nothing")
    parser.set_defaults(func=_run)
