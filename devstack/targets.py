"""Point the CLI at the embedded local stack: its Cosmos DB and Blob endpoints (env-overridable)."""

from __future__ import annotations

import os

from azure.cosmos import ContainerProxy, PartitionKey

from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig, client_env
from include.cosmos_archiver.cli.targets import BLOB_CONNECTION_STRING_ENV, COSMOS_ENDPOINT_ENV, COSMOS_KEY_ENV
from include.cosmos_archiver.clients import cosmos_client
from include.cosmos_archiver.settings import ArchiveSettings


def use_local_stack() -> None:
    """Default the product CLI's environment (endpoints, keys, CA trust) to the local stack's; set values win.

    The local CA reaches the clients through COSMOS_ARCHIVE_CA_BUNDLE (read before REQUESTS_CA_BUNDLE by
    ``clients.ca_bundle``), so a shell-wide REQUESTS_CA_BUNDLE (e.g. the system bundle) does not hide it."""
    config = StackConfig.from_env()
    defaults = {
        **client_env(config),
        COSMOS_ENDPOINT_ENV: config.cosmos_endpoint,
        COSMOS_KEY_ENV: EMULATOR_COSMOS_KEY,
        BLOB_CONNECTION_STRING_ENV: config.blob_connection_string,
    }
    os.environ.update({k: v for k, v in defaults.items() if k not in os.environ})


def local_container(settings: ArchiveSettings, *, create: bool = False, bypass_gateway: bool = False) -> ContainerProxy:
    """The local container; ``bypass_gateway`` talks to cosmosdb-server directly (seeding is set-up, not load)."""
    use_local_stack()
    config = StackConfig.from_env()
    endpoint = config.cosmos_backend_endpoint if bypass_gateway else os.environ[COSMOS_ENDPOINT_ENV]
    client = cosmos_client(endpoint, os.environ[COSMOS_KEY_ENV], user_agent="cosmos-archive-cli")
    if create:
        database = client.create_database_if_not_exists(settings.database)
        return database.create_container_if_not_exists(settings.container, PartitionKey(settings.partition_key_path))
    return client.get_database_client(settings.database).get_container_client(settings.container)
