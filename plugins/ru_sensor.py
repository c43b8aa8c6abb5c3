"""Airflow 3 sensor that holds the archive run until Cosmos DB RU usage has been quiet for a while.

Thin: the judgement (``assess_quiet``: known samples only, lagging minutes never count as idle) lives in
``include.cosmos_archiver.ru.quiet_gate``. Structured like the Microsoft Azure provider's sensors (e.g.
``AzureCosmosDocumentSensor``): templated fields, a client built per poke, ``poke`` returns a bool.
Defaults to ``mode="reschedule"`` so a waiting sensor holds no worker slot; ``deferrable=True`` hands the wait to
the triggerer instead (:class:`CosmosRuQuietTrigger`, importable as ``ru_sensor.CosmosRuQuietTrigger`` because
Airflow puts plugins/ on sys.path).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowSensorTimeout, BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from include.cosmos_archiver.loopback import StaticTokenCredential
from include.cosmos_archiver.ru.quiet_gate import busy_timeout_message, check_quiet
from include.cosmos_archiver.ru.usage import AzureMonitorUsageSource

if TYPE_CHECKING:
    from airflow.sdk import Context


def _source(params: dict[str, Any]) -> AzureMonitorUsageSource:
    kwargs: dict[str, Any] = {}
    if params.get("connection_verify"):
        kwargs["connection_verify"] = params["connection_verify"]
    return AzureMonitorUsageSource(
        params["metrics_endpoint"],
        params["resource_id"],
        credential=StaticTokenCredential() if params["credential"] == "local" else None,
        grain=timedelta(seconds=params["grain_s"]),
        lagging_grains=params["lagging_grains"],
        database=params.get("database"),
        collection=params.get("collection"),
        **kwargs,
    )


def _check(params: dict[str, Any]) -> tuple[bool, str]:
    source = _source(params)
    try:
        verdict = check_quiet(
            source,
            provisioned_ru_s=params["provisioned_ru_s"],
            threshold=params["threshold"],
            window=timedelta(seconds=params["quiet_window_s"]),
        )
    finally:
        source.close()
    return verdict.quiet, verdict.reason


class CosmosRuQuietTrigger(BaseTrigger):
    """Polls the same check in the triggerer (in a worker thread: the SDK call is blocking) until quiet."""

    def __init__(self, params: dict[str, Any], poke_interval: float = 60.0) -> None:
        super().__init__()
        self.params = params
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("ru_sensor.CosmosRuQuietTrigger", {"params": self.params, "poke_interval": self.poke_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                quiet, reason = await asyncio.to_thread(_check, self.params)
            except Exception as exc:  # surfaced to the task, which fails with the reason
                yield TriggerEvent({"status": "error", "message": f"RU usage check failed: {exc}"})
                return
            self.log.info("RU gate: %s", reason)
            if quiet:
                yield TriggerEvent({"status": "quiet", "message": reason})
                return
            await asyncio.sleep(self.poke_interval)


class CosmosRuQuietSensor(BaseSensorOperator):
    """Succeeds once TOTAL RU usage of the account (or one container) stayed under ``threshold`` of
    ``provisioned_ru_s`` for ``quiet_window`` of published metrics.

    :param metrics_endpoint: regional Azure Monitor endpoint, e.g. ``https://westeurope.metrics.monitor.azure.com``
        (or the local RU gateway's URL).
    :param resource_id: ARM id of the Cosmos DB account.
    :param provisioned_ru_s: provisioned throughput the threshold is a share of.
    :param threshold: share of provisioned RU/s usage must stay under (default 0.5: leave room for the archiver).
    :param quiet_window: how long usage must have stayed under the threshold.
    :param grain: metric grain (Azure: 1 minute); ``lagging_grains`` newest grains count as unknown.
    :param credential: ``"default"`` (DefaultAzureCredential) or ``"local"`` (static token for the local gateway).
    :param connection_verify: CA bundle path for a local endpoint (else the system/REQUESTS_CA_BUNDLE trust).
    """

    template_fields: Sequence[str] = ("metrics_endpoint", "resource_id", "database", "collection")

    def __init__(
        self,
        *,
        metrics_endpoint: str,
        resource_id: str,
        provisioned_ru_s: float,
        threshold: float = 0.5,
        quiet_window: timedelta = timedelta(minutes=15),
        grain: timedelta = timedelta(minutes=1),
        lagging_grains: int = 2,
        database: str | None = None,
        collection: str | None = None,
        credential: str = "default",
        connection_verify: str | None = None,
        mode: str = "reschedule",
        poke_interval: float = 300,
        timeout: float = 6 * 3600,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.deferrable = deferrable
        if credential not in ("default", "local"):
            raise ValueError(f"credential={credential!r} must be 'default' (DefaultAzureCredential) or 'local'")
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold={threshold!r} must be in (0, 1], a share of provisioned RU/s")
        if not provisioned_ru_s > 0:
            raise ValueError(f"provisioned_ru_s={provisioned_ru_s!r} must be > 0")
        self.metrics_endpoint = metrics_endpoint
        self.resource_id = resource_id
        self.provisioned_ru_s = provisioned_ru_s
        self.threshold = threshold
        self.quiet_window = quiet_window
        self.grain = grain
        self.lagging_grains = lagging_grains
        self.database = database
        self.collection = collection
        self.credential = credential
        self.connection_verify = connection_verify

    def _params(self) -> dict[str, Any]:
        """Plain JSON-able settings: the same check runs in the worker (poke) or the triggerer (deferrable)."""
        return {
            "metrics_endpoint": self.metrics_endpoint,
            "resource_id": self.resource_id,
            "provisioned_ru_s": float(self.provisioned_ru_s),
            "threshold": float(self.threshold),
            "quiet_window_s": self.quiet_window.total_seconds(),
            "grain_s": self.grain.total_seconds(),
            "lagging_grains": int(self.lagging_grains),
            "database": self.database,
            "collection": self.collection,
            "credential": self.credential,
            "connection_verify": self.connection_verify,
        }

    def poke(self, context: Context) -> bool:
        quiet, reason = _check(self._params())
        self.log.info("RU gate: %s", reason)
        return quiet

    def _timeout_message(self) -> str:
        return busy_timeout_message(
            threshold=self.threshold,
            provisioned_ru_s=self.provisioned_ru_s,
            waited=timedelta(seconds=float(self.timeout)),
            window=self.quiet_window,
        )

    def execute(self, context: Context) -> Any:
        if self.deferrable and not self.poke(context):
            self.defer(
                timeout=timedelta(seconds=float(self.timeout)),
                trigger=CosmosRuQuietTrigger(self._params(), poke_interval=float(self.poke_interval)),
                method_name="execute_complete",
            )
        if self.deferrable:
            return None
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(self._timeout_message()) from exc

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as exc:  # the deferral timed out: same clear message as poke mode
            raise AirflowSensorTimeout(self._timeout_message()) from exc

    def execute_complete(self, context: Context, event: dict[str, str] | None) -> None:
        if not event or event.get("status") != "quiet":
            raise AirflowException((event or {}).get("message", "the RU trigger sent no event"))
        self.log.info("RU gate: %s", event["message"])
