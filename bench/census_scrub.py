"""What the census, the other-spelling reads and a scrub cost, measured in one run on the local stack.

Seeds ``--docs`` billing-like documents (``--doc-kb`` each) with ISO 8601 ``issuedAt`` over 20 days, a share
``--other-share`` of them in another spelling than the canonical UTC one (an offset), then archives 10 of the
days (copy + validate). Prints, from the RU gateway's charges (``x-ms-request-charge``):

- the census' RU and time next to the RU of copying the archived days (ratio census / copy);
- the RU of each slice read split into the range query and the other-spelling query (ratio extra / range);
- scrub speed in MB/s of Parquet re-hashed, next to raw sha256 on the same bytes (ratio).

The gateway charges a query by what it returns (~1 RU/KB); Azure also charges for the index and documents a
query scans, so on Azure the census' COUNT queries and the other-spelling filter cost more than measured here:
read these ratios as lower bounds, and measure a real account with the census' own ``ru_charged``.

    .venv/bin/python bench/census_scrub.py [--docs 600] [--doc-kb 20] [--other-share 0.05]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from azure.cosmos import PartitionKey  # noqa: E402

from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig, free_port, running_stack  # noqa: E402
from include.cosmos_archiver.archive.scrub import scrub_archive  # noqa: E402
from include.cosmos_archiver.archive.store import ArchiveStore  # noqa: E402
from include.cosmos_archiver.clients import blob_container, cosmos_client  # noqa: E402
from include.cosmos_archiver.pipeline.copy import copy_slice  # noqa: E402
from include.cosmos_archiver.pipeline.validate import validate_slice  # noqa: E402
from include.cosmos_archiver.ru.budget import UnlimitedBudget  # noqa: E402
from include.cosmos_archiver.settings import ArchiveSettings  # noqa: E402
from include.cosmos_archiver.slices import TimeSlice  # noqa: E402
from include.cosmos_archiver.source.census import take_census  # noqa: E402
from include.cosmos_archiver.source.reader import ReadStats, query_pages, slice_query, spelling_query  # noqa: E402

DAYS = 20
FIRST = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = FIRST + dt.timedelta(days=DAYS + 95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--doc-kb", type=int, default=20)
    parser.add_argument("--other-share", type=float, default=0.05)
    args = parser.parse_args()
    settings = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", cutoff_days=90,
                               lookback_days=200, blob_container="bench-census")
    config = StackConfig(state_dir=Path(tempfile.mkdtemp(prefix="bench-census-")), cosmos_port=free_port(),
                         cosmos_backend_port=free_port(), blob_port=free_port(), provisioned_ru=10_000_000)
    with running_stack(config):
        client = cosmos_client(config.cosmos_endpoint, EMULATOR_COSMOS_KEY)
        container = client.create_database_if_not_exists(settings.database).create_container_if_not_exists(
            settings.container, PartitionKey(settings.partition_key_path))
        store = ArchiveStore(blob_container(config.blob_connection_string, settings.blob_container),
                             settings.blob_prefix)
        rng = random.Random(7)
        every = max(1, round(1 / args.other_share)) if args.other_share > 0 else 0
        for i in range(args.docs):
            at = FIRST + dt.timedelta(seconds=i * DAYS * 86400 // args.docs)
            issued = (at.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat() if every and i % every == 0
                      else at.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
            container.upsert_item({"id": f"r{i}", "customerId": f"c{i % 50}", "issuedAt": issued,
                                   "pad": rng.randbytes(args.doc_kb * 500).hex()})  # compresses ~2x
        days = [TimeSlice(FIRST + dt.timedelta(days=d), FIRST + dt.timedelta(days=d + 1)) for d in range(DAYS)]
        time.sleep(1.1)
        copy_ru = 0.0
        for day in days[:10]:
            copy_ru += copy_slice(container, store, day, settings).ru_charged
            assert validate_slice(container, store, day, settings).ok

        started = time.perf_counter()
        census = take_census(container, store, settings, now=NOW)
        census_s = time.perf_counter() - started
        print(census.line())
        print(f"census: {census.ru_charged:.0f} RU in {census.queries} queries, {census_s:.2f} s; copying the 10 "
              f"archived days took {copy_ru:.0f} RU: census / copy = {census.ru_charged / copy_ru:.3f}")

        range_ru = other_ru = 0.0
        for day in days:
            for query, is_range in ((slice_query(day, settings.timestamp_field, "iso8601"), True),
                                    (spelling_query(day, settings.timestamp_field), False)):
                stats = ReadStats()
                for _ in query_pages(container, query, page_size=100, budget=UnlimitedBudget(), stats=stats):
                    pass
                if is_range:
                    range_ru += stats.ru_charged
                else:
                    other_ru += stats.ru_charged
        print(f"slice reads over {DAYS} days: range queries {range_ru:.0f} RU, other-spelling queries "
              f"{other_ru:.0f} RU ({args.other_share:.0%} of documents in another spelling): extra / range = "
              f"{other_ru / range_ru:.3f}")

        started = time.perf_counter()
        report = scrub_archive(store, settings)
        scrub_s = time.perf_counter() - started
        data = b"".join(store.download(p) for s in report.scrubbed for p in store.list_parts(s.slice_id))
        started = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        raw_s = time.perf_counter() - started
        print(f"scrub: {report.bytes_read / 1e6:.1f} MB of Parquet in {scrub_s:.2f} s = "
              f"{report.bytes_read / 1e6 / scrub_s:.1f} MB/s (download, sha256, decode, per-record sha256); raw "
              f"sha256 of the same bytes {len(data) / 1e6 / raw_s:.0f} MB/s: scrub / raw = "
              f"{raw_s / scrub_s * len(data) / max(1, report.bytes_read):.3f}")


if __name__ == "__main__":
    main()
