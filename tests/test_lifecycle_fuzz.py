"""Hypothesis-generated documents through the whole life cycle (issue 16, item 9): insert, archive, purge (delete
and stub), GET, list, restore, against the local stack. Unicode text, deep nesting, numbers of every size, and field
names colliding with ours (the old marker names, our marker field holding business values, Parquet column names).
GET and list answer the bytes Cosmos DB answered before archiving; restore writes back the same document (Cosmos
gives it new system properties). Bounded by default; ``slow`` tries more."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from include.cosmos_archiver.archive.canonical import canonical_json
from include.cosmos_archiver.pipeline.restore import restore_slice
from include.cosmos_archiver.readthrough.markers import SYSTEM_PROPERTIES, marker_kind
from tests.readthrough_helpers import (
    ARCHIVING_EXAMPLES,
    PURGE_MOMENTS,
    SETTINGS,
    archive_and_purge_both,
    fresh_stores,
    issued_at,
    repository,
    slice_at,
)

OURS = ["_archived", "_archiveDeleted", "_cosmosArchive", "sha256", "doc", "partition_key", "etag", "ts", "v", "kind"]
RESERVED = {"id", "customerId", "issuedAt", *SYSTEM_PROPERTIES}
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=16)  # lone surrogates: item 4's poison
_NAMES = (st.sampled_from(OURS) | _TEXT).filter(lambda k: k not in RESERVED)
_SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | _TEXT
            | st.floats(allow_nan=False, allow_infinity=False))
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_NAMES, inner, max_size=4),
                     max_leaves=30)
BODIES = st.dictionaries(_NAMES, _JSON, max_size=8).filter(lambda d: marker_kind(d) is None)
TRIED = {"examples": 0, "documents": 0}


def _user(body: bytes) -> bytes:
    return canonical_json({k: v for k, v in json.loads(body).items() if k not in SYSTEM_PROPERTIES})


def _life_cycle(stack, database, bodies: list[dict]) -> None:
    with fresh_stores(stack, database) as (container, store):
        repo = repository(container, store)
        docs = []
        for i, body in enumerate(bodies):
            docs.append({**body, "id": f"f{i}", "customerId": f"cust-{i % 3}", "issuedAt": issued_at(i)})
            container.create_item(docs[-1])
        before = {d["id"]: canonical_json(container.read_item(d["id"], d["customerId"])) for d in docs}
        customers = sorted({d["customerId"] for d in docs})
        listed = {c: repo.list(c, page_size=1000).body() for c in customers}
        archive_and_purge_both(container, store)
        fresh = repository(container, store)
        for d in docs:
            record = fresh.get(d["id"], d["customerId"])
            assert (record.source, record.body) == ("archive", before[d["id"]]), d["id"]
        assert {c: fresh.list(c, page_size=1000).body() for c in customers} == listed
        for moment in PURGE_MOMENTS.values():
            restore_slice(container, store, slice_at(moment).slice_id, SETTINGS)
        for d in docs:
            restored = container.read_item(d["id"], d["customerId"])
            assert marker_kind(restored) is None and _user(canonical_json(restored)) == _user(before[d["id"]])
            assert _user(fresh.get(d["id"], d["customerId"]).body) == _user(before[d["id"]])
        TRIED["examples"] += 1
        TRIED["documents"] += len(docs)


@pytest.fixture(scope="module", autouse=True)
def _print_tried():
    yield
    print(f"\nlife cycle fuzz: {TRIED['examples']} examples, {TRIED['documents']} generated documents inserted, "
          "archived, purged, read, listed and restored byte-equal")


@settings(max_examples=2, **ARCHIVING_EXAMPLES)
@given(bodies=st.lists(BODIES, min_size=4, max_size=10))
@example(bodies=[{"_archived": {"slice": "2025/10/09", "sha256": "0" * 64}, "big": 2**64, "f": 1e300},
                 {"_archiveDeleted": 1, "text": "ü€😀\u0000", "deep": [[[{"a": [1, -0.0, 1.5e-300]}]]]},
                 {"_cosmosArchive": {"kind": "stub"}, "sha256": "x", "doc": None}, {}])
def test_generated_documents_survive_the_life_cycle_byte_equal(stack, cosmos_database, bodies):
    _life_cycle(stack, cosmos_database, bodies)


@pytest.mark.slow
@settings(max_examples=40, **ARCHIVING_EXAMPLES)
@given(bodies=st.lists(BODIES, min_size=2, max_size=12))
def test_generated_documents_survive_the_life_cycle_many_examples(stack, cosmos_database, bodies):
    _life_cycle(stack, cosmos_database, bodies)
