"""Where the CLI's commands point: Cosmos DB and Blob Storage from environment variables.

``COSMOS_ARCHIVE_COSMOS_ENDPOINT`` and ``COSMOS_ARCHIVE_COSMOS_KEY`` (the account), and
``COSMOS_ARCHIVE_BLOB_CONNECTION_STRING`` (the archive's storage account). The dev kit's CLI
(``bin/cosmos-archive``) sets them for the local stack when they are not set.
"""

from __future__ import annotations

import os

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.clients import blob_container, cosmos_client
from include.cosmos_archiver.settings import ArchiveSettings

COSMOS_ENDPOINT_ENV = "COSMOS_ARCHIVE_COSMOS_ENDPOINT"
COSMOS_KEY_ENV = "COSMOS_ARCHIVE_COSMOS_KEY"
BLOB_CONNECTION_STRING_ENV = "COSMOS_ARCHIVE_BLOB_CONNECTION_STRING"


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise UsageError(f"environment variable {name} ({what}) is not set: export it, or run the dev kit's "
                         "bin/cosmos-archive, which points at the local stack")
    return value


def source_container(settings: ArchiveSettings, *, user_agent: str = "cosmos-archive-cli") -> ContainerProxy:
    client = cosmos_client(_env(COSMOS_ENDPOINT_ENV, "Cosmos DB account endpoint"),
                           _env(COSMOS_KEY_ENV, "Cosmos DB account key"), user_agent=user_agent)
    return client.get_database_client(settings.database).get_container_client(settings.container)


def archive_store(settings: ArchiveSettings) -> ArchiveStore:
    conn = _env(BLOB_CONNECTION_STRING_ENV, "the archive's Blob Storage connection string")
    return ArchiveStore(blob_container(conn, settings.blob_container), settings.blob_prefix)
