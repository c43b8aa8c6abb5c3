"""A wrong setting cannot seal the archive: preflight names a wrong timestamp field (with a sample document's keys)
and a missing database/container in one try; a slice sealed anyway is re-opened, re-archived and verified with
the new content, the old copy kept until then."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from devstack.stack import EMULATOR_COSMOS_KEY
from include.cosmos_archiver.archive.scrub import is_damaged, scrub_slice
from include.cosmos_archiver.cli.main import main
from include.cosmos_archiver.cli.targets import BLOB_CONNECTION_STRING_ENV, COSMOS_ENDPOINT_ENV, COSMOS_KEY_ENV
from include.cosmos_archiver.clients import cosmos_client
from include.cosmos_archiver.pipeline import reopen as reopen_module
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.reopen import ReopenError, parse_slice_range, reopen_slices
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.preflight import PreflightError, check_source

DAY = TimeSlice(dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))


def settings_for(container, **overrides) -> ArchiveSettings:
    values = {"database": "tests", "container": container.id, "timestamp_field": "issuedAt",
              "timestamp_kind": "iso8601", **overrides}
    return ArchiveSettings(**values)


@pytest.fixture
def seeded(cosmos_container):
    for i in range(6):
        cosmos_container.upsert_item({"id": f"r{i}", "customerId": f"c{i % 2}",
                                      "issuedAt": f"2025-03-01T{i:02d}:00:00.000Z", "amount": i})
    return cosmos_container


def test_a_wrong_timestamp_field_fails_preflight_naming_it_and_a_documents_keys(seeded):
    with pytest.raises(PreflightError) as failure:
        check_source(seeded, settings_for(seeded, timestamp_field="createdAt"))
    message = str(failure.value)
    assert "timestamp_field='createdAt'" in message and "timestamp missing" in message
    assert "['amount', 'customerId', 'id', 'issuedAt']" in message


def test_a_wrong_timestamp_kind_fails_preflight(seeded):
    with pytest.raises(PreflightError, match="timestamp wrong kind"):
        check_source(seeded, settings_for(seeded, timestamp_kind="epoch_seconds"))


def test_a_wrong_partition_key_path_fails_preflight(seeded):
    with pytest.raises(PreflightError, match=r"by '/customerId', but the setting partition_key_path is '/tenantId'"):
        check_source(seeded, settings_for(seeded, partition_key_path="/tenantId"))


def test_good_settings_pass_and_say_so(seeded):
    result = check_source(seeded, settings_for(seeded))
    assert result.sampled == 6 and result.good == 6 and "6 of 6" in result.line()


@pytest.mark.parametrize(("database", "container"), [("tests", "no-such-container"), ("no-such-db", "records")])
def test_a_missing_container_fails_preflight_in_one_try_naming_database_and_container(stack, database, container):
    proxy = cosmos_client(stack.cosmos_endpoint, EMULATOR_COSMOS_KEY).get_database_client(
        database).get_container_client(container)
    began = time.monotonic()
    with pytest.raises(PreflightError) as failure:
        check_source(proxy, ArchiveSettings(database=database, container=container))
    assert time.monotonic() - began < 5
    assert f"database {database!r}, container {container!r}" in str(failure.value)
    assert "does not exist" in str(failure.value)


def test_reopen_rearchives_a_sealed_slice_keeping_the_old_copy_until_verified(seeded, archive_store, monkeypatch):
    wrong = settings_for(seeded, timestamp_field="createdAt")
    copy_slice(seeded, archive_store, DAY, wrong)
    assert validate_slice(seeded, archive_store, DAY, wrong).ok  # sealed with 0 records under the wrong field
    old = archive_store.read_manifest(DAY.slice_id)
    assert old.status == "verified" and old.record_count == 0
    right = settings_for(seeded)
    seen_at_validation: list[list[str]] = []
    real_validate = reopen_module.validate_slice

    def observing_validate(*args, **kwargs):
        seen_at_validation.append(sorted(b.name for b in archive_store.container.list_blobs()))
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(reopen_module, "validate_slice", observing_validate)
    (result,) = reopen_slices(seeded, archive_store, parse_slice_range("2025-03-01", 24), right)

    assert result.verified and result.records_before == 0 and result.records_after == 6, result.message
    kept = [n for n in seen_at_validation[0] if "/_reopened/2025/03/01/" in n]
    assert [n.rsplit("/", 1)[1] for n in kept] == ["manifest.json"]  # the old (empty) copy, kept while validating
    new = archive_store.read_manifest(DAY.slice_id)
    assert new.status == "verified" and {r.id for r in new.records} == {f"r{i}" for i in range(6)}
    assert not [b.name for b in archive_store.container.list_blobs() if "_reopened" in b.name]
    assert archive_store.manifest_statuses() == {DAY.slice_id: "verified"}


def test_a_reopen_whose_new_copy_fails_keeps_the_old_copy(seeded, archive_store, monkeypatch):
    right = settings_for(seeded)
    copy_slice(seeded, archive_store, DAY, right)
    assert validate_slice(seeded, archive_store, DAY, right).ok
    old_digest = archive_store.read_manifest(DAY.slice_id).slice_digest
    real_copy = reopen_module.copy_slice

    def copy_then_change_source(*args, **kwargs):
        manifest = real_copy(*args, **kwargs)
        # Deleted after its copy: an archived record Cosmos DB no longer holds fails validation (an update would
        # only be a changed record, which is no failure since issue 16).
        seeded.delete_item("r0", partition_key="c0")
        return manifest

    monkeypatch.setattr(reopen_module, "copy_slice", copy_then_change_source)
    (result,) = reopen_slices(seeded, archive_store, [DAY], right)

    assert not result.verified and result.kept_copy and "c0/r0" in result.message
    kept = archive_store.download(f"{result.kept_copy}/manifest.json")
    assert old_digest.encode() in kept
    assert {b.name.rsplit("/", 1)[1] for b in archive_store.container.list_blobs(
        name_starts_with=result.kept_copy)} == {"manifest.json", "part-00000.parquet"}


def test_reopen_clears_a_scrub_mark_and_the_cli_takes_a_range(seeded, archive_store, stack, monkeypatch, capsys):
    right = settings_for(seeded, blob_container=archive_store.container.container_name)
    copy_slice(seeded, archive_store, DAY, right)
    assert validate_slice(seeded, archive_store, DAY, right).ok
    part = archive_store.read_manifest(DAY.slice_id).files[0].path
    archive_store.upload(part, archive_store.download(part)[:-10])
    assert scrub_slice(archive_store, DAY.slice_id, right).status == "damaged"
    assert is_damaged(archive_store, DAY.slice_id)
    monkeypatch.setenv(COSMOS_ENDPOINT_ENV, stack.cosmos_endpoint)
    monkeypatch.setenv(COSMOS_KEY_ENV, EMULATOR_COSMOS_KEY)
    monkeypatch.setenv(BLOB_CONNECTION_STRING_ENV, stack.blob_connection_string)
    settings_json = json.dumps({"database": "tests", "container": seeded.id, "timestamp_field": "issuedAt",
                                "timestamp_kind": "iso8601", "blob_container": right.blob_container})

    assert main(["reopen", "--settings-json", settings_json, "--slices", "2025/03/01..2025/03/01"]) == 0

    assert "verified again with 6 records" in capsys.readouterr().out
    assert not is_damaged(archive_store, DAY.slice_id)
    assert main(["summary", "--settings-json", settings_json]) == 0


def test_slice_ranges_are_parsed_inclusively_and_bad_ones_named():
    ids = [s.slice_id for s in parse_slice_range("2026/02/25..2026-02-27", 24)]
    assert ids == ["2026/02/25", "2026/02/26", "2026/02/27"]
    assert [s.slice_id for s in parse_slice_range("2026/02/25/06..2026/02/25/07", 1)] == ["2026/02/25/06",
                                                                                         "2026/02/25/07"]
    with pytest.raises(ReopenError, match="'last week'"):
        parse_slice_range("last week..2026-02-27", 24)
    with pytest.raises(ReopenError, match="ends before it starts"):
        parse_slice_range("2026-02-27..2026-02-25", 24)
