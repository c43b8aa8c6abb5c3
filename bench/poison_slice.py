"""Wall time of one slice's copy + validation + purge with one poison document in it, against the same slice
without it (measured in one run, on the local stack: cosmosdb-server behind the RU gateway, Azurite).

The poison document holds a string with a lone surrogate (``"\\ud800"``), which Cosmos DB and cosmosdb-server
store and UTF-8 cannot encode. Before issue 16 the copy raised UnicodeEncodeError (naming no record) at it, so the
slice was never validated or purged (the DAG retried the copy task, then gave up); now it is set aside, named, and
the rest of the slice is archived and purged. Run it in an older checkout to see the "before" line.

    .venv/bin/python bench/poison_slice.py [--records 300] [--kb 8]

Goal: the slice with a poison document costs about what the clean one does (ratio <= 1.2) and purges all but it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from azure.cosmos import PartitionKey  # noqa: E402

from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig, free_port, running_stack  # noqa: E402
from include.cosmos_archiver.archive.store import ArchiveStore  # noqa: E402
from include.cosmos_archiver.clients import blob_container, cosmos_client  # noqa: E402
from include.cosmos_archiver.pipeline.copy import copy_slice  # noqa: E402
from include.cosmos_archiver.pipeline.purge import purge_slice  # noqa: E402
from include.cosmos_archiver.pipeline.validate import validate_slice  # noqa: E402
from include.cosmos_archiver.settings import ArchiveSettings  # noqa: E402
from include.cosmos_archiver.slices import TimeSlice  # noqa: E402

DAY = TimeSlice(dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", slice_lease_wait_s=60)
GOAL = 1.2


def one_slice(config: StackConfig, records: int, kb: int, poison: bool) -> tuple[float, str]:
    """(seconds for copy + validate + purge, what happened) for a fresh container holding the slice."""
    database = cosmos_client(config.cosmos_endpoint, EMULATOR_COSMOS_KEY).create_database_if_not_exists("bench")
    container = database.create_container(f"p-{uuid.uuid4().hex[:8]}", PartitionKey("/customerId"))
    store = ArchiveStore(blob_container(config.blob_connection_string, f"p-{uuid.uuid4().hex[:8]}"), "records")
    settings = dataclasses.replace(SETTINGS, container=container.id, database="bench")
    for i in range(records):
        container.upsert_item({"id": f"inv-{i:05d}", "customerId": f"c-{i % 20}", "pad": "x" * (kb * 1024),
                               "issuedAt": f"2025-03-01T{i % 24:02d}:{i % 60:02d}:00.000Z"})
    if poison:
        container.upsert_item({"id": "poison", "customerId": "c-3", "issuedAt": "2025-03-01T12:00:00.000Z",
                               "note": "bad \ud800 text"})
    started = time.perf_counter()
    try:
        copy_slice(container, store, DAY, settings)
        result = validate_slice(container, store, DAY, settings)
        purged = purge_slice(container, store, DAY, settings) if result.ok else None
    except Exception as exc:  # the "before" behaviour: say what the copy raised, and when
        return time.perf_counter() - started, f"raised {type(exc).__name__} ({str(exc)[:80]}); nothing purged"
    seconds = time.perf_counter() - started
    left = list(container.query_items("SELECT VALUE c.id FROM c", enable_cross_partition_query=True))
    what = (f"validation {'ok' if result.ok else 'FAILED'}, {purged.purged if purged else 0} purged, "
            f"left in Cosmos: {left}")
    return seconds, what


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--kb", type=int, default=8)
    args = parser.parse_args()
    config = StackConfig(state_dir=Path(tempfile.mkdtemp(prefix="poison-bench-")), cosmos_port=free_port(),
                         cosmos_backend_port=free_port(), blob_port=free_port(), provisioned_ru=1_000_000)
    with running_stack(config):
        clean_s, clean = one_slice(config, args.records, args.kb, poison=False)
        poison_s, poisoned = one_slice(config, args.records, args.kb, poison=True)
    print(f"model: local stack (cosmosdb-server behind the RU gateway, provisioned 1,000,000 RU/s: no throttling), "
          f"{args.records} records of ~{args.kb} KB in one daily slice")
    print(f"clean slice:          {clean_s:6.2f} s  copy + validate + purge: {clean[:60]}")
    print(f"with a poison record: {poison_s:6.2f} s  {poisoned}")
    ratio = poison_s / clean_s
    met = ratio <= GOAL and "raised" not in poisoned and "FAILED" not in poisoned
    print(f"ratio poison/clean: {ratio:.2f} (goal <= {GOAL} with the rest purged: {'met' if met else 'NOT met'})")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
