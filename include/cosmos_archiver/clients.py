"""Build azure-cosmos and azure-storage-blob clients the same way everywhere.

azure-cosmos silently turns TLS verification off for ``localhost``/``127.0.0.1`` unless an ``ssl_config`` is
given, so for a local endpoint we pass the local CA bundle explicitly: verification stays on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from azure.cosmos import ContainerProxy, CosmosClient, documents
from azure.storage.blob import BlobServiceClient, ContainerClient

ARCHIVER_USER_AGENT = "cosmos-archive"


@dataclass(frozen=True)
class CosmosTarget:
    endpoint: str
    key: str
    database: str
    container: str
    partition_key_path: str = "/customerId"


def _ca_bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")


def cosmos_client(
    endpoint: str,
    key: str,
    *,
    user_agent: str = ARCHIVER_USER_AGENT,
    priority: str | None = None,
    throughput_bucket: int | None = None,
) -> CosmosClient:
    """A CosmosClient that verifies TLS (also on loopback) and identifies the archiver's traffic."""
    kwargs: dict[str, object] = {"user_agent_suffix": user_agent}
    host = urlparse(endpoint).hostname
    bundle = _ca_bundle()
    if host in ("localhost", "127.0.0.1") and bundle:
        kwargs["connection_verify"] = bundle
        kwargs["ssl_config"] = documents.SSLConfiguration()
    if priority is not None:
        kwargs["priority"] = priority
    if throughput_bucket is not None:
        kwargs["throughput_bucket"] = throughput_bucket
    return CosmosClient(endpoint, credential=key, **kwargs)


def cosmos_container(target: CosmosTarget, **client_kwargs: object) -> ContainerProxy:
    client = cosmos_client(target.endpoint, target.key, **client_kwargs)  # type: ignore[arg-type]
    return client.get_database_client(target.database).get_container_client(target.container)


def blob_container(connection_string: str, container: str, *, create: bool = True) -> ContainerClient:
    service = BlobServiceClient.from_connection_string(connection_string)
    client = service.get_container_client(container)
    if create and not client.exists():
        client.create_container()
    return client
