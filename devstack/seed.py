"""Deterministic synthetic billing records for local runs, tests and benchmarks.

Same seed, same arguments -> the same documents (ids, dates, amounts, padding). Documents are spread over a date
range (default: the last 18 months) by their business date. Their ``_ts`` is set by the server at write time
(i.e. "now"), so local runs slice on the business date instead: ``issuedAt`` (ISO-8601, kind ``iso8601``) or
``archiveTs`` (the same instant as epoch seconds, kind ``epoch_seconds``).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from azure.cosmos import ContainerProxy

FIRST_NAMES = ("Zoë", "José", "Łukasz", "Åsa", "Søren", "Chloé", "Małgorzata", "Jürgen", "Ngọc", "Siobhán",
               "Ömer", "François", "Ana", "Björn", "Dvořák", "渡辺", "Алексей", "محمد", "Kai", "Priya")
LAST_NAMES = ("Müller", "García", "Nowak", "O'Brien", "Nguyễn", "Østergaard", "Smith", "Dubois", "Kowalski",
              "Rossi", "Yılmaz", "Novák", "Tanaka", "Иванов", "Fernández", "Çelik")
CITIES = (("Zürich", "CH", "CHF"), ("München", "DE", "EUR"), ("Kraków", "PL", "PLN"), ("São Paulo", "BR", "BRL"),
          ("Malmö", "SE", "SEK"), ("London", "GB", "GBP"), ("New York", "US", "USD"), ("Tōkyō", "JP", "JPY"))
PRODUCTS = ("Compute hours", "Blob storage GB-month", "Support plan — premium", "Egress GB", "Licence seat",
            "Consulting hour", "Reserved instance (1y)", "Backup vault")


@dataclass(frozen=True)
class SeedSpec:
    records: int = 2000
    seed: int = 42
    target_kb: int = 300
    months_back: int = 18
    customers: int = 200
    end: dt.datetime | None = None  # defaults to now

    def __post_init__(self) -> None:
        if self.records < 0:
            raise ValueError(f"records={self.records} must be >= 0")
        if self.target_kb < 1:
            raise ValueError(f"target_kb={self.target_kb} must be >= 1 (the seed case is ~300)")
        if self.months_back < 1 or self.customers < 1:
            raise ValueError(f"months_back={self.months_back} and customers={self.customers} must be >= 1")


def _money(rng: random.Random, low: int, high: int) -> str:
    # Amounts as decimal strings: exact, as billing systems store them.
    return str(Decimal(rng.randint(low * 100, high * 100)) / Decimal(100))


def make_record(spec: SeedSpec, index: int, end: dt.datetime) -> dict[str, Any]:
    rng = random.Random(f"{spec.seed}:{index}")
    span_s = int(spec.months_back * 30.44 * 86400)
    issued = end - dt.timedelta(seconds=rng.randrange(span_s))
    city, country, currency = rng.choice(CITIES)
    customer_no = rng.randrange(spec.customers)
    lines = []
    for n in range(rng.randint(1, 12)):
        qty = rng.randint(1, 500)
        unit = _money(rng, 1, 900)
        lines.append({
            "line": n + 1,
            "product": rng.choice(PRODUCTS),
            "quantity": qty,
            "unitPrice": unit,
            "amount": str(Decimal(unit) * qty),
            "tax": {"rate": rng.choice([0.0, 0.07, 0.19, 0.2, 0.23]), "code": f"T{rng.randint(1, 9)}"},
        })
    total = sum(Decimal(line["amount"]) for line in lines)
    doc: dict[str, Any] = {
        "id": f"inv-{spec.seed}-{index:08d}",
        "customerId": f"cust-{customer_no:05d}",
        "type": "invoice",
        "invoiceNumber": f"INV/{issued:%Y}/{index:08d}",
        "issuedAt": issued.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "archiveTs": int(issued.timestamp()),
        "dueAt": (issued + dt.timedelta(days=30)).strftime("%Y-%m-%d"),
        "currency": currency,
        "total": str(total),
        "paid": rng.random() < 0.9,
        "customer": {
            "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            "address": {"city": city, "country": country, "postalCode": f"{rng.randint(1000, 99999)}",
                        "lines": [f"{rng.randint(1, 300)} Hauptstraße", None]},
            "tags": [],
            "vat": None,
        },
        "lines": lines,
        "meta": {},
    }
    # Pad to the target size with a deterministic audit trail, as real billing documents carry history.
    current = len(json.dumps(doc, ensure_ascii=False).encode())
    target = spec.target_kb * 1024
    history = []
    while current < target:
        entry = {"at": issued.isoformat(), "by": f"system-{rng.randint(1, 40)}", "note": "ä€" + "x" * 480}
        history.append(entry)
        current += len(json.dumps(entry, ensure_ascii=False).encode()) + 1
    doc["history"] = history
    return doc


def generate(spec: SeedSpec) -> Iterator[dict[str, Any]]:
    end = spec.end or dt.datetime.now(dt.UTC)
    for index in range(spec.records):
        yield make_record(spec, index, end)


def seed_container(container: ContainerProxy, spec: SeedSpec, *, workers: int = 8) -> int:
    """Upsert the spec's records (idempotent); return how many were written."""
    def upsert(doc: dict[str, Any]) -> None:
        container.upsert_item(doc)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(upsert, generate(spec)):
            pass
    return spec.records
