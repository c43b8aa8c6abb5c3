"""Restore against the local stack: purged records come back as they were, nothing in Cosmos is overwritten."""

from __future__ import annotations

import json

import pytest

from devstack import drills
from devstack.stack import EMULATOR_COSMOS_KEY
from include.cosmos_archiver.cli.main import main
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.purge import purge_slice
from include.cosmos_archiver.pipeline.restore import (
    SYSTEM_PROPERTIES,
    RestoreError,
    RestoreIntegrityError,
    restore_records,
    restore_slice,
)
from include.cosmos_archiver.pipeline.validate import validate_slice
from tests.test_purge import DAY, OUTSIDE, SETTINGS, documents, in_cosmos


def _user_fields(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in SYSTEM_PROPERTIES}


@pytest.fixture
def purged(cosmos_container, archive_store):
    for doc in documents(12):
        cosmos_container.upsert_item(doc)
    originals = {d["id"]: _user_fields(d) for d in in_cosmos(cosmos_container).values() if d["id"] not in OUTSIDE}
    copy_slice(cosmos_container, archive_store, DAY, SETTINGS)
    assert validate_slice(cosmos_container, archive_store, DAY, SETTINGS).ok
    return cosmos_container, originals


def test_restore_of_a_purged_slice_gives_back_the_originals_and_overwrites_nothing(purged, archive_store):
    container, originals = purged
    purge_slice(container, archive_store, DAY, SETTINGS)
    recreated = {"id": "inv-004", "customerId": "c-0", "issuedAt": "2025-03-01T04:00:00.000Z", "amount": "new"}
    container.create_item(recreated)

    result = restore_slice(container, archive_store, DAY.slice_id, SETTINGS)

    assert result.exists == ["c-0/inv-004"] and len(result.restored) == len(originals) - 1, result.message()
    assert "NOT overwritten" in result.message() and result.ru_charged > 0
    now = {k: _user_fields(v) for k, v in in_cosmos(container).items() if k not in OUTSIDE}
    assert now["inv-004"]["amount"] == "new"  # re-created meanwhile: kept as it is
    del now["inv-004"], originals["inv-004"]
    assert now == originals  # equal to the originals minus system properties


def test_restore_replaces_stubs_and_named_records_only(purged, archive_store):
    container, originals = purged
    purge_slice(container, archive_store, DAY, SETTINGS, mode="stub")

    result = restore_records(container, archive_store, [("c-1", "inv-005"), ("c-2", "inv-006")], SETTINGS)

    assert sorted(result.restored) == ["c-1/inv-005", "c-2/inv-006"] and not result.exists
    now = in_cosmos(container)
    assert _user_fields(now["inv-005"]) == originals["inv-005"] and "_archived" not in now["inv-005"]
    assert "_archived" in now["inv-007"]  # not asked for: still a stub


def test_unknown_slice_or_record_and_a_damaged_archive_write_nothing(purged, archive_store):
    container, _ = purged
    purge_slice(container, archive_store, DAY, SETTINGS)
    with pytest.raises(RestoreError, match="unknown slice '2025/03/09'"):
        restore_slice(container, archive_store, "2025/03/09", SETTINGS)
    with pytest.raises(RestoreError, match="c-1/nope"):
        restore_records(container, archive_store, [("c-1", "inv-005"), ("c-1", "nope")], SETTINGS)
    drills.corrupt_slice(archive_store, DAY.slice_id)
    with pytest.raises(RestoreIntegrityError, match="nothing of it was restored"):
        restore_slice(container, archive_store, DAY.slice_id, SETTINGS)
    assert set(in_cosmos(container)) == set(OUTSIDE)


def test_cli_restore(purged, archive_store, stack, monkeypatch, capsys):
    container, originals = purged
    purge_slice(container, archive_store, DAY, SETTINGS)
    monkeypatch.setenv("COSMOS_ARCHIVE_COSMOS_ENDPOINT", stack.cosmos_endpoint)
    monkeypatch.setenv("COSMOS_ARCHIVE_COSMOS_KEY", EMULATOR_COSMOS_KEY)
    monkeypatch.setenv("COSMOS_ARCHIVE_BLOB_CONNECTION_STRING", stack.blob_connection_string)
    settings = json.dumps({"database": "tests", "container": container.id, "timestamp_field": "issuedAt",
                           "timestamp_kind": "iso8601", "blob_container": archive_store.container.container_name})

    assert main(["restore", "--settings-json", settings, "--ids", "c-1/inv-001,c-1/missing"]) == 2
    assert "c-1/missing" in capsys.readouterr().err
    assert main(["restore", "--settings-json", settings]) == 2
    assert "--slice ID or --ids" in capsys.readouterr().err
    assert main(["restore", "--settings-json", settings, "--ids", "c-1/inv-001"]) == 0
    assert "restored 1 record(s)" in capsys.readouterr().out
    assert main(["restore", "--settings-json", settings, "--slice", DAY.slice_id]) == 0
    out = capsys.readouterr().out
    assert f"restored {len(originals) - 1} record(s)" in out and "c-1/inv-001" in out  # already back: reported
    assert {k: _user_fields(v) for k, v in in_cosmos(container).items() if k not in OUTSIDE} == originals


def test_restore_gives_back_the_newest_version_of_a_record_archived_twice(purged, archive_store):
    container, originals = purged
    container.upsert_item({**originals["inv-005"], "amount": "second version"})
    assert purge_slice(container, archive_store, DAY, SETTINGS).changed == 1
    assert copy_slice(container, archive_store, DAY, SETTINGS).generation == 1
    assert validate_slice(container, archive_store, DAY, SETTINGS).ok
    purge_slice(container, archive_store, DAY, SETTINGS)
    manifest = archive_store.read_manifest(DAY.slice_id)
    assert sum(r.id == "inv-005" for r in manifest.records) == 2 and manifest.record_count == len(originals)

    result = restore_slice(container, archive_store, DAY.slice_id, SETTINGS)

    assert len(result.restored) == len(originals)
    assert container.read_item("inv-005", partition_key="c-1")["amount"] == "second version"


def test_a_restore_run_again_recognises_what_it_wrote_itself(purged, archive_store):
    """A restore killed half way and run again: what it wrote (same sha256) is "already restored", not a record
    to compare by hand; a record changed since is still left as it is and named."""
    container, originals = purged
    purge_slice(container, archive_store, DAY, SETTINGS)
    first = restore_records(container, archive_store, [("c-1", "inv-005"), ("c-2", "inv-006")], SETTINGS)
    assert len(first.restored) == 2
    container.upsert_item({**originals["inv-006"], "amount": "changed by hand"})

    again = restore_slice(container, archive_store, DAY.slice_id, SETTINGS)

    assert again.already == ["c-1/inv-005"] and again.exists == ["c-2/inv-006"], again.message()
    assert len(again.restored) == len(originals) - 2
    assert "1 already restored" in again.message() and "compare them with the archive by hand" in again.message()
