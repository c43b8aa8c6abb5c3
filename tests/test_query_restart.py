"""A slice query that loses its connection mid-slice restarts safely: from the start, never from a cross-partition
continuation token (the Python SDK honours those for single-partition queries only), and every document is read
into the slice exactly once — also for id listings and counts.

The RU gateway resets the connection of the next data request (its ``reset`` fault); the client is built without
connection retries of its own, so the reset reaches the reader's restart logic as it would after an outage.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import requests
from azure.cosmos import ContainerProxy

from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig
from include.cosmos_archiver.clients import EndpointPatience, cosmos_client
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.reader import ReadStats, count_slice, read_slice, slice_versions

DAY = TimeSlice(dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
READ = {"timestamp_field": "issuedAt", "timestamp_kind": "iso8601"}


def _reset_next(stack: StackConfig) -> None:
    answer = requests.post(f"{stack.cosmos_endpoint}_gateway/faults", json={"kind": "reset", "count": 1},
                           verify=str(Path(stack.state_dir) / "tls" / "ca.pem"), timeout=10)
    answer.raise_for_status()


class _Recording:
    """The container as the reader sees it; records the continuation every query was opened with."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container
        self.opened_with: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def query_items(self, *args: Any, **kwargs: Any) -> Any:
        pages = self._container.query_items(*args, **kwargs)
        by_page = pages.by_page

        def recorded(continuation_token: Any = None) -> Any:
            self.opened_with.append(continuation_token)
            return by_page(continuation_token)

        pages.by_page = recorded
        return pages


def test_a_slice_query_cut_mid_slice_restarts_from_the_start_and_reads_each_record_once(
    stack: StackConfig, cosmos_container: ContainerProxy
) -> None:
    for i in range(12):  # the same ids under other partition keys: identity is (partition, id), never the id alone
        cosmos_container.upsert_item({"id": f"r{i % 6}", "customerId": f"c{i // 6}",
                                      "issuedAt": f"2025-03-01T{i:02d}:00:00.000Z"})
    no_retries = EndpointPatience(total_s=30, connect_timeout_s=5, backoff_max_s=1, retries=0)
    client = cosmos_client(stack.cosmos_endpoint, EMULATOR_COSMOS_KEY, patience=no_retries)
    container = _Recording(client.get_database_client("tests").get_container_client(cosmos_container.id))

    stats = ReadStats()
    pages = read_slice(container, DAY, page_size=5, stats=stats, **READ)  # type: ignore[arg-type]
    seen = [(d["customerId"], d["id"]) for d in next(pages)]
    _reset_next(stack)  # the next page's request is cut
    seen += [(d["customerId"], d["id"]) for page in pages for d in page]
    assert sorted(seen) == sorted((f"c{i // 6}", f"r{i % 6}") for i in range(12))  # each once, none lost
    assert container.opened_with == [None, None, None]  # placed: opened, restarted from the start; other spellings
    assert stats.pages >= 4  # the restart read the first page again (and paid for it)

    _reset_next(stack)
    versions = slice_versions(container, DAY, partition_key_path="/customerId", page_size=5, **READ)  # type: ignore[arg-type]
    assert len(versions) == 12
    _reset_next(stack)
    assert count_slice(container, DAY, **READ) == 12  # type: ignore[arg-type]
