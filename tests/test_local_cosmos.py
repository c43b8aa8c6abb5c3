"""The local cosmosdb-server, as the dev kit loads it (devstack/cosmosdb_server_launcher.js), answers queries with
the documents as they are stored, as Azure does: what the copy reads through a query is what a point read returns."""

from __future__ import annotations

import json

from include.cosmos_archiver.archive.canonical import canonical_json

ODD_KEYS = {"id": "proto", "customerId": "c", "__proto__": {"polluted": True},
            "n": {"__proto__": True, "x": 1, "deep": [{"__proto__": None, "constructor": "c"}]}}


def test_a_query_returns_keys_named_like_javascript_internals_as_a_point_read_does(cosmos_container):
    cosmos_container.create_item(ODD_KEYS)
    read = cosmos_container.read_item("proto", partition_key="c")
    (queried,) = cosmos_container.query_items("SELECT * FROM c WHERE c.id = @id", enable_cross_partition_query=True,
                                              parameters=[{"name": "@id", "value": "proto"}])
    assert canonical_json(queried) == canonical_json(read)
    assert json.loads(canonical_json(queried))["n"] == ODD_KEYS["n"]
