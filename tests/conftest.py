"""Shared fixtures: one real local stack (cosmosdb-server behind the RU gateway, Azurite) per test session,
on free loopback ports, stopped at the end; a fresh Cosmos container and blob container per test.

Every test gets one kind marker here, from the fixtures it uses, so a new test file needs no marker of its own:

* ``dag``: DagBag, ``airflow dags test``, the real-scheduler backfill (test files in DAG_TEST_FILES, or a test using
  the ``airflow_env`` fixture);
* ``integration``: the local stack or another server on loopback (a fixture in SERVER_FIXTURES, or one that depends
  on one, e.g. ``cosmos_container`` -> ``stack``);
* ``unit``: everything else: no servers, seconds (``bin/test -m unit``). A unit test that starts a server on
  loopback fails, naming the fixture list to extend.

A marker written on a test (``@pytest.mark.integration``) wins, for a test that starts a server itself.
"""

from __future__ import annotations

import os
import socket
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
KINDS = ("unit", "integration", "dag")
DAG_TEST_FILES = frozenset({"test_dag.py", "test_backfill.py", "test_airflow_sqlite.py"})
DAG_FIXTURES = frozenset({"airflow_env"})
# Fixtures that start a server on loopback (the stack, the RU lab/gateway, the ADF stand-in, webhook/SMTP sinks).
SERVER_FIXTURES = frozenset(
    {"stack", "local_stack", "lab", "backend", "env", "standin", "hook_server", "smtp_sink", "webhook"}
)


def kind_of(item: pytest.Item) -> str:
    """``unit``, ``integration`` or ``dag`` for a collected test (see the module docstring)."""
    written = [kind for kind in KINDS if item.get_closest_marker(kind) is not None]
    if written:
        return written[0]
    fixtures = set(getattr(item, "fixturenames", ()))
    if item.path.name in DAG_TEST_FILES or fixtures & DAG_FIXTURES:
        return "dag"
    return "integration" if fixtures & SERVER_FIXTURES else "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        kind = kind_of(item)
        if item.get_closest_marker(kind) is None:
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(autouse=True)
def _unit_tests_start_no_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test marked ``unit`` that listens on a socket fails: it belongs to ``integration``."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(sock: socket.socket, *args: object) -> None:
        raise RuntimeError(
            f"{request.node.nodeid} is a unit test but starts a server: add its server fixture to "
            "tests/conftest.py SERVER_FIXTURES, or mark the test @pytest.mark.integration"
        )

    monkeypatch.setattr(socket.socket, "listen", refuse)


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
