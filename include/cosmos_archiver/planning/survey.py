"""Measure, read-only, what the plan needs from a real account (or the local stack) and write a calibration file
that ``cosmos-archive plan --calibration`` reads instead of Microsoft's published figures.

What is measured (every request is a read; nothing is written or deleted in Cosmos DB):

- physical partitions: ``container.read_feed_ranges()`` (one feed range per partition key range);
- the account mode: reading the container's offer (``get_throughput``) answers on a provisioned account and is
  refused on a serverless one ("not supported for serverless accounts"); anything else leaves it unknown;
- a point read: ``read_item`` of a sampled document, its ``x-ms-request-charge`` and the document's size;
- one slice's copy: the slice query of the slice holding the sampled document, with ``populate_query_metrics``,
  its RU and ``retrievedDocumentSize`` (``x-ms-documentdb-query-metrics``): RU per MB loaded, after the pages'
  fixed charge (measured by the count below);
- the index-served ``COUNT`` of that slice (what validation and the per-run census send), per partition, and the
  same COUNT bounded to match nothing (``_ts < 0``: what it costs when the range is empty, as the census's counts of
  purged slices are): its fixed charge, and from the difference what it adds per record counted;
- the id/etag listing of that slice (what validation falls back to when a count differs);
- Azure Monitor: whether ``TotalRequestUnits`` and ``NormalizedRUConsumption`` can be read with this identity
  (403: the identity lacks the Monitoring Reader role on the account).

The file records the raw measurements beside the figures derived from them, and when and where it was taken.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.canonical import partition_key_value
from include.cosmos_archiver.clients import endpoint_of
from include.cosmos_archiver.planning.step_plan import CALIBRATION_VERSION
from include.cosmos_archiver.ru.paid_requests import CHARGE_HEADER
from include.cosmos_archiver.ru.usage import NORMALIZED_RU, TOTAL_RU, AzureMonitorUsageSource
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice, field_value, slice_of, timestamp_instant
from include.cosmos_archiver.source.feed_ranges import partition_ranges
from include.cosmos_archiver.source.reader import (
    ReadStats,
    count_range,
    placed_filter,
    slice_query,
    slice_versions,
)

log = logging.getLogger(__name__)
METRICS_HEADER = "x-ms-documentdb-query-metrics"
MONITORING_ROLE = "Monitoring Reader"


@dataclass
class Survey:
    account: str
    container: str
    surveyed_at: str
    physical_partitions: int
    account_mode: str | None
    account_mode_evidence: str
    point_read: dict[str, float] = field(default_factory=dict)  # ru, doc_kb
    slice_copy: dict[str, Any] = field(default_factory=dict)  # slice, ru, pages, documents, retrieved_mb, metrics
    slice_count: dict[str, float] = field(default_factory=dict)  # ru, documents
    empty_count: dict[str, float] = field(default_factory=dict)  # ru: the same COUNT matching nothing
    slice_listing: dict[str, float] = field(default_factory=dict)  # ru, documents
    metrics: dict[str, str] = field(default_factory=dict)  # metric -> "readable" | what is missing

    def figures(self) -> dict[str, Any]:
        """What the plan reads (planning.step_plan.ChargeFigures field names)."""
        figures: dict[str, Any] = {"physical_partitions": self.physical_partitions}
        if self.account_mode:
            figures["account_mode"] = self.account_mode
        if self.point_read:
            figures["point_read_ru"] = self.point_read["ru"]
        if self.slice_count:
            partitions = max(1, self.physical_partitions)
            counted = self.slice_count
            figures["count_ru"] = round((self.empty_count or counted)["ru"] / partitions, 3)
            if self.empty_count and counted["documents"]:
                figures["count_ru_per_record"] = round(
                    max(0.0, counted["ru"] - self.empty_count["ru"]) / counted["documents"], 6)
        copy = self.slice_copy
        if copy.get("retrieved_mb"):
            fixed = copy["pages"] * figures.get("count_ru", 0.0)
            figures["ru_per_mb_loaded"] = round(max(0.0, copy["ru"] - fixed) / copy["retrieved_mb"], 3)
            if copy.get("pages"):
                figures["query_page_ru"] = figures.get("count_ru", 0.0)
        return figures

    def to_json(self) -> str:
        return json.dumps({"calibration_version": CALIBRATION_VERSION, "surveyed_at": self.surveyed_at,
                           "figures": self.figures(), "measurements": asdict(self)}, indent=1)

    def lines(self) -> list[str]:
        copy = self.slice_copy
        out = [f"survey of {self.container} at {self.account} ({self.surveyed_at}); read-only",
               f"  physical partitions: {self.physical_partitions}",
               f"  account mode: {self.account_mode or 'unknown'} ({self.account_mode_evidence})"]
        if self.point_read:
            read = self.point_read
            out.append(f"  point read: {read['ru']:.2f} RU for a {read['doc_kb']:.1f} KB document")
        if copy:
            out.append(f"  slice {copy['slice']} copy query: {copy['ru']:.1f} RU, {copy['documents']} documents in "
                       f"{copy['pages']} page(s), {copy['retrieved_mb']:.2f} MB loaded (query metrics: "
                       f"{'yes' if copy.get('metrics') else 'not returned'})")
        if self.slice_count:
            count = self.slice_count
            out.append(f"  its index-served COUNT: {count['ru']:.2f} RU ({count['documents']:.0f} documents)"
                       + (f"; matching nothing: {self.empty_count['ru']:.2f} RU" if self.empty_count else ""))
        if self.slice_listing:
            out.append(f"  its id/etag listing: {self.slice_listing['ru']:.1f} RU")
        out += [f"  Azure Monitor {m}: {state}" for m, state in self.metrics.items()]
        out.append("  figures for the plan: " + ", ".join(f"{k}={v}" for k, v in self.figures().items()))
        return out


def survey_account(
    container: ContainerProxy,
    settings: ArchiveSettings,
    *,
    usage: AzureMonitorUsageSource | None = None,
    time_slice: TimeSlice | None = None,
) -> Survey:
    """Measure the container (see the module docstring); ``time_slice``: the slice whose copy is measured (default:
    the slice of a sampled document)."""
    survey = Survey(account=endpoint_of(container), container=f"{settings.database}/{settings.container}",
                    surveyed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    physical_partitions=len(list(container.read_feed_ranges())), account_mode=None,
                    account_mode_evidence="")
    survey.account_mode, survey.account_mode_evidence = _account_mode(container)
    sample = next(iter(container.query_items("SELECT TOP 1 * FROM c", enable_cross_partition_query=True)), None)
    if sample is not None:
        survey.point_read = _point_read(container, sample, settings)
        if time_slice is None:
            try:
                instant = timestamp_instant(field_value(sample, settings.timestamp_field), settings.timestamp_kind)
                time_slice = slice_of(instant, settings.slice_hours)
            except ValueError:
                time_slice = None
    if time_slice is not None:
        survey.slice_copy = _slice_copy(container, time_slice, settings)
        stats = ReadStats()
        counted = sum(count_range(container, time_slice, timestamp_field=settings.timestamp_field,
                                  timestamp_kind=settings.timestamp_kind, stats=stats, feed_range=r)
                      for r in partition_ranges(container))
        survey.slice_count = {"ru": round(stats.ru_charged, 3), "documents": counted}
        stats = ReadStats()
        for r in partition_ranges(container):  # no document was last written before 1970: the count's fixed charge
            count_range(container, time_slice, timestamp_field=settings.timestamp_field,
                        timestamp_kind=settings.timestamp_kind, stats=stats, feed_range=r, unchanged_before=0)
        survey.empty_count = {"ru": round(stats.ru_charged, 3)}
        stats = ReadStats()
        listed = slice_versions(container, time_slice, partition_key_path=settings.partition_key_path,
                                timestamp_field=settings.timestamp_field, timestamp_kind=settings.timestamp_kind,
                                stats=stats, other_spellings=False)
        survey.slice_listing = {"ru": round(stats.ru_charged, 3), "documents": len(listed)}
    survey.metrics = _metrics_access(usage)
    return survey


def _account_mode(container: ContainerProxy) -> tuple[str | None, str]:
    try:
        offer = container.get_throughput()
    except HttpResponseError as exc:
        text = str(exc)
        if "serverless" in text.lower():
            return "serverless", "the container's offer is refused: 'not supported for serverless accounts'"
        return None, f"the container's offer could not be read ({exc.__class__.__name__}: {text.splitlines()[0][:120]})"
    except Exception as exc:  # an emulator without offers answers in its own way
        return None, f"the container's offer could not be read ({exc.__class__.__name__})"
    throughput = getattr(offer, "offer_throughput", None) or (getattr(offer, "properties", None) or {}).get(
        "content", {}).get("offerAutopilotSettings", {}).get("maxThroughput")
    return "provisioned", f"the container's offer reads {throughput} RU/s"


def _point_read(container: ContainerProxy, doc: dict[str, Any], settings: ArchiveSettings) -> dict[str, float]:
    headers: dict[str, Any] = {}
    read = container.read_item(doc["id"], partition_key=partition_key_value(doc, settings.partition_key_path),
                               response_hook=lambda h, _r: headers.update(h))
    size = len(json.dumps(read, separators=(",", ":"), ensure_ascii=False).encode()) / 1000.0
    return {"ru": float(headers.get(CHARGE_HEADER, 0) or 0), "doc_kb": round(size, 2)}


def _slice_copy(container: ContainerProxy, time_slice: TimeSlice, settings: ArchiveSettings) -> dict[str, Any]:
    """The copy's own query (the slice's range and its placed filter), drained with query metrics."""
    query = slice_query(time_slice, settings.timestamp_field, settings.timestamp_kind)
    query["query"] += placed_filter(settings.timestamp_field, settings.timestamp_kind, settings.partition_key_path)
    totals = {"ru": 0.0, "pages": 0, "documents": 0, "retrieved_bytes": 0.0, "metrics": False}

    def hook(headers: Any, _result: Any) -> None:
        totals["ru"] += float(headers.get(CHARGE_HEADER, 0) or 0)
        totals["pages"] += 1
        metrics = _parse_metrics(headers.get(METRICS_HEADER))
        if metrics:
            totals["metrics"] = True
            totals["retrieved_bytes"] += metrics.get("retrievedDocumentSize", 0.0)

    sizes = 0.0
    for doc in container.query_items(query["query"], parameters=query["parameters"],
                                     enable_cross_partition_query=True, populate_query_metrics=True,
                                     max_item_count=settings.page_size, response_hook=hook):
        totals["documents"] += 1
        sizes += len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())
    retrieved = totals["retrieved_bytes"] if totals["metrics"] else sizes  # no metrics: what it returned
    return {"slice": time_slice.slice_id, "ru": round(totals["ru"], 3), "pages": totals["pages"],
            "documents": totals["documents"], "retrieved_mb": round(retrieved / 1e6, 4), "metrics": totals["metrics"]}


def _parse_metrics(text: str | None) -> dict[str, float]:
    """``key=value;...`` of ``x-ms-documentdb-query-metrics`` (the keys the service sends)."""
    out: dict[str, float] = {}
    for part in (text or "").split(";"):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            continue
    return out


def _metrics_access(usage: AzureMonitorUsageSource | None) -> dict[str, str]:
    if usage is None:
        return {m: "not checked (give --metrics-endpoint and --resource-id)" for m in (TOTAL_RU, NORMALIZED_RU)}
    end = dt.datetime.now(dt.UTC)
    found = {}
    for metric, aggregation in ((TOTAL_RU, "Total"), (NORMALIZED_RU, "Maximum")):
        try:
            usage._query(metric, aggregation, end - dt.timedelta(minutes=10), end)
            found[metric] = "readable"
        except HttpResponseError as exc:
            if exc.status_code == 403:
                found[metric] = (f"refused (403): this identity lacks the '{MONITORING_ROLE}' role on the account "
                                 "(assign it on the account or its resource group)")
            else:
                found[metric] = f"not readable ({exc.status_code}: {str(exc).splitlines()[0][:120]})"
    return found


def write_calibration(survey: Survey, path: str | Path) -> None:
    Path(path).write_text(survey.to_json())
