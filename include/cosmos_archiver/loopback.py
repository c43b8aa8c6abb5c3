"""What the product needs to talk to a loopback stand-in (the local RU gateway, the ADF stand-in) instead of Azure.

Only loopback URLs get the dummy token (:func:`check_loopback_url`), so it can never be sent to a real endpoint;
TLS verification stays on (the stand-ins serve TLS signed by the local CA: :func:`clients.ca_bundle`). On Azure
none of this is used: the SDKs' own credentials (``DefaultAzureCredential``) and endpoints apply.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

from azure.core.credentials import AccessToken, AccessTokenInfo

from include.cosmos_archiver.errors import TerminalError

LOCAL_TOKEN = "cosmos-archive-local-dummy-token"  # not a secret: the stand-ins accept any bearer token
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# The subscription in the stand-ins' ARM-shaped paths and ids (they accept any); Azure's ids are never all zero.
LOCAL_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
TOKEN_LIFETIME_S = 3600


class LocalEndpointError(TerminalError, ValueError):
    """A URL given for a loopback stand-in is not a loopback https URL."""


def is_loopback(url: str) -> bool:
    return urlparse(url).hostname in LOOPBACK_HOSTS


def check_loopback_url(url: str, *, what: str) -> str:
    """``url`` without its trailing slash if it is ``https://<loopback host>:<port>``, else LocalEndpointError."""
    parsed = urlparse(url)
    if parsed.scheme != "https" or parsed.hostname not in LOOPBACK_HOSTS or parsed.port is None:
        raise LocalEndpointError(
            f"{what}={url!r} must be https://127.0.0.1:<port> (a loopback stand-in); remove it to use Azure"
        )
    return url.rstrip("/")


def _expires() -> int:
    return int(time.time()) + TOKEN_LIFETIME_S


class StaticTokenCredential:
    """A TokenCredential returning a fixed dummy token, for loopback stand-ins only; on Azure use
    DefaultAzureCredential."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(LOCAL_TOKEN, _expires())

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(LOCAL_TOKEN, _expires())

    def close(self) -> None:
        return None


class AsyncStaticTokenCredential:
    """The async counterpart of :class:`StaticTokenCredential` (the provider's trigger uses async clients)."""

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
