"""The ADF copy path end to end: the real provider operator/hook/trigger (through plugins/cosmos_archive_adf.py)
and the real azure-mgmt-datafactory clients, against the stand-in, which copies from cosmosdb-server to Azurite
writing what the real pipeline writes (Parquet files of the query's projection, doc as non-canonical JSON text, no
manifest); each copied slice is then indexed (index_adf_slice writes our manifest) and proven with validate_slice."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import importlib
import io
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos import PartitionKey

from devstack import drills
from devstack.adf_standin.copy_runner import copy_runner
from devstack.adf_standin.server import LOCAL_FACTORY, LOCAL_RESOURCE_GROUP, AdfStandin, Faults
from devstack.seed import SeedSpec, generate, seed_container
from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig, free_port, running_stack
from devstack.tls import ensure_local_tls
from include.cosmos_archiver.adf.indexing import AdfIndexError, adf_files, index_adf_slice
from include.cosmos_archiver.adf.parameters import pipeline_parameters
from include.cosmos_archiver.archive.canonical import canonical_json, sha256_hex
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import blob_container, cosmos_client
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.readthrough.markers import SYSTEM_PROPERTIES
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
CONN_ID = "adf_archive_local"
END = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
SPEC = SeedSpec(records=48, seed=7, target_kb=2, months_back=1, customers=5, end=END)
SETTINGS = ArchiveSettings(
    timestamp_field="archiveTs",
    timestamp_kind="epoch_seconds",
    page_size=10,
    blob_container="adf-archive",
    blob_prefix="records",
    database="billing",
    container="records",
)


def _day(doc: dict[str, Any]) -> dt.date:
    return dt.datetime.fromtimestamp(doc["archiveTs"], dt.UTC).date()


def _busiest_days(count: int) -> list[tuple[TimeSlice, int]]:
    """Distinct day slices that hold seeded records, with how many each holds."""
    counts = Counter(_day(doc) for doc in generate(SPEC))
    days = [day for day, _ in counts.most_common(count)]
    return [
        (
            TimeSlice(
                dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC),
                dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC) + dt.timedelta(days=1),
            ),
            counts[d],
        )
        for d in days
    ]


class FakeTI:
    """The slice of a task instance the operator touches (it pushes the run id to XCom)."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("adf-stack")
    config = StackConfig(state_dir=state, cosmos_port=free_port(), blob_port=free_port())
    with pytest.MonkeyPatch.context() as mp:
        if "AIRFLOW_HOME" not in os.environ:
            mp.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
        # running_stack trusts the stack's CA for the block and restores the variables after; setting them again
        # through mp would restore this stack's CA after running_stack's exit (mp's undo runs last), so every later
        # test's new client would trust a CA that is gone.
        with running_stack(config):
            database = cosmos_client(config.cosmos_endpoint, EMULATOR_COSMOS_KEY).create_database_if_not_exists(
                SETTINGS.database
            )
            container = database.create_container_if_not_exists(
                SETTINGS.container, PartitionKey(path=SETTINGS.partition_key_path)
            )
            seed_container(container, SPEC, workers=4)
            tls = ensure_local_tls(state)
            run_copy = copy_runner(config.cosmos_endpoint, EMULATOR_COSMOS_KEY, config.blob_connection_string, SETTINGS)
            with AdfStandin(run_copy, tls_cert=tls.server_cert, tls_key=tls.server_key) as standin:
                mp.setenv(
                    f"AIRFLOW_CONN_{CONN_ID.upper()}",
                    json.dumps(
                        {
                            "conn_type": "azure_data_factory",
                            "extra": {
                                "subscriptionId": "00000000-0000-0000-0000-0000000000aa",
                                "resource_group_name": LOCAL_RESOURCE_GROUP,
                                "factory_name": LOCAL_FACTORY,
                                "local_base_url": standin.base_url,
                                "local_ca_bundle": str(tls.ca_bundle),
                            },
                        }
                    ),
                )
                mp.syspath_prepend(str(PLUGINS))
                plugin = importlib.import_module("cosmos_archive_adf")
                store = ArchiveStore(
                    blob_container(config.blob_connection_string, SETTINGS.blob_container), SETTINGS.blob_prefix
                )
                yield {
                    "standin": standin,
                    "plugin": plugin,
                    "container": container,
                    "store": store,
                    "slices": _busiest_days(9),
                }


@pytest.fixture
def standin(env: dict[str, Any]) -> Iterator[AdfStandin]:
    env["standin"].faults = Faults()
    yield env["standin"]
    env["standin"].faults = Faults()


def _operator(env: dict[str, Any], task_id: str, parameters: dict[str, Any], **kwargs: Any) -> Any:
    return env["plugin"].CosmosArchiveAdfRunPipelineOperator(
        task_id=task_id, azure_data_factory_conn_id=CONN_ID, parameters=parameters, check_interval=1, **kwargs
    )


def _assert_verified(env: dict[str, Any], time_slice: TimeSlice, expected: int) -> None:
    """What the DAG does after the ADF operator: index the files the run wrote, then validate the slice."""
    assert env["store"].read_manifest(time_slice.slice_id) is None  # ADF writes no manifest
    manifest = index_adf_slice(env["store"], time_slice, SETTINGS)
    assert (manifest.executor, manifest.status, manifest.record_count) == ("adf", "copied", expected)
    result = validate_slice(env["container"], env["store"], time_slice, SETTINGS)
    assert result.ok, result.message()
    assert (result.source_count, result.sink_count) == (expected, expected)
    assert env["store"].read_manifest(time_slice.slice_id).status == "verified"


def test_polling_path_copies_a_slice_that_then_validates(env: dict[str, Any], standin: AdfStandin) -> None:
    time_slice, expected = env["slices"][0]
    ti = FakeTI()
    op = _operator(
        env,
        "copy_polling",
        pipeline_parameters(time_slice, SETTINGS, page_size=7, parallel_copies=1),
        wait_for_termination=True,
        deferrable=False,
    )
    op.execute({"ti": ti})
    run = standin.runs[ti.xcom["run_id"]]
    assert run.status == "Succeeded" and run.output["records"] == expected  # type: ignore[index]
    assert isinstance(op.hook, env["plugin"].CosmosArchiveAdfHook)
    assert op.hook.get_conn()._config.base_url == standin.base_url  # the stand-in, never management.azure.com
    _assert_verified(env, time_slice, expected)


def _defer_and_trigger(env: dict[str, Any], task_id: str, time_slice: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Execute the deferrable operator until it defers, then, as the triggerer does, rebuild the trigger from its
    serialised form and run it to its first event. Returns (operator, event, trigger kwargs)."""
    from airflow.sdk.exceptions import TaskDeferred

    op = _operator(
        env, task_id, pipeline_parameters(time_slice, SETTINGS, page_size=10), wait_for_termination=True,
        deferrable=True,
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI()})
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "cosmos_archive_adf.CosmosArchiveAdfTrigger"
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)

    async def first_event() -> Any:
        async for event in rebuilt.run():
            return event
        raise AssertionError("trigger ended without an event")

    return op, asyncio.run(first_event()), kwargs


def test_deferrable_path_runs_the_trigger_to_completion(env: dict[str, Any], standin: AdfStandin) -> None:

    standin.faults = Faults(min_run_s=1.5)  # still running at the operator's first look: it must defer
    time_slice, expected = env["slices"][1]
    op, event, kwargs = _defer_and_trigger(env, "copy_deferred", time_slice)
    assert event.payload["status"] == "success", event.payload
    op.execute_complete({"ti": FakeTI()}, event.payload)
    assert standin.runs[kwargs["run_id"]].status == "Succeeded"
    _assert_verified(env, time_slice, expected)


def test_deferrable_run_finished_before_the_first_poll(env: dict[str, Any], standin: AdfStandin) -> None:
    standin.faults = Faults(finish_before_first_poll=True)
    time_slice, expected = env["slices"][2]
    ti = FakeTI()
    op = _operator(
        env,
        "copy_done_early",
        pipeline_parameters(time_slice, SETTINGS, page_size=10),
        wait_for_termination=True,
        deferrable=True,
    )
    op.execute({"ti": ti})  # no TaskDeferred: the run is already Succeeded
    assert standin.runs[ti.xcom["run_id"]].status == "Succeeded"
    _assert_verified(env, time_slice, expected)

    standin.faults = Faults(finish_before_first_poll=True, fail_message="injected: Cosmos DB region unavailable")
    failing = _operator(
        env,
        "copy_failed_early",
        pipeline_parameters(time_slice, SETTINGS, page_size=10),
        wait_for_termination=True,
        deferrable=True,
    )
    with pytest.raises(Exception, match=r"has failed or has been cancelled.*injected: Cosmos DB region unavailable"):
        failing.execute({"ti": FakeTI()})


def test_failing_run_fails_the_task_with_the_standins_message(env: dict[str, Any], standin: AdfStandin) -> None:
    from airflow.providers.microsoft.azure.hooks.data_factory import AzureDataFactoryPipelineRunException

    time_slice, _ = env["slices"][3]
    params = {**pipeline_parameters(time_slice, SETTINGS, page_size=10), "outputPath": "elsewhere/2024/05/01"}
    op = _operator(env, "copy_bad_folder", params, wait_for_termination=True, deferrable=False)
    with pytest.raises(AzureDataFactoryPipelineRunException) as failed:
        op.execute({"ti": FakeTI()})
    message = str(failed.value)
    assert "has failed or has been cancelled" in message
    assert "Operation on target CopySlice failed" in message and "'outputPath': 'elsewhere/2024/05/01'" in message
    assert env["store"].read_manifest(time_slice.slice_id) is None  # nothing was archived


def test_deferred_failure_carries_the_standins_message(env: dict[str, Any], standin: AdfStandin) -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    standin.faults = Faults(queued_s=1.2, fail_message="injected: throttled beyond retry (429)")
    time_slice, _ = env["slices"][4]
    op, event, _kwargs = _defer_and_trigger(env, "copy_deferred_fail", time_slice)
    assert event.payload["status"] == "error" and event.payload["run_id"]
    with pytest.raises(AirflowException, match=r"has Failed\..*injected: throttled beyond retry \(429\)"):
        op.execute_complete({"ti": FakeTI()}, event.payload)


@pytest.mark.parametrize(("field", "kind"), [("archiveTs", "epoch_seconds"), ("issuedAt", "iso8601")])
def test_the_pipelines_query_selects_the_archived_records_on_a_real_engine(
    env: dict[str, Any], field: str, kind: str
) -> None:
    """The pipeline's query expression, rendered for a slice, run by cosmosdb-server: same records as the executor."""
    from tests.test_adf_definitions import rendered_query

    time_slice, expected = env["slices"][0]
    settings = dataclasses.replace(SETTINGS, timestamp_field=field, timestamp_kind=kind)
    query = rendered_query(pipeline_parameters(time_slice, settings, page_size=10))
    rows = list(env["container"].query_items(query, enable_cross_partition_query=True))
    # The projection the translator maps: one row per document, the whole document under "doc".
    assert all(set(row) == {"id", "partition_key", "ts", "etag", "doc"} for row in rows)
    assert all(
        (r["id"], r["partition_key"], r["ts"], r["etag"])
        == (r["doc"]["id"], r["doc"]["customerId"], r["doc"]["_ts"], r["doc"]["_etag"])
        for r in rows
    )
    found = {(r["partition_key"], r["id"]) for r in rows}
    wanted = {(d["customerId"], d["id"]) for d in generate(SPEC) if _day(d) == time_slice.start.date()}
    assert len(found) == expected and found == wanted
    served = {
        (d["customerId"], d["id"]): d
        for d in env["container"].query_items("SELECT * FROM c", enable_cross_partition_query=True)
    }
    assert all(canonical_json(r["doc"]) == canonical_json(served[(r["partition_key"], r["id"])]) for r in rows)


def _run_pipeline(env: dict[str, Any], task_id: str, time_slice: TimeSlice) -> dict[str, Any]:
    ti = FakeTI()
    params = pipeline_parameters(time_slice, SETTINGS, page_size=10)
    _operator(env, task_id, params, wait_for_termination=True, deferrable=False).execute({"ti": ti})
    run = env["standin"].runs[ti.xcom["run_id"]]
    assert run.status == "Succeeded", run.message
    return run.output


def test_standin_writes_the_pipelines_layout_which_indexes_to_canonical_hashes(
    env: dict[str, Any], standin: AdfStandin
) -> None:
    import pyarrow.parquet as pq

    time_slice, expected = env["slices"][5]
    output = _run_pipeline(env, "copy_layout", time_slice)
    store = env["store"]
    paths = adf_files(store, time_slice.slice_id)
    assert output["filesWritten"] == len(paths) >= 1 and output["rowsCopied"] == expected
    assert store.list_parts(time_slice.slice_id) == paths  # only ADF files, named by the definition's prefix
    assert all(p.rsplit("/", 1)[1].startswith("adf_") for p in paths)
    assert store.read_manifest(time_slice.slice_id) is None
    served = {
        (d["customerId"], d["id"]): d
        for d in env["container"].query_items("SELECT * FROM c", enable_cross_partition_query=True)
    }
    non_canonical = 0
    for path in paths:
        table = pq.read_table(io.BytesIO(store.download(path)))
        assert table.column_names == ["id", "partition_key", "ts", "etag", "doc"]
        assert pq.ParquetFile(io.BytesIO(store.download(path))).metadata.row_group(0).column(0).compression == "SNAPPY"
        for row in table.to_pylist():
            source = served[(row["partition_key"], row["id"])]
            assert json.loads(row["doc"]) == source and (row["ts"], row["etag"]) == (source["_ts"], source["_etag"])
            non_canonical += row["doc"].encode() != canonical_json(source)
    assert non_canonical == expected  # the stand-in is honest: ADF's JSON text is never our canonical form

    manifest = index_adf_slice(store, time_slice, SETTINGS, run_id="run-1")
    assert [f.path for f in manifest.files] == paths
    assert all(f.records >= 1 and len(f.sha256) == 64 for f in manifest.files)
    canon = {k: canonical_json(d) for k, d in served.items() if _day(d) == time_slice.start.date()}
    assert manifest.record_bytes == sum(len(c) for c in canon.values())
    assert {(r.partition_key, r.id): r.sha256 for r in manifest.records} == {k: sha256_hex(c) for k, c in canon.items()}
    assert "copied by Azure Data Factory pipeline run run-1" in manifest.notes
    result = validate_slice(env["container"], store, time_slice, SETTINGS)
    assert result.ok and result.sink_count == expected, result.message()
    assert index_adf_slice(store, time_slice, SETTINGS).status == "verified"  # a verified slice is left alone


def test_a_corrupted_adf_file_fails_validation_naming_the_file(env: dict[str, Any], standin: AdfStandin) -> None:
    time_slice, _ = env["slices"][6]
    _run_pipeline(env, "copy_corrupt", time_slice)
    manifest = index_adf_slice(env["store"], time_slice, SETTINGS)
    damaged = drills.corrupt_slice(env["store"], time_slice.slice_id)
    assert damaged == manifest.files[0].path and "/adf_" in damaged

    result = validate_slice(env["container"], env["store"], time_slice, SETTINGS)

    assert not result.ok and [b.path for b in result.bad_files] == [damaged]
    in_file = sorted(f"{r.partition_key}/{r.id}" for r in manifest.records if r.file == 0)
    assert sorted(result.bad_files[0].records) == in_file and in_file
    assert damaged in result.message()
    assert env["store"].read_manifest(time_slice.slice_id).status == "failed"


def test_adf_copy_over_a_local_copy_and_a_stray_file(env: dict[str, Any], standin: AdfStandin) -> None:
    """Parts of an earlier local copy are replaced by the ADF copy; a Parquet file nobody indexed is a stray."""
    time_slice, expected = env["slices"][7]
    store = env["store"]
    local = copy_slice(env["container"], store, time_slice, SETTINGS)
    assert local.executor == "local" and all("/part-" in f.path for f in local.files)
    _run_pipeline(env, "copy_over_local", time_slice)

    manifest = index_adf_slice(store, time_slice, SETTINGS)

    assert manifest.executor == "adf" and manifest.record_count == expected
    assert (
        store.list_parts(time_slice.slice_id)
        == [f.path for f in manifest.files]
        == adf_files(store, time_slice.slice_id)
    )
    assert any("removed stale part" in note for note in manifest.notes)
    stray = f"{store.slice_dir(time_slice.slice_id)}/adf_99999.parquet"
    store.upload(stray, store.download(manifest.files[0].path))
    result = validate_slice(env["container"], store, time_slice, SETTINGS)
    assert not result.ok and [b.path for b in result.bad_files] == [stray]
    store.delete(stray)
    assert validate_slice(env["container"], store, time_slice, SETTINGS).ok


def test_index_refuses_unreadable_and_conflicting_files_by_name(env: dict[str, Any], standin: AdfStandin) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from devstack.adf_standin.copy_runner import ADF_SCHEMA

    time_slice, expected = env["slices"][4]  # only ever fails to copy in the tests above: a fresh folder
    store = env["store"]
    _run_pipeline(env, "copy_for_index_errors", time_slice)
    folder = store.slice_dir(time_slice.slice_id)
    (first,) = adf_files(store, time_slice.slice_id)
    row = pq.read_table(io.BytesIO(store.download(first))).slice(0, 1).to_pylist()[0]

    same = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row], schema=ADF_SCHEMA), same)
    store.upload(f"{folder}/adf_00001.parquet", same.getvalue())  # a leftover of an earlier run, same content
    manifest = index_adf_slice(store, time_slice, SETTINGS)
    assert manifest.record_count == expected and any("duplicate record" in n for n in manifest.notes)

    changed = io.BytesIO()
    doc = {**json.loads(row["doc"]), "amount": -1}
    pq.write_table(pa.Table.from_pylist([{**row, "doc": json.dumps(doc)}], schema=ADF_SCHEMA), changed)
    store.upload(f"{folder}/adf_00001.parquet", changed.getvalue())
    with pytest.raises(AdfIndexError, match=rf"{row['partition_key']}/{row['id']} differs between {re.escape(first)}"):
        index_adf_slice(store, time_slice, SETTINGS)

    store.upload(f"{folder}/adf_00001.parquet", b"PAR1 this is not a parquet file PAR1")
    with pytest.raises(AdfIndexError, match=rf"{re.escape(folder)}/adf_00001\.parquet is not a readable ADF Parquet"):
        index_adf_slice(store, time_slice, SETTINGS)
    store.delete(f"{folder}/adf_00001.parquet")
    assert index_adf_slice(store, time_slice, SETTINGS).record_count == expected
    assert validate_slice(env["container"], store, time_slice, SETTINGS).ok


def test_a_record_changed_since_the_adf_run_started_is_named_as_changed_not_a_failed_slice(
        env: dict[str, Any], standin: AdfStandin) -> None:
    """ADF's ``runStart`` (asked through the provider's hook) marks what its copy may have read before a change: a
    record written since is named as changed, kept in Cosmos DB for a later generation, and the slice verifies
    instead of failing validation and being copied again (the indexing time stood in before: later than the copy)."""
    time_slice, expected = env["slices"][8]
    ti = FakeTI()
    op = _operator(env, "copy_then_changed", pipeline_parameters(time_slice, SETTINGS, page_size=10),
                   wait_for_termination=True, deferrable=False)
    op.execute({"ti": ti})
    run_start = env["plugin"].pipeline_run_start(op.hook, ti.xcom["run_id"])
    assert run_start is not None and run_start <= dt.datetime.now(dt.UTC)
    bounds = [{"name": "@lo", "value": int(time_slice.start.timestamp())},
              {"name": "@hi", "value": int(time_slice.end.timestamp())}]
    doc = next(iter(env["container"].query_items("SELECT * FROM c WHERE c.archiveTs >= @lo AND c.archiveTs < @hi",
                                                 parameters=bounds, enable_cross_partition_query=True)))
    env["container"].upsert_item({**{k: v for k, v in doc.items() if k not in SYSTEM_PROPERTIES},
                                  "note": "changed after the copy began"})
    time.sleep(2.1)  # as on Azure, where the copy runs on for minutes: the change lies seconds before the indexing
    manifest = index_adf_slice(env["store"], time_slice, SETTINGS, run_id=ti.xcom["run_id"], run_start=run_start)
    assert manifest.read_since is not None and manifest.read_since < run_start.timestamp()
    result = validate_slice(env["container"], env["store"], time_slice, SETTINGS)
    assert result.ok and [name for name in result.changed if doc["id"] in name], result.message()
    assert result.source_count == expected
