"""Thin Airflow adapters for the ADF copy path: the provider's ADF operator, plus a loopback mode for the local
stand-in (devstack/adf_standin).

On Azure (the ``cosmos_archive_adf`` connection has no ``local_base_url`` extra) the operator runs the provider's
own code: the stock :class:`AzureDataFactoryHook` and the stock :class:`AzureDataFactoryTrigger`, built and
deferred exactly as the provider does. The one addition, on both paths, is ADF's own message for a failed run,
appended to the task's error (read with the hook's public ``get_pipeline_run``).

With ``local_base_url`` (``https://127.0.0.1:<port>``) the hooks build their management clients for that URL with
a static dummy token and the local CA (``local_ca_bundle`` extra, else REQUESTS_CA_BUNDLE/SSL_CERT_FILE). What that
needs from the provider's internals, each kept to the minimum and checked by tests/test_adf_plugin.py:

* the trigger swap: the stock ``execute()`` builds an ``AzureDataFactoryTrigger`` itself, so ``defer`` replaces a
  trigger of exactly that type with :class:`CosmosArchiveAdfTrigger` (local connections only);
* ``AzureDataFactoryTrigger._build_trigger_event``: the stock ``run()`` builds the stock async hook itself (it
  cannot reach the stand-in), so the local trigger polls with its own loop and reuses the provider's method to
  turn a pipeline status into the same events the stock trigger yields.

The hooks override only public methods (``get_conn``, ``get_async_conn``, ``close``) and keep their own client
cache, so no private attribute of the provider's hooks is relied on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.common.compat.sdk import AirflowException
from airflow.providers.microsoft.azure.hooks.data_factory import (
    AzureDataFactoryAsyncHook,
    AzureDataFactoryHook,
    AzureDataFactoryPipelineRunException,
    get_field,
)
from airflow.providers.microsoft.azure.operators.data_factory import AzureDataFactoryRunPipelineOperator
from airflow.providers.microsoft.azure.triggers.data_factory import AzureDataFactoryTrigger
from airflow.triggers.base import TriggerEvent

from include.cosmos_archiver.adf import PIPELINE_NAME
from include.cosmos_archiver.adf.management_client import local_async_management_client, local_management_client
from include.cosmos_archiver.loopback import LOCAL_SUBSCRIPTION_ID


@dataclass(frozen=True)
class LocalStandin:
    """Where a connection's loopback stand-in is: its base URL, the subscription in its paths, the CA to trust."""

    base_url: str
    subscription_id: str
    ca_file: str | None

    @classmethod
    def from_extras(cls, extras: dict[str, Any], conn_id: str) -> LocalStandin:
        local = local_standin(extras)
        if local is None:
            raise AirflowException(
                f"connection {conn_id!r} has no local_base_url extra: this hook only reaches the loopback ADF "
                "stand-in; on Azure use the provider's AzureDataFactoryHook"
            )
        return local


def local_standin(extras: dict[str, Any]) -> LocalStandin | None:
    """The stand-in a connection points at (its ``local_base_url`` extra), or None for Azure."""
    base_url = get_field(extras, "local_base_url")
    if not base_url:
        return None
    subscription = get_field(extras, "subscriptionId") or LOCAL_SUBSCRIPTION_ID
    return LocalStandin(base_url, subscription, get_field(extras, "local_ca_bundle"))


def data_factory_hook(conn_id: str) -> AzureDataFactoryHook:
    """The hook for a connection: the provider's own :class:`AzureDataFactoryHook` on Azure (no ``local_base_url``),
    :class:`CosmosArchiveAdfHook` for the loopback stand-in. Every caller (the operator, validation's re-copy)
    builds its hook here, so none reaches Azure with the stand-in's hook (which refuses any other connection)."""
    if local_standin(AzureDataFactoryHook.get_connection(conn_id).extra_dejson) is None:
        return AzureDataFactoryHook(azure_data_factory_conn_id=conn_id)
    return CosmosArchiveAdfHook(azure_data_factory_conn_id=conn_id)


def pipeline_run_start(hook: AzureDataFactoryHook, run_id: str) -> dt.datetime | None:
    """When ADF started a pipeline run (its ``runStart``, the service's clock), or None if it does not say; the
    resource group and factory come from the connection's extras, as the provider's operator takes them."""
    run = hook.get_pipeline_run(run_id, None, None)  # type: ignore[arg-type]
    start = getattr(run, "run_start", None)
    return start if isinstance(start, dt.datetime) else None


class CosmosArchiveAdfHook(AzureDataFactoryHook):
    """AzureDataFactoryHook for the loopback stand-in: every provider method reaches it through ``get_conn``."""

    def __init__(self, azure_data_factory_conn_id: str = AzureDataFactoryHook.default_conn_name) -> None:
        super().__init__(azure_data_factory_conn_id=azure_data_factory_conn_id)
        self._standin_client: Any = None

    def get_conn(self) -> Any:
        if self._standin_client is None:
            local = LocalStandin.from_extras(self.get_connection(self.conn_id).extra_dejson, self.conn_id)
            self._standin_client = local_management_client(local.base_url, local.subscription_id, ca_file=local.ca_file)
        return self._standin_client


class CosmosArchiveAdfAsyncHook(AzureDataFactoryAsyncHook):
    """AzureDataFactoryAsyncHook for the loopback stand-in: every provider method reaches it through
    ``get_async_conn``; ``close`` (also called by ``refresh_conn`` and ``async with``) closes its client."""

    def __init__(self, azure_data_factory_conn_id: str = AzureDataFactoryAsyncHook.default_conn_name) -> None:
        super().__init__(azure_data_factory_conn_id=azure_data_factory_conn_id)
        self._standin_client: Any = None

    async def get_async_conn(self) -> Any:
        if self._standin_client is None:
            conn = await get_async_connection(self.conn_id)
            # json.loads, as the provider's async hook does: extra_dejson can call mask_secret -> a sync send on
            # the triggerer's event loop.
            local = LocalStandin.from_extras(json.loads(conn.extra) if conn.extra else {}, self.conn_id)
            self._standin_client = local_async_management_client(
                local.base_url, local.subscription_id, ca_file=local.ca_file
            )
        return self._standin_client

    async def close(self) -> None:
        if self._standin_client is not None:
            await self._standin_client.close()
            self._standin_client = None
        await super().close()


class CosmosArchiveAdfTrigger(AzureDataFactoryTrigger):
    """AzureDataFactoryTrigger that polls the loopback stand-in (deferred only for a local connection).

    The stock ``run()`` builds the stock async hook itself, which cannot reach the stand-in, so this one polls with
    :class:`CosmosArchiveAdfAsyncHook` and yields the stock trigger's events (its ``_build_trigger_event``).
    """

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()  # the stock arguments; only the class path is ours
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with CosmosArchiveAdfAsyncHook(azure_data_factory_conn_id=self.azure_data_factory_conn_id) as hook:
            yield await self._poll(hook)

    async def _poll(self, hook: CosmosArchiveAdfAsyncHook) -> TriggerEvent:
        try:
            while True:
                status = await hook.get_adf_pipeline_run_status(
                    self.run_id, self.resource_group_name, self.factory_name
                )
                # provider-private: the stock trigger's own status -> event mapping (tests/test_adf_plugin.py
                # fails if it changes), so a local run ends with exactly the events an Azure run ends with
                event = self._build_trigger_event(status)
                if event is not None:
                    return event
                if not self.wait_for_termination:
                    message = f"The pipeline run {self.run_id} has {status} status."
                    return TriggerEvent({"status": "success", "run_id": self.run_id, "message": message})
                if time.time() >= self.end_time:
                    message = f"Timeout: The pipeline run {self.run_id} has {status}."
                    return TriggerEvent({"status": "error", "run_id": self.run_id, "message": message})
                self.log.info("Sleeping for %s. The pipeline state is %s.", self.check_interval, status)
                await asyncio.sleep(self.check_interval)
        except Exception as exc:
            self.log.exception("polling pipeline run %s failed; cancelling it", self.run_id)
            try:
                await hook.cancel_pipeline_run(self.run_id, self.resource_group_name, self.factory_name)
            except Exception:
                self.log.exception("Failed to cancel pipeline run %s", self.run_id)
            return TriggerEvent({"status": "error", "message": str(exc), "run_id": self.run_id})


class CosmosArchiveAdfRunPipelineOperator(AzureDataFactoryRunPipelineOperator):
    """AzureDataFactoryRunPipelineOperator for the ``cosmos_archive_copy`` pipeline.

    ``resource_group_name``/``factory_name`` default to the connection's extras (as in the stock hook).
    A failed or cancelled run raises with ADF's own message for the run appended.
    """

    def __init__(
        self,
        *,
        pipeline_name: str = PIPELINE_NAME,
        resource_group_name: str | None = None,
        factory_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            pipeline_name=pipeline_name,
            resource_group_name=resource_group_name,  # type: ignore[arg-type]
            factory_name=factory_name,  # type: ignore[arg-type]
            **kwargs,
        )

    @cached_property
    def local(self) -> LocalStandin | None:
        """The loopback stand-in the connection points at, or None (Azure: the stock provider path)."""
        return local_standin(AzureDataFactoryHook.get_connection(self.azure_data_factory_conn_id).extra_dejson)

    @cached_property
    def hook(self) -> AzureDataFactoryHook:
        return data_factory_hook(self.azure_data_factory_conn_id)  # on Azure: as the stock operator builds it

    def execute(self, context: Any) -> None:
        try:
            super().execute(context)
        except AzureDataFactoryPipelineRunException as exc:
            raise AzureDataFactoryPipelineRunException(
                self._with_run_message(str(exc), getattr(self, "run_id", None))
            ) from exc

    def defer(
        self, *, trigger: Any, method_name: str, kwargs: dict[str, Any] | None = None, timeout: Any = None
    ) -> Any:
        # The stock execute() builds the stock trigger itself; for the stand-in, swap in the local one (same
        # arguments). A trigger of any other type (the provider changed) is deferred as given: then the local
        # tests fail on the trigger's class path, never the Azure path.
        if self.local is not None and type(trigger) is AzureDataFactoryTrigger:
            trigger = CosmosArchiveAdfTrigger(**trigger.serialize()[1])
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def execute_complete(self, context: Any, event: dict[str, str]) -> None:
        if event and event.get("status") == "error":
            raise AirflowException(self._with_run_message(event["message"], event.get("run_id")))
        super().execute_complete(context, event)

    def _with_run_message(self, text: str, run_id: str | None) -> str:
        if not run_id:
            return text
        try:
            run = self.hook.get_pipeline_run(run_id, self.resource_group_name, self.factory_name)
        except Exception as exc:  # the original failure matters more than this lookup
            self.log.warning("could not read pipeline run %s for its message: %s", run_id, exc)
            return text
        return f"{text} ADF: {run.message}" if run.message else text
