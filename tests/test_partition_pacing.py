"""Every physical partition spared (issue 18): the archiver paces against the hottest partition, not the account.

The RU gateway gives the container 4 physical partitions of 250 RU/s each (1,000 RU/s provisioned). A business client
keeps ONE partition at ~76 % of its own RU/s while the account sits at ~19 %; the archiver reads documents of every
partition in turn through the adaptive controller, which reads the gateway's Azure-Monitor-shaped metrics
(TotalRequestUnits, NormalizedRUConsumption) through the real MetricsClient. Paced against the account's share it
spends ~600 RU/s, a quarter of it on the hot partition, and crowds that partition's customers out (429s); paced
against the hottest partition's share it leaves the hot partition under the ceiling and still archives. Its
throttled attempts are counted by the product as the gateway booked them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.cosmos import CosmosClient

from devstack.ru_gateway import GatewaySettings
from devstack.ru_lab import RuLab, ru_lab
from include.cosmos_archiver.ru.adaptive_budget import AdaptiveBudget
from include.cosmos_archiver.ru.budget import served_at
from include.cosmos_archiver.ru.settings import RateControlSettings
from include.cosmos_archiver.ru.throttles import ThrottleWatch

PARTITIONS, PROVISIONED, HOT = 4, 1000.0, 0
BUSINESS_READS_S = 19  # 10 KB reads = 10 RU each under the lab's seed preset: 190 of the hot partition's 250 RU/s


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuLab]:
    settings = GatewaySettings(provisioned_ru=PROVISIONED, reporting_delay_s=1.0, physical_partitions=PARTITIONS)
    with ru_lab(tmp_path_factory.mktemp("partition-lab"), settings=settings, docs=24, doc_kb=10) as lab:
        yield lab


def _business(lab: RuLab, stop: threading.Event) -> None:
    """Point reads of the hot partition's documents on an even schedule (no archiver user agent: business)."""
    client = CosmosClient(lab.endpoint, credential=lab.key, connection_verify=str(Path(lab.ca_bundle)))
    container = client.get_database_client(lab.database).get_container_client(lab.container)
    hot = [key for key, partition in zip(lab.doc_keys, lab.doc_partitions, strict=True) if partition == HOT]
    n, next_at = 0, time.monotonic()
    while not stop.is_set():
        next_at += 1.0 / BUSINESS_READS_S
        time.sleep(max(0.0, next_at - time.monotonic()))
        doc_id, pk = hot[n % len(hot)]
        container.read_item(doc_id, partition_key=pk)
        n += 1


def _archiver(lab: RuLab, budget: AdaptiveBudget, stop: threading.Event, counted: dict[int, int], first: int) -> None:
    """The product's client (priority Low, its 429 counter) reading every partition's documents in turn."""
    container = lab.container_proxy(**budget.settings.client_kwargs())
    watch = ThrottleWatch()
    n = first
    while not stop.is_set():
        i = n % len(lab.doc_keys)
        n += 1
        budget.before_request(0.0)
        watch.start()
        container.read_item(lab.doc_keys[i][0], partition_key=lab.doc_keys[i][1])
        headers = container.client_connection.last_response_headers
        throttled = watch.seen()
        counted[lab.doc_partitions[i]] = counted.get(lab.doc_partitions[i], 0) + throttled
        budget.after_request(float(headers.get("x-ms-request-charge") or 0), throttled > 0, served_at(headers))


def test_the_archiver_spares_a_hot_partition_while_the_account_has_headroom(lab: RuLab) -> None:
    settings = RateControlSettings(
        provisioned_ru_s=PROVISIONED, ceiling=0.8, margin=0.01, error_quantile=0.99, error_window=60,
        control_interval_s=0.25, usage_poll_s=0.25, usage_window_s=8.0, stale_after_s=4.0, burst_s=0.1,
    )  # fmt: skip  -- the bench's PT1S settings (bench/ru_budget.adaptive_settings)
    budget = AdaptiveBudget(settings, lab.usage_source(lagging_grains=0))
    stop, counted = threading.Event(), {}
    business = threading.Thread(target=_business, args=(lab, stop), daemon=True)
    business.start()
    time.sleep(4.0)  # the business is running and published before the archiver starts, as in production
    started = time.time()
    readers = [threading.Thread(target=_archiver, args=(lab, budget, stop, counted, i * 7), daemon=True)
               for i in range(3)]  # fmt: skip
    for reader in readers:
        reader.start()
    time.sleep(8.0)
    stop.set()
    for thread in [business, *readers]:
        thread.join(timeout=30)
    rows = lab.gateway.stats(int(time.time() - started) + 2)["per_second"]
    books: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        for partition, classes in row["partition_classes"].items():
            for cls, cell in classes.items():
                total = books.setdefault(partition, {}).setdefault(cls, {"ru": 0.0, "throttled": 0})
                total["ru"] += cell["ru"]
                total["throttled"] += cell["throttled"]

    def booked(partition: int, cls: str, what: str) -> float:
        return books.get(str(partition), {}).get(cls, {}).get(what, 0)

    client_429s = {p: booked(p, "business", "throttled") for p in range(PARTITIONS)}
    assert client_429s == dict.fromkeys(range(PARTITIONS), 0), (
        f"business 429s per partition {client_429s}; archiver RU per partition "
        f"{ {p: round(booked(p, 'archiver', 'ru')) for p in range(PARTITIONS)} }; controller {budget.state}"
    )
    assert budget.spent_ru > 0  # the archiver was not simply stopped: it archives in the account's headroom
    # every throttled attempt the archiver met is counted by the product, on the partition the gateway booked it
    assert {p: counted.get(p, 0) for p in range(PARTITIONS)} == {
        p: booked(p, "archiver", "throttled") for p in range(PARTITIONS)
    }
