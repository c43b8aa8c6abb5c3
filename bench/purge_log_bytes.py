"""Bytes a purge's log sends to Blob Storage for N records: the append log (archive/purge_log.py) vs the whole-file
``_purge.json`` rewritten every 50 records that it replaced.

The append log is written for real into Azurite (the local stack, started on free loopback ports) by
``write_purge_log``, saving every ``LOG_EVERY_RECORDS`` records as the purge does; the bytes are the request bodies
Blob Storage received (counted by a raw_request_hook on the container client). The old log's bytes are what its
``write_purge_log`` uploaded at each save: the whole log in its JSON format (``json.dumps(asdict(log), indent=1)``),
computed here (uploading them changes nothing but the wait). With Blob versioning on, every old rewrite stayed as a
version: the old figure is also the versions' storage; an append block creates no version.

    .venv/bin/python bench/purge_log_bytes.py [--records 2000 20000]

Record keys are like the seed's (``cust-00042`` partition keys, uuid-like ids, quoted etags). The quadratic figure
for a 30-day slice of the seed case (2 M records over the lookback, ~100,000 per 30-day slice) is extrapolated from
the measured bytes per record: old ~ its bytes per record x N^2 / (2 x 50), saves on the 5 s timer not counted.

Result (2026-12-04, 2 shared cores, the local stack: Azurite 3.37.0; bytes do not depend on the machine)::

       2,000 records: whole-file rewrites      4,111,161 B   append log     178,961 B   old/new   23.0x
      20,000 records: whole-file rewrites    401,111,601 B   append log   1,789,601 B   old/new  224.1x
    extrapolated, 100,000 records (a 30-day slice of the seed case): whole-file rewrites ~10.0 GB (with versioning:
    kept as versions), append log ~8.9 MB
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from dataclasses import asdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from azure.storage.blob import ContainerClient  # noqa: E402

from devstack.stack import StackConfig, free_port, running_stack  # noqa: E402
from include.cosmos_archiver.archive.purge_log import PurgeLog, write_purge_log  # noqa: E402
from include.cosmos_archiver.archive.store import ArchiveStore  # noqa: E402
from include.cosmos_archiver.clients import blob_container  # noqa: E402
from include.cosmos_archiver.pipeline.purge import LOG_EVERY_RECORDS  # noqa: E402

OLD_FIELDS = ("slice_id", "mode", "generation", "state", "started_at", "updated_at", "ru_charged", "outcomes")


def old_json(log: PurgeLog) -> bytes:
    """The whole-file log as the old write_purge_log uploaded it."""
    body = {k: v for k, v in asdict(log).items() if k in OLD_FIELDS}
    return json.dumps(body, indent=1, ensure_ascii=False).encode()


def measure(connection_string: str, records: int) -> tuple[int, int]:
    name = f"purgelog-{uuid.uuid4().hex[:8]}"
    blob_container(connection_string, name)  # created
    sent: list[int] = []

    def count(request) -> None:  # type: ignore[no-untyped-def]
        body = request.http_request.body
        sent.append(len(body) if isinstance(body, bytes | bytearray) else 0)

    store = ArchiveStore(ContainerClient.from_connection_string(connection_string, name, raw_request_hook=count),
                         "records")
    log = PurgeLog("2025/03/01", generation=0)
    old = 0
    for i in range(records):
        log.add("purged", f"cust-{i % 500:05d}", str(uuid.UUID(int=i)), f'"{uuid.UUID(int=i * 7919).hex[:16]}"')
        if (i + 1) % LOG_EVERY_RECORDS == 0 or i + 1 == records:
            if i + 1 == records:
                log.state = "complete"
            write_purge_log(store, log)
            old += len(old_json(log))
    store.container.delete_container()
    return old, sum(sent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument("--slice-records", type=int, default=100_000, help="the seed case's 30-day slice")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-purgelog-") as state, running_stack(StackConfig(
            state_dir=Path(state), cosmos_port=free_port(), cosmos_backend_port=free_port(), blob_port=free_port(),
            provisioned_ru=1_000_000)) as config:
        per_record = old_per_record = 0.0
        for n in args.records:
            old, new = measure(config.blob_connection_string, n)
            saves = -(-n // LOG_EVERY_RECORDS)
            per_record, old_per_record = new / n, old / (LOG_EVERY_RECORDS * saves * (saves + 1) / 2)
            print(f"{n:>8,} records: whole-file rewrites {old:>14,} B   append log {new:>11,} B   "
                  f"old/new {old / new:6.1f}x   append bytes/record {new / n:5.1f}")
        n = args.slice_records
        saves = n // LOG_EVERY_RECORDS
        old_est = old_per_record * LOG_EVERY_RECORDS * saves * (saves + 1) / 2
        print(f"extrapolated, {n:,} records (a 30-day slice of the seed case): whole-file rewrites "
              f"~{old_est / 1e9:.1f} GB (with versioning: kept as versions), append log ~{per_record * n / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
