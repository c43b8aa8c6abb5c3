"""Archive planning arithmetic: how many RU, how much headroom, how long, and what it saves.

Everything is derived from the inputs (nothing is a stored answer). Units: sizes in decimal units
(1 GB = 1,000,000 KB) because the average record size is an estimate anyway; money in USD per month
(730 hours). Prices are list-price DEFAULTS to override with your region's and agreement's prices.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from include.cosmos_archiver.errors import TerminalError

HOURS_PER_MONTH = 730.0
KB_PER_GB = 1_000_000.0
SECONDS_PER_DAY = 86_400.0


class PlanInputError(TerminalError, ValueError):
    """An input to the plan is out of range; the message names it and says what to do."""


@dataclass(frozen=True)
class Prices:
    """USD list-price defaults (pay-as-you-go, single region, LRS, 2025/2026 public price pages); override them."""

    cosmos_storage_gb_month: float = 0.25  # Cosmos DB transactional storage
    cosmos_ru_per_100_ru_s_hour: float = 0.008  # standard provisioned throughput, per 100 RU/s per hour
    blob_gb_month: dict[str, float] = field(
        default_factory=lambda: {"hot": 0.018, "cool": 0.01, "cold": 0.0036, "archive": 0.00099}
    )

    def blob_price(self, tier: str) -> float:
        try:
            return self.blob_gb_month[tier]
        except KeyError:
            raise PlanInputError(
                f"blob tier {tier!r} is unknown; use one of {', '.join(sorted(self.blob_gb_month))}"
            ) from None


@dataclass(frozen=True)
class PlanInput:
    records: int
    avg_size_kb: float
    ru_per_record: float
    provisioned_ru_s: float
    client_load: float = 0.5  # fraction of provisioned RU/s the business uses
    ceiling: float = 0.8  # fraction of provisioned RU/s that total usage must stay under
    blob_tier: str = "cool"
    compression_ratio: float = 1.0  # Cosmos JSON size / Parquet size; 1.0 = no credit for compression
    provisioned_ru_s_after: float | None = None  # throughput you will provision after archiving (None = unchanged)
    prices: Prices = field(default_factory=Prices)

    def validate(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise PlanInputError(message)

        check(self.records >= 0, f"records={self.records} is negative; give the number of records to archive (>= 0)")
        check(self.avg_size_kb >= 0, f"avg size {self.avg_size_kb} KB is negative; give a size >= 0")
        check(self.ru_per_record >= 0, f"RU per record {self.ru_per_record} is negative; give a charge >= 0")
        check(self.provisioned_ru_s > 0, f"provisioned RU/s {self.provisioned_ru_s} must be > 0")
        check(0 < self.ceiling <= 1, f"ceiling {self.ceiling} must be in (0, 1], a fraction of provisioned RU/s")
        check(0 <= self.client_load < 1, f"client load {self.client_load} must be in [0, 1), a fraction")
        check(
            self.client_load < self.ceiling,
            f"client load {self.client_load} is not below the ceiling {self.ceiling}: there is no headroom to "
            f"archive in; raise the ceiling, provision more RU/s or run when the business is quieter",
        )
        check(self.compression_ratio > 0, f"compression ratio {self.compression_ratio} must be > 0")
        if self.provisioned_ru_s_after is not None:
            check(self.provisioned_ru_s_after >= 0, f"provisioned RU/s after {self.provisioned_ru_s_after} is negative")
        for name, price in [
            ("cosmos storage price", self.prices.cosmos_storage_gb_month),
            ("cosmos RU price", self.prices.cosmos_ru_per_100_ru_s_hour),
            *((f"blob {tier} price", p) for tier, p in self.prices.blob_gb_month.items()),
        ]:
            check(price >= 0, f"{name} {price} is negative; prices must be >= 0")
        self.prices.blob_price(self.blob_tier)


@dataclass(frozen=True)
class Plan:
    inputs: PlanInput
    total_ru: float
    headroom_ru_s: float
    eta_s: float
    data_gb: float
    blob_gb: float
    cosmos_storage_month_before: float
    cosmos_storage_month_after: float
    blob_storage_month_after: float
    throughput_month_before: float
    throughput_month_after: float
    archive_throughput_share: float  # the part of the provisioned-throughput bill the archive run consumes

    @property
    def eta_days(self) -> float:
        return self.eta_s / SECONDS_PER_DAY

    @property
    def monthly_before(self) -> float:
        return self.cosmos_storage_month_before + self.throughput_month_before

    @property
    def monthly_after(self) -> float:
        return self.cosmos_storage_month_after + self.blob_storage_month_after + self.throughput_month_after


def throughput_cost_month(ru_s: float, prices: Prices) -> float:
    return ru_s / 100.0 * prices.cosmos_ru_per_100_ru_s_hour * HOURS_PER_MONTH


def headroom_ru_s(provisioned_ru_s: float, ceiling: float, client_load: float) -> float:
    """RU/s the archiver may spend so that business + archiver stays under the ceiling."""
    return max(0.0, (ceiling - client_load) * provisioned_ru_s)


def make_plan(inputs: PlanInput) -> Plan:
    inputs.validate()
    total_ru = inputs.records * inputs.ru_per_record
    headroom = headroom_ru_s(inputs.provisioned_ru_s, inputs.ceiling, inputs.client_load)
    eta_s = total_ru / headroom if headroom > 0 else math.inf
    data_gb = inputs.records * inputs.avg_size_kb / KB_PER_GB
    blob_gb = data_gb / inputs.compression_ratio
    prices = inputs.prices
    after_ru_s = inputs.provisioned_ru_s if inputs.provisioned_ru_s_after is None else inputs.provisioned_ru_s_after
    return Plan(
        inputs=inputs,
        total_ru=total_ru,
        headroom_ru_s=headroom,
        eta_s=eta_s,
        data_gb=data_gb,
        blob_gb=blob_gb,
        cosmos_storage_month_before=data_gb * prices.cosmos_storage_gb_month,
        cosmos_storage_month_after=0.0,
        blob_storage_month_after=blob_gb * prices.blob_price(inputs.blob_tier),
        throughput_month_before=throughput_cost_month(inputs.provisioned_ru_s, prices),
        throughput_month_after=throughput_cost_month(after_ru_s, prices),
        archive_throughput_share=headroom / 100.0 * prices.cosmos_ru_per_100_ru_s_hour * eta_s / 3600.0,
    )


def _fmt_ru(value: float) -> str:
    if value >= 1e6:
        millions = f"{value / 1e6:,.2f}".rstrip("0").rstrip(".")
        return f"{millions} M RU ({value:,.0f})"
    return f"{value:,.0f} RU"


def format_plan(plan: Plan) -> str:
    i = plan.inputs
    eta = "never (no headroom)" if math.isinf(plan.eta_s) else f"{plan.eta_days:.2f} days ({plan.eta_s / 3600:,.1f} h)"
    lines = [
        f"records:              {i.records:,} x {i.avg_size_kb:g} KB, {i.ru_per_record:g} RU per record",
        f"throughput:           {i.provisioned_ru_s:,.0f} RU/s provisioned, client load {i.client_load:.0%}, "
        f"ceiling {i.ceiling:.0%}",
        f"total RU:             {_fmt_ru(plan.total_ru)}",
        f"headroom:             {plan.headroom_ru_s:,.0f} RU/s  (= ({i.ceiling:g} - {i.client_load:g}) x "
        f"{i.provisioned_ru_s:,.0f})",
        f"ETA at full headroom: {eta}",
        f"data:                 {plan.data_gb:,.1f} GB in Cosmos -> {plan.blob_gb:,.1f} GB in Blob ({i.blob_tier}, "
        f"compression ratio {i.compression_ratio:g})",
        "monthly cost (USD)        before      after",
        f"  cosmos storage      {plan.cosmos_storage_month_before:10,.2f} {plan.cosmos_storage_month_after:10,.2f}",
        f"  blob storage        {0.0:10,.2f} {plan.blob_storage_month_after:10,.2f}",
        f"  provisioned RU/s    {plan.throughput_month_before:10,.2f} {plan.throughput_month_after:10,.2f}",
        f"  total               {plan.monthly_before:10,.2f} {plan.monthly_after:10,.2f}",
        f"archive run uses ~${plan.archive_throughput_share:,.2f} of already-provisioned throughput (no extra bill)",
        "prices are list-price defaults (USD, pay-as-you-go); override them with --price-* for your region/agreement",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class ContainerSurvey:
    """What a live container says about the dataset: counted, sampled and measured, not assumed."""

    records: int
    avg_size_kb: float
    ru_per_record: float
    sampled: int
    provisioned_ru_s: float | None


def survey_container(container: object, *, sample: int = 20, where: str | None = None) -> ContainerSurvey:
    """Count records (``SELECT VALUE COUNT(1)``), estimate size from a small sample, and measure the point-read
    charge (``x-ms-request-charge``) of the sampled records. ``container`` is an azure-cosmos ContainerProxy."""
    from azure.cosmos.exceptions import CosmosHttpResponseError

    clause = f" WHERE {where}" if where else ""
    count = next(
        iter(container.query_items(f"SELECT VALUE COUNT(1) FROM c{clause}", enable_cross_partition_query=True))
    )
    docs = list(container.query_items(f"SELECT TOP {int(sample)} * FROM c{clause}", enable_cross_partition_query=True))
    pk_path = container.read()["partitionKey"]["paths"][0]
    sizes, charges = [], []
    for doc in docs:
        sizes.append(len(json.dumps(doc, separators=(",", ":")).encode()) / 1000.0)
        pk_value = doc
        for part in pk_path.strip("/").split("/"):
            pk_value = pk_value.get(part) if isinstance(pk_value, dict) else None
        container.read_item(doc["id"], partition_key=pk_value)
        charge = container.client_connection.last_response_headers.get("x-ms-request-charge")
        if charge is not None:
            charges.append(float(charge))
    try:
        offer = container.get_throughput()
        provisioned: float | None = float(offer.offer_throughput) if offer.offer_throughput else None
    except (CosmosHttpResponseError, AttributeError, TypeError):
        provisioned = None  # shared/database throughput or an emulator without offers: the caller must say
    return ContainerSurvey(
        records=int(count),
        avg_size_kb=sum(sizes) / len(sizes) if sizes else 0.0,
        ru_per_record=sum(charges) / len(charges) if charges else 0.0,
        sampled=len(docs),
        provisioned_ru_s=provisioned,
    )
