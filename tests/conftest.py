"""Shared fixtures: one real local stack (cosmosdb-server behind the RU gateway, Azurite) per test session,
on free loopback ports, stopped at the end; a fresh Cosmos container and blob container per test."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.cosmos import ContainerProxy, PartitionKey

from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig, free_port, running_stack
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import blob_container, cosmos_client

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Any Airflow a test imports uses a throwaway home (SQLite DB, logs), never ~/airflow or the demo's."""
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="cosmos-archive-airflow-")
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    config = StackConfig(
        state_dir=tmp_path_factory.mktemp("stack"),
        cosmos_port=free_port(),
        cosmos_backend_port=free_port(),
        blob_port=free_port(),
        provisioned_ru=1_000_000,  # correctness tests are not about throttling; RU tests configure their own
    )
    with running_stack(config):
        yield config


@pytest.fixture(scope="session")
def cosmos_database(stack: StackConfig):
    client = cosmos_client(stack.cosmos_endpoint, EMULATOR_COSMOS_KEY)
    return client.create_database_if_not_exists("tests")


@pytest.fixture
def cosmos_container(cosmos_database) -> Iterator[ContainerProxy]:
    name = f"c-{uuid.uuid4().hex[:12]}"
    container = cosmos_database.create_container(name, PartitionKey("/customerId"))
    yield container
    cosmos_database.delete_container(name)


@pytest.fixture
def archive_store(stack: StackConfig) -> Iterator[ArchiveStore]:
    client = blob_container(stack.blob_connection_string, f"t-{uuid.uuid4().hex[:12]}")
    yield ArchiveStore(client, "records")
    client.delete_container()
