"""What `bin/archive-local` writes with RU_JSON (devstack/demo_ru.py): the census RU read back from the line the
product logs, and the gateway's total, which grows by what each request was charged."""

from __future__ import annotations

import pytest

from devstack.demo_ru import census_from_log
from devstack.stack import gateway_ru_total
from include.cosmos_archiver.source.run_census import RunCensus


def test_the_census_ru_is_read_from_the_products_own_line() -> None:
    first = RunCensus(slices=3, ru_charged=9.2, queries=4, not_verified={"2025/01/01": 2})
    last = RunCensus(slices=17, ru_charged=1_234.5, queries=18)
    log = f"[x] census: {first.line()} [cosmos_archive]\nother\n[y] census: {last.line()} [cosmos_archive]\n"
    assert census_from_log(log) == {"slices": 17, "queries": 18, "ru": 1234.5}  # the run's last census line
    with pytest.raises(ValueError, match="no census line"):
        census_from_log("the census task never ran")


def test_the_gateway_total_grows_by_each_requests_charge(stack, cosmos_container) -> None:
    cosmos_container.upsert_item({"id": "a", "customerId": "c", "body": "x" * 500_000})
    cosmos_container.read_item("a", partition_key="c")  # the client's first read also fetches metadata (1 RU)
    extras = []
    for _ in range(5):  # the stack is the session's: another client's background metadata read may land in a window
        headers: dict = {}
        before = gateway_ru_total(stack)
        cosmos_container.read_item("a", partition_key="c", response_hook=lambda h, _r, seen=headers: seen.update(h))
        charged = float(headers["x-ms-request-charge"])
        assert charged > 30  # a ~500 KB point read under the published model (~40 RU), not the minimum
        extras.append(round(gateway_ru_total(stack) - before - charged, 3))
        if abs(extras[-1]) < 0.01:
            break
    assert min(extras) >= 0 and abs(extras[-1]) < 0.01, extras  # the total grew by exactly the request's charge
