"""Thin Airflow adapters for the ADF copy path: the provider's ADF hook, async hook, trigger and operator, plus a
loopback mode for the local stand-in.

With a connection extra ``local_base_url`` (``https://127.0.0.1:<port>``) the hooks build their management
clients for that URL with a static dummy token and the local CA (``local_ca_bundle`` extra, else
REQUESTS_CA_BUNDLE/SSL_CERT_FILE). Without it every class defers to the stock provider code, so on Azure the
behaviour is the provider's. The operator also adds the run's own failure message (from ADF) to the task error.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
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

LOCAL_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def _local_settings(extras: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(base_url, subscription, ca_file) when the connection points at the loopback stand-in, else None."""
    base_url = get_field(extras, "local_base_url")
    if not base_url:
        return None
    return base_url, get_field(extras, "subscriptionId") or LOCAL_SUBSCRIPTION, get_field(extras, "local_ca_bundle")


class CosmosArchiveAdfHook(AzureDataFactoryHook):
    """AzureDataFactoryHook that can also talk to the loopback stand-in."""

    def get_conn(self) -> Any:
        if self._conn is not None:
            return self._conn
        local = _local_settings(self.get_connection(self.conn_id).extra_dejson)
        if local is None:
            return super().get_conn()
        base_url, subscription, ca_file = local
        self._conn = local_management_client(base_url, subscription, ca_file=ca_file)
        return self._conn


class CosmosArchiveAdfAsyncHook(AzureDataFactoryAsyncHook):
    """AzureDataFactoryAsyncHook that can also talk to the loopback stand-in."""

    async def _local(self) -> tuple[str, str, str | None] | None:
        conn = await get_async_connection(self.conn_id)
        return _local_settings(json.loads(conn.extra) if conn.extra else {})

    async def is_local(self) -> bool:
        return await self._local() is not None

    async def get_async_conn(self) -> Any:
        if self._async_conn is not None:
            return self._async_conn
        local = await self._local()
        if local is None:
            return await super().get_async_conn()
        base_url, subscription, ca_file = local
        self._async_conn = local_async_management_client(base_url, subscription, ca_file=ca_file)
        return self._async_conn


class CosmosArchiveAdfTrigger(AzureDataFactoryTrigger):
    """AzureDataFactoryTrigger whose polling also works against the stand-in.

    The stock ``run()`` builds the stock async hook itself, so for a local connection this class polls with
    :class:`CosmosArchiveAdfAsyncHook` (same events as the stock trigger); otherwise it runs the stock ``run()``.
    """

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CosmosArchiveAdfAsyncHook(azure_data_factory_conn_id=self.azure_data_factory_conn_id)
        if not await hook.is_local():
            async for event in super().run():
                yield event
            return
        async with hook:
            yield await self._poll(hook)

    async def _poll(self, hook: CosmosArchiveAdfAsyncHook) -> TriggerEvent:
        try:
            while True:
                status = await hook.get_adf_pipeline_run_status(
                    self.run_id, self.resource_group_name, self.factory_name
                )
                event = self._build_trigger_event(status)
                if event is not None:
                    return event
                if not self.wait_for_termination:
                    return TriggerEvent(
                        {
                            "status": "success",
                            "run_id": self.run_id,
                            "message": f"The pipeline run {self.run_id} has {status} status.",
                        }
                    )
                if time.time() >= self.end_time:
                    return TriggerEvent(
                        {
                            "status": "error",
                            "run_id": self.run_id,
                            "message": f"Timeout: The pipeline run {self.run_id} has {status}.",
                        }
                    )
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
    def hook(self) -> AzureDataFactoryHook:
        return CosmosArchiveAdfHook(azure_data_factory_conn_id=self.azure_data_factory_conn_id)

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
        if type(trigger) is AzureDataFactoryTrigger:  # built by the stock execute(): swap in the local-aware one
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
