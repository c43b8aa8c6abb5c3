"""A read-through list page is one keyset query in the customer's partition: paging through a long hot history
returns every record once, in (timestamp, id) order, ties across page boundaries included, and a page's RU under
the gateway's published model does not grow with how far into the history it is."""

from __future__ import annotations

import json
import os
import ssl
import urllib.request

from include.cosmos_archiver.readthrough.repository import ReadThroughRepository
from tests.readthrough_helpers import SETTINGS

RECORDS = 36
PAGE = 5


def booked(stats_url: str) -> float:
    context = ssl.create_default_context(cafile=os.environ.get("REQUESTS_CA_BUNDLE"))
    with urllib.request.urlopen(stats_url + "?seconds=1", context=context, timeout=30) as response:
        return sum(cell["ru"] for cell in json.load(response)["totals"].values())


def test_paging_a_long_hot_history_is_one_keyset_page_at_a_time(cosmos_container, archive_store, stack):
    expected = []
    for i in range(RECORDS):
        issued = f"2026-05-{1 + i // 6:02d}T10:00:00.000Z"  # six records share each timestamp: ties everywhere
        doc = {"id": f"r{(i * 37) % RECORDS:03d}", "customerId": "cust", "issuedAt": issued, "body": "x" * 10_000}
        cosmos_container.upsert_item(doc)
        expected.append((issued, doc["id"]))
    cosmos_container.upsert_item({"id": "other", "customerId": "other", "issuedAt": "2026-05-01T10:00:00.000Z"})
    repo = ReadThroughRepository(cosmos_container, archive_store, SETTINGS)

    seen, charges, token = [], [], None
    while True:
        before = booked(stack.gateway_stats_url)
        page = repo.list("cust", page_size=PAGE, continuation=token)
        charges.append(booked(stack.gateway_stats_url) - before)
        seen += [(json.loads(r.body)["issuedAt"], json.loads(r.body)["id"]) for r in page.records]
        token = page.continuation
        if not token:
            break

    assert seen == sorted(expected)  # each record once, in (timestamp, id) order, across tied page boundaries
    assert len(charges) == RECORDS // PAGE
    # before: each page loaded every hot record after its token, so the first page cost ~7x the last
    first, last = charges[0], charges[-2]
    assert first < 1.5 * last, charges
