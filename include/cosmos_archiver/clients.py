"""Build azure-cosmos and azure-storage-blob clients the same way everywhere.

azure-cosmos silently turns TLS verification off for ``localhost``/``127.0.0.1`` unless an ``ssl_config`` is
given, so for a local endpoint we pass the local CA bundle explicitly: verification stays on.
"""

from __future__ import annotations

import os

from azure.cosmos import CosmosClient, documents
from azure.storage.blob import BlobServiceClient, ContainerClient

from include.cosmos_archiver.loopback import is_loopback

ARCHIVER_USER_AGENT = "cosmos-archive"


def ca_bundle() -> str | None:
    """The CA file that verifies loopback endpoints (the local CA): REQUESTS_CA_BUNDLE, else SSL_CERT_FILE."""
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
    bundle = ca_bundle()
    if is_loopback(endpoint) and bundle:
        kwargs["connection_verify"] = bundle
        kwargs["ssl_config"] = documents.SSLConfiguration()
    if priority is not None:
        kwargs["priority"] = priority
    if throughput_bucket is not None:
        kwargs["throughput_bucket"] = throughput_bucket
    return CosmosClient(endpoint, credential=key, **kwargs)


def blob_container(connection_string: str, container: str, *, create: bool = True) -> ContainerClient:
    service = BlobServiceClient.from_connection_string(connection_string)
    client = service.get_container_client(container)
    if create and not client.exists():
        client.create_container()
    return client
