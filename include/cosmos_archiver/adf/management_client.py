"""Management clients for the loopback ADF stand-in: its base URL, a static dummy bearer token, the local CA.

Only loopback URLs are accepted, so the dummy token can never be sent to a real endpoint. azure-core insists on
https for bearer tokens; the stand-in serves TLS with the local CA, and verification stays on.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlparse

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.mgmt.datafactory.aio import DataFactoryManagementClient as AsyncDataFactoryManagementClient

from include.cosmos_archiver.errors import TerminalError

LOCAL_TOKEN = "cosmos-archive-local-dummy-token"  # not a secret: the stand-in accepts any bearer token
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class LocalEndpointError(TerminalError, ValueError):
    pass


def _expires() -> int:
    return int(time.time()) + 3600


class StaticTokenCredential:
    """A TokenCredential returning a fixed dummy token (loopback stand-in only)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(LOCAL_TOKEN, _expires())

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(LOCAL_TOKEN, _expires())


class AsyncStaticTokenCredential:
    """The async counterpart of :class:`StaticTokenCredential`."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(LOCAL_TOKEN, _expires())

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(LOCAL_TOKEN, _expires())

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> AsyncStaticTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def check_local_base_url(base_url: str) -> str:
    parsed = urlparse(base_url)
    if parsed.scheme != "https" or parsed.hostname not in LOOPBACK_HOSTS or parsed.port is None:
        raise LocalEndpointError(
            f"local_base_url={base_url!r} must be https://127.0.0.1:<port> (the loopback ADF stand-in); "
            "remove it from the connection to use Azure"
        )
    return base_url.rstrip("/")


def ca_bundle(explicit: str | None = None) -> str | bool:
    """The CA file that verifies the stand-in: explicit, else REQUESTS_CA_BUNDLE / SSL_CERT_FILE, else the system's."""
    return explicit or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True


def local_management_client(
    base_url: str, subscription_id: str, *, ca_file: str | None = None
) -> DataFactoryManagementClient:
    return DataFactoryManagementClient(
        StaticTokenCredential(),
        subscription_id,
        base_url=check_local_base_url(base_url),
        connection_verify=ca_bundle(ca_file),
    )


def local_async_management_client(
    base_url: str, subscription_id: str, *, ca_file: str | None = None
) -> AsyncDataFactoryManagementClient:
    return AsyncDataFactoryManagementClient(
        AsyncStaticTokenCredential(),
        subscription_id,
        base_url=check_local_base_url(base_url),
        connection_verify=ca_bundle(ca_file),
    )
