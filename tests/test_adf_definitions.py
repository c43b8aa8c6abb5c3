"""The ADF definitions in include/cosmos_archiver/adf/resources/ against the azure-mgmt-datafactory models, the
run-parameter builder and the deploy command's plan (no servers needed)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.datafactory import models

from include.cosmos_archiver.adf import PIPELINE_NAME
from include.cosmos_archiver.adf.definitions import (
    DEFINITIONS_DIR,
    RESOURCE_MODELS,
    DefinitionError,
    Resource,
    _concrete_class,
    deploy_order,
    load_definitions,
    placeholders,
    render,
    unknown_fields,
)
from include.cosmos_archiver.adf.parameters import ParameterError, pipeline_parameters, slice_from_parameters
from include.cosmos_archiver.archive.store import ArchiveStore, slice_folder
from include.cosmos_archiver.cli.main import main as cli_main
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.reader import placed_filter, slice_query

VALUES = {
    "keyVaultUrl": "https://kv-archive.vault.azure.net/",
    "cosmosEndpoint": "https://billing.documents.azure.com:443/",
    "cosmosDatabase": "billing",
    "cosmosContainer": "records",
    "cosmosKeySecretName": "cosmos-archive-account-key",
    "blobServiceEndpoint": "https://archive.blob.core.windows.net/",
    "blobContainer": "billing-archive",
}
DAY = TimeSlice(dt.datetime(2024, 3, 1, tzinfo=dt.UTC), dt.datetime(2024, 3, 2, tzinfo=dt.UTC))
HOURS = TimeSlice(dt.datetime(2024, 3, 1, 6, tzinfo=dt.UTC), dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC))


def _files() -> list[Path]:
    return sorted(DEFINITIONS_DIR.glob("*/*.json"))


def _pipeline() -> dict[str, Any]:
    return json.loads((DEFINITIONS_DIR / "pipeline" / f"{PIPELINE_NAME}.json").read_text())


def test_definition_files_exist_in_adf_git_layout() -> None:
    kinds = {p.parent.name for p in _files()}
    assert kinds == {"linkedService", "dataset", "pipeline"}
    for path in _files():
        assert json.loads(path.read_text())["name"] == path.stem


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_file_deserialises_into_the_sdk_model_without_losing_fields(path: Path) -> None:
    body = json.loads(path.read_text())
    for candidate in (body, render([Resource(path.parent.name, body["name"], body)], VALUES)[0].body):  # type: ignore[arg-type]
        model = RESOURCE_MODELS[path.parent.name](candidate)  # type: ignore[index]
        assert model.as_dict() == candidate  # round trip: nothing dropped, renamed or defaulted in
        assert json.loads(json.dumps(model.as_dict(), sort_keys=True)) == json.loads(
            json.dumps(candidate, sort_keys=True)
        )
        assert unknown_fields(model) == [], "a property the SDK does not know: a typo ADF would reject"


def test_typed_views_resolve_to_the_intended_resource_types() -> None:
    by_name = {r.name: r.model() for r in load_definitions()}
    assert isinstance(by_name["ArchiveCosmosDb"].properties, models.CosmosDbLinkedService)
    assert isinstance(by_name["ArchiveBlobStorage"].properties, models.AzureBlobStorageLinkedService)
    assert isinstance(by_name["ArchiveKeyVault"].properties, models.AzureKeyVaultLinkedService)
    assert isinstance(by_name["ArchiveCosmosCollection"].properties, models.CosmosDbSqlApiCollectionDataset)
    parquet = by_name["ArchiveParquetSlice"].properties
    assert isinstance(parquet, models.ParquetDataset)
    assert parquet.type_properties.compression_codec in ("snappy", "zstd")
    assert isinstance(parquet.type_properties.location, models.AzureBlobStorageLocation)
    assert parquet.type_properties.location.folder_path == {"value": "@dataset().folderPath", "type": "Expression"}

    pipeline = by_name[PIPELINE_NAME].properties
    (activity,) = pipeline.activities
    # The SDK itself stops at the bare Activity (Copy is registered one level down); resolve it fully.
    copy_cls = _concrete_class(models.Activity, activity)
    assert copy_cls is models.CopyActivity
    copy_activity = copy_cls(dict(activity))
    source, sink = copy_activity.type_properties.source, copy_activity.type_properties.sink
    assert _concrete_class(models.CopySource, source) is models.CosmosDbSqlApiSource
    assert _concrete_class(models.CopySink, sink) is models.ParquetSink
    source = models.CosmosDbSqlApiSource(dict(source))
    assert source.page_size == {"value": "@pipeline().parameters.pageSize", "type": "Expression"}
    assert source.detect_datetime is False  # date strings stay strings: the archive must be byte-faithful
    assert copy_activity.type_properties.parallel_copies == {
        "value": "@pipeline().parameters.parallelCopies",
        "type": "Expression",
    }
    (output,) = copy_activity.outputs
    assert output.parameters == {"folderPath": {"value": "@pipeline().parameters.outputPath", "type": "Expression"}}
    # ADF's files are told apart from the local executor's part-NNNNN.parquet by name (indexing.adf_files).
    assert sink["formatSettings"]["fileNamePrefix"] != "part"


def test_translator_maps_the_projection_to_the_indexed_columns_with_doc_as_json_text() -> None:
    """Hierarchical source -> tabular sink: one column per projected field; the document object as JSON text."""
    copy = _pipeline()["properties"]["activities"][0]["typeProperties"]
    translator = copy["translator"]  # typed `any` by azure-mgmt-datafactory 10.0.0: checked here instead
    assert translator["type"] == "TabularTranslator"
    assert translator["mapComplexValuesToString"] is True
    mapped = {m["sink"]["name"]: (m["source"]["path"], m["sink"]["type"]) for m in translator["mappings"]}
    assert mapped == {
        "id": ("$['id']", "String"),
        "partition_key": ("$['partition_key']", "String"),
        "ts": ("$['ts']", "Int64"),
        "etag": ("$['etag']", "String"),
        "doc": ("$['doc']", "String"),
    }
    # The columns the translator writes are the ones the indexer reads (parquet_format.decode_any).
    from devstack.adf_standin.copy_runner import ADF_SCHEMA

    assert list(mapped) == ADF_SCHEMA.names


def test_unknown_fields_catches_a_misspelt_property() -> None:
    body = _pipeline()
    body["properties"]["activities"][0]["typeProperties"]["source"]["pagesize"] = 10
    body["properties"]["activities"][0]["typeProperties"]["sink"]["formatSettings"]["maxRowPerFile"] = 10
    problems = unknown_fields(models.PipelineResource(body))
    assert any("source.pagesize" in p and "CosmosDbSqlApiSource" in p for p in problems)
    assert any("formatSettings.maxRowPerFile" in p for p in problems)


@pytest.mark.parametrize("kind", ["epoch_seconds", "iso8601"])
def test_pipeline_parameters_are_exactly_the_builders(kind: str) -> None:
    settings = ArchiveSettings(timestamp_kind=kind)  # type: ignore[arg-type]
    built = pipeline_parameters(DAY, settings, page_size=37, parallel_copies=2)
    declared = _pipeline()["properties"]["parameters"]
    assert set(built) == set(declared)
    for name, spec in declared.items():
        assert "defaultValue" not in spec, f"{name} must come from the builder, not from a default"
        assert spec["type"] == {str: "String", int: "Int"}[type(built[name])], name


@pytest.mark.parametrize("kind", ["epoch_seconds", "iso8601"])
@pytest.mark.parametrize("time_slice", [DAY, HOURS], ids=["day", "hours"])
def test_parameters_round_trip_to_the_same_slice_and_folder(kind: str, time_slice: TimeSlice) -> None:
    settings = ArchiveSettings(
        timestamp_kind=kind,
        timestamp_field="invoice.issuedAt",  # type: ignore[arg-type]
        blob_prefix="/records/",
    )
    built = pipeline_parameters(time_slice, settings, page_size=10)
    assert built["partitionKeyPath"] == "customerId"
    assert slice_from_parameters(json.loads(json.dumps(built))) == (time_slice, "invoice.issuedAt", 10)
    assert built["outputPath"] == ArchiveStore(None, settings.blob_prefix).slice_dir(time_slice.slice_id)  # type: ignore[arg-type]
    assert slice_folder("", "2024/03/01") == "2024/03/01"


@pytest.mark.parametrize(("page_size", "parallel"), [(0, 1), (10, 0), (10, 257), ("10", 1), (True, 1)])
def test_bad_parameter_values_are_rejected_by_name(page_size: Any, parallel: Any) -> None:
    with pytest.raises(ParameterError, match=r"^(page_size|parallel_copies)="):
        pipeline_parameters(DAY, ArchiveSettings(), page_size=page_size, parallel_copies=parallel)


def test_bad_run_parameters_name_the_value() -> None:
    params = pipeline_parameters(DAY, ArchiveSettings(), page_size=10)
    with pytest.raises(ParameterError, match="sliceStart='yesterday'"):
        slice_from_parameters({**params, "sliceStart": "yesterday"})
    with pytest.raises(ParameterError, match=r"\['outputPath'\] missing"):
        slice_from_parameters({k: v for k, v in params.items() if k != "outputPath"})


# --- the pipeline's query, rendered for a slice, is the executor's query -------------------------------------------

_TOKEN = re.compile(r"\s*(?:'((?:[^']|'')*)'|([A-Za-z_][A-Za-z0-9_]*)|(.))")


def evaluate_adf_expression(expression: str, parameters: dict[str, Any]) -> Any:
    """Evaluates the tiny subset of the ADF expression language the pipeline uses: concat, replace,
    pipeline().parameters.X and string literals. Test-only: it checks what the query would select."""
    assert expression.startswith("@")
    tokens = [(m.group(1), m.group(2), m.group(3)) for m in _TOKEN.finditer(expression[1:]) if m.group(0).strip()]
    pos = 0

    def value() -> Any:
        nonlocal pos
        literal, name, symbol = tokens[pos]
        pos += 1
        if literal is not None:
            return literal.replace("''", "'")
        assert name is not None, f"unexpected {symbol!r}"
        assert tokens[pos][2] == "("
        pos += 1
        args = []
        while tokens[pos][2] != ")":
            args.append(value())
            if tokens[pos][2] == ",":
                pos += 1
        pos += 1
        result = {
            "concat": lambda *a: "".join(str(x) for x in a),
            "replace": lambda s, old, new: s.replace(old, new),
            "pipeline": lambda: {"parameters": parameters},
        }[name](*args)
        while pos < len(tokens) and tokens[pos][2] == ".":
            result = result[tokens[pos + 1][1]]
            pos += 2
        return result

    result = value()
    assert pos == len(tokens), "expression not fully consumed"
    return result


def rendered_query(parameters: dict[str, Any]) -> str:
    source = _pipeline()["properties"]["activities"][0]["typeProperties"]["source"]
    assert source["query"]["type"] == "Expression"
    return evaluate_adf_expression(source["query"]["value"], parameters)


@pytest.mark.parametrize(
    ("field", "kind", "pk_path", "pk_expr"),
    [
        ("_ts", "epoch_seconds", "/customerId", 'c["customerId"]'),
        ("invoice.issuedAt", "iso8601", "/a/b", 'c["a"]["b"]'),
    ],
)
def test_pipeline_query_selects_exactly_the_executors_slice(field: str, kind: str, pk_path: str, pk_expr: str) -> None:
    settings = ArchiveSettings(timestamp_field=field, timestamp_kind=kind, partition_key_path=pk_path)  # type: ignore[arg-type]
    query = slice_query(HOURS, field, kind)  # type: ignore[arg-type]
    inlined = query["query"] + placed_filter(field, kind, pk_path)  # type: ignore[arg-type]
    for param in query["parameters"]:
        inlined = inlined.replace(param["name"], json.dumps(param["value"]))
    rendered = rendered_query(pipeline_parameters(HOURS, settings, page_size=10))
    projection, where = rendered.split(" FROM c WHERE ")
    assert where == inlined.split(" FROM c WHERE ")[1]  # same slice as the executor's SELECT *
    assert projection == f"SELECT c.id AS id, {pk_expr} AS partition_key, c._ts AS ts, c._etag AS etag, c AS doc"


def test_a_partition_key_path_the_query_cannot_project_is_named() -> None:
    with pytest.raises(ParameterError, match="partition_key_path='/customer-id'"):
        pipeline_parameters(DAY, ArchiveSettings(partition_key_path="/customer-id"), page_size=10)


# --- references, order, placeholders, secrets -----------------------------------------------------------------------


def test_every_reference_exists_and_comes_first_in_deploy_order() -> None:
    resources = load_definitions()
    position = {(r.kind, r.name): i for i, r in enumerate(resources)}
    pipeline = next(r for r in resources if r.name == PIPELINE_NAME)
    assert pipeline.references() == {("dataset", "ArchiveCosmosCollection"), ("dataset", "ArchiveParquetSlice")}
    for resource in resources:
        for ref in resource.references():
            assert ref in position, f"{resource.name} references missing {ref}"
            assert position[ref] < position[(resource.kind, resource.name)]
    assert ("linkedService", "ArchiveKeyVault") in next(
        r for r in resources if r.name == "ArchiveCosmosDb"
    ).references()


def test_a_missing_reference_is_named() -> None:
    resources = [r for r in load_definitions() if r.name != "ArchiveParquetSlice"]
    with pytest.raises(DefinitionError, match="'ArchiveParquetSlice', which is not defined"):
        deploy_order(resources)


def test_render_fills_every_placeholder_and_names_missing_ones() -> None:
    resources = load_definitions()
    assert placeholders(resources) == set(VALUES)
    rendered = render(resources, VALUES)
    assert "{{" not in json.dumps([r.body for r in rendered])
    assert [r.body for r in resources] == [r.body for r in load_definitions()]  # render copies, never mutates
    with pytest.raises(DefinitionError, match="cosmosEndpoint"):
        render(resources, {k: v for k, v in VALUES.items() if k != "cosmosEndpoint"})


def test_no_secret_in_the_definitions() -> None:
    text = "\n".join(p.read_text() for p in _files())
    assert not re.search(r"AccountKey=|SharedAccessSignature|sig=|[A-Za-z0-9+/]{40,}={0,2}", text)
    cosmos = next(r for r in load_definitions() if r.name == "ArchiveCosmosDb").model().properties.type_properties
    assert isinstance(cosmos.account_key, models.AzureKeyVaultSecretReference)
    assert cosmos.connection_string is None
    blob = next(r for r in load_definitions() if r.name == "ArchiveBlobStorage").body["properties"]["typeProperties"]
    assert set(blob) == {"serviceEndpoint", "accountKind"}  # managed identity: no key, SAS or connection string


def test_deploy_dry_run_prints_the_plan_in_dependency_order(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(
        [
            "adf",
            "deploy",
            "--subscription-id",
            "00000000-0000-0000-0000-000000000001",
            "--resource-group",
            "rg-archive",
            "--factory",
            "adf-archive",
            "--cosmos-endpoint",
            VALUES["cosmosEndpoint"],
            "--key-vault-url",
            VALUES["keyVaultUrl"],
            "--blob-endpoint",
            VALUES["blobServiceEndpoint"],
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    lines = [line for line in out.splitlines() if "would create or update" in line]
    assert [line.split()[2] for line in lines] == [r.name for r in load_definitions()]
    assert "factory 'adf-archive' in resource group 'rg-archive'" in out and "nothing was changed" in out


def test_deploy_rejects_a_non_https_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(
        [
            "adf",
            "deploy",
            "--subscription-id",
            "s",
            "--resource-group",
            "rg",
            "--factory",
            "f",
            "--cosmos-endpoint",
            "http://billing.documents.azure.com/",
            "--key-vault-url",
            VALUES["keyVaultUrl"],
            "--blob-endpoint",
            VALUES["blobServiceEndpoint"],
            "--dry-run",
        ]
    )
    assert rc == 2
    assert "--cosmos-endpoint='http://billing.documents.azure.com/' must be an https:// URL" in capsys.readouterr().err
