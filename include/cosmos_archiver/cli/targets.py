"""Where the CLI's commands point: Cosmos DB and Blob Storage from environment variables.

``COSMOS_ARCHIVE_COSMOS_ENDPOINT`` and ``COSMOS_ARCHIVE_COSMOS_KEY`` (the account), and
``COSMOS_ARCHIVE_BLOB_CONNECTION_STRING`` (the archive's storage account). The dev kit's CLI
(``bin/cosmos-archive``) sets them for the local stack when they are not set.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.clients import blob_container, cosmos_client
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.source.preflight import require_container

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
    """The settings' container; a PreflightError names database and container when either does not exist."""
    client = cosmos_client(_env(COSMOS_ENDPOINT_ENV, "Cosmos DB account endpoint"),
                           _env(COSMOS_KEY_ENV, "Cosmos DB account key"), user_agent=user_agent,
                           consistency_level=settings.read_consistency)
    container = client.get_database_client(settings.database).get_container_client(settings.container)
    require_container(container, settings.database, settings.container)
    return container


def archive_store(settings: ArchiveSettings) -> ArchiveStore:
    conn = _env(BLOB_CONNECTION_STRING_ENV, "the archive's Blob Storage connection string")
    return ArchiveStore(blob_container(conn, settings.blob_container), settings.blob_prefix)


def endpoint_named(host_port: str) -> str:
    """``host:port`` as the configured endpoint it is (Cosmos DB or Blob Storage, and the variable that says so)."""
    blob = re.search(r"BlobEndpoint=([^;]+)", os.environ.get(BLOB_CONNECTION_STRING_ENV, ""))
    for name, what, url in ((COSMOS_ENDPOINT_ENV, "Cosmos DB", os.environ.get(COSMOS_ENDPOINT_ENV, "")),
                            (BLOB_CONNECTION_STRING_ENV, "Blob Storage", blob.group(1) if blob else "")):
        parsed = urlparse(url)
        if parsed.netloc and parsed.netloc == host_port:
            return f"{what} at {parsed.scheme}://{parsed.netloc}{parsed.path or '/'} (from ${name})"
    return host_port
