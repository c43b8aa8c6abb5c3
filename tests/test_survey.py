"""`cosmos-archive survey` measures the account read-only and writes a calibration file that `plan` reads: through
the real SDK and the local RU gateway (published charge model)."""

from __future__ import annotations

import json

import pytest

from devstack.ru_gateway import SUBSCRIPTION_ID
from include.cosmos_archiver.loopback import StaticTokenCredential
from include.cosmos_archiver.planning.step_plan import ChargeFigures
from include.cosmos_archiver.planning.survey import survey_account, write_calibration
from include.cosmos_archiver.ru.usage import AzureMonitorUsageSource
from include.cosmos_archiver.settings import ArchiveSettings

SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601", page_size=5)


def test_the_survey_measures_read_only_and_writes_what_plan_reads(cosmos_container, stack, tmp_path):
    for i in range(12):
        cosmos_container.upsert_item({"id": f"d{i}", "customerId": f"c{i % 3}",
                                      "issuedAt": f"2025-03-01T{i:02d}:00:00.000Z", "body": "x" * 50_000})
    etags = {d["id"]: d["_etag"] for d in cosmos_container.query_items("SELECT * FROM c",
                                                                      enable_cross_partition_query=True)}
    resource_id = (f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/local/providers/Microsoft.DocumentDB/"
                   "databaseAccounts/local")
    usage = AzureMonitorUsageSource(stack.cosmos_endpoint.rstrip("/"), resource_id,
                                    credential=StaticTokenCredential())

    survey = survey_account(cosmos_container, SETTINGS, usage=usage)

    after = {d["id"]: d["_etag"] for d in cosmos_container.query_items("SELECT * FROM c",
                                                                      enable_cross_partition_query=True)}
    assert after == etags  # read-only: nothing written, nothing deleted
    assert survey.slice_copy["slice"] == "2025/03/01" and survey.slice_copy["documents"] == 12
    assert survey.slice_copy["pages"] >= 3 and survey.slice_copy["metrics"]  # the gateway answers query metrics
    assert survey.slice_count["documents"] == 12
    # the COUNT's fixed charge (matching nothing) and what it adds per record counted (gateway: 0.0025 RU an entry)
    assert 0 < survey.empty_count["ru"] < survey.slice_count["ru"]
    # the count is index-served: far cheaper than the copy, which loads every document (~0.6 MB here)
    assert survey.slice_count["ru"] < survey.slice_copy["ru"] / 3
    assert 2 < survey.point_read["ru"] < 8 and 49 < survey.point_read["doc_kb"] < 52  # published: ~4 RU at 50 KB
    assert survey.physical_partitions >= 1
    assert survey.metrics == {"TotalRequestUnits": "readable", "NormalizedRUConsumption": "readable"}
    figures = survey.figures()
    assert 8 < figures["ru_per_mb_loaded"] < 13  # the published ~10.15 RU per MB loaded, measured back
    assert figures["count_ru"] == survey.empty_count["ru"] / survey.physical_partitions
    assert figures["count_ru_per_record"] == pytest.approx(
        (survey.slice_count["ru"] - survey.empty_count["ru"]) / 12, abs=1e-6)

    path = tmp_path / "calibration.json"
    write_calibration(survey, path)
    loaded = ChargeFigures.from_file(path)
    assert loaded.ru_per_mb_loaded == figures["ru_per_mb_loaded"] and loaded.point_read_ru == figures["point_read_ru"]
    assert json.loads(path.read_text())["measurements"]["slice_copy"]["documents"] == 12
