"""Airflow adapters for cosmos-archive: settings from Variables, clients from Connections, the run status, and
the library's errors mapped onto Airflow's retry decisions.

Thin by design: everything here turns Airflow configuration into the library's plain objects, or the library's
outcomes into Airflow's (failed without retry, skipped).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from airflow.exceptions import AirflowNotFoundException
from airflow.providers.microsoft.azure.hooks.cosmos import AzureCosmosDBHook
from airflow.providers.microsoft.azure.hooks.data_factory import (
    AzureDataFactoryPipelineRunException,
    AzureDataFactoryPipelineRunStatus,
)
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from airflow.sdk import BaseHook, ExceptionRetryPolicy, RetryAction, RetryRule, Variable
from airflow.sdk.exceptions import AirflowSkipException
from azure.cosmos import ContainerProxy
from cosmos_archive_adf import data_factory_hook, pipeline_run_start

from include.cosmos_archiver.adf import PIPELINE_NAME
from include.cosmos_archiver.adf.indexing import index_adf_slice
from include.cosmos_archiver.adf.parameters import pipeline_parameters
from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.protection import StorageProtection, read_protection
from include.cosmos_archiver.archive.replica import replica_store
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import EndpointPatience, cosmos_client, ensure_container, with_patience
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.pipeline.copy import copy_slice, needs_local_copy
from include.cosmos_archiver.pipeline.run_status import ArchiveStatus
from include.cosmos_archiver.pipeline.slice_workflow import (
    ArchiveHaltedError,
    CopyAgain,
    Route,
    RunDates,
    SliceIntegrityError,
    SliceSkipped,
    SliceWorkflow,
)
from include.cosmos_archiver.reporting.archive_status import halt_line, one_line
from include.cosmos_archiver.ru.budget import RuBudget
from include.cosmos_archiver.ru.governance import RuGovernance
from include.cosmos_archiver.ru.settings import RateControlError
from include.cosmos_archiver.settings import ArchiveSettings, SettingsError
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.preflight import require_account_mode

SETTINGS_VARIABLE = "cosmos_archive_settings"
STATUS_VARIABLE = "cosmos_archive_status"
RU_VARIABLE = "cosmos_archive_ru"
COSMOS_CONN_ID = "cosmos_archive_cosmos"
BLOB_CONN_ID = "cosmos_archive_blob"
REPLICA_CONN_ID = "cosmos_archive_replica"  # optional: the replica in another storage account (wasb)
ADF_CONN_ID = "cosmos_archive_adf"
ADF_CHECK_INTERVAL_S = 30  # how often a waiting task asks ADF about its pipeline run
ADF_TIMEOUT_S = 12 * 3600
log = logging.getLogger(__name__)

# The SDKs log every HTTP request at INFO; keep task logs for people.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
logging.getLogger("azure.cosmos").setLevel(logging.WARNING)


class ConfigurationError(TerminalError, ValueError):
    """Raised before any work starts; the message names the missing connection or the bad value."""


class OneLineExit(SystemExit):
    """A task ends failed with one line in its log and no traceback.

    Airflow's task runner logs every exception with its traceback (``log.exception("Task failed with exception")``
    in airflow/sdk/execution_time/task_runner.py, AirflowFailException included) except SystemExit, which it logs as
    one line (``log.error("Task exited", exit_code=...)``) and then fails or retries (a task with ``retries=0``
    fails at once). The message is the line the operator reads first.
    """


class HaltedExit(OneLineExit):
    """A task ends failed on a halted archive ("Halted since …: slice …"); ``NOT_RETRIED`` makes it fail at once
    whatever the task's retries."""


class TerminalExit(OneLineExit):
    """A task ends failed on a :class:`TerminalError` (bad settings, a missing connection, a slice that failed for
    good): its message already says what was wrong and what to do; ``NOT_RETRIED`` makes it fail at once."""


# Every task's retry policy (default_args): a halted archive and a terminal error are not retried, anything else as
# the task's retries say.
NOT_RETRIED = ExceptionRetryPolicy(rules=[
    RetryRule(exception=HaltedExit, action=RetryAction.FAIL,
              reason="the archive is halted until an operator clears it"),
    RetryRule(exception=TerminalExit, action=RetryAction.FAIL, reason="a terminal error: retrying cannot mend it"),
])


@contextmanager
def archive_errors() -> Iterator[None]:
    """Map the library's outcomes onto Airflow's, as a decorator (under ``@task``) or a ``with`` block.

    TerminalError (bad settings, a missing connection, a slice that failed validation for good) fails the task
    at once, without its retries, in one line (TerminalExit); SliceSkipped marks it skipped. A halted archive (and
    the halt itself) ends the task with one line and no traceback (HaltedExit). Anything else (TransientError, the
    SDKs' errors) propagates unchanged, so the task's retries with back-off take it again.
    """
    try:
        yield
    except ArchiveHaltedError as exc:
        raise HaltedExit(_halted_line(exc)) from None
    except SliceIntegrityError as exc:
        raise HaltedExit(one_line(str(exc), limit=2000)) from None
    except TerminalError as exc:
        raise TerminalExit(one_line(f"{exc} [{type(exc).__name__}: not retried]", limit=2000)) from None
    except SliceSkipped as exc:
        raise AirflowSkipException(str(exc)) from exc


def _halted_line(exc: Exception) -> str:
    """The status worded for people ("Halted since …"); the library's own message if the status cannot be read."""
    try:
        return halt_line(read_status()) or one_line(str(exc), limit=2000)
    except Exception:  # the one line must come out whatever the Variable holds
        return one_line(str(exc), limit=2000)


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
    """The cosmos_archive_ru Variable, its account_mode known (set, or read from the account): every task that paces
    or gates refuses to guess it (source.preflight.require_account_mode, a terminal error)."""
    raw = Variable.get(RU_VARIABLE, default=None)
    try:
        governance = RuGovernance.from_mapping({} if raw is None else json.loads(raw) if isinstance(raw, str) else raw)
    except (json.JSONDecodeError, RateControlError, TypeError) as exc:
        raise ConfigurationError(f"Variable {RU_VARIABLE}: {exc}; fix it in Admin > Variables") from None
    return require_account_mode(governance, RU_VARIABLE)


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


def copy_route(store: ArchiveStore | None = None, time_slice: TimeSlice | None = None) -> Route:
    """How a slice is copied: by Azure Data Factory when its connection exists, else by the local executor; a
    slice whose purge has started always by the local executor (it appends a generation; an ADF re-run would
    overwrite the files that hold the purged records)."""
    if store is not None and time_slice is not None and needs_local_copy(store, time_slice.slice_id):
        return "local"
    return "adf" if connection_exists(ADF_CONN_ID) else "local"


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
    client = cosmos_client(conn.login, conn.password, patience=EndpointPatience.from_settings(settings),
                           consistency_level=settings.read_consistency, **client_kwargs)  # type: ignore[arg-type]
    return client.get_database_client(settings.database).get_container_client(settings.container)


def paced_source(settings: ArchiveSettings) -> tuple[ContainerProxy, RuBudget]:
    """The source container as the archiver reads it (low priority, its throughput bucket) and the RU budget that
    paces those reads, both from the cosmos_archive_ru Variable."""
    governance = load_ru_governance()
    return cosmos_container(settings, **governance.client_kwargs()), governance.budget()


def archive_store(settings: ArchiveSettings, *, create: bool = True) -> ArchiveStore:
    require_connection(BLOB_CONN_ID, "Azure Blob Storage sink (wasb)")
    hooked = WasbHook(wasb_conn_id=BLOB_CONN_ID).get_conn().get_container_client(settings.blob_container)
    container = with_patience(hooked, EndpointPatience.from_settings(settings))  # the hook's auth, our bounds
    if create:
        ensure_container(container)
    return ArchiveStore(container, settings.blob_prefix)


def archive_replica(settings: ArchiveSettings, store: ArchiveStore) -> ArchiveStore | None:
    """The replica's store: container ``settings.replica`` in the account of the ``cosmos_archive_replica``
    connection when it exists, else in the archive's own account; None with ``replica_container: ""``."""
    if settings.replica is None:
        return None
    other = None
    if connection_exists(REPLICA_CONN_ID):
        other = WasbHook(wasb_conn_id=REPLICA_CONN_ID).get_conn().get_container_client(settings.replica)
    return replica_store(store, settings, other)


def storage_protection(settings: ArchiveSettings) -> StorageProtection | None:
    """What the archive's storage account keeps (versioning, soft delete, immutability), read from Azure Resource
    Manager with the worker's identity when ``storage_account_id`` is set."""
    if not settings.storage_account_id:
        return None
    return read_protection(settings.storage_account_id, settings.blob_container)


def read_status() -> ArchiveStatus:
    try:
        return ArchiveStatus.from_json(Variable.get(STATUS_VARIABLE, default=None))
    except ValueError as exc:
        raise ConfigurationError(f"Variable {STATUS_VARIABLE}: {exc}") from None


def write_status(status: ArchiveStatus) -> None:
    Variable.set(STATUS_VARIABLE, status.to_json())


class VariableStatus:
    """The archive status kept in the ``cosmos_archive_status`` Variable (the library's StatusStore)."""

    def read(self) -> ArchiveStatus:
        return read_status()

    def write(self, status: ArchiveStatus) -> None:
        write_status(status)


def slice_workflow(params: Mapping[str, Any]) -> SliceWorkflow:
    """The slice rules over the status Variable, with the attempts/back-off of the run's params."""
    return SliceWorkflow(VariableStatus(), attempts=int(params["validation_attempts"]),
                         backoff_s=float(params["validation_backoff_s"]))


def run_dates(context: Mapping[str, Any]) -> RunDates:
    params = context["params"]
    return RunDates(logical_date=context.get("logical_date"), data_interval_start=context.get("data_interval_start"),
                    data_interval_end=context.get("data_interval_end"),
                    backfill=context["dag_run"].run_type == "backfill",
                    from_date=params.get("from_date"), to_date=params.get("to_date"))


def adf_parameters(time_slice: TimeSlice, settings: ArchiveSettings) -> dict[str, Any]:
    """The copy pipeline's parameters; pageSize/parallelCopies from the RU/s the controller grants right now."""
    plan = load_ru_governance().adf_copy_settings()
    (log.info if plan.fits and plan.measured else log.warning)(
        "ADF copy sized for %.0f RU/s: pageSize %d, parallelCopies %d (%s); ADF's reads are not paced by the "
        "archiver's controller", plan.budget_ru_s, plan.page_size, plan.parallel_copies, plan.note)
    return pipeline_parameters(time_slice, settings, page_size=plan.page_size, parallel_copies=plan.parallel_copies)


def copy_with_adf(time_slice: TimeSlice, settings: ArchiveSettings, store: ArchiveStore) -> Manifest:
    """Run the copy pipeline for one slice, wait for it (in this worker), and index what it wrote.

    The validate task's way to copy an ADF slice again; the first copy is the deferrable operator's. On Azure the
    provider's own hook runs the pipeline; the loopback hook only for the stand-in (plugins/cosmos_archive_adf.py).
    """
    hook = data_factory_hook(ADF_CONN_ID)
    run_id = hook.run_pipeline(PIPELINE_NAME, None, None, parameters=adf_parameters(time_slice, settings)).run_id
    log.info("ADF pipeline run %s copies slice %s again", run_id, time_slice.slice_id)
    succeeded = {AzureDataFactoryPipelineRunStatus.SUCCEEDED}
    # None: resource group and factory from the connection's extras, as the provider's operator does
    if not hook.wait_for_pipeline_run_status(run_id, succeeded, None, None,  # type: ignore[arg-type]
                                             check_interval=_adf_check_interval_s(), timeout=ADF_TIMEOUT_S):
        run = hook.get_pipeline_run(run_id, None, None)  # type: ignore[arg-type]
        raise AzureDataFactoryPipelineRunException(
            f"ADF pipeline run {run_id} copying slice {time_slice.slice_id} again ended {run.status}: {run.message}"
        )
    return index_adf_copy(store, time_slice, settings, run_id=run_id)


def index_adf_copy(store: ArchiveStore, time_slice: TimeSlice, settings: ArchiveSettings, *,
                   run_id: str | None = None) -> Manifest:
    """Index what an ADF run wrote for the slice, adding from the paced source the timestamps its query cannot
    place (other ISO 8601 spellings); the run's start (asked of ADF) marks what changed during the copy."""
    container, budget = paced_source(settings)
    run_start = pipeline_run_start(data_factory_hook(ADF_CONN_ID), run_id) if run_id else None
    if run_id and run_start is None:
        log.warning("ADF pipeline run %s does not say when it started: records changed during its copy of slice %s "
                    "will fail validation and be copied again", run_id, time_slice.slice_id)
    return index_adf_slice(store, time_slice, settings, container=container, budget=budget, run_id=run_id,
                           run_start=run_start)


def _adf_check_interval_s() -> float:
    """How often validation's re-copy asks ADF about its run: the ADF connection's extra ``check_interval_s``
    (e.g. a few seconds for the loopback stand-in, whose runs end in a second), else ADF_CHECK_INTERVAL_S."""
    value = BaseHook.get_connection(ADF_CONN_ID).extra_dejson.get("check_interval_s", ADF_CHECK_INTERVAL_S)
    try:
        return max(1.0, float(value))
    except (TypeError, ValueError):
        raise ConfigurationError(f"Airflow connection {ADF_CONN_ID!r}: extra check_interval_s={value!r} is not a "
                                 "number of seconds; fix it in Admin > Connections") from None


def copy_again(settings: ArchiveSettings, store: ArchiveStore, container: ContainerProxy,
               budget: RuBudget) -> dict[Route, CopyAgain]:
    """How validation copies a slice again, by the route that copied it."""
    return {
        "local": lambda time_slice: copy_slice(container, store, time_slice, settings, budget=budget),
        "adf": lambda time_slice: copy_with_adf(time_slice, settings, store),
    }
