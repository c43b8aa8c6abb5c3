"""How close the local RU gateway's charges are to Microsoft's published figures, per data point and query shape.

Run: ``.venv/bin/python bench/charge_fidelity.py [--docs 48] [--doc-kb 100] [--partitions 4]``. Starts its own local
stack on free ports (cosmosdb-server behind an in-process gateway under the default, ``published``, charge model)
and prints one row per figure: the gateway's charge, the published (or derived) figure, their ratio. Exits 1 when a
ratio leaves 0.8-1.25.

Figures (sources in devstack/ru_gateway/charge_model.py):
- size table: point read, upsert (write) and delete of items of 1 KB .. 2 MB against Microsoft's table
  (understand-request-unit-consumption).
- troubleshooting example: the page's scan query (``UPPER(c.description) = ...``: 60,951 documents, 399,998,938
  bytes retrieved, 4,059.95 RU) replayed on ``--nutrition-docs`` documents of the page's mean size (6,563 bytes):
  derived figure = 4,059.95 RU x bytes loaded here / 399,998,938.
- consistency: a 256 KB point read under Strong and Bounded Staleness = 2 x the table's 20.28 RU
  (optimize-cost-reads-writes).
- the product's query shapes, built with its own query builders (source/reader.py, census.py's counts,
  readthrough/repository.py's list and body queries) on seeded records: derived figure = the page charge (a guess,
  2.3 RU a page) x (one page per partition key range + the later pages the gateway answered) + 10.15 RU per MB (the
  troubleshooting page's rate) x the bytes the documented index rules say the query must load (computed here from
  the seeded data, not by the gateway) + 0.0025 RU per index entry matched (a guess).
- the per-partition split of a cross-partition scan (the census's canonical-spelling COUNT): each physical
  partition's RU next to its derived share.
What this checks: that the gateway carries the published figures and the documented index rules through paging,
partitions and the SDK; it cannot check the guesses (page charge, index lookups), which the table marks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import requests  # noqa: E402
from azure.cosmos import PartitionKey  # noqa: E402

from devstack.ru_gateway import GatewaySettings, start_gateway  # noqa: E402
from devstack.ru_gateway.charge_model import SIZE_TABLE  # noqa: E402
from devstack.ru_gateway.partitions import PartitionKeyDef  # noqa: E402
from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig, free_port, running_stack  # noqa: E402
from include.cosmos_archiver.clients import cosmos_client  # noqa: E402
from include.cosmos_archiver.slices import TimeSlice, canonical_iso_sql, field_expression  # noqa: E402
from include.cosmos_archiver.source.reader import (  # noqa: E402
    COUNT,
    RECORDS_ONLY,
    placed_filter,
    slice_query,
    spelling_query,
)

LOW, HIGH = 0.8, 1.25
PAGE_RU, RU_PER_MB, LOOKUP_RU = 2.3, 10.15, 0.0025  # charge_model.py's rates (page and lookup: guesses)
EXAMPLE_RU, EXAMPLE_BYTES, EXAMPLE_DOCS = 4059.95, 399_998_938, 60_951  # troubleshoot-query-performance
EXAMPLE_MATCH = "BABYFOOD, DESSERT, FRUIT DESSERT, WITHOUT ASCORBIC ACID, JUNIOR"
DAY0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
TS = "issuedAt"
ROWS: list[tuple[str, float, float, str]] = []


def row(name: str, gateway: float, published: float, note: str = "") -> None:
    ROWS.append((name, gateway, published, note))


def stored_size(doc: dict[str, Any]) -> int:
    return len(json.dumps(doc, separators=(",", ":")))


class Ledger:
    """The gateway's booked Query/ReadFeed requests between two marks (its ``ledger``)."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.mark = 0

    def start(self) -> None:
        self.mark = len(self.gateway.ledger)

    def queries(self) -> list[Any]:
        entries = list(self.gateway.ledger)[self.mark :]
        return [e for e in entries if e.operation in ("Query", "ReadFeed") and e.status < 400]


def sized_doc(container: Any, doc_id: str, kb: float) -> dict[str, Any]:
    """An item whose stored JSON is ``kb`` KB (system properties included), as read back."""
    target = int(kb * 1024)
    doc = {"id": doc_id, "payload": "x" * max(0, target - 200)}
    stored = container.upsert_item(doc)
    doc["payload"] = "x" * max(0, len(doc["payload"]) + target - stored_size(stored))
    return container.upsert_item(doc)


def size_table(gw: Any, client: Any) -> None:
    container = client.get_database_client("fidelity").create_container("sizes", PartitionKey("/id"))
    for kb, read_ru, write_ru in SIZE_TABLE:
        doc_id = f"size-{kb}"
        sized_doc(container, doc_id, kb)
        container.read_item(doc_id, partition_key=doc_id)
        row(f"point read {kb:g} KB", charge(container), read_ru, "size table")
        body = container.read_item(doc_id, partition_key=doc_id)
        container.upsert_item({k: v for k, v in body.items() if not k.startswith("_")})
        row(f"upsert (write) {kb:g} KB", charge(container), write_ru, "size table")
        container.delete_item(doc_id, partition_key=doc_id)
        row(f"delete {kb:g} KB", charge(container), write_ru, "size table")
    sized_doc(container, "strong", 256)
    url = f"{gw.endpoint}dbs/fidelity/colls/sizes/docs/strong"
    for level in ("Strong", "BoundedStaleness"):
        answer = requests.get(url, headers={"x-ms-documentdb-partitionkey": '["strong"]',
                                            "x-ms-consistency-level": level}, timeout=30)
        row(f"point read 256 KB, {level}", float(answer.headers["x-ms-request-charge"]), 2 * 20.28, "2 x table")


def charge(container: Any) -> float:
    return float(container.client_connection.last_response_headers["x-ms-request-charge"])


def troubleshooting_example(gw: Any, client: Any, ledger: Ledger, docs: int) -> None:
    """The example's container (~400 MB) is one physical partition: replayed on one, it pays one page."""
    partitions = gw.settings.physical_partitions
    gw.update_settings(physical_partitions=1)
    container = client.get_database_client("fidelity").create_container("nutrition", PartitionKey("/foodGroup"))
    mean = EXAMPLE_BYTES / EXAMPLE_DOCS
    total = 0
    for i in range(docs):
        description = EXAMPLE_MATCH if i % (docs // 7) == 0 and i // (docs // 7) < 7 else f"food {i}"
        doc = {"id": f"n{i}", "foodGroup": f"group-{i % 25}", "description": description, "pad": ""}
        doc["pad"] = "n" * max(0, int(mean) - stored_size(doc) - 110)
        total += stored_size(container.upsert_item(doc))
    ledger.start()
    sql = f'SELECT VALUE c.description FROM c WHERE UPPER(c.description) = "{EXAMPLE_MATCH}"'
    found = list(container.query_items(sql, enable_cross_partition_query=True))
    assert len(found) == 7, found
    gateway = sum(e.ru for e in ledger.queries())
    row(f"troubleshooting scan ({docs} docs, {total / 1e6:.1f} MB)", gateway, EXAMPLE_RU * total / EXAMPLE_BYTES,
        "published example, scaled to the bytes loaded")
    gw.update_settings(physical_partitions=partitions)


def seed_records(container: Any, docs: int, doc_kb: int) -> list[dict[str, Any]]:
    """Records over three days: canonical ISO timestamps, a few other spellings, a few without a timestamp."""
    out = []
    for i in range(docs):
        issued = DAY0 + dt.timedelta(minutes=i * 3 * 24 * 60 // docs)
        doc: dict[str, Any] = {"id": f"r{i}", "customerId": f"cust-{i % 8}", "payload": "p" * (doc_kb * 1024)}
        if i % 11 == 5:
            doc[TS] = (issued + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
        elif i % 13 != 7:
            doc[TS] = issued.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        out.append(container.upsert_item(doc))
    return out


def query_shapes(gw: Any, client: Any, ledger: Ledger, docs: list[dict[str, Any]], partitions: int) -> None:
    container = client.get_database_client("fidelity").get_container_client("records")
    day = TimeSlice(DAY0 + dt.timedelta(days=1), DAY0 + dt.timedelta(days=2))
    ts = field_expression(TS)
    start, end = day.start.strftime("%Y-%m-%dT%H:%M:%S.000Z"), day.end.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def strings(d: dict[str, Any]) -> bool:
        return isinstance(d.get(TS), str)

    # ENDSWITH(ts, "Z") of the canonical-spelling filter is served by the index (query_shape.py), so it bounds scopes
    in_range = [d for d in docs if strings(d) and start <= d[TS] < end and d[TS].endswith("Z")]
    low, high = (day.start - dt.timedelta(hours=24)).date().isoformat(), (day.end + dt.timedelta(hours=48)).date()
    window = [d for d in docs if strings(d) and low <= d[TS] < high.isoformat()]

    def measure(name: str, run: Callable[[], Any], loaded: list[dict[str, Any]], lookups: int, cross: bool) -> None:
        ledger.start()
        run()
        entries = ledger.queries()
        ranges = partitions if cross else 1
        derived = (ranges + len(entries) - 1) * PAGE_RU + RU_PER_MB * sum(map(stored_size, loaded)) / 1e6
        derived += LOOKUP_RU * lookups
        row(name, sum(e.ru for e in entries), derived, f"{len(entries)} page(s), {len(loaded)} docs loaded")

    def cross(query: dict[str, Any], page_size: int = 10) -> Callable[[], Any]:
        return lambda: [list(p) for p in container.query_items(
            query["query"], parameters=query.get("parameters"), enable_cross_partition_query=True,
            max_item_count=page_size).by_page()]  # fmt: skip

    placed = slice_query(day, TS, "iso8601")
    placed["query"] += placed_filter(TS, "iso8601", "/customerId")
    measure("slice copy (placed range, SELECT *)", cross(placed), in_range, len(in_range), True)
    listing = slice_query(day, TS, "iso8601", 'c.id, c._etag, c["customerId"] AS pk')
    listing["query"] += placed_filter(TS, "iso8601", "/customerId")
    measure("id/etag listing (validation)", cross(listing, 1000), in_range, len(in_range), True)
    counted = slice_query(day, TS, "iso8601", COUNT)
    counted["query"] += placed_filter(TS, "iso8601", "/customerId")
    measure("slice COUNT (canonical filter)", cross(counted), in_range, len(in_range), True)
    ranged = sum(strings(d) and start <= d[TS] < end for d in docs)
    measure("slice COUNT (range only, index)", cross(slice_query(day, TS, "iso8601", COUNT)), [], ranged, True)
    spelled = spelling_query(day, TS, "*", "/customerId")
    measure("other-spellings query", cross(spelled), window, len(window), True)
    census_true = {"query": "SELECT VALUE COUNT(1) FROM c WHERE true"}
    measure("census COUNT(all) (index)", cross(census_true), [], len(docs), True)
    missing = {"query": f"SELECT VALUE COUNT(1) FROM c WHERE (NOT IS_DEFINED({ts}) OR IS_NULL({ts}))"}
    measure("census COUNT(timestamp missing) (index)", cross(missing), [], sum(TS not in d for d in docs), True)
    fast = {"query": f"SELECT VALUE COUNT(1) FROM c WHERE (IS_STRING({ts}) AND {canonical_iso_sql(ts)}) "
                     f'AND IS_DEFINED(c["customerId"])'}
    zulu = [d for d in docs if strings(d) and d[TS].endswith("Z")]
    measure("census COUNT(canonical) (scan)", cross(fast), zulu, len(zulu), True)
    split_entries = ledger.queries()

    customer = "cust-3"
    mine = [d for d in docs if d["customerId"] == customer]
    top = 1  # a list page's keyset query (readthrough/repository.py, _hot_window): TOP n in timestamp order
    hot_sql = (f"SELECT TOP {top} c.id, {ts} AS o FROM c WHERE IS_STRING({ts}) AND {ts} >= @start AND {ts} < @end "
               f"AND {RECORDS_ONLY} ORDER BY {ts}")
    hot = [d for d in mine if strings(d) and start <= d[TS] < end]

    def one(sql: str, params: list[dict[str, Any]]) -> Callable[[], Any]:
        """A single-partition query as readthrough/repository.py's ``_query`` sends it (the key also filtered)."""
        sql, order_by, order = sql.partition(" ORDER BY ")
        sql = sql.replace(" WHERE ", ' WHERE c["customerId"] = @pk AND (', 1) + ")" + order_by + order
        params = [*params, {"name": "@pk", "value": customer}]
        return lambda: list(container.query_items(sql, parameters=params, partition_key=customer))

    params = [{"name": "@start", "value": start}, {"name": "@end", "value": end}]
    first = sorted(hot, key=lambda d: d[TS])[:top]
    measure("read-through list page (keyset TOP, one customer)", one(hot_sql, params), first, len(first), False)
    ids = [d["id"] for d in hot]
    bodies = one("SELECT * FROM c WHERE ARRAY_CONTAINS(@ids, c.id)", [{"name": "@ids", "value": ids}])
    measure("read-through bodies (ARRAY_CONTAINS ids)", bodies, hot, len(hot), False)
    doc = mine[0]
    container.read_item(doc["id"], partition_key=customer)
    kb = stored_size(doc) / 1024
    table = next(r for r in itertools.pairwise(SIZE_TABLE) if r[0][0] <= kb <= r[1][0])
    (k0, r0, _), (k1, r1, _) = table
    row(f"read-through point read ({kb:.0f} KB)", charge(container), r0 + (r1 - r0) * (kb - k0) / (k1 - k0),
        "size table, interpolated")

    # the per-partition split of the last cross-partition scan (census COUNT(canonical))
    pk_def = PartitionKeyDef(("/customerId",))
    loaded_by_partition: dict[int, int] = {}
    for d in zulu:
        p = pk_def.partition([d["customerId"]], partitions)
        loaded_by_partition[p] = loaded_by_partition.get(p, 0) + stored_size(d)
    booked: dict[int, float] = {}
    for entry in split_entries:
        for p, ru in entry.partitions.items():
            booked[p] = booked.get(p, 0.0) + ru
    assert len(split_entries) == 1, split_entries  # one page: each partition pays one page and its own load
    for p in range(partitions):
        derived = PAGE_RU + RU_PER_MB * loaded_by_partition.get(p, 0) / 1e6
        row(f"  census scan on physical partition {p}", booked.get(p, 0.0), derived, "per-partition split")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=48, help="seeded records for the query shapes")
    parser.add_argument("--doc-kb", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4, help="physical partitions the gateway models")
    parser.add_argument("--nutrition-docs", type=int, default=700, help="documents for the troubleshooting example")
    args = parser.parse_args()
    config = StackConfig(state_dir=Path(tempfile.mkdtemp(prefix="charge-fidelity-")), cosmos_port=free_port(),
                         cosmos_backend_port=free_port(), blob_port=free_port())
    settings = GatewaySettings(provisioned_ru=10_000_000, physical_partitions=args.partitions)
    with running_stack(config):
        direct = cosmos_client(config.cosmos_backend_endpoint, EMULATOR_COSMOS_KEY)
        database = direct.create_database_if_not_exists("fidelity")
        seeded = database.create_container("records", PartitionKey("/customerId"))
        docs = seed_records(seeded, args.docs, args.doc_kb)
        with start_gateway(config.cosmos_backend_endpoint.rstrip("/"), config.state_dir, settings=settings) as gw:
            client = cosmos_client(gw.endpoint, EMULATOR_COSMOS_KEY)
            ledger = Ledger(gw)
            size_table(gw, client)
            troubleshooting_example(gw, client, ledger, args.nutrition_docs)
            query_shapes(gw, client, ledger, docs, args.partitions)
    print(f"charge fidelity: gateway (published model, {args.partitions} physical partitions) vs published/derived")
    print(f"{'figure':<48} {'gateway RU':>11} {'published':>11} {'ratio':>6}  note")
    failed = 0
    for name, gateway, published, note in ROWS:
        ratio = gateway / published if published else float("inf")
        ok = LOW <= ratio <= HIGH
        failed += not ok
        print(f"{name:<48} {gateway:>11.2f} {published:>11.2f} {ratio:>6.2f}  {note}{'' if ok else '  <-- OUT'}")
    print(f"{len(ROWS) - failed}/{len(ROWS)} ratios within {LOW}-{HIGH}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
