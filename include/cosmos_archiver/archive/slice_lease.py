"""One writer per slice at a time, across DAG runs and workers: a Blob lease on ``<slice folder>/_lease``.

Airflow 3 backfills run several DAG runs at once (they ignore ``max_active_runs``) and many backfilled days fall
in one slice, so two runs' copy/validate tasks can read-modify-write the same slice together; without a lock one
could overwrite a just-verified manifest with ``copied``. Copy, validation and ADF indexing go through
:func:`under_slice_lease`: a lock-free fast path for a slice that needs no work (so re-runs change no blob), and
the manifest re-read under the lease.

The lease is finite (``lease_s``, 15-60 s as Blob Storage allows) and renewed from a daemon thread while the
block runs, so a worker that dies leaves a lease that expires within ``lease_s``. The lock blob is created once
(empty); acquiring, renewing and releasing its lease leave its ETag unchanged (measured on Azurite).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobClient, BlobLeaseClient

from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import endpoint_of, waiting_for
from include.cosmos_archiver.errors import TransientError
from include.cosmos_archiver.settings import MAX_LEASE_S, MIN_LEASE_S, ArchiveSettings

log = logging.getLogger(__name__)
LEASE_NAME = "_lease"
DEFAULT_WAIT_S = float(ArchiveSettings.slice_lease_wait_s)
DEFAULT_LEASE_S = ArchiveSettings.slice_lease_s
DEFAULT_POLL_S = 2.0


class SliceBusyError(TransientError, RuntimeError):
    """Another run held the slice's lease for longer than this run would wait."""


class SliceLeaseLostError(TransientError, RuntimeError):
    """The lease could not be renewed: it expired and another run may hold it now."""


class BlobUnreachableError(TransientError, ConnectionError):
    """Blob Storage did not answer within the client's retry bound (an outage, not another run)."""


def lease_path(store: ArchiveStore, slice_id: str) -> str:
    return f"{store.slice_dir(slice_id)}/{LEASE_NAME}"


class SliceLease:
    """A held slice lease; the holder calls :meth:`ensure_held` right before each write."""

    def __init__(self, client: BlobLeaseClient, slice_id: str, lease_s: int, endpoint: str = "?") -> None:
        self.slice_id = slice_id
        self.endpoint = endpoint
        self.lease_s = lease_s
        self._client = client
        self._lock = threading.Lock()  # one lease request at a time (keep-alive thread vs. ensure_held)
        self._stop = threading.Event()

    def ensure_held(self) -> None:
        """Renew now: the lease is then ours for another ``lease_s``, enough for the write that follows.

        Raises SliceLeaseLostError if it cannot be renewed; the caller must not write then.
        """
        try:
            with self._lock, waiting_for(f"Blob Storage at {self.endpoint} (renewing slice {self.slice_id}'s lease)"):
                self._client.renew()
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise BlobUnreachableError(
                f"slice {self.slice_id}: Blob Storage at {self.endpoint} did not answer while renewing the slice's "
                f"lease ({exc.__class__.__name__}); nothing more was written. Check the storage account's endpoint, "
                "firewall and health; the task can be retried"
            ) from exc
        except AzureError as exc:
            raise SliceLeaseLostError(
                f"slice {self.slice_id}: lost its lease ({exc.__class__.__name__}: {getattr(exc, 'error_code', exc)});"
                " another run may be archiving it now, so nothing more was written; the task can be retried"
            ) from exc

    def _keep_alive(self) -> None:
        interval = self.lease_s / 3  # two more tries before expiry if one renewal fails
        while not self._stop.wait(interval):
            try:
                with self._lock:
                    self._client.renew()
            except AzureError as exc:
                log.warning("slice %s: lease renewal failed (%s); the next write will check the lease",
                            self.slice_id, exc.__class__.__name__)

    def _release(self) -> None:
        try:
            with self._lock:
                self._client.release()
        except AzureError as exc:
            log.warning("slice %s: lease not released (%s); it expires within %d s",
                        self.slice_id, exc.__class__.__name__, self.lease_s)


def _create_lock_blob(blob: BlobClient) -> None:
    # A concurrent creator (who may already hold the lease) makes this fail with BlobAlreadyExists: fine.
    with contextlib.suppress(ResourceExistsError):
        blob.upload_blob(b"", overwrite=False)


def _acquire(blob: BlobClient, slice_id: str, wait_s: float, lease_s: int, poll_s: float) -> BlobLeaseClient:
    client = BlobLeaseClient(blob)
    started = time.monotonic()
    deadline = started + wait_s
    created = waiting = False
    while True:
        try:
            with waiting_for(f"Blob Storage at {endpoint_of(blob)} (the lease on {blob.blob_name})"):
                client.acquire(lease_duration=lease_s)
            break
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise BlobUnreachableError(
                f"slice {slice_id}: Blob Storage at {endpoint_of(blob)} did not answer when taking the slice's lease "
                f"({exc.__class__.__name__}); check the storage account's endpoint, firewall and health; the task can "
                "be retried"
            ) from exc
        except ResourceNotFoundError:
            if created:  # deleted again right after creating it: not a state to loop on
                raise
            _create_lock_blob(blob)
            created = True
            continue
        except ResourceExistsError as exc:
            if exc.error_code != "LeaseAlreadyPresent":
                raise
        now = time.monotonic()
        if now >= deadline:
            raise SliceBusyError(
                f"slice {slice_id} is busy: another run is archiving it (it holds the lease on {blob.blob_name}) "
                f"and did not finish within {wait_s:.0f} s. Wait for it to finish, or check the other running "
                "runs of this DAG (e.g. a backfill over the same dates), then retry; a lease left by a dead worker "
                f"expires within {MAX_LEASE_S} s"
            )
        if not waiting:
            log.info("slice %s: another run holds its lease; waiting up to %.0f s for it", slice_id, wait_s)
            waiting = True
        time.sleep(min(poll_s, deadline - now))
    if waiting:
        log.info("slice %s: lease acquired after waiting %.1f s", slice_id, time.monotonic() - started)
    return client


R = TypeVar("R")


def under_slice_lease(
    store: ArchiveStore,
    slice_id: str,
    settings: ArchiveSettings,
    answer: Callable[[Manifest | None], R | None],
    work: Callable[[SliceLease, Manifest | None], R],
) -> R:
    """A slice's read-modify-write, double-checked: ``answer`` (e.g. "already verified") is asked of the manifest
    without the lease first, so an answered re-run touches no blob, and again under the lease, since another run
    may have changed the slice while this one waited; only then does ``work`` run, holding the lease (wait and
    duration from the archive settings)."""
    if (early := answer(store.read_manifest(slice_id))) is not None:
        return early
    with slice_lease(store, slice_id, wait_s=settings.slice_lease_wait_s, lease_s=settings.slice_lease_s) as lease:
        manifest = store.read_manifest(slice_id)
        if (early := answer(manifest)) is not None:
            return early
        return work(lease, manifest)


@contextlib.contextmanager
def slice_lease(
    store: ArchiveStore,
    slice_id: str,
    *,
    wait_s: float = DEFAULT_WAIT_S,
    lease_s: int = DEFAULT_LEASE_S,
    poll_s: float = DEFAULT_POLL_S,
) -> Iterator[SliceLease]:
    """Hold the slice's lease for the block (renewed in the background, released on exit, also on errors).

    Waits up to ``wait_s`` (polling every ``poll_s``) while another holder has it, then raises SliceBusyError.
    """
    if not MIN_LEASE_S <= lease_s <= MAX_LEASE_S:
        raise ValueError(f"lease_s={lease_s!r} must be {MIN_LEASE_S}-{MAX_LEASE_S} seconds (a finite Blob lease)")
    if wait_s < 0 or poll_s <= 0:
        raise ValueError(f"wait_s={wait_s!r} must be >= 0 and poll_s={poll_s!r} > 0")
    blob = store.container.get_blob_client(lease_path(store, slice_id))
    lease = SliceLease(_acquire(blob, slice_id, wait_s, lease_s, poll_s), slice_id, lease_s, endpoint_of(blob))
    keeper = threading.Thread(target=lease._keep_alive, name=f"slice-lease-{slice_id}", daemon=True)
    keeper.start()
    try:
        yield lease
    finally:
        lease._stop.set()
        keeper.join(timeout=lease_s)
        lease._release()
