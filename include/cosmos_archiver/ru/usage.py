"""How busy is the Cosmos account right now? RU usage sources behind one small interface.

A source returns per-grain samples, oldest first. A value of ``None`` means *unknown*: Azure Monitor publishes
with a delay, and the newest one or two minutes come back empty or as zero. Those are treated as unknown, never
as "idle" — pacing or gating on a lagging zero is how an archiver overshoots.

* :class:`AzureMonitorUsageSource` queries ``TotalRequestUnits`` (Total: the account's use) and
  ``NormalizedRUConsumption`` (Maximum: the busiest partition key range's share of its own budget, not the
  account's) through the real ``azure.monitor.querymetrics.MetricsClient`` (``azure-monitor-query`` 2.0 removed
  ``MetricsQueryClient``). On Azure it uses ``DefaultAzureCredential``
  against the regional endpoint; any ``TokenCredential`` can be injected (e.g.
  :class:`~include.cosmos_archiver.loopback.StaticTokenCredential` for the local RU gateway, which serves the same
  API).

The gating question (has usage stayed quiet for a window?) is :mod:`.quiet_gate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from include.cosmos_archiver.errors import TerminalError

COSMOS_METRIC_NAMESPACE = "Microsoft.DocumentDB/databaseAccounts"
TOTAL_RU = "TotalRequestUnits"
NORMALIZED_RU = "NormalizedRUConsumption"


class UsageConfigError(TerminalError, ValueError):
    """A usage-source or gate setting is invalid; the message names it."""


@dataclass(frozen=True)
class UsageSample:
    """One metric grain starting at ``timestamp`` (UTC) and lasting ``grain_s`` seconds; None = unknown."""

    timestamp: datetime
    grain_s: float
    total_ru_per_s: float | None
    normalized_pct: float | None

    @property
    def known(self) -> bool:
        return self.total_ru_per_s is not None or self.normalized_pct is not None

    def usage_fraction(self, provisioned_ru_s: float) -> float | None:
        """The ACCOUNT's share of its provisioned RU/s: TotalRequestUnits / provisioned. NormalizedRUConsumption is not
        that: it is the busiest partition key range's share of its own budget (provisioned / physical partitions),
        the highest second of the grain (Microsoft Learn, monitor-normalized-request-units): one hot partition reads
        100 % while the account sits at 10 %. It stands in only when the total is unknown, as an upper bound of the
        account's share (the safe side)."""
        if self.total_ru_per_s is not None and provisioned_ru_s > 0:
            return self.total_ru_per_s / provisioned_ru_s
        return self.hottest_partition_share

    @property
    def hottest_partition_share(self) -> float | None:
        """NormalizedRUConsumption as a share: the busiest partition key range's use of its own RU/s (None: unknown)."""
        return None if self.normalized_pct is None else self.normalized_pct / 100.0

    @property
    def end(self) -> datetime:
        return self.timestamp + timedelta(seconds=self.grain_s)


class RuUsageSource(Protocol):
    def recent(self, window: timedelta) -> list[UsageSample]:
        """Samples covering roughly the last ``window``, oldest first; unknown values are None."""
        ...


def cosmos_account_resource_id(subscription_id: str, resource_group: str, account: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.DocumentDB/databaseAccounts/{account}"
    )


class AzureMonitorUsageSource:
    """RU usage of one Cosmos account (optionally one container) from Azure Monitor metrics.

    ``endpoint`` is the regional metrics endpoint (``https://<region>.metrics.monitor.azure.com``) or the local
    gateway's URL. ``lagging_grains`` newest grains are reported as unknown whatever they contain.
    """

    def __init__(
        self,
        endpoint: str,
        resource_id: str,
        *,
        credential: Any = None,
        grain: timedelta = timedelta(minutes=1),
        lagging_grains: int = 2,
        database: str | None = None,
        collection: str | None = None,
        clock: Any = None,
        **client_kwargs: Any,
    ) -> None:
        from azure.monitor.querymetrics import MetricsClient

        if grain <= timedelta(0):
            raise UsageConfigError(f"metric grain {grain} must be positive, e.g. PT1M")
        if lagging_grains < 0:
            raise UsageConfigError(f"lagging_grains={lagging_grains} must be >= 0")
        if not resource_id.lower().startswith("/subscriptions/"):
            raise UsageConfigError(
                f"resource id {resource_id!r} is not an ARM id; use /subscriptions/<id>/resourceGroups/<rg>/"
                f"providers/Microsoft.DocumentDB/databaseAccounts/<account>"
            )
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self.resource_id = resource_id
        self.grain = grain
        self.lagging_grains = lagging_grains
        self._filter = self._dimension_filter(database, collection)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._client = MetricsClient(endpoint, credential, **client_kwargs)

    @staticmethod
    def _dimension_filter(database: str | None, collection: str | None) -> str | None:
        parts = []
        if database:
            parts.append(f"DatabaseName eq '{database}'")
        if collection:
            parts.append(f"CollectionName eq '{collection}'")
        return " and ".join(parts) or None

    def _query(self, metric: str, aggregation: str, start: datetime, end: datetime) -> dict[datetime, float | None]:
        """Per-grain values of one metric, summed over the time series the filter returns (one per dimension
        combination, e.g. per StatusCode for TotalRequestUnits; for the Maximum aggregation, the max)."""
        results = self._client.query_resources(
            resource_ids=[self.resource_id],
            metric_namespace=COSMOS_METRIC_NAMESPACE,
            metric_names=[metric],
            timespan=(start, end),
            granularity=self.grain,
            aggregations=[aggregation],
            filter=self._filter,
        )
        values: dict[datetime, float | None] = {}
        for result in results:
            for m in result.metrics:
                for series in m.timeseries:
                    for point in series.data:
                        value = getattr(point, aggregation.lower())
                        ts = point.timestamp.astimezone(UTC)
                        prior = values.get(ts)
                        if value is None:
                            values.setdefault(ts, None)
                        elif prior is None:
                            values[ts] = float(value)
                        else:
                            values[ts] = max(prior, value) if aggregation == "Maximum" else prior + value
        return values

    def recent(self, window: timedelta) -> list[UsageSample]:
        grain_s = self.grain.total_seconds()
        now = self._clock()
        end = _floor(now, grain_s) + self.grain
        start = end - window - self.grain * (self.lagging_grains + 1)
        totals = self._query(TOTAL_RU, "Total", start, end)
        normalized = self._query(NORMALIZED_RU, "Maximum", start, end)
        lag_start = _floor(now, grain_s) - self.grain * (self.lagging_grains - 1) if self.lagging_grains else end
        if not totals and not normalized:
            # A successful answer with no series at all: no request matched in the window. Grains older than the
            # lagging ones are published by assumption (that is what lagging_grains covers), so they are idle.
            totals = {ts: 0.0 for ts in _grid(start, min(lag_start, end), self.grain)}
            normalized = dict.fromkeys(totals, 0.0)
        samples = []
        for ts in sorted(set(totals) | set(normalized)):
            total, norm = totals.get(ts), normalized.get(ts)
            if ts >= lag_start or ts >= now:
                total = norm = None  # newest grains: not yet (fully) published — unknown, not idle
            samples.append(
                UsageSample(
                    timestamp=ts,
                    grain_s=grain_s,
                    total_ru_per_s=None if total is None else total / grain_s,
                    normalized_pct=norm,
                )
            )
        return samples

    def close(self) -> None:
        self._client.close()


def _grid(start: datetime, end: datetime, grain: timedelta) -> list[datetime]:
    points, cursor = [], _floor(start, grain.total_seconds())
    while cursor < end:
        points.append(cursor)
        cursor += grain
    return points


def _floor(moment: datetime, grain_s: float) -> datetime:
    epoch = moment.timestamp()
    return datetime.fromtimestamp(epoch - epoch % grain_s, UTC)
