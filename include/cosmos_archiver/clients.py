"""Build azure-cosmos and azure-storage-blob clients the same way everywhere.

azure-cosmos silently turns TLS verification off for ``localhost``/``127.0.0.1`` unless an ``ssl_config`` is
given, so for a local endpoint we pass the local CA bundle explicitly: verification stays on.

Both SDKs retry an unreachable or throttling endpoint on their own; :class:`EndpointPatience` bounds how long
(so a dead endpoint fails the task in bounded time, the error naming the endpoint), and :func:`waiting_for`
logs a progress line every 30 s while a call is still waiting, so an outage is visible in the task log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from azure.cosmos import CosmosClient, documents
from azure.storage.blob import BlobServiceClient, ContainerClient, ExponentialRetry

from include.cosmos_archiver.loopback import is_loopback
from include.cosmos_archiver.ru.throttles import observe_response

log = logging.getLogger(__name__)
ARCHIVER_USER_AGENT = "cosmos-archive"
PROGRESS_EVERY_S = 30.0


@dataclass(frozen=True)
class EndpointPatience:
    """How long an SDK call keeps retrying an endpoint that does not answer before it fails.

    ``connect_timeout_s``: one connection attempt; ``retries`` with exponential backoff capped at ``backoff_max_s``
    (the SDKs' own retry policies); ``total_s``: the whole call's bound (azure-cosmos' client-side ``timeout``).
    Throttling (HTTP 429) is retried by azure-cosmos on its own count (``retry_throttle_total``) and wait cap.
    """

    total_s: float = 180.0
    connect_timeout_s: float = 10.0
    backoff_max_s: float = 15.0
    retries: int = 12
    throttle_retries: int = 9
    throttle_wait_max_s: float = 30.0

    def cosmos_kwargs(self) -> dict[str, Any]:
        return {
            "connection_timeout": self.connect_timeout_s,
            "timeout": self.total_s,
            "retry_total": self.retries,
            "retry_connect": self.retries,
            "retry_read": self.retries,
            "retry_backoff_max": self.backoff_max_s,
            "retry_throttle_total": self.throttle_retries,
            "retry_throttle_backoff_max": self.throttle_wait_max_s,
        }

    def backoffs(self) -> list[float]:
        """The waits between attempts: 1, 2, 4 ... s capped at ``backoff_max_s``, as many as fit ``total_s`` with
        every attempt taking its whole ``connect_timeout_s`` (an endpoint that drops packets)."""
        waits: list[float] = []
        while len(waits) < self.retries:
            wait = min(2.0 ** len(waits), self.backoff_max_s)
            if sum(waits) + wait + (len(waits) + 2) * self.connect_timeout_s > self.total_s:
                break
            waits.append(wait)
        return waits

    def blob_kwargs(self) -> dict[str, Any]:
        return {"retry_policy": BoundedBlobRetry(self), "connection_timeout": self.connect_timeout_s}

    @classmethod
    def from_settings(cls, settings: Any) -> EndpointPatience:
        """From the archive settings' ``endpoint_timeout_s`` (the other values keep their defaults)."""
        return cls(total_s=float(settings.endpoint_timeout_s))


class BoundedBlobRetry(ExponentialRetry):
    """azure-storage-blob's exponential retry with its waits capped (:meth:`EndpointPatience.backoffs`, so a dead
    endpoint fails within about ``total_s``) and a log line naming the endpoint before every retry."""

    def __init__(self, patience: EndpointPatience) -> None:
        self._waits = patience.backoffs()
        super().__init__(initial_backoff=1, increment_base=2, retry_total=len(self._waits), random_jitter_range=0)

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        return self._waits[min(settings["count"], len(self._waits)) - 1] if self._waits else 0.0

    def increment(self, settings: dict[str, Any], request: Any, response: Any = None, error: Any = None) -> bool:
        retrying = super().increment(settings, request, response, error)
        cause = error.__class__.__name__ if error else f"HTTP {getattr(response.http_response, 'status_code', '?')}"
        url = urlparse(getattr(request, "http_request", request).url)  # the storage policy passes the HttpRequest
        where = f"{url.scheme}://{url.netloc}{url.path}"
        if retrying:
            log.warning("Blob Storage at %s: %s; retry %d of %d in %.0f s", where, cause, settings["count"],
                        len(self._waits), self.get_backoff_time(settings))
        elif error is not None:
            log.error("Blob Storage at %s: %s; giving up after %d retries", where, cause, len(self._waits))
        return retrying


DEFAULT_PATIENCE = EndpointPatience()
_PATIENCE_ATTR = "_cosmos_archive_patience"


CA_BUNDLE_ENV = "COSMOS_ARCHIVE_CA_BUNDLE"


def ca_bundle() -> str | None:
    """The CA file that verifies loopback endpoints (the local CA): COSMOS_ARCHIVE_CA_BUNDLE, else
    REQUESTS_CA_BUNDLE, else SSL_CERT_FILE. The project's own variable comes first so that a shell-wide
    REQUESTS_CA_BUNDLE (often the system bundle, without the local CA) cannot hide the local CA."""
    return os.environ.get(CA_BUNDLE_ENV) or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")


def cosmos_client(
    endpoint: str,
    key: str,
    *,
    user_agent: str = ARCHIVER_USER_AGENT,
    priority: str | None = None,
    throughput_bucket: int | None = None,
    consistency_level: str | None = None,
    patience: EndpointPatience | None = DEFAULT_PATIENCE,
) -> CosmosClient:
    """A CosmosClient that verifies TLS (also on loopback), identifies the archiver's traffic, counts every throttled
    attempt (ru.throttles: the SDK's own 429 retries never reach a response_hook) and gives up on an unreachable
    endpoint within ``patience`` (None: the SDK's defaults). ``consistency_level`` (settings.read_consistency) is sent
    on every request; None: the account's default."""
    kwargs: dict[str, object] = {"user_agent_suffix": user_agent, "raw_response_hook": observe_response}
    bundle = ca_bundle()
    if is_loopback(endpoint) and bundle:
        kwargs["connection_verify"] = bundle
        kwargs["ssl_config"] = documents.SSLConfiguration()
    if priority is not None:
        kwargs["priority"] = priority
    if throughput_bucket is not None:
        kwargs["throughput_bucket"] = throughput_bucket
    if consistency_level is not None:
        kwargs["consistency_level"] = consistency_level
    if patience is not None:
        kwargs.update(patience.cosmos_kwargs())
    client = CosmosClient(endpoint, credential=key, **kwargs)
    setattr(client.client_connection, _PATIENCE_ATTR, patience or DEFAULT_PATIENCE)
    return client


def patience_of(proxy: Any) -> EndpointPatience:
    """The patience a Cosmos client (or a database/container proxy of it) was built with."""
    return getattr(getattr(proxy, "client_connection", None), _PATIENCE_ATTR, DEFAULT_PATIENCE)


def blob_container(
    connection_string: str, container: str, *, create: bool = True, patience: EndpointPatience | None = DEFAULT_PATIENCE
) -> ContainerClient:
    options = patience.blob_kwargs() if patience else {}
    client = BlobServiceClient.from_connection_string(connection_string, **options).get_container_client(container)
    if create:
        ensure_container(client)
    return client


def with_patience(container: ContainerClient, patience: EndpointPatience = DEFAULT_PATIENCE) -> ContainerClient:
    """The same container with the same credential, its calls bounded by ``patience`` (and logged while retrying).

    The provider's WasbHook builds its client from the Airflow connection with the SDK's default retry, which keeps
    a dead endpoint busy for minutes without a word; this keeps the hook's account URL and authentication (key,
    SAS, or token credential) and swaps in the archiver's transport bounds. Proxies come from HTTPS_PROXY.
    """
    return ContainerClient.from_container_url(container.url, credential=container.credential,
                                              **patience.blob_kwargs())


def ensure_container(client: ContainerClient) -> None:
    """Create the Blob container if it does not exist, logging while an unreachable endpoint is retried."""
    with waiting_for(f"Blob Storage at {endpoint_of(client)}"):
        if not client.exists():
            client.create_container()


def endpoint_of(client: Any) -> str:
    """The endpoint a Cosmos proxy (its account) or a Blob client (its URL) talks to, for messages: never a key or a
    SAS token (the query string is dropped)."""
    connection = getattr(client, "client_connection", None)
    url = getattr(connection, "url_connection", None) or getattr(client, "url", None) or "?"
    parsed = urlparse(str(url))
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path or '/'}" if parsed.netloc else str(url)


@contextlib.contextmanager
def waiting_for(what: str, every_s: float | None = None) -> Iterator[None]:
    """Log ``still waiting for <what> (N s)`` every ``every_s`` while the block runs (an SDK call that may retry an
    unreachable or throttling endpoint for minutes), and how long it took once it answers after such a wait."""
    every_s = every_s or PROGRESS_EVERY_S
    done = threading.Event()
    started = time.monotonic()
    warned = [False]

    def watch() -> None:
        while not done.wait(every_s):
            warned[0] = True
            log.warning("still waiting for %s (%.0f s so far; the SDK retries until it answers or gives up)",
                        what, time.monotonic() - started)

    watcher = threading.Thread(target=watch, name="waiting-for", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        if warned[0]:
            log.warning("%s answered after %.0f s of waiting", what, time.monotonic() - started)
