"""Outages are visible and bounded: with the Cosmos endpoint down the copy logs what it waits for every 30 s and
converges once it is back; down for good, it fails within the configured bound naming the endpoint.

The endpoint is an in-process RU gateway on a fixed loopback port in front of the session stack's cosmosdb-server:
stopping it is an outage of exactly that endpoint (the stack keeps running for other tests). The issue's drill is
a 3-minute outage; here it is bounded to ~40 s (one progress line at 30 s), and that test is marked ``slow``
(left out of the default run: ``pytest -m slow tests/test_outage.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.cosmos import PartitionKey
from azure.storage.blob import BlobLeaseClient

from devstack.ru_gateway import ChargeModel, GatewaySettings, start_gateway
from devstack.ru_gateway.proxy import Gateway
from devstack.stack import AZURITE_ACCOUNT, AZURITE_KEY, EMULATOR_COSMOS_KEY, free_port
from devstack.tls import ensure_local_tls
from include.cosmos_archiver import clients
from include.cosmos_archiver.archive.slice_lease import BlobUnreachableError, SliceLease, slice_lease
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import EndpointPatience, blob_container, cosmos_client, endpoint_of
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.reader import SourceUnreachableError

SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", page_size=5)
DAY = TimeSlice(dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
OUTAGE_S = 40


@pytest.fixture
def endpoint(stack):
    """A gateway on a fixed port; yields a (start, stop) pair and the endpoint's container name."""
    tls = ensure_local_tls(stack.state_dir)
    port = free_port()
    current: list[Gateway | None] = [Gateway(stack.cosmos_backend_endpoint.rstrip("/"), tls, port=port).start()]

    def start() -> None:
        current[0] = Gateway(stack.cosmos_backend_endpoint.rstrip("/"), tls, port=port).start()

    def stop() -> None:
        gateway, current[0] = current[0], None
        if gateway is not None:
            gateway.stop()

    direct = cosmos_client(stack.cosmos_backend_endpoint, EMULATOR_COSMOS_KEY).create_database_if_not_exists("tests")
    name = f"o-{uuid.uuid4().hex[:10]}"
    seeded = direct.create_container(name, PartitionKey("/customerId"))
    for i in range(12):
        seeded.upsert_item({"id": f"r{i}", "customerId": f"c{i % 3}", "issuedAt": f"2025-03-01T{i:02d}:00:00.000Z"})
    yield f"https://127.0.0.1:{port}/", name, start, stop
    stop()
    direct.delete_container(name)


def _container(url: str, name: str, patience: EndpointPatience):
    return cosmos_client(url, EMULATOR_COSMOS_KEY, patience=patience).get_database_client("tests").get_container_client(
        name)


@pytest.mark.slow  # a 40-s outage and the back-off after it: ~60 s (pytest -m slow tests/test_outage.py)
def test_copy_logs_progress_while_cosmos_is_down_and_converges_after_restart(endpoint, archive_store, caplog):
    url, name, start, stop = endpoint
    container = _container(url, name, EndpointPatience(total_s=120, connect_timeout_s=5, backoff_max_s=10, retries=30))
    stop()
    restarter = threading.Timer(OUTAGE_S, start)
    restarter.start()
    try:
        with caplog.at_level(logging.WARNING, logger="include.cosmos_archiver.clients"):
            began = time.monotonic()
            manifest = copy_slice(container, archive_store, DAY, SETTINGS)
            waited = time.monotonic() - began
    finally:
        restarter.cancel()
    waiting = [r.getMessage() for r in caplog.records if "still waiting for" in r.getMessage()]
    assert waited >= OUTAGE_S - 1 and manifest.record_count == 12
    assert waiting and url in waiting[0] and name in waiting[0], waiting
    assert validate_slice(container, archive_store, DAY, SETTINGS).ok


def test_copy_fails_within_the_bound_naming_the_endpoint_when_cosmos_stays_down(endpoint, archive_store):
    url, name, _start, stop = endpoint
    container = _container(url, name, EndpointPatience(total_s=20, connect_timeout_s=5, backoff_max_s=5, retries=30))
    stop()
    began = time.monotonic()
    with pytest.raises(SourceUnreachableError) as failure:
        copy_slice(container, archive_store, DAY, SETTINGS)
    assert time.monotonic() - began < 20 + 15
    assert url in str(failure.value) and name in str(failure.value)


def _dead_store(patience: EndpointPatience):
    port = free_port()  # nothing listens there
    conn = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")
    return ArchiveStore(blob_container(conn, "archive", create=False, patience=patience), "records"), port


def test_a_blob_outage_is_named_as_such_not_as_another_run_and_fails_in_bounded_time(caplog):
    patience = EndpointPatience(total_s=12, connect_timeout_s=2)
    store, port = _dead_store(patience)
    began = time.monotonic()
    with (caplog.at_level(logging.WARNING), pytest.raises(BlobUnreachableError) as failure,
          slice_lease(store, DAY.slice_id, wait_s=5, lease_s=15)):
        pass
    assert time.monotonic() - began < 12 + 5
    message = str(failure.value)
    assert f"127.0.0.1:{port}" in message and "did not answer" in message and "another run" not in message
    retries = [r.getMessage() for r in caplog.records if "Blob Storage at" in r.getMessage()]
    assert retries and f"127.0.0.1:{port}" in retries[0] and "retry 1 of" in retries[0], retries


def test_a_lease_renewal_during_a_blob_outage_is_named_as_an_outage():
    store, port = _dead_store(EndpointPatience(total_s=12, connect_timeout_s=2))
    blob = store.container.get_blob_client(f"{store.slice_dir(DAY.slice_id)}/_lease")
    lease = SliceLease(BlobLeaseClient(blob, lease_id=str(uuid.uuid4())), DAY.slice_id, 15, endpoint_of(blob))
    with pytest.raises(BlobUnreachableError, match=f"Blob Storage at http://127.0.0.1:{port}/.*did not answer"):
        lease.ensure_held()


def test_patience_bounds_every_attempt_within_the_total():
    for total, connect in ((20, 2), (60, 10), (180, 10), (600, 10)):
        patience = EndpointPatience(total_s=total, connect_timeout_s=connect)
        waits = patience.backoffs()
        assert waits and sum(waits) + (len(waits) + 1) * patience.connect_timeout_s <= total
        assert max(waits) <= patience.backoff_max_s <= 30  # a retry log line at least every 30 s


def test_a_throttled_copy_logs_what_it_waits_for(stack, archive_store, monkeypatch, caplog):
    """Throttling (HTTP 429, retried by the SDK after the server's retry-after) is as visible as an outage; the
    30-s progress interval is shortened to 0.2 s here so a few throttled pages show it. Changed in issue 17: the
    gateway runs the seed charge model here (a 20 KB page costs ~20 RU per document, so 60 RU/s throttles); under the
    published model these pages cost ~5 RU and would not be throttled at 60 RU/s."""
    monkeypatch.setattr(clients, "PROGRESS_EVERY_S", 0.2)
    direct = cosmos_client(stack.cosmos_backend_endpoint, EMULATOR_COSMOS_KEY).create_database_if_not_exists("tests")
    name = f"t-{uuid.uuid4().hex[:10]}"
    seeded = direct.create_container(name, PartitionKey("/customerId"))
    try:
        for i in range(12):
            seeded.upsert_item({"id": f"r{i}", "customerId": "c", "issuedAt": f"2025-03-01T{i:02d}:00:00.000Z",
                                "pad": "x" * 20_000})
        with start_gateway(stack.cosmos_backend_endpoint.rstrip("/"), stack.state_dir,
                           settings=GatewaySettings(provisioned_ru=60),
                           charge_model=ChargeModel(preset="seed")) as gateway:  # 429s for 20-KB documents
            container = _container(gateway.endpoint, name, EndpointPatience(total_s=60))
            with caplog.at_level(logging.WARNING, logger="include.cosmos_archiver.clients"):
                manifest = copy_slice(container, archive_store, DAY, SETTINGS)
            throttled = gateway.stats()["totals"]["archiver"]["throttled"]
        assert manifest.record_count == 12 and throttled > 0
        waiting = [r.getMessage() for r in caplog.records if "still waiting for" in r.getMessage()]
        assert waiting and gateway.endpoint in waiting[0] and "slice query" in waiting[0], waiting
    finally:
        direct.delete_container(name)


def test_the_dags_blob_client_keeps_the_hooks_auth_and_gives_up_in_bounded_time(stack, monkeypatch):
    """The DAG's store comes from the provider's WasbHook (the Airflow connection's auth) with the archiver's
    bounds swapped in: it reads and writes Azurite with the hook's key, and a dead endpoint fails within them."""
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    def hooked(conn_id: str, connection_string: str, container: str):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}",
                           json.dumps({"conn_type": "wasb", "extra": {"connection_string": connection_string}}))
        return WasbHook(wasb_conn_id=conn_id).get_conn().get_container_client(container)

    live = clients.with_patience(hooked("t_live", stack.blob_connection_string, f"t-{uuid.uuid4().hex[:12]}"))
    clients.ensure_container(live)
    try:
        live.upload_blob("probe", b"kept auth")
        assert live.download_blob("probe").readall() == b"kept auth"
    finally:
        live.delete_container()

    port = free_port()  # nothing listens there
    dead_conn = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                 f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")
    patience = EndpointPatience(total_s=12, connect_timeout_s=2)
    dead = clients.with_patience(hooked("t_dead", dead_conn, "archive"), patience)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    clients.log.addHandler(handler)  # importing Airflow reroutes logging, so listen on the library's logger itself
    began = time.monotonic()
    try:
        with pytest.raises(ServiceRequestError):
            clients.ensure_container(dead)
    finally:
        clients.log.removeHandler(handler)
    assert time.monotonic() - began < 12 + 5  # the SDK's default retry (15 s, 18 s, 24 s ...) would still be waiting
    retries = [m for m in seen if f"Blob Storage at http://127.0.0.1:{port}" in m]
    assert retries and "retry 1 of" in retries[0], seen
