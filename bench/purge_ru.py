"""RU per archived record that the local RU gateway books over the whole archive of a seeded range.

Two runs on the same seeded records (deterministic: devstack.seed), each in its own container, measured as the
delta of the gateway's ``/_gateway/stats`` totals around the run (seeding and inspection excluded):

- today: copy + deep validation (the second full read), no purge;
- new:   copy + fast validation (ids and etags listed) + purge (conditional delete of every archived record);
- stub:  the same with ``purge: stub`` (each document replaced by a pointer), for the storage it leaves.

Each run also prints the JSON bytes its container holds before and after (the Cosmos storage cut, measured).

Printed per archived record next to the reference "one read + one delete" under the gateway's charge model
(devstack/ru_gateway/charge_model.py; default ``published``: Microsoft's size table for point reads and deletes,
queries by the documents they load at ~10.15 RU per MB), taken from the documents' own sizes. Goal: new <= 1.1 x
(one read + one delete). Each slice is archived as a daily run would be, followed by that run's census
(source.run_census: index-served counts of its slice and of the lookback); goal: census <= 1 % of the run's RU.
The gateway models ``--partitions`` physical partitions (default 2): a cross-partition query pays a page on each.

    .venv/bin/python bench/purge_ru.py [--records 120] [--target-kb 300] [--days 6] [--partitions 2]
                                       [--charge-model published|seed]

Measured (2 shared cores, 2026-12-04, published model, 2 physical partitions, defaults: 120 seeded invoices of
~285 KB over 6 daily slices, ~2 min with the stack start):
    reference one read 22.6 + one delete 108.2 = 130.8 RU per record;
    today: 6.3 RU/record booked (copy 3.2, deep validation 3.2), nothing purged;
    new:   111.6 RU/record booked (copy 3.2, validate 0.2 = index-served counts, purge 108.2) = 0.853 x (one read +
           one delete): goal <= 1.1 met; 0 documents left in Cosmos, 35.1 MB -> 0 MB;
    census of the daily runs: 55.2 RU = 0.41 % of those runs' archive RU: goal <= 1 % met;
    stub:  8.4 RU/record (the gateway charges a replace as one write of the ~0.6 KB stub: a guess, see its model).
Under the seed preset (``--charge-model seed``, 1 RU/KB read, 5 RU/KB write) the same run books 1,713 RU/record
(1.001 x its reference; copy 285.5, validate 0.1, purge 1,427.2) and its census 0.01 %.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from azure.cosmos import PartitionKey  # noqa: E402

from devstack.cli_storage import stored_bytes  # noqa: E402
from devstack.ru_gateway.charge_model import ChargeModel  # noqa: E402
from devstack.seed import SeedSpec, make_record  # noqa: E402
from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig, free_port, running_stack  # noqa: E402
from include.cosmos_archiver.archive.store import ArchiveStore  # noqa: E402
from include.cosmos_archiver.clients import blob_container, cosmos_client  # noqa: E402
from include.cosmos_archiver.pipeline.copy import copy_slice  # noqa: E402
from include.cosmos_archiver.pipeline.purge import purge_slice  # noqa: E402
from include.cosmos_archiver.pipeline.validate import validate_slice  # noqa: E402
from include.cosmos_archiver.settings import ArchiveSettings  # noqa: E402
from include.cosmos_archiver.slices import slice_grid  # noqa: E402
from include.cosmos_archiver.source.run_census import census_of_run  # noqa: E402

GOAL = 1.1
END = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def booked_ru(stats_url: str) -> float:
    context = ssl.create_default_context(cafile=os.environ.get("REQUESTS_CA_BUNDLE"))
    with urllib.request.urlopen(stats_url + "?seconds=1", context=context, timeout=30) as response:
        totals = json.load(response)["totals"]
    return sum(cell["ru"] for cell in totals.values())


def seed(container, records: int, target_kb: int, days: int) -> list[dict]:
    spec = SeedSpec(records=records, target_kb=target_kb, months_back=1, end=END)
    docs = []
    for i in range(records):
        doc = make_record(spec, i, END)
        issued = END - dt.timedelta(days=days) + dt.timedelta(seconds=(i * 86_400 * days) // max(records, 1))
        doc["issuedAt"] = issued.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        container.upsert_item(doc)
        docs.append(doc)
    return docs


def run(label: str, container, store, settings, slices, stats_url: str, *, purge: bool) -> dict:
    before = booked_ru(stats_url)
    started = time.perf_counter()
    census_ru = []  # each slice archived as a daily run would: copy, validation, purge, then that run's census
    for the_slice in slices:
        copy_slice(container, store, the_slice, settings)
        result = validate_slice(container, store, the_slice, settings)
        if not result.ok:
            raise SystemExit(f"{label}: validation failed: {result.message()}")
        if purge:
            purge_slice(container, store, the_slice, settings, mode=settings.purge)
        census_before = booked_ru(stats_url)
        census_of_run(container, store, settings, [the_slice], now=END + dt.timedelta(days=settings.cutoff_days))
        census_ru.append(booked_ru(stats_url) - census_before)
    seconds = time.perf_counter() - started
    booked = booked_ru(stats_url) - before - sum(census_ru)
    steps: dict[str, float] = {}
    records = 0
    for the_slice in slices:
        manifest = store.read_manifest(the_slice.slice_id)
        records += manifest.record_count
        for step, ru in manifest.ru_steps.items():
            steps[step] = steps.get(step, 0.0) + ru
    return {"label": label, "booked": booked, "steps": steps, "records": records, "seconds": seconds,
            "census": sum(census_ru)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=120)
    parser.add_argument("--target-kb", type=int, default=300)
    parser.add_argument("--days", type=int, default=6, help="daily slices the records spread over")
    parser.add_argument("--partitions", type=int, default=2,
                        help="physical partitions the gateway models (each pays a page of a cross-partition query)")
    parser.add_argument("--charge-model", default="published", choices=("published", "seed"),
                        help="the gateway's charge model (default: Microsoft's published figures)")
    args = parser.parse_args()

    config = StackConfig(state_dir=Path(tempfile.mkdtemp(prefix="purge-ru-")), cosmos_port=free_port(),
                         cosmos_backend_port=free_port(), blob_port=free_port(), provisioned_ru=1_000_000,
                         charge_model=args.charge_model, physical_partitions=args.partitions)
    model = ChargeModel.preset_named(args.charge_model)
    with running_stack(config):
        client = cosmos_client(config.cosmos_endpoint, EMULATOR_COSMOS_KEY)
        database = client.create_database_if_not_exists("bench")
        base = dict(timestamp_field="issuedAt", timestamp_kind="iso8601", page_size=25)
        slices = slice_grid(END - dt.timedelta(days=args.days), END)
        results = []
        for name, label, validation, purge in (
            ("today", "today: copy + deep re-read", "deep", "off"),
            ("new", "new:   copy + fast validation + purge", "fast", "delete"),
            ("stub", "stub:  copy + fast validation + stubs", "fast", "stub"),
        ):
            container = database.create_container(f"c-{name}", PartitionKey("/customerId"))
            docs = seed(container, args.records, args.target_kb, args.days)
            before_bytes = stored_bytes(container)[2]
            store = ArchiveStore(blob_container(config.blob_connection_string, f"bench-{name}"), "records")
            settings = ArchiveSettings(**base, validation=validation, purge=purge)
            results.append(run(label, container, store, settings, slices, config.gateway_stats_url,
                               purge=purge != "off"))
            left = len(list(container.query_items("SELECT c.id FROM c", enable_cross_partition_query=True)))
            results[-1]["left_in_cosmos"] = left
            results[-1]["storage"] = (before_bytes, stored_bytes(container)[2])

        sizes = [len(json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()) for d in docs]
        n = len(sizes)
        read_ref = sum(model.point("Read", s) for s in sizes) / n
        delete_ref = sum(model.point("Delete", s) for s in sizes) / n
        reference = read_ref + delete_ref
        print(f"{n} records of ~{sum(sizes) / n / 1024:,.0f} KB over {len(slices)} daily slices; {model.preset} model: "
              f"one read {read_ref:,.1f} RU + one delete {delete_ref:,.1f} RU = {reference:,.1f} RU per record")
        for r in results:
            per = r["booked"] / r["records"]
            steps = ", ".join(f"{k} {v / r['records']:,.1f}" for k, v in r["steps"].items())
            before_b, after_b = r["storage"]
            print(f"{r['label']:<40} booked {per:9,.1f} RU/record ({steps}); {r['seconds']:.1f} s; "
                  f"{r['left_in_cosmos']} documents left in Cosmos, {before_b / 1e6:,.1f} MB -> "
                  f"{after_b / 1e6:,.3f} MB (storage cut {1 - after_b / before_b:.1%})")
        today, new, _stub = results
        booked = new["booked"] / new["records"]
        purge_booked = new["steps"].get("purge", 0.0) / new["records"]
        print(f"today booked / (one read)             = {today['booked'] / today['records'] / read_ref:.3f}")
        print(f"new booked / (one read + one delete)  = {booked / reference:.3f} (deletes booked at "
              f"{purge_booked:,.1f} RU, model {delete_ref:,.1f}); goal <= {GOAL}: "
              f"{'met' if booked / reference <= GOAL else 'NOT met'}")
        census_share = new["census"] / new["booked"]
        print(f"census of the daily runs (index-served counts of each run's slice + the lookback): "
              f"{new['census']:,.1f} RU = {census_share:.2%} of those runs' archive RU; goal <= 1 %: "
              f"{'met' if census_share <= 0.01 else 'NOT met'}")
        reads_today = today["booked"] / today["records"]
        print(f"new vs today, reads only (copy + validation): {(booked - purge_booked) / reads_today:.3f}")


if __name__ == "__main__":
    main()
