"""A local RU lab for tests, the RU bench and demos: the local stack on free loopback ports with its own state
directory, plus an in-process RU gateway (settings changeable, accounting readable) in front of its
cosmosdb-server, a seeded container, and usage sources pointed at that gateway.

Everything started here is stopped when the ``ru_lab`` block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from azure.cosmos import ContainerProxy, PartitionKey

from devstack import stack
from devstack.ru_gateway import ChargeModel, Gateway, GatewaySettings, start_gateway
from devstack.ru_gateway.partitions import PartitionKeyDef
from devstack.tls import ensure_local_tls
from include.cosmos_archiver.clients import cosmos_client
from include.cosmos_archiver.loopback import StaticTokenCredential
from include.cosmos_archiver.ru.usage import AzureMonitorUsageSource

DATABASE, CONTAINER = "rulab", "records"


@dataclass(frozen=True)
class RuLab:
    gateway: Gateway
    key: str
    database: str
    container: str
    doc_keys: tuple[tuple[str, str], ...]  # (id, partition key value) of the seeded documents
    ca_bundle: Path
    doc_partitions: tuple[int, ...] = ()  # the physical partition of each of doc_keys (the gateway's hashing)

    @property
    def endpoint(self) -> str:
        return self.gateway.endpoint

    def container_proxy(self, **client_kwargs: Any) -> ContainerProxy:
        client = cosmos_client(self.endpoint, self.key, **client_kwargs)
        return client.get_database_client(self.database).get_container_client(self.container)

    def usage_source(
        self, *, grain: timedelta = timedelta(seconds=1), lagging_grains: int = 0, database: str | None = None
    ) -> AzureMonitorUsageSource:
        """The real MetricsClient against the gateway's Azure-Monitor-shaped API (static local token)."""
        return AzureMonitorUsageSource(
            self.gateway.metrics_endpoint,
            self.gateway.resource_id,
            credential=StaticTokenCredential(),
            grain=grain,
            lagging_grains=lagging_grains,
            database=database or self.database,
            collection=self.container,
            connection_verify=str(self.ca_bundle),
        )


@contextmanager
def ru_lab(
    state_dir: Path,
    *,
    settings: GatewaySettings,
    docs: int = 40,
    doc_kb: int = 10,
    charge_model: ChargeModel | None = None,
) -> Iterator[RuLab]:
    """Start the lab. Like stack.running_stack, which it runs, it exports REQUESTS_CA_BUNDLE/SSL_CERT_FILE for the
    block (restored afterwards), so SDK clients built with clients.cosmos_client() verify the local CA.

    ``charge_model``: the lab's gateway charges under the ``seed`` preset unless told otherwise (issue 17): there a
    read of a ``doc_kb`` document costs ``doc_kb`` RU, so a few dozen small reads per second can load the account on
    two shared cores; under the published model a 20 KB read costs ~2 RU and loading the account would need ten
    times the requests. What the lab exercises (budgets, metrics, back-off) does not depend on the charge."""
    config = stack.StackConfig(
        state_dir=state_dir,
        cosmos_port=stack.free_port(),
        cosmos_backend_port=stack.free_port(),
        blob_port=stack.free_port(),
        account_mode=settings.account_mode,  # the stack's own gateway process too (the lab's is in-process)
        physical_partitions=settings.physical_partitions,
    )
    tls = ensure_local_tls(state_dir)
    with stack.running_stack(config):
        # Our own in-process gateway goes straight to cosmosdb-server (not through the stack's gateway process),
        # so tests can change its settings and read its accounting directly.
        backend = config.cosmos_backend_endpoint
        direct = cosmos_client(backend, stack.EMULATOR_COSMOS_KEY)
        container = direct.create_database_if_not_exists(DATABASE).create_container_if_not_exists(
            CONTAINER, PartitionKey("/customerId")
        )
        count = settings.partition_count
        pk_def = PartitionKeyDef.from_collection(container.read())
        keys = seeded_keys(docs, pk_def, count)
        payload = "x" * (doc_kb * 1024 - 100)
        for doc_id, pk in keys:
            container.upsert_item({"id": doc_id, "customerId": pk, "payload": payload})
        model = charge_model or ChargeModel(preset="seed")
        with start_gateway(backend.rstrip("/"), state_dir, settings=settings, charge_model=model) as gateway:
            partitions = tuple(pk_def.partition([pk], count) for _, pk in keys)
            yield RuLab(gateway, stack.EMULATOR_COSMOS_KEY, DATABASE, CONTAINER, keys, tls.ca_bundle, partitions)


def seeded_keys(docs: int, pk_def: PartitionKeyDef, count: int, keys_in_all: int = 8) -> tuple[tuple[str, str], ...]:
    """(id, customerId) of the seeded documents: ``keys_in_all`` customers (at least one per physical partition),
    chosen by the gateway's own hashing so that every partition holds documents, documents dealt round-robin over
    the partitions (so reads of the seeded keys, in order or sampled, land on all of them). One partition: cust-0..7."""
    if count <= 1:
        return tuple((f"doc-{i}", f"cust-{i % keys_in_all}") for i in range(docs))
    per_partition = max(1, keys_in_all // count)
    by_partition: list[list[str]] = [[] for _ in range(count)]
    for j in range(100 * count * per_partition):
        if all(len(found) >= per_partition for found in by_partition):
            break
        found = by_partition[pk_def.partition([f"cust-{j}"], count)]
        if len(found) < per_partition:
            found.append(f"cust-{j}")
    else:
        raise RuntimeError(f"no customer keys found for each of {count} physical partitions")
    return tuple(
        (f"doc-{i}", by_partition[i % count][(i // count) % per_partition]) for i in range(docs)
    )
