"""plugins/cosmos_archive_adf.py without servers: on Azure the provider's own hook and trigger are used unchanged,
and each piece of the provider that the loopback mode relies on still behaves as the plugin expects (these fail if
the installed provider changes under the plugin). The stand-in end to end is tests/test_adf_operator.py."""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
STOCK_TRIGGER = "airflow.providers.microsoft.azure.triggers.data_factory.AzureDataFactoryTrigger"
AZURE_EXTRAS = {"subscriptionId": "00000000-0000-0000-0000-0000000000bb", "resource_group_name": "rg",
                "factory_name": "f"}
LOCAL_EXTRAS = {**AZURE_EXTRAS, "local_base_url": "https://127.0.0.1:1"}  # never contacted here


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(PLUGINS))
    for conn_id, extras in (("adf_azure", AZURE_EXTRAS), ("adf_local", LOCAL_EXTRAS)):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "azure_data_factory", "extra": extras})
        )
    return importlib.import_module("cosmos_archive_adf")


class _RunningPipelineHook:
    """Stands in for the hook inside the stock execute(): the run starts and is still in progress."""

    def run_pipeline(self, *args: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(run_id="run-1")

    def get_pipeline_run_status(self, *args: Any) -> str:
        return "InProgress"


def _deferred_trigger(plugin: Any, conn_id: str) -> Any:
    """Run the stock execute() of a deferrable operator until it defers; return the trigger it deferred with."""
    from airflow.sdk.exceptions import TaskDeferred

    op = plugin.CosmosArchiveAdfRunPipelineOperator(
        task_id="copy", azure_data_factory_conn_id=conn_id, parameters={}, deferrable=True
    )
    op.__dict__["hook"] = _RunningPipelineHook()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": SimpleNamespace(xcom_push=lambda **kwargs: None)})
    return deferred.value.trigger


def test_on_azure_the_operator_uses_the_stock_hook(plugin: Any) -> None:
    from airflow.providers.microsoft.azure.hooks.data_factory import AzureDataFactoryHook
    from azure.identity import DefaultAzureCredential

    op = plugin.CosmosArchiveAdfRunPipelineOperator(task_id="copy", azure_data_factory_conn_id="adf_azure")
    assert op.local is None and type(op.hook) is AzureDataFactoryHook
    client = op.hook.get_conn()
    assert client._config.base_url.rstrip("/") == "https://management.azure.com"
    assert isinstance(client._config.credential, DefaultAzureCredential)


def test_on_azure_the_operator_defers_with_the_stock_trigger(plugin: Any) -> None:
    trigger = _deferred_trigger(plugin, "adf_azure")
    assert trigger.serialize()[0] == STOCK_TRIGGER  # the provider's trigger, not swapped


def test_the_trigger_swap_for_the_standin(plugin: Any) -> None:
    """The stock execute() still defers with an AzureDataFactoryTrigger (the type the swap looks for), and the local
    trigger takes its arguments unchanged."""
    from airflow.providers.microsoft.azure.triggers.data_factory import AzureDataFactoryTrigger

    stock = _deferred_trigger(plugin, "adf_azure")
    assert type(stock) is AzureDataFactoryTrigger
    local = _deferred_trigger(plugin, "adf_local")
    assert type(local) is plugin.CosmosArchiveAdfTrigger
    classpath, kwargs = local.serialize()
    assert classpath == "cosmos_archive_adf.CosmosArchiveAdfTrigger"
    same = {"azure_data_factory_conn_id": "adf_local", "end_time": local.end_time}
    assert kwargs == {**stock.serialize()[1], **same}
    rebuilt = plugin.CosmosArchiveAdfTrigger(**local.serialize()[1])
    assert rebuilt.serialize() == local.serialize()


@pytest.mark.parametrize(
    ("status", "expected"),
    [("Succeeded", "success"), ("Failed", "error"), ("Cancelled", "error"), ("InProgress", None), ("Queued", None)],
)
def test_the_stock_status_to_event_mapping_the_local_trigger_reuses(plugin: Any, status: str, expected: Any) -> None:
    """CosmosArchiveAdfTrigger calls the provider-private AzureDataFactoryTrigger._build_trigger_event."""
    trigger = plugin.CosmosArchiveAdfTrigger(
        run_id="run-1", azure_data_factory_conn_id="adf_local", end_time=0.0, resource_group_name="rg",
        factory_name="f",
    )
    event = trigger._build_trigger_event(status)
    if expected is None:
        assert event is None
    else:
        assert event.payload == {"status": expected, "run_id": "run-1",
                                 "message": f"The pipeline run run-1 has {status}."}


def test_the_local_hooks_reach_only_the_standin(plugin: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    client = plugin.CosmosArchiveAdfHook("adf_local").get_conn()
    assert client._config.base_url == "https://127.0.0.1:1"
    with pytest.raises(AirflowException, match="'adf_azure' has no local_base_url"):
        plugin.CosmosArchiveAdfHook("adf_azure").get_conn()

    async def async_clients() -> tuple[Any, Any, Any]:
        async with plugin.CosmosArchiveAdfAsyncHook("adf_local") as hook:
            first = await hook.get_async_conn()
            refreshed = await hook.refresh_conn()  # the provider's refresh: close(), then get_async_conn()
        return first, refreshed, hook._standin_client

    first, refreshed, after_exit = asyncio.run(async_clients())
    assert first is not refreshed and refreshed._config.base_url == "https://127.0.0.1:1"
    assert after_exit is None  # `async with` closed it


class _StopBeforeAzure(Exception):
    pass


def test_validations_recopy_on_azure_runs_through_the_stock_hook(plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """copy_with_adf (validation's re-copy of an ADF slice) with an Azure connection: the provider's own hook starts
    the run with a DataFactoryManagementClient for Azure's management endpoint (stopped before any request)."""
    import datetime as dt

    from airflow.providers.microsoft.azure.hooks.data_factory import AzureDataFactoryHook
    from azure.mgmt.datafactory import DataFactoryManagementClient

    from include.cosmos_archiver.settings import ArchiveSettings
    from include.cosmos_archiver.slices import TimeSlice

    monkeypatch.setenv("AIRFLOW_CONN_COSMOS_ARCHIVE_ADF",
                       json.dumps({"conn_type": "azure_data_factory", "extra": AZURE_EXTRAS}))
    monkeypatch.setenv("AIRFLOW_VAR_COSMOS_ARCHIVE_RU",
                       json.dumps({"controller": "static", "account_mode": "provisioned"}))
    runtime = importlib.import_module("cosmos_archive_runtime")
    started: list[Any] = []

    def run_pipeline(self: AzureDataFactoryHook, pipeline_name: str, *args: Any, **kwargs: Any) -> Any:
        started.append((type(self), self.get_conn(), pipeline_name, kwargs["parameters"]))
        raise _StopBeforeAzure

    monkeypatch.setattr(AzureDataFactoryHook, "run_pipeline", run_pipeline)
    day = TimeSlice(dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
    with pytest.raises(_StopBeforeAzure):
        runtime.copy_with_adf(day, ArchiveSettings(), store=None)
    (hook_type, client, pipeline, parameters), = started
    assert hook_type is AzureDataFactoryHook and pipeline == "cosmos_archive_copy"
    assert isinstance(client, DataFactoryManagementClient)
    assert client._config.base_url.rstrip("/") == "https://management.azure.com"
    assert parameters["pageSize"] >= 1 and parameters["parallelCopies"] >= 1
