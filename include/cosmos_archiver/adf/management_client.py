"""Management clients for the loopback ADF stand-in: its base URL, a static dummy bearer token, the local CA.

Only loopback URLs are accepted, so the dummy token can never be sent to a real endpoint. azure-core insists on
https for bearer tokens; the stand-in serves TLS with the local CA, and verification stays on.
"""

from __future__ import annotations

from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.mgmt.datafactory.aio import DataFactoryManagementClient as AsyncDataFactoryManagementClient

from include.cosmos_archiver.clients import ca_bundle
from include.cosmos_archiver.loopback import (
    AsyncStaticTokenCredential,
    LocalEndpointError,
    StaticTokenCredential,
    check_loopback_url,
)

__all__ = ["LocalEndpointError", "local_async_management_client", "local_management_client"]


def check_local_base_url(base_url: str) -> str:
    return check_loopback_url(base_url, what="local_base_url")


def _endpoint(base_url: str, ca_file: str | None) -> dict[str, object]:
    """The stand-in's URL (loopback only) and the CA file that verifies it (explicit, else the environment's)."""
    return {"base_url": check_local_base_url(base_url), "connection_verify": ca_file or ca_bundle() or True}


def local_management_client(
    base_url: str, subscription_id: str, *, ca_file: str | None = None
) -> DataFactoryManagementClient:
    return DataFactoryManagementClient(StaticTokenCredential(), subscription_id, **_endpoint(base_url, ca_file))


def local_async_management_client(
    base_url: str, subscription_id: str, *, ca_file: str | None = None
) -> AsyncDataFactoryManagementClient:
    credential = AsyncStaticTokenCredential()
    return AsyncDataFactoryManagementClient(credential, subscription_id, **_endpoint(base_url, ca_file))
