"""Does the storage account itself keep a way back for the archive's blobs? Read from Azure Resource Manager.

A purge needs every part of a slice recoverable without Cosmos DB (archive.replica). The account provides that
when one of these is on (Microsoft Learn, "Data protection overview" for Blob Storage):

- *Blob versioning* (``BlobServiceProperties.isVersioningEnabled``): an overwrite keeps the previous version;
- *Blob soft delete* (``deleteRetentionPolicy.enabled``/``days``): a deleted blob, and the state an overwrite
  replaced (a soft-deleted snapshot, when versioning is off), can be restored within the retention;
- an *immutability policy* on the archive container (``BlobContainer.hasImmutabilityPolicy``, or version-level
  immutability ``immutableStorageWithVersioning.enabled``): protected blobs cannot be changed or deleted.

Read with azure-mgmt-storage (``blob_services.get_service_properties``, ``blob_containers.get``); the identity
needs a role with ``Microsoft.Storage/storageAccounts/blobServices/read`` and ``.../containers/read`` (e.g.
Reader). The local stack's Azurite has no ARM endpoint and no versioning: locally the replica is the way back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from include.cosmos_archiver.errors import TerminalError


class ProtectionReadError(TerminalError, RuntimeError):
    """The account's protection could not be read (wrong id, missing role): nothing is purged on a guess."""


@dataclass(frozen=True)
class StorageProtection:
    account_id: str
    container: str
    versioning: bool = False
    soft_delete_days: int | None = None  # None: blob soft delete off
    immutability: bool = False  # a container policy or version-level immutability

    @property
    def protects(self) -> bool:
        return self.versioning or self.soft_delete_days is not None or self.immutability

    def describe(self) -> str:
        on = [name for name, enabled in (("Blob versioning", self.versioning),
                                         (f"soft delete ({self.soft_delete_days} days)", self.soft_delete_days),
                                         ("an immutability policy", self.immutability)) if enabled]
        where = f"storage account {self.account_id.rsplit('/', 1)[-1]}, container {self.container}"
        if on:
            return f"{where} keeps a way back: {', '.join(on)}"
        return (f"{where} has neither Blob versioning, nor blob soft delete, nor an immutability policy on the "
                "container: a damaged or deleted part could not be recovered")


def protection_from(account_id: str, container: str, service: Any, blob_container: Any) -> StorageProtection:
    """The protection the ARM models say (``BlobServiceProperties``, ``BlobContainer``) is on."""
    retention = getattr(service, "delete_retention_policy", None)
    versioned_immutability = getattr(blob_container, "immutable_storage_with_versioning", None)
    return StorageProtection(
        account_id=account_id,
        container=container,
        versioning=bool(getattr(service, "is_versioning_enabled", False)),
        soft_delete_days=(retention.days or 1) if retention is not None and retention.enabled else None,
        immutability=bool(getattr(blob_container, "has_immutability_policy", False)
                          or (versioned_immutability is not None and versioned_immutability.enabled)),
    )


def read_protection(account_id: str, container: str, credential: Any = None) -> StorageProtection:
    """Read the account's Blob service properties and the archive container's policies from ARM."""
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.core.tools import parse_resource_id
    from azure.mgmt.storage import StorageManagementClient

    parts = parse_resource_id(account_id)
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    client = StorageManagementClient(credential, parts["subscription"])
    try:
        service = client.blob_services.get_service_properties(parts["resource_group"], parts["name"])
        blob_container = client.blob_containers.get(parts["resource_group"], parts["name"], container)
    except HttpResponseError as exc:
        raise ProtectionReadError(
            f"could not read the protection of storage account {account_id} (container {container}): "
            f"{exc.status_code} {exc.reason}. Check storage_account_id and give the Airflow identity Reader on the "
            "account, or set replica_container so a verified replica is the purge's way back"
        ) from exc
    return protection_from(account_id, container, service, blob_container)
