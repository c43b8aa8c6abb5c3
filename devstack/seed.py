"""Deterministic synthetic billing records for local runs, tests and benchmarks.

Same seed, same arguments -> the same documents (ids, dates, amounts, text; with the pinned Faker version).
Documents are spread over a date range (default: the last 18 months) by their business date. Their ``_ts`` is set
by the server at write time (i.e. "now"), so local runs slice on the business date instead: ``issuedAt``
(ISO-8601, kind ``iso8601``) or ``archiveTs`` (the same instant as epoch seconds, kind ``epoch_seconds``).

Content varies like real invoices, so compression and MB/s figures are not flattered: line items with free-text
descriptions, billing and shipping addresses and contacts from Faker in the customer's country's locale, and an
account history (payments, reminders, disputes, address changes, notes) that brings each document to
``target_kb``. Billing events write templated notes, as billing systems do; free text is drawn word by word from the
locale's word list with Zipf-like frequencies (common words common, as in real text) by a ``random.Random`` seeded
per record. ~30-70 ms per 300 KB document; zstd compresses these ~4x (level 1: 3.9x, level 3: 4.3x), the first
seed's repeated padding 145-160x. ``padding="filler"`` keeps that padding for comparisons.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from azure.cosmos import ContainerProxy
from faker import Faker

FIRST_NAMES = ("Zoë", "José", "Łukasz", "Åsa", "Søren", "Chloé", "Małgorzata", "Jürgen", "Ngọc", "Siobhán",
               "Ömer", "François", "Ana", "Björn", "Dvořák", "渡辺", "Алексей", "محمد", "Kai", "Priya")
LAST_NAMES = ("Müller", "García", "Nowak", "O'Brien", "Nguyễn", "Østergaard", "Smith", "Dubois", "Kowalski",
              "Rossi", "Yılmaz", "Novák", "Tanaka", "Иванов", "Fernández", "Çelik")
CITIES = (("Zürich", "CH", "CHF"), ("München", "DE", "EUR"), ("Kraków", "PL", "PLN"), ("São Paulo", "BR", "BRL"),
          ("Malmö", "SE", "SEK"), ("London", "GB", "GBP"), ("New York", "US", "USD"), ("Tōkyō", "JP", "JPY"))
PRODUCTS = ("Compute hours", "Blob storage GB-month", "Support plan — premium", "Egress GB", "Licence seat",
            "Consulting hour", "Reserved instance (1y)", "Backup vault")
LOCALES = {"CH": "de_CH", "DE": "de_DE", "PL": "pl_PL", "BR": "pt_BR", "SE": "sv_SE", "GB": "en_GB", "US": "en_US",
           "JP": "ja_JP"}
EVENTS = {  # event -> the note a billing system writes for it (free text is added to some)
    "payment received": "Payment of {amount} {currency} received via {method}, reference {ref}.",
    "payment reminder sent": "Reminder {level} sent to {email} for {amount} {currency} due {due}.",
    "dunning level raised": "Dunning level raised to {level}; outstanding {amount} {currency}.",
    "credit note issued": "Credit note {ref} issued over {amount} {currency}.",
    "dispute opened": "Dispute {ref} opened by {person}.",
    "dispute resolved": "Dispute {ref} resolved: {amount} {currency} credited.",
    "address changed": "Billing address changed by {person}.",
    "contact updated": "Contact updated to {email}.",
    "invoice re-sent": "Invoice re-sent to {email} ({method}).",
    "partial refund": "Partial refund of {amount} {currency} to account ending {last4}.",
    "tax correction": "Tax code corrected on line {level}; difference {amount} {currency}.",
    "note added": "Note by {person}.",
    "direct debit failed": "Direct debit of {amount} {currency} failed: {reason}.",
    "instalment agreed": "Instalment {level} of 6 agreed: {amount} {currency} on {due}.",
}
METHODS = ("SEPA transfer", "card", "direct debit", "wire", "PayPal", "cheque", "Boleto", "Swish", "BLIK")
REASONS = ("insufficient funds", "mandate revoked", "account closed", "bank rejected", "expired card")
PADDINGS = ("realistic", "filler")


@dataclass(frozen=True)
class SeedSpec:
    records: int = 2000
    seed: int = 42
    target_kb: int = 300
    months_back: int = 18
    customers: int = 200
    end: dt.datetime | None = None  # defaults to now
    padding: str = "realistic"  # or "filler": the old repeated-'x' audit trail (compresses 60-150x)

    def __post_init__(self) -> None:
        if self.padding not in PADDINGS:
            raise ValueError(f"padding={self.padding!r} must be one of {', '.join(PADDINGS)}")
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
    if spec.padding == "filler":
        doc["history"] = _filler_history(doc, spec, rng, issued)
    else:
        _realistic_content(doc, spec, index, issued, country)
    return doc


def _filler_history(doc: dict[str, Any], spec: SeedSpec, rng: random.Random, issued: dt.datetime) -> list[Any]:
    """The first seed's padding: one repeated note (compresses 60-150x under zstd; kept for comparisons)."""
    current = len(json.dumps(doc, ensure_ascii=False).encode())
    history = []
    while current < spec.target_kb * 1024:
        entry = {"at": issued.isoformat(), "by": f"system-{rng.randint(1, 40)}", "note": "ä€" + "x" * 480}
        history.append(entry)
        current += len(json.dumps(entry, ensure_ascii=False).encode()) + 1
    return history


@functools.cache
def _faker(locale: str) -> Faker:
    return Faker(locale)


@functools.cache
def _vocabulary(locale: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The locale's words (plus English ones where the locale's list is Latin filler) and Zipf cumulative weights."""
    words = list(dict.fromkeys(_faker(locale).get_words_list()))
    if len(words) < 500:
        words += [w for w in _faker("en_US").get_words_list() if w not in words]
    words = sorted(words, key=lambda w: (len(w), w))  # short words most frequent, as in real text
    return tuple(words), tuple(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(words))))


def _text(rng: random.Random, vocabulary: tuple[tuple[str, ...], tuple[float, ...]], low: int, high: int) -> str:
    """A sentence of ``low``-``high`` words (sometimes a number among them)."""
    words, cumulative = vocabulary
    picked = rng.choices(words, cum_weights=cumulative, k=rng.randint(low, high))
    if rng.random() < 0.3:
        picked.insert(rng.randrange(len(picked)), f"{rng.randint(1, 99_999)}")
    sentence = " ".join(picked)
    return sentence[:1].upper() + sentence[1:] + rng.choice(".!?.")


def _realistic_content(doc: dict[str, Any], spec: SeedSpec, index: int, issued: dt.datetime, country: str) -> None:
    """Descriptions, addresses, contacts and a history to ``target_kb``; an own rng, so the fields the first seed
    made (ids, dates, amounts) stay what they were for the same seed."""
    rng = random.Random(f"{spec.seed}:{index}:content")
    locale = LOCALES.get(country, "en_US")
    fake = _faker(locale)
    fake.seed_instance(f"{spec.seed}:{index}")
    vocabulary = _vocabulary(locale)
    people = [fake.name() for _ in range(4)]
    addresses = [fake.address() for _ in range(2)]
    doc["customer"]["billingAddress"] = addresses[0]
    doc["customer"]["shippingAddress"] = addresses[rng.randrange(2)]
    doc["customer"]["contact"] = {"name": people[0], "email": fake.email(), "phone": fake.phone_number()}
    doc["customer"]["company"] = fake.company()
    for line in doc["lines"]:
        line["description"] = _text(rng, vocabulary, 4, 18)
        line["sku"] = f"{rng.choice('ABCDEFGH')}{rng.randint(100, 999)}-{rng.randint(0, 99_999):05d}"
    doc["meta"] = {"source": rng.choice(("portal", "api", "batch", "edi")), "notes": _text(rng, vocabulary, 8, 40)}
    current = len(json.dumps(doc, ensure_ascii=False).encode())
    target = spec.target_kb * 1024
    history = []
    at = issued
    events = list(EVENTS)
    emails = [doc["customer"]["contact"]["email"], fake.email()]
    while current < target:
        at += dt.timedelta(minutes=rng.randint(1, 4000), seconds=rng.randint(0, 59))
        event = rng.choice(events)
        ref = f"{rng.choice(('PAY', 'CRN', 'TCK', 'DUN', 'REF'))}-{rng.randrange(10**9):09d}"
        amount = _money(rng, 1, 20_000)
        note = EVENTS[event].format(
            amount=amount, currency=doc["currency"], method=rng.choice(METHODS), ref=ref, level=rng.randint(1, 5),
            email=rng.choice(emails), due=(at + dt.timedelta(days=14)).strftime("%Y-%m-%d"),
            person=rng.choice(people), last4=f"{rng.randint(0, 9999):04d}", reason=rng.choice(REASONS),
        )  # fmt: skip
        if rng.random() < 0.35:
            note += " " + _text(rng, vocabulary, 4, 30)
        entry: dict[str, Any] = {
            "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "event": event,
            "by": rng.choice(people) if rng.random() < 0.4 else f"system-{rng.randint(1, 40)}",
            "ref": ref,
            "note": note,
        }
        if "{amount}" in EVENTS[event]:
            entry["amount"] = amount
        if event == "address changed":
            entry["address"] = rng.choice(addresses)
        history.append(entry)
        current += len(json.dumps(entry, ensure_ascii=False).encode()) + 1
    doc["history"] = history


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
