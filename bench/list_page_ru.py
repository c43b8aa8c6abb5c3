"""RU per read-through list page as one customer's hot history grows (issue 18, item 7).

On the local stack (cosmosdb-server behind the RU gateway, Azurite) under the gateway's charge model (``published``
by default: a query is charged ~10 RU per MB it makes the service load, see devstack/ru_gateway/charge_model.py),
one customer per history size gets ``--per-day`` hot records a day (``--target-kb`` each, canonical timestamps),
then is paged through with ``ReadThroughRepository.list`` (``--page-size``); each page's RU is the delta of the
gateway's ``/_gateway/stats`` totals around the call. Printed per history size: the first, middle and last page's
RU, the mean, and the ratio of the mean to the smallest history's mean (the goal: ~1, flat; a list that loads every
hot record after its token grows linearly with the history, and paging through all of it quadratically).

    .venv/bin/python bench/list_page_ru.py [--sizes 50,200,800 --per-day 4 --target-kb 30 --page-size 25]

Results: docs/benchmarks.md ("Read-through list pages").
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from azure.cosmos import PartitionKey  # noqa: E402

from bench.purge_ru import booked_ru  # noqa: E402
from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig, charge_model_line, free_port, running_stack  # noqa: E402
from include.cosmos_archiver.archive.store import ArchiveStore  # noqa: E402
from include.cosmos_archiver.clients import blob_container, cosmos_client  # noqa: E402
from include.cosmos_archiver.readthrough.repository import (  # noqa: E402
    ReadThroughRepository,
    list_indexing_policy,
)
from include.cosmos_archiver.slices import bound_value  # noqa: E402
from tests.readthrough_helpers import SETTINGS  # noqa: E402

FIRST = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def seed(container, customer: str, records: int, per_day: int, target_kb: int) -> None:
    body = "x" * (target_kb * 1000)

    def write(n: int) -> None:
        at = bound_value(FIRST + dt.timedelta(days=n / per_day), "iso8601")
        container.upsert_item({"id": f"r{n:06d}", "customerId": customer, "issuedAt": at, "body": body})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(records)))


def page_charges(repo: ReadThroughRepository, stats_url: str, customer: str, page_size: int) -> tuple[list[float], int]:
    charges, token, listed = [], None, 0
    while True:
        before = booked_ru(stats_url)
        page = repo.list(customer, page_size=page_size, continuation=token)
        charges.append(booked_ru(stats_url) - before)
        listed += len(page.records)
        token = page.continuation
        if token is None:
            return charges, listed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200,800", help="hot records of each customer, comma-separated")
    parser.add_argument("--per-day", type=int, default=4)
    parser.add_argument("--target-kb", type=int, default=30)
    parser.add_argument("--page-size", type=int, default=25)
    parser.add_argument("--charge-model", default="published", choices=("published", "seed"))
    parser.add_argument("--without-composite-index", action="store_true",
                        help="the container's default indexing policy: pages ordered by the timestamp alone")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-list-") as state, running_stack(StackConfig(
            state_dir=Path(state), cosmos_port=free_port(), cosmos_backend_port=free_port(), blob_port=free_port(),
            provisioned_ru=1_000_000, charge_model=args.charge_model)) as config:
        database = cosmos_client(config.cosmos_endpoint, EMULATOR_COSMOS_KEY).create_database_if_not_exists("bench")
        policy = None if args.without_composite_index else list_indexing_policy(SETTINGS)
        container = database.create_container("list", PartitionKey(SETTINGS.partition_key_path),
                                              indexing_policy=policy)
        store = ArchiveStore(blob_container(config.blob_connection_string, "list"), "records")
        for size in sizes:
            seed(container, f"cust-{size}", size, args.per_day, args.target_kb)
        repo = ReadThroughRepository(container, store, SETTINGS)
        print(charge_model_line(config))
        order = "timestamp (range index)" if args.without_composite_index else "partition key, timestamp (composite)"
        print(f"{args.per_day} records a day of ~{args.target_kb} KB, {args.page_size} per page, ordered by {order}")
        base = None
        for size in sizes:
            charges, listed = page_charges(repo, config.gateway_stats_url, f"cust-{size}", args.page_size)
            assert listed == size, (size, listed)
            mean = statistics.fmean(charges)
            base = base or mean
            print(f"history {size:>6,} hot records: {len(charges):>4} pages, RU per page first {charges[0]:7.1f} "
                  f"middle {charges[len(charges) // 2]:7.1f} last {charges[-1]:7.1f} mean {mean:7.1f} "
                  f"(x{mean / base:.2f} the smallest history's); all pages {sum(charges):9.1f} RU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
