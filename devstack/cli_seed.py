"""`cosmos-archive seed`: write deterministic synthetic billing records into the local Cosmos DB."""

from __future__ import annotations

import argparse
import time

from devstack.seed import SeedSpec, seed_container
from devstack.targets import local_container
from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.settings import ArchiveSettings


def _run(args: argparse.Namespace) -> int:
    try:
        spec = SeedSpec(records=args.records, seed=args.seed, target_kb=args.target_kb, months_back=args.months_back)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings = ArchiveSettings(database=args.database, container=args.container)
    container = local_container(settings, create=True, bypass_gateway=not args.through_gateway)
    started = time.perf_counter()
    written = seed_container(container, spec, workers=args.workers)
    seconds = time.perf_counter() - started
    print(f"seeded {written} records of ~{spec.target_kb} KB over {spec.months_back} months into "
          f"{settings.database}/{settings.container} in {seconds:.1f}s (seed {spec.seed})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("seed", help="write synthetic billing records into the local Cosmos DB")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--target-kb", type=int, default=300, help="approximate document size (seed case: 300)")
    parser.add_argument("--months-back", type=int, default=18)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database", default="billing")
    parser.add_argument("--container", default="records")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--through-gateway", action="store_true",
                        help="write through the RU gateway (charged and throttled) instead of straight to the server")
    parser.set_defaults(func=_run)
