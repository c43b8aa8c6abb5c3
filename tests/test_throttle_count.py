"""Every 429 the archiver meets is seen and booked, although azure-cosmos retries it out of the response hook's sight.

The RU gateway answers the archiver's next requests with Cosmos-shaped 429s (``x-ms-retry-after-ms``, substatus
3200); the real SDK rides them out on its own retries, and the product still counts each throttled attempt: in the
point requests' tally, in a slice copy's manifest, and in the controller, which backs off.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import requests
from azure.cosmos import ContainerProxy

from devstack.stack import StackConfig
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.ru.adaptive_budget import AdaptiveBudget
from include.cosmos_archiver.ru.paid_requests import PaidRequests
from include.cosmos_archiver.ru.settings import RateControlSettings
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice

SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", page_size=2)
DAY = TimeSlice(dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))


def _throttle_next(stack: StackConfig, count: int) -> None:
    """The gateway answers the next ``count`` data requests with 429 (retry after 10 ms), as Cosmos does."""
    answer = requests.post(f"{stack.cosmos_endpoint}_gateway/faults",
                           json={"kind": "throttle", "count": count, "retry_after_ms": 10},
                           verify=str(Path(stack.state_dir) / "tls" / "ca.pem"), timeout=10)
    answer.raise_for_status()


def _seed(container: ContainerProxy) -> list[dict[str, Any]]:
    docs = [{"id": f"r{i}", "customerId": f"c{i % 2}", "issuedAt": f"2025-03-01T0{i}:00:00.000Z"} for i in range(3)]
    for doc in docs:
        container.upsert_item(doc)
    return docs


def test_point_requests_count_the_sdks_own_throttle_retries_and_the_controller_backs_off(
    stack: StackConfig, cosmos_container: ContainerProxy
) -> None:
    _seed(cosmos_container)
    budget = AdaptiveBudget(RateControlSettings(provisioned_ru_s=1_000_000, unknown_client_load=0.0), None)
    paid = PaidRequests(budget)
    rate_before = budget.available_ru_per_s()
    _throttle_next(stack, 3)
    item = paid.call(lambda hook: cosmos_container.read_item("r1", partition_key="c1", response_hook=hook))
    assert item["id"] == "r1"  # the SDK retried the three 429s itself and succeeded
    assert paid.throttled_requests == 3
    assert budget.throttled == 1 and budget.state.backoffs == 1  # one throttled request: one halving
    assert budget.state.rate_ru_s <= rate_before * 0.5


def test_a_copy_books_the_throttled_pages_in_its_manifest(
    stack: StackConfig, cosmos_container: ContainerProxy, archive_store: ArchiveStore
) -> None:
    docs = _seed(cosmos_container)
    _throttle_next(stack, 2)
    manifest = copy_slice(cosmos_container, archive_store, DAY, SETTINGS)
    assert manifest.record_count == len(docs)
    assert manifest.throttled_requests == 2
