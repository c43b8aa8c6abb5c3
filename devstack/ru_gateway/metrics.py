"""Per-second RU accounting, and the Azure Monitor ``metrics:getBatch`` answer built from it.

API:
- ``MetricsStore(retention_s)``: ``record(when, traffic_class, status, operation, database, collection, ru,
  partition_budget, partitions)`` (``partitions``: physical partition -> its RU of this request);
  ``stats(now, seconds)`` (the ``GET /_gateway/stats`` JSON, with per-partition totals and, per second,
  ``partition_classes``: partition -> traffic class -> RU, requests, 429s);
  ``get_batch(query, now, delay_s)``.
- ``BatchQuery.from_params(params, body)``: the query parameters ``MetricsClient.query_resources`` sends
  (``starttime``, ``endtime``, ``interval``, ``metricnamespace``, ``metricnames``, ``aggregation``, ``filter``).
- ``MetricsQueryError``: answered as HTTP 400 with Azure's ``{"error": {"code", "message"}}`` body.

Metrics (namespace ``Microsoft.DocumentDB/databaseAccounts``), dimensions ``StatusCode``, ``OperationType``,
``DatabaseName``, ``CollectionName`` and the local-only ``TrafficClass`` (``archiver``/``business``/``adf``):
- ``TotalRequestUnits`` (Total; also Count and Average per request): RU charged; throttled requests count 0 RU.
- ``TotalRequests`` (Count): requests, including the ones answered 429.
- ``NormalizedRUConsumption`` (Maximum; also Average): per second, the busiest physical partition's RU / its own
  budget (provisioned RU/s / partitions, or the serverless per-partition limit) in %, capped at 100; the interval's
  value is the maximum (or mean) over its seconds (Microsoft Learn "Monitor normalized RU/s": "the maximum of the
  normalized RU consumption across all partition key ranges"). Requests that touch no partition (metadata) count
  in TotalRequestUnits only.

Grain: any whole number of seconds; ``PT1M`` is Azure's, ``PT1S`` (and other sub-minute grains) are a local
extension for tests. Reporting delay: a second's data becomes visible only once ``now - delay_s`` has passed its
end; points with no visible second carry only ``timeStamp`` (as Azure returns not-yet-ingested points). Filters:
``Dim eq 'v'`` clauses joined by ``and``/``or``; ``'*'`` splits by that dimension, values restrict and split.
``top``/``orderby``/``rollupby`` are ignored.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import isodate

NAMESPACE = "Microsoft.DocumentDB/databaseAccounts"
TRAFFIC_CLASSES = ("archiver", "business", "adf")
# key tuple order inside the store
_DIMENSIONS = {
    "trafficclass": 0,
    "statuscode": 1,
    "operationtype": 2,
    "databasename": 3,
    "collectionname": 4,
}
_DIMENSION_NAMES = ("TrafficClass", "StatusCode", "OperationType", "DatabaseName", "CollectionName")


@dataclass(frozen=True)
class MetricDef:
    unit: str
    default_aggregation: str
    aggregations: tuple[str, ...]
    description: str


METRICS: dict[str, MetricDef] = {
    "TotalRequestUnits": MetricDef("Count", "total", ("total", "count", "average"), "Request Units consumed"),
    "TotalRequests": MetricDef("Count", "count", ("count", "total"), "Number of requests made"),
    "NormalizedRUConsumption": MetricDef(
        "Percent", "maximum", ("maximum", "average"), "Max RU consumption percentage per second"
    ),
}


class MetricsQueryError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _parse_time(raw: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise MetricsQueryError("BadRequest", f"{name}={raw!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_CLAUSE = re.compile(r"(\w+)\s+eq\s+'([^']*)'", re.IGNORECASE)


def parse_filter(raw: str | None) -> dict[int, set[str] | None]:
    """Dimension index -> allowed values (None: any value, split only)."""
    result: dict[int, set[str] | None] = {}
    if not raw:
        return result
    clauses = _CLAUSE.findall(raw)
    if not clauses:
        raise MetricsQueryError("BadRequest", f"filter {raw!r} has no \"Dimension eq 'value'\" clause")
    for name, value in clauses:
        index = _DIMENSIONS.get(name.lower())
        if index is None:
            raise MetricsQueryError(
                "BadRequest", f"filter dimension {name!r} is not one of {', '.join(_DIMENSION_NAMES)}"
            )
        if value == "*":
            result[index] = None
        elif index not in result or result[index] is not None:
            allowed = result.get(index) or set()
            allowed.add(value)
            result[index] = allowed
    return result


@dataclass(frozen=True)
class BatchQuery:
    metric_names: tuple[str, ...]
    start: float
    end: float
    interval_s: int
    aggregations: tuple[str, ...]
    filters: dict[int, set[str] | None] = field(default_factory=dict)
    resource_ids: tuple[str, ...] = ()
    interval_text: str = "PT1M"

    @classmethod
    def from_params(cls, params: Mapping[str, str], body: Any, now: float) -> BatchQuery:
        namespace = params.get("metricnamespace", "")
        if namespace.lower() != NAMESPACE.lower():
            raise MetricsQueryError("BadRequest", f"metricnamespace {namespace!r} is not supported; use {NAMESPACE}")
        names = tuple(n.strip() for n in params.get("metricnames", "").split(",") if n.strip())
        if not names:
            raise MetricsQueryError("BadRequest", "metricnames is required")
        canonical = {n.lower(): n for n in METRICS}
        unknown = [n for n in names if n.lower() not in canonical]
        if unknown:
            raise MetricsQueryError(
                "BadRequest", f"metric(s) {unknown} not supported by the local gateway; use {sorted(METRICS)}"
            )
        interval_text = params.get("interval") or "PT1M"
        try:
            interval_s = isodate.parse_duration(interval_text).total_seconds()
        except (isodate.ISO8601Error, AttributeError):
            raise MetricsQueryError("BadRequest", f"interval {interval_text!r} is not an ISO 8601 duration") from None
        if interval_s < 1 or interval_s != int(interval_s):
            raise MetricsQueryError("BadRequest", f"interval {interval_text!r} must be a whole number of seconds >= 1")
        end = _parse_time(params["endtime"], "endtime").timestamp() if params.get("endtime") else now
        start = _parse_time(params["starttime"], "starttime").timestamp() if params.get("starttime") else end - 3600
        if end <= start:
            raise MetricsQueryError("BadRequest", f"endtime {_iso(end)} must be after starttime {_iso(start)}")
        if (end - start) / interval_s > 100_000:
            raise MetricsQueryError("BadRequest", "timespan/interval asks for more than 100000 points")
        aggregations = tuple(a.strip().lower() for a in params.get("aggregation", "").split(",") if a.strip())
        resource_ids = tuple((body or {}).get("resourceids") or ()) if isinstance(body, dict) else ()
        if not resource_ids:
            raise MetricsQueryError("BadRequest", 'the body must be {"resourceids": [...]} with at least one id')
        return cls(
            metric_names=tuple(canonical[n.lower()] for n in names),
            start=start,
            end=end,
            interval_s=int(interval_s),
            aggregations=aggregations,
            filters=parse_filter(params.get("filter")),
            resource_ids=resource_ids,
            interval_text=interval_text,
        )


Key = tuple[str, str, str, str, str]


class MetricsStore:
    def __init__(self, retention_s: int = 3 * 3600) -> None:
        self._retention_s = retention_s
        self._lock = threading.Lock()
        # second -> key -> [ru, requests, {partition: ru}, {partition: requests}]
        self._seconds: dict[int, dict[Key, list[Any]]] = {}
        self._provisioned: dict[int, float] = {}  # second -> per-partition budget
        self._totals: dict[str, list[float]] = {c: [0.0, 0, 0] for c in TRAFFIC_CLASSES}
        self._partition_totals: dict[int, list[float]] = {}  # partition -> [ru, requests, throttled]
        self._last_pruned = 0

    def record(
        self,
        when: float,
        traffic_class: str,
        status: int,
        operation: str,
        database: str,
        collection: str,
        ru: float,
        partition_budget: float,
        partitions: Mapping[int, float] | None = None,
    ) -> None:
        second = math.floor(when)
        key: Key = (traffic_class, str(status), operation, database, collection)
        with self._lock:
            bucket = self._seconds.setdefault(second, {})
            cell = bucket.setdefault(key, [0.0, 0, {}, {}])
            cell[0] += ru
            cell[1] += 1
            for partition, part_ru in (partitions or {}).items():
                cell[2][partition] = cell[2].get(partition, 0.0) + part_ru
                cell[3][partition] = cell[3].get(partition, 0) + 1
                ptotal = self._partition_totals.setdefault(partition, [0.0, 0, 0])
                ptotal[0] += part_ru
                ptotal[1] += 1
                ptotal[2] += 1 if status == 429 else 0
            self._provisioned[second] = partition_budget
            totals = self._totals.setdefault(traffic_class, [0.0, 0, 0])
            totals[0] += ru
            totals[1] += 1
            totals[2] += 1 if status == 429 else 0
            if second - self._last_pruned > 60:
                self._prune(second)

    def _prune(self, now_second: int) -> None:
        horizon = now_second - self._retention_s
        for second in [s for s in self._seconds if s < horizon]:
            del self._seconds[second]
            self._provisioned.pop(second, None)
        self._last_pruned = now_second

    # -- the simple JSON view ------------------------------------------------------------------------------------
    def stats(self, now: float, seconds: int = 60) -> dict[str, Any]:
        last = math.floor(now)
        with self._lock:
            per_second = []
            for second in range(last - seconds + 1, last + 1):
                row: dict[str, Any] = {"second": second, "time": _iso(second)}
                for cls in TRAFFIC_CLASSES:
                    row[cls] = {"ru": 0.0, "requests": 0, "throttled": 0}
                partitions: dict[str, float] = {}
                # partition -> traffic class -> figures (a 429 is booked on the partition that refused it)
                partition_classes: dict[str, dict[str, dict[str, Any]]] = {}
                for key, (ru, count, by_partition, requests_by_partition) in self._seconds.get(second, {}).items():
                    cell = row.setdefault(key[0], {"ru": 0.0, "requests": 0, "throttled": 0})
                    cell["ru"] += ru
                    cell["requests"] += int(count)
                    cell["throttled"] += int(count) if key[1] == "429" else 0
                    for partition, part_ru in by_partition.items():
                        partitions[str(partition)] = partitions.get(str(partition), 0.0) + part_ru
                        part_requests = int(requests_by_partition.get(partition, 0))
                        pcell = partition_classes.setdefault(str(partition), {}).setdefault(
                            key[0], {"ru": 0.0, "requests": 0, "throttled": 0}
                        )
                        pcell["ru"] += part_ru
                        pcell["requests"] += part_requests
                        pcell["throttled"] += part_requests if key[1] == "429" else 0
                row["partitions"] = partitions
                row["partition_classes"] = partition_classes
                budget = self._provisioned.get(second)
                row["normalized_ru_percent"] = (
                    round(min(100.0, 100.0 * max(partitions.values()) / budget), 3) if partitions and budget else 0.0
                )
                per_second.append(row)
            totals = {
                cls: {"ru": round(v[0], 3), "requests": int(v[1]), "throttled": int(v[2])}
                for cls, v in self._totals.items()
            }
            by_partition = {
                str(p): {"ru": round(v[0], 3), "requests": int(v[1]), "throttled": int(v[2])}
                for p, v in sorted(self._partition_totals.items())
            }
        return {"totals": totals, "partitions": by_partition, "per_second": per_second}

    # -- Azure Monitor metrics:getBatch ----------------------------------------------------------------------------
    def get_batch(self, query: BatchQuery, now: float, delay_s: float) -> dict[str, Any]:
        visible_until = now - delay_s  # a second s is visible when s + 1 <= visible_until
        step = query.interval_s
        first = math.floor(query.start / step) * step
        points = list(range(int(first), math.ceil(query.end), step))
        split = sorted(query.filters)
        with self._lock:
            # series key (split values) -> point start -> second -> [ru, requests, budget, {partition: ru}]
            cells: dict[tuple[str, ...], dict[int, dict[int, list[Any]]]] = defaultdict(lambda: defaultdict(dict))
            for second in range(int(first), math.ceil(query.end)):
                if second + 1 > visible_until:
                    break
                bucket = self._seconds.get(second)
                if not bucket:
                    continue
                point = second - (second - int(first)) % step
                for key, (ru, count, by_partition, _) in bucket.items():
                    if any(allowed is not None and key[i] not in allowed for i, allowed in query.filters.items()):
                        continue
                    series = tuple(key[i] for i in split)
                    per_second = cells[series][point].setdefault(second, [0.0, 0, self._provisioned[second], {}])
                    per_second[0] += ru
                    per_second[1] += count
                    for partition, part_ru in by_partition.items():
                        per_second[3][partition] = per_second[3].get(partition, 0.0) + part_ru
        if not split and not cells:
            cells[()] = defaultdict(dict)
        visible_points = {p for p in points if p + 1 <= visible_until}
        values = []
        for rid in query.resource_ids:
            metrics = [
                self._metric_json(rid, name, query, points, visible_points, cells, split) for name in query.metric_names
            ]
            values.append(
                {
                    "starttime": _iso(query.start),
                    "endtime": _iso(query.end),
                    "interval": query.interval_text,
                    "namespace": NAMESPACE,
                    "resourceregion": "local",
                    "resourceid": rid,
                    "value": metrics,
                }
            )
        return {"values": values}

    @staticmethod
    def _metric_json(
        rid: str,
        name: str,
        query: BatchQuery,
        points: list[int],
        visible_points: set[int],
        cells: Mapping[tuple[str, ...], Mapping[int, Mapping[int, list[Any]]]],
        split: list[int],
    ) -> dict[str, Any]:
        definition = METRICS[name]
        aggregations = [a for a in query.aggregations if a in definition.aggregations] or [
            definition.default_aggregation
        ]
        timeseries = []
        for series, by_point in sorted(cells.items()):
            data = []
            for point in points:
                row: dict[str, Any] = {"timeStamp": _iso(point)}
                if point in visible_points:
                    seconds = by_point.get(point, {})
                    for aggregation in aggregations:
                        row[aggregation] = _aggregate(name, aggregation, seconds, query.interval_s)
                data.append(row)
            timeseries.append(
                {
                    "metadatavalues": [
                        {"name": {"value": _DIMENSION_NAMES[i], "localizedValue": _DIMENSION_NAMES[i]}, "value": v}
                        for i, v in zip(split, series, strict=True)
                    ],
                    "data": data,
                }
            )
        return {
            "id": f"{rid}/providers/Microsoft.Insights/metrics/{name}",
            "type": "Microsoft.Insights/metrics",
            "name": {"value": name, "localizedValue": name},
            "displayDescription": definition.description,
            "unit": definition.unit,
            "timeseries": timeseries,
            "errorCode": "Success",
        }


def _aggregate(name: str, aggregation: str, seconds: Mapping[int, list[Any]], interval_s: int) -> float:
    ru = sum(v[0] for v in seconds.values())
    requests = sum(v[1] for v in seconds.values())
    if name == "NormalizedRUConsumption":
        percents = [min(100.0, 100.0 * max(v[3].values()) / v[2]) for v in seconds.values() if v[2] > 0 and v[3]]
        if aggregation == "average":
            return round(sum(percents) / interval_s, 6)
        return round(max(percents, default=0.0), 6)
    if name == "TotalRequests":
        return float(requests)
    if aggregation == "count":
        return float(requests)
    if aggregation == "average":
        return round(ru / requests, 6) if requests else 0.0
    return round(ru, 6)
