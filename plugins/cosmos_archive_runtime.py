"""Airflow adapters for cosmos-archive: settings from Variables, clients from Connections, the run status.

Thin by design: everything here turns Airflow configuration into the library's plain objects.
"""

from __future__ import annotations

import json
import logging

from airflow.exceptions import AirflowNotFoundException
from airflow.providers.microsoft.azure.hooks.cosmos import AzureCosmosDBHook
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from airflow.sdk import BaseHook, Variable
from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import cosmos_client
from include.cosmos_archiver.pipeline.run_status import ArchiveStatus
from include.cosmos_archiver.ru.budget import RuBudget
from include.cosmos_archiver.ru.governance import RuGovernance
from include.cosmos_archiver.ru.settings import RateControlError
from include.cosmos_archiver.settings import ArchiveSettings, SettingsError

SETTINGS_VARIABLE = "cosmos_archive_settings"
STATUS_VARIABLE = "cosmos_archive_status"
RU_VARIABLE = "cosmos_archive_ru"
COSMOS_CONN_ID = "cosmos_archive_cosmos"
BLOB_CONN_ID = "cosmos_archive_blob"
ADF_CONN_ID = "cosmos_archive_adf"

# The SDKs log every HTTP request at INFO; keep task logs for people.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
logging.getLogger("azure.cosmos").setLevel(logging.WARNING)


class ConfigurationError(ValueError):
    """Raised before any work starts; the message names the missing connection or the bad value."""


def load_settings() -> ArchiveSettings:
    raw = Variable.get(SETTINGS_VARIABLE, default=None)
    if raw is None:
        return ArchiveSettings()
    try:
        values = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"Variable {SETTINGS_VARIABLE} is not valid JSON ({exc}); fix it in Admin > Variables"
        ) from None
    try:
        return ArchiveSettings.from_mapping(values)
    except SettingsError as exc:
        raise ConfigurationError(f"Variable {SETTINGS_VARIABLE}: {exc}") from None


def load_ru_governance() -> RuGovernance:
    raw = Variable.get(RU_VARIABLE, default=None)
    if raw is None:
        return RuGovernance()
    try:
        return RuGovernance.from_mapping(json.loads(raw) if isinstance(raw, str) else raw)
    except (json.JSONDecodeError, RateControlError, TypeError) as exc:
        raise ConfigurationError(f"Variable {RU_VARIABLE}: {exc}; fix it in Admin > Variables") from None


def require_connection(conn_id: str, purpose: str):  # -> airflow Connection
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConfigurationError(
            f"Airflow connection {conn_id!r} ({purpose}) is not defined: add it in Admin > Connections "
            "or in airflow_settings.yaml, then re-run"
        ) from None


def connection_exists(conn_id: str) -> bool:
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def cosmos_container(settings: ArchiveSettings, **client_kwargs: object) -> ContainerProxy:
    """The archive's source container, with credentials from the provider's Cosmos connection.

    AzureCosmosDBHook.get_documents returns None on any Cosmos error (429 included), so reads use the SDK directly.
    """
    conn = require_connection(COSMOS_CONN_ID, "Azure Cosmos DB source: login=endpoint, password=key")
    if not conn.login or not conn.password:
        raise ConfigurationError(
            f"Airflow connection {COSMOS_CONN_ID!r} needs the account endpoint in 'login' and the key in 'password' "
            f"(as {AzureCosmosDBHook.__name__} expects)"
        )
    client = cosmos_client(conn.login, conn.password, **client_kwargs)  # type: ignore[arg-type]
    return client.get_database_client(settings.database).get_container_client(settings.container)


def paced_source(settings: ArchiveSettings) -> tuple[ContainerProxy, RuBudget]:
    """The source container as the archiver reads it (low priority, its throughput bucket) and the RU budget that
    paces those reads, both from the cosmos_archive_ru Variable."""
    governance = load_ru_governance()
    return cosmos_container(settings, **governance.client_kwargs()), governance.budget()


def archive_store(settings: ArchiveSettings, *, create: bool = True) -> ArchiveStore:
    require_connection(BLOB_CONN_ID, "Azure Blob Storage sink (wasb)")
    container = WasbHook(wasb_conn_id=BLOB_CONN_ID).get_conn().get_container_client(settings.blob_container)
    if create and not container.exists():
        container.create_container()
    return ArchiveStore(container, settings.blob_prefix)


def read_status() -> ArchiveStatus:
    try:
        return ArchiveStatus.from_json(Variable.get(STATUS_VARIABLE, default=None))
    except ValueError as exc:
        raise ConfigurationError(f"Variable {STATUS_VARIABLE}: {exc}") from None


def write_status(status: ArchiveStatus) -> None:
    Variable.set(STATUS_VARIABLE, status.to_json())
