"""One partition key mapping, everywhere (issue 16, item 2): every archived record is reachable with the key its
writer used, whatever the key — a string that reads as JSON ("12345", "null", "true", "~x"), a number, a boolean,
JSON null, the empty string — after a delete purge and after a stub purge, through GET and list, and a key never
reaches another key's record ("12345" is not 12345, "null" is not null). Against the local stack; each hypothesis
example gets its own Cosmos DB and Blob containers."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import example, given, settings
from hypothesis import strategies as st

from include.cosmos_archiver.api.app import create_app
from include.cosmos_archiver.archive.canonical import canonical_json, partition_key_text
from include.cosmos_archiver.pipeline.restore import RestoreError, parse_record_ids, restore_records
from include.cosmos_archiver.readthrough.errors import NotFound
from tests.readthrough_helpers import (
    ARCHIVING_EXAMPLES,
    PURGE_MOMENTS,
    SETTINGS,
    archive_and_purge_both,
    archive_slice,
    fresh_stores,
    issued_at,
    purge_like_the_pipeline,
    repository,
    slice_at,
)

# strings that read as something else, and their look-alikes of another type
READS_AS_JSON = ["12345", "null", "true", "false", "~x", "~undefined", "[1]", '"q"', "1.5", "-0", "", " ", "{}"]
KEYS = st.one_of(
    st.sampled_from(READS_AS_JSON),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/\\?#"), max_size=10),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda f: abs(f) < 1e15),
    st.booleans(),
    st.none(),
)
# the default run tries every family at once plus 1 drawn example, the slow run 25 more
EVERY_FAMILY = [*READS_AS_JSON, 12345, 0, -7, 1.5, 2.0, True, False, None, "c-1"]
TRIED = {"examples": 0, "records": 0, "twin_lookups": 0}


def look_alikes(key: Any) -> list[Any]:
    """Keys of another value that a text-based mapping confuses with ``key``."""
    out: list[Any] = []
    if isinstance(key, str):
        with contextlib.suppress(ValueError):
            out.append(json.loads(key))  # "12345" -> 12345, "null" -> None
        out.append(partition_key_text(key))  # '"12345"' for "12345"
    else:
        out += [partition_key_text(key), json.dumps(key)]  # 12345 -> "12345", None -> "null"
    scalars = [k for k in out if k is None or isinstance(k, str | int | float | bool)]
    return [k for k in scalars if partition_key_text(k) != partition_key_text(key)]


def _bodies(repo, key: Any) -> dict[str, bytes]:
    return {json.loads(r.body)["id"]: r.body for r in repo.list(key, page_size=1000).records}


@pytest.fixture(scope="module", autouse=True)
def _print_tried():
    yield
    print(f"\npartition keys: {TRIED['examples']} examples, {TRIED['records']} records, "
          f"{TRIED['twin_lookups']} look-alike lookups (all 404)")


def _every_key_reaches_its_own_record(stack, cosmos_database, keys: list[Any]) -> None:
    with fresh_stores(stack, cosmos_database) as (container, store):
        repo = repository(container, store)
        docs = []
        for i, key in enumerate(keys):
            docs.append({"id": f"r{i}", "customerId": key, "n": i, "issuedAt": issued_at(i)})
            container.create_item(docs[-1])
        before = {d["id"]: repo.get(d["id"], d["customerId"]).body for d in docs}
        listed = {d["id"]: _bodies(repo, d["customerId"]) for d in docs}
        assert all(listed[d["id"]] == {d["id"]: before[d["id"]]} for d in docs)

        purged = archive_and_purge_both(container, store)
        assert (purged["delete"].purged, purged["stub"].purged) == ((len(keys) + 1) // 2, len(keys) // 2)

        fresh = repository(container, store)  # empty caches: reads the index as a new API process would
        for r in (repo, fresh):
            for d in docs:
                rid, key = d["id"], d["customerId"]
                record = r.get(rid, key)
                assert record.source == "archive" and record.body == before[rid], (key, rid)
                assert _bodies(r, key) == listed[rid], key
                for twin in look_alikes(key):
                    TRIED["twin_lookups"] += 1
                    with pytest.raises(NotFound):
                        r.get(rid, twin)
        # the HTTP API's customerId is a string: it reaches the string keys, and only them
        api = TestClient(create_app(fresh))
        for d in docs:
            key = d["customerId"]
            if isinstance(key, str) and key and len(key) <= 255:
                got = api.get(f"/billing-records/{d['id']}", params={"customerId": key})
                assert got.status_code == 200 and got.content == before[d["id"]], (key, got.text)
            elif not isinstance(key, str):  # its JSON spelling is another (string) key: nothing there
                got = api.get(f"/billing-records/{d['id']}", params={"customerId": json.dumps(key)})
                assert got.status_code == 404, (key, got.text)
        TRIED["examples"] += 1
        TRIED["records"] += len(docs)


KEY_LISTS = st.lists(KEYS, min_size=2, max_size=10, unique_by=partition_key_text)


@settings(max_examples=1, **ARCHIVING_EXAMPLES)
@given(keys=KEY_LISTS)
@example(keys=EVERY_FAMILY)
def test_every_key_reaches_its_own_record_and_no_other_after_delete_and_stub_purges(stack, cosmos_database, keys):
    _every_key_reaches_its_own_record(stack, cosmos_database, keys)


@pytest.mark.slow
@settings(max_examples=25, **ARCHIVING_EXAMPLES)
@given(keys=KEY_LISTS)
def test_every_key_reaches_its_own_record_many_examples(stack, cosmos_database, keys):
    _every_key_reaches_its_own_record(stack, cosmos_database, keys)


def test_restore_ids_name_keys_as_the_archive_does(cosmos_container, archive_store):
    """``restore --ids`` reads PK as the archive spells it: ``"12345"`` (quoted) the string, ``12345`` the number,
    ``null`` JSON null; restore then writes back each to its own key, and a purged, restored and updated record
    is served in its new version under its own key only."""
    keys = ["12345", 12345, "null", None, "~x", "true", True]
    docs = [{"id": f"k{i}", "customerId": k, "issuedAt": "2025-10-10T12:00:00.000Z"} for i, k in enumerate(keys)]
    for d in docs:
        cosmos_container.create_item(d)
    time_slice = slice_at(PURGE_MOMENTS["delete"])
    assert archive_slice(cosmos_container, archive_store, time_slice)
    purge_like_the_pipeline(cosmos_container, archive_store, time_slice.slice_id, mode="delete")
    spelled = ",".join(f"{partition_key_text(d['customerId'])}/{d['id']}" for d in docs)
    assert [k for k, _ in parse_record_ids(spelled)] == [partition_key_text(k) for k in keys]
    with pytest.raises(RestoreError, match="JSON-quoted"):  # the number 12345 has no record k0
        restore_records(cosmos_container, archive_store, parse_record_ids("12345/k0"), SETTINGS)
    result = restore_records(cosmos_container, archive_store, parse_record_ids(spelled), SETTINGS)
    assert len(result.restored) == len(docs)
    repo = repository(cosmos_container, archive_store)
    for d in docs:
        assert json.loads(repo.get(d["id"], d["customerId"]).body)["customerId"] == d["customerId"]
    null_doc = docs[3]
    repo.update(null_doc["id"], {**null_doc, "customerId": "null"}, upsert=True)  # the string key, a new record
    updated = cosmos_container.read_item(null_doc["id"], partition_key=None)
    updated["amount"] = 1
    cosmos_container.replace_item(null_doc["id"], updated)
    assert json.loads(repo.get(null_doc["id"], None).body)["amount"] == 1  # JSON null's record, new version
    assert "amount" not in json.loads(repo.get(null_doc["id"], "null").body)  # the string "null"'s record
    assert canonical_json(json.loads(repo.get(null_doc["id"], None).body)) == repo.get(null_doc["id"], None).body
