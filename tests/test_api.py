"""The reference billing API against the local stack: the same answers before and after archive + purge, no lost
update or resurrected delete while archiving runs, 400s that name the bad value (edges and fuzzing:
test_api_edges.py, test_api_fuzz.py)."""

from __future__ import annotations

import random
import threading
import time

import pytest
from fastapi.testclient import TestClient

from include.cosmos_archiver.api.app import SOURCE_HEADER, create_app
from include.cosmos_archiver.readthrough.index import compact_index
from tests.readthrough_helpers import (
    archive_slice,
    due_slices,
    purge_like_the_pipeline,
    repository,
    seed,
    seed_spec,
)

RANGES = [(None, None), ("2025-06-01", "2026-01-01"), ("2025-09-15T12:00:00Z", "2026-05-01T00:00:00+00:00")]


@pytest.fixture
def api(cosmos_container, archive_store):
    return TestClient(create_app(repository(cosmos_container, archive_store)))


def _snapshot(client: TestClient, docs: list[dict]) -> dict[str, tuple[int, bytes, str]]:
    out = {}
    for d in docs:
        r = client.get(f"/billing-records/{d['id']}", params={"customerId": d["customerId"]})
        out[f"get {d['id']}"] = (r.status_code, r.content, r.headers.get(SOURCE_HEADER, ""))
    r = client.get("/billing-records/inv-none", params={"customerId": docs[0]["customerId"]})
    out["get missing"] = (r.status_code, r.content, "")
    for customer in sorted({d["customerId"] for d in docs}):
        for start, end in RANGES:
            params = {"customerId": customer, "pageSize": 4, **({"from": start, "to": end} if start else {})}
            page = 0
            while True:
                r = client.get("/billing-records", params=params)
                out[f"list {customer} {start} {end} #{page}"] = (r.status_code, r.content, r.headers[SOURCE_HEADER])
                token = r.json().get("continuation")
                if r.status_code != 200 or not token:
                    break
                params["continuation"], page = token, page + 1
    return out


def _archive_and_purge(container, store, *, stub_every: int = 2) -> set[tuple[str, str]]:
    """Archive every due slice (re-copying a slice whose validation failed), compact the index halfway, purge
    (every ``stub_every``-th slice in stub mode); return the archived keys."""
    archived: set[tuple[str, str]] = set()
    slices = due_slices()
    for n, time_slice in enumerate(slices):
        for _attempt in range(40):  # a racing writer fails validation until it stops; then the slice converges
            if archive_slice(container, store, time_slice):
                break
        else:
            pytest.fail(f"slice {time_slice.slice_id} did not validate in 40 attempts")
        if n == len(slices) // 2:
            compact_index(store)
        purge_like_the_pipeline(container, store, time_slice.slice_id,
                                mode="stub" if n % stub_every == 1 else "delete")
        manifest = store.read_manifest(time_slice.slice_id)
        archived |= {(r.partition_key, r.id) for r in manifest.records}
    return archived


def test_contract_same_status_and_bytes_after_archive_and_purge(api, cosmos_container, archive_store):
    docs = seed(cosmos_container, seed_spec(40, customers=4))
    before = _snapshot(api, docs)
    assert sum(k.startswith("list") for k in before) > 3 * 4, "paging must cross page boundaries"
    archived = _archive_and_purge(cosmos_container, archive_store)
    assert 15 < len(archived) < len(docs), "the dataset must span archive and Cosmos DB"
    after = _snapshot(api, docs)

    for key, (status, body, _) in before.items():
        assert after.get(key, (None, b""))[:2] == (status, body), (
            f"{key}: answer changed after archive + purge: {status} {body[:300]!r} -> {after.get(key)!r:.300}")
    assert after.keys() == before.keys()
    for d in docs:
        expected = "archive" if (d["customerId"], d["id"]) in archived else "cosmos"
        assert after[f"get {d['id']}"][2] == expected, d["id"]
    assert any("archive" in v[2] and "cosmos" in v[2] for k, v in after.items() if k.startswith("list"))
    # the lookup service answers an API in another language the same bytes, for archived records only
    for d in docs:
        r = api.get(f"/archive/records/{d['customerId']}/{d['id']}")
        if (d["customerId"], d["id"]) in archived:
            assert (r.status_code, r.content) == before[f"get {d['id']}"][:2], d["id"]
            assert r.headers[SOURCE_HEADER] == "archive"
        else:
            assert r.status_code == 404 and r.json()["parameter"] == "id", d["id"]


def test_updates_and_deletes_during_archive_and_purge(api, cosmos_container, archive_store):
    docs = seed(cosmos_container, seed_spec(60))
    old = [d for d in docs if d["issuedAt"] < "2026-02-01"]
    rng = random.Random(5)
    doomed = rng.sample(old, 4)
    targets = [d for d in old if d not in doomed]
    create_before = api.post("/billing-records", json={k: v for k, v in doomed[0].items() if k != "_etag"})
    assert create_before.status_code == 409, create_before.text
    acknowledged: dict[str, int] = {}
    written_at: list[float] = []
    stop = threading.Event()
    errors: list[str] = []

    def writer() -> None:  # 60 writes over the first seconds of the archiving: racing copies, validations, purges
        rev = 0
        while not stop.is_set() and rev < 60:
            stop.wait(0.03)
            d = rng.choice(targets)
            rev += 1
            body = {**d, "rev": rev}
            r = api.put(f"/billing-records/{d['id']}", json=body)
            if r.status_code == 200:
                acknowledged[d["id"]] = rev
                written_at.append(time.monotonic())
            else:
                errors.append(f"PUT {d['id']}: {r.status_code} {r.text}")
            if rev in (5, 15, 30, 45):
                victim = doomed[rev // 15]
                r = api.delete(f"/billing-records/{victim['id']}", params={"customerId": victim["customerId"]})
                if r.status_code != 204:
                    errors.append(f"DELETE {victim['id']}: {r.status_code} {r.text}")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        began = time.monotonic()
        _archive_and_purge(cosmos_container, archive_store)
        ended = time.monotonic()
    finally:
        thread.join(timeout=120)
        stop.set()
    assert not errors, errors[:5]
    assert sum(began <= t <= ended for t in written_at) >= 5, "the writer must have raced the archiving"
    assert len(written_at) == 60 and len(acknowledged) > 5
    _archive_and_purge(cosmos_container, archive_store)  # a second night: slices re-copied after races close
    for rid, rev in acknowledged.items():
        d = next(x for x in targets if x["id"] == rid)
        r = api.get(f"/billing-records/{rid}", params={"customerId": d["customerId"]})
        assert r.status_code == 200 and r.json()["rev"] == rev, f"{rid}: acknowledged rev {rev}, read {r.text[:200]}"
    for victim in doomed:
        r = api.get(f"/billing-records/{victim['id']}", params={"customerId": victim["customerId"]})
        assert r.status_code == 404, f"deleted {victim['id']} came back: {r.status_code}"
        listed = api.get("/billing-records", params={"customerId": victim["customerId"], "pageSize": 1000}).json()
        assert victim["id"] not in {i["id"] for i in listed["items"]}
    survivor = next(d for d in old if d["id"] not in acknowledged and d not in doomed)
    r = api.post("/billing-records", json=survivor)
    assert r.status_code == 409, f"create of archived {survivor['id']}: {r.status_code} {r.text}"


@pytest.mark.parametrize(("params", "parameter"), [
    ({"customerId": "cust-nobody"}, "customerId"),
    ({"customerId": "cust-00001", "from": "2025-13-01"}, "from"),
    ({"customerId": "cust-00001", "to": "yesterday"}, "to"),
    ({"customerId": "cust-00001", "pageSize": 0}, "pageSize"),
    ({"customerId": "cust-00001", "pageSize": 10000}, "pageSize"),
    ({"customerId": "cust-00001", "continuation": "not-a-token"}, "continuation"),
    ({"customerId": "cust-00001", "from": "2026-01-01", "to": "2025-01-01"}, "from"),
])
def test_bad_list_input_is_400_naming_the_value(api, cosmos_container, params, parameter):
    seed(cosmos_container, seed_spec(12))
    r = api.get("/billing-records", params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["parameter"] == parameter and str(params[parameter]) in r.text, body


def test_bad_writes_are_400_and_write_nothing(api, cosmos_container):
    docs = seed(cosmos_container, seed_spec(12))
    other = api.get("/billing-records", params={"customerId": "cust-00002", "pageSize": 1}).json()["continuation"]
    r = api.get("/billing-records", params={"customerId": docs[0]["customerId"], "continuation": other})
    assert r.status_code == 400 and r.json()["parameter"] == "continuation"
    cases = [
        (api.post, "/billing-records", {"customerId": "cust-1"}, "id"),
        (api.post, "/billing-records", {"id": "a/b", "customerId": "cust-1"}, "id"),
        (api.post, "/billing-records", {"id": "ok-1", "customerId": ""}, "customerId"),
        (api.post, "/billing-records", {"id": "ok-2", "customerId": "c", "_archiveDeleted": 1}, "_archiveDeleted"),
        (api.put, f"/billing-records/{docs[1]['id']}", {**docs[2]}, "id"),
    ]
    for call, url, body, parameter in cases:
        r = call(url, json=body)
        assert r.status_code == 400 and r.json()["parameter"] == parameter, (url, body, r.text)
    r = api.post("/billing-records", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["parameter"] == "body", r.text
    assert r.json()["message"].startswith("the request body is not valid JSON (") and "at character 1" in r.text
    stored = list(cosmos_container.query_items("SELECT c.id FROM c", enable_cross_partition_query=True))
    assert sorted(d["id"] for d in stored) == sorted(d["id"] for d in docs)
    r = api.put(f"/billing-records/{docs[3]['id']}", json=docs[3], headers={"If-Match": '"stale"'})
    assert r.status_code == 412 and r.json()["parameter"] == "If-Match"


def test_cli_registers_api_and_names_bad_options(capsys):
    from include.cosmos_archiver.cli.main import build_parser, main

    args = build_parser().parse_args(["api"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    assert main(["api", "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err
    assert main(["api", "--max-body-bytes", "0"]) == 2
    assert "--max-body-bytes 0" in capsys.readouterr().err
    assert main(["api", "--settings-json", '{"page_sizes": 1}']) == 2
    assert "page_sizes" in capsys.readouterr().err
