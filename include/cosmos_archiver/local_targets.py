"""Where the CLI's local commands point: the embedded stack's Cosmos DB and Blob endpoints (env-overridable)."""

from __future__ import annotations

import os

from azure.cosmos import ContainerProxy, PartitionKey

from .archive_store import ArchiveStore
from .clients import blob_container, cosmos_client
from .local.stack import EMULATOR_COSMOS_KEY, StackConfig, client_env
from .settings import ArchiveSettings


def local_container(settings: ArchiveSettings, *, create: bool = False, bypass_gateway: bool = False) -> ContainerProxy:
    """The local container; ``bypass_gateway`` talks to cosmosdb-server directly (seeding is set-up, not load)."""
    config = StackConfig.from_env()
    os.environ.update({k: v for k, v in client_env(config).items() if k not in os.environ})
    default = config.cosmos_backend_endpoint if bypass_gateway else config.cosmos_endpoint
    client = cosmos_client(os.environ.get("COSMOS_ARCHIVE_COSMOS_ENDPOINT", default),
                           os.environ.get("COSMOS_ARCHIVE_COSMOS_KEY", EMULATOR_COSMOS_KEY),
                           user_agent="cosmos-archive-cli")
    if create:
        database = client.create_database_if_not_exists(settings.database)
        return database.create_container_if_not_exists(settings.container, PartitionKey(settings.partition_key_path))
    return client.get_database_client(settings.database).get_container_client(settings.container)


def local_store(settings: ArchiveSettings) -> ArchiveStore:
    conn = os.environ.get("COSMOS_ARCHIVE_BLOB_CONNECTION_STRING", StackConfig.from_env().blob_connection_string)
    return ArchiveStore(blob_container(conn, settings.blob_container), settings.blob_prefix)
