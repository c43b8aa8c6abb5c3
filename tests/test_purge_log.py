"""The purge log appends: each save sends Blob only what is new (not the whole log again), and a purge resumes from
every chunk, also from a whole-file ``_purge.json`` an earlier version left."""

from __future__ import annotations

import json
from dataclasses import asdict

from azure.storage.blob import ContainerClient

from devstack.stack import StackConfig
from include.cosmos_archiver.archive.purge_log import PurgeLog, read_purge_log, write_purge_log
from include.cosmos_archiver.archive.store import ArchiveStore

SLICE = "2025/03/01"


def _counting_store(stack: StackConfig, store: ArchiveStore) -> tuple[ArchiveStore, list[int]]:
    """The same container, every request body's bytes counted (what Blob Storage receives)."""
    sent: list[int] = []

    def count(request) -> None:  # type: ignore[no-untyped-def]
        body = request.http_request.body
        sent.append(len(body) if isinstance(body, bytes | bytearray) else 0)

    client = ContainerClient.from_connection_string(stack.blob_connection_string, store.container.container_name,
                                                    raw_request_hook=count)
    return ArchiveStore(client, store.prefix), sent


def _save(store: ArchiveStore, log: PurgeLog, sent: list[int], first: int, n: int) -> int:
    for i in range(first, first + n):
        log.add("purged", f"customer-{i % 7}", f"record-{i:06d}", f'"etag-{i:08x}"')
    before = len(sent)
    write_purge_log(store, log)
    return sum(sent[before:])


def test_each_save_sends_only_the_new_outcomes_and_a_resume_reads_every_chunk(
    stack: StackConfig, archive_store: ArchiveStore
) -> None:
    store, sent = _counting_store(stack, archive_store)
    log = PurgeLog(SLICE, generation=0)
    saves = [_save(store, log, sent, 50 * k, 50) for k in range(6)]
    # linear: the sixth save of 50 records costs what the second did (the first also creates the append blob)
    assert saves[5] <= 1.1 * saves[1], saves
    assert sum(saves) < 2 * 6 * saves[1]
    resumed = read_purge_log(store, SLICE)
    assert resumed is not None and resumed.counts()["purged"] == 300 and resumed.generation == 0
    assert resumed.done()[("customer-5", "record-000299")] == '"etag-0000012b"'
    # a resumed session appends to a chunk of its own; both are read back, in order
    resumed.add("gone", "customer-1", "record-000300", '"etag-x"')
    resumed.state = "complete"
    write_purge_log(store, resumed)
    final = read_purge_log(store, SLICE)
    assert final is not None and final.state == "complete" and final.counts() == {
        "purged": 300, "stubbed": 0, "changed": 0, "gone": 1}
    assert sorted(b.name.rsplit("/", 1)[1] for b in store.container.list_blobs(
        name_starts_with=store.slice_dir(SLICE) + "/")) == ["_purge-00000.jsonl", "_purge-00001.jsonl"]


def test_a_purge_killed_under_the_whole_file_log_resumes_from_it(archive_store: ArchiveStore) -> None:
    legacy = PurgeLog(SLICE, generation=2, ru_charged=12.5)
    legacy.add("purged", "c1", "r1", '"e1"')
    body = {k: v for k, v in asdict(legacy).items() if k in ("slice_id", "mode", "generation", "state", "started_at",
                                                              "updated_at", "ru_charged", "outcomes")}
    archive_store.upload(f"{archive_store.slice_dir(SLICE)}/_purge.json", json.dumps(body).encode(), "application/json")
    resumed = read_purge_log(archive_store, SLICE)
    assert resumed is not None and resumed.done() == {("c1", "r1"): '"e1"'} and resumed.ru_charged == 12.5
    resumed.add("changed", "c2", "r2", '"e2"')
    write_purge_log(archive_store, resumed)
    again = read_purge_log(archive_store, SLICE)
    assert again is not None and again.counts()["purged"] == 1 and again.counts()["changed"] == 1
