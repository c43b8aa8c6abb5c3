"""The purge's second way back (archive.replica, archive.protection) on the local stack: a slice is purged only
with a hash-verified replica (Azurite has no versioning) or a protected storage account, and the scrub repairs a
damaged part of a purged slice from its replica, byte for byte."""

from __future__ import annotations

import dataclasses

import pytest
from azure.mgmt.storage.models import (
    BlobContainer,
    BlobServiceProperties,
    DeleteRetentionPolicy,
    ImmutableStorageWithVersioning,
)
from test_purge import DAY, SETTINGS, in_cosmos, left_in_range

from include.cosmos_archiver.archive.protection import StorageProtection, protection_from
from include.cosmos_archiver.archive.replica import replica_store
from include.cosmos_archiver.archive.scrub import is_damaged, scrub_archive
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.purge import NoWayBackError, purge_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.source.preflight import PreflightError, check_way_back

ACCOUNT = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/archive"


@pytest.fixture
def seeded(cosmos_container):
    from test_purge import documents

    for doc in documents():
        cosmos_container.upsert_item(doc)
    return cosmos_container


def _verified(container, store, settings) -> None:
    copy_slice(container, store, DAY, settings)
    assert validate_slice(container, store, DAY, settings).ok


def test_purge_writes_a_verified_replica_and_the_scrub_repairs_a_damaged_part_from_it(seeded, archive_store):
    settings = dataclasses.replace(SETTINGS, blob_container=archive_store.container.container_name)
    _verified(seeded, archive_store, settings)
    result = purge_slice(seeded, archive_store, DAY, settings)
    assert result.purged == 24 and left_in_range(seeded) == 0  # the parts are now the records' only copy
    manifest = archive_store.read_manifest(DAY.slice_id)
    replica = replica_store(archive_store, settings)
    assert manifest.replica["generation"] == manifest.generation and manifest.replica["files"] == len(manifest.files)
    part = manifest.files[0].path
    original = archive_store.download(part)
    assert replica.download(part) == original  # written and read back before the first delete

    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    archive_store.upload(part, bytes(flipped))
    report = scrub_archive(archive_store, settings)
    (scrubbed,) = report.scrubbed
    assert scrubbed.status == "ok" and len(scrubbed.repaired) == 1, scrubbed.message()
    assert part in scrubbed.repaired[0] and "sha256" in scrubbed.message()
    assert archive_store.download(part) == original  # byte-exact
    assert not is_damaged(archive_store, DAY.slice_id)


def test_without_a_replica_the_scrub_names_the_purged_records_at_risk(seeded, archive_store):
    settings = dataclasses.replace(SETTINGS, blob_container=archive_store.container.container_name)
    _verified(seeded, archive_store, settings)
    purge_slice(seeded, archive_store, DAY, settings)
    manifest = archive_store.read_manifest(DAY.slice_id)
    part = manifest.files[0].path
    replica_store(archive_store, settings).delete(part)  # the replica's copy is gone too
    archive_store.upload(part, archive_store.download(part)[:-10])
    (scrubbed,) = scrub_archive(archive_store, settings).scrubbed
    text = scrubbed.message()
    assert scrubbed.status == "damaged" and "PURGED" in text and "at risk" in text and "no replica copy" in text
    assert any(f"{r.partition_key}/{r.id}" in text for r in manifest.records if r.file == 0)
    assert "NOT copied again" in text


def test_no_replica_and_no_protection_refuses_the_purge_and_names_the_settings(seeded, archive_store):
    settings = dataclasses.replace(SETTINGS, blob_container=archive_store.container.container_name,
                                   replica_container="")
    with pytest.raises(PreflightError, match=r"replica_container.*storage_account_id"):
        check_way_back(settings)
    _verified(seeded, archive_store, settings)
    before = in_cosmos(seeded)
    with pytest.raises(NoWayBackError, match="replica_container"):
        purge_slice(seeded, archive_store, DAY, settings)
    assert in_cosmos(seeded).keys() == before.keys()  # nothing deleted
    unprotected = StorageProtection(ACCOUNT, settings.blob_container)
    with pytest.raises(PreflightError, match="neither Blob versioning"):
        check_way_back(dataclasses.replace(settings, storage_account_id=ACCOUNT), unprotected)
    # an account that keeps versions is a way back of its own: the purge runs without a replica
    versioned = dataclasses.replace(unprotected, versioning=True)
    assert "Blob versioning" in check_way_back(settings, versioned)
    assert purge_slice(seeded, archive_store, DAY, settings, protection=versioned).purged == 24


def test_protection_is_read_from_the_arm_models():
    service = BlobServiceProperties(is_versioning_enabled=False,
                                    delete_retention_policy=DeleteRetentionPolicy(enabled=True, days=14))
    assert protection_from(ACCOUNT, "c", service, BlobContainer()).soft_delete_days == 14
    nothing = protection_from(ACCOUNT, "c", BlobServiceProperties(), BlobContainer())
    assert not nothing.protects and "neither Blob versioning" in nothing.describe()
    worm = BlobContainer(immutable_storage_with_versioning=ImmutableStorageWithVersioning(enabled=True))
    assert protection_from(ACCOUNT, "c", BlobServiceProperties(), worm).immutability
