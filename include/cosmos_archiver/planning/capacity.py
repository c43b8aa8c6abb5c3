"""Archive planning arithmetic: how many RU, how much headroom, how long, and what it saves.

Everything is derived from the inputs (nothing is a stored answer). Units: sizes in decimal units
(1 GB = 1,000,000 KB) because the average record size is an estimate anyway; money in USD per month
(730 hours). Prices are list-price DEFAULTS to override with your region's and agreement's prices.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.planning.published import SERVERLESS_USD_PER_MILLION_RU
from include.cosmos_archiver.ru.settings import ACCOUNT_MODES, RateControlSettings

HOURS_PER_MONTH = 730.0
KB_PER_GB = 1_000_000.0
SECONDS_PER_DAY = 86_400.0


class CapacityInputError(TerminalError, ValueError):
    """An input to the plan is out of range; the message names it and says what to do."""


def _require_finite(name: str, value: float | None) -> None:
    """Infinity passes every range check (inf > 0) and NaN fails them all with a misleading message: refuse both."""
    if value is not None and not math.isfinite(value):
        raise CapacityInputError(f"{name.replace('_', ' ')} {value} is not a finite number; give a real figure")


@dataclass(frozen=True)
class Prices:
    """USD list-price defaults (pay-as-you-go, single region, LRS, 2025/2026 public price pages); override them."""

    cosmos_storage_gb_month: float = 0.25  # Cosmos DB transactional storage
    cosmos_ru_per_100_ru_s_hour: float = 0.008  # standard provisioned throughput, per 100 RU/s per hour
    serverless_usd_per_million_ru: float = SERVERLESS_USD_PER_MILLION_RU  # the serverless docs' demonstration price
    blob_gb_month: dict[str, float] = field(
        default_factory=lambda: {"hot": 0.018, "cool": 0.01, "cold": 0.0036, "archive": 0.00099}
    )

    def blob_price(self, tier: str) -> float:
        try:
            return self.blob_gb_month[tier]
        except KeyError:
            raise CapacityInputError(
                f"blob tier {tier!r} is unknown; use one of {', '.join(sorted(self.blob_gb_month))}"
            ) from None


@dataclass(frozen=True)
class CapacityInput:
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
    account_mode: str = "provisioned"  # serverless: RU billed per million, no provisioned RU/s bill, the cap applies

    def validate(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise CapacityInputError(message)

        for name in ("records", "avg_size_kb", "ru_per_record", "provisioned_ru_s", "client_load", "ceiling",
                     "compression_ratio", "provisioned_ru_s_after"):
            _require_finite(name, getattr(self, name))
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
        check(self.account_mode in ACCOUNT_MODES,
              f"account mode {self.account_mode!r} must be one of {', '.join(ACCOUNT_MODES)}")
        if self.provisioned_ru_s_after is not None:
            check(self.provisioned_ru_s_after >= 0, f"provisioned RU/s after {self.provisioned_ru_s_after} is negative")
        for name, price in [
            ("cosmos storage price", self.prices.cosmos_storage_gb_month),
            ("cosmos RU price", self.prices.cosmos_ru_per_100_ru_s_hour),
            *((f"blob {tier} price", p) for tier, p in self.prices.blob_gb_month.items()),
        ]:
            _require_finite(name, price)
            check(price >= 0, f"{name} {price} is negative; prices must be >= 0")
        self.prices.blob_price(self.blob_tier)


@dataclass(frozen=True)
class CapacityEstimate:
    inputs: CapacityInput
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


def headroom_ru_s(provisioned_ru_s: float, ceiling: float, client_load: float, account_mode: str = "provisioned",
                  ) -> float:
    """RU/s the archiver may spend: business + archiver under the ceiling, and never above the account mode's cap
    (``RateControlSettings.cap_ru_s``: serverless 1 - ceiling of the RU/s, what the controller enforces)."""
    settings = RateControlSettings(provisioned_ru_s=provisioned_ru_s, ceiling=ceiling,
                                   assumed_client_load=client_load, account_mode=account_mode)
    return max(0.0, min(settings.static_rate_ru_s, settings.cap_ru_s))


def estimate_capacity(inputs: CapacityInput) -> CapacityEstimate:
    inputs.validate()
    total_ru = inputs.records * inputs.ru_per_record
    headroom = headroom_ru_s(inputs.provisioned_ru_s, inputs.ceiling, inputs.client_load, inputs.account_mode)
    eta_s = total_ru / headroom if headroom > 0 else math.inf
    data_gb = inputs.records * inputs.avg_size_kb / KB_PER_GB
    blob_gb = data_gb / inputs.compression_ratio
    prices = inputs.prices
    after_ru_s = inputs.provisioned_ru_s if inputs.provisioned_ru_s_after is None else inputs.provisioned_ru_s_after
    serverless = inputs.account_mode == "serverless"
    return CapacityEstimate(
        inputs=inputs,
        total_ru=total_ru,
        headroom_ru_s=headroom,
        eta_s=eta_s,
        data_gb=data_gb,
        blob_gb=blob_gb,
        cosmos_storage_month_before=data_gb * prices.cosmos_storage_gb_month,
        cosmos_storage_month_after=0.0,
        blob_storage_month_after=blob_gb * prices.blob_price(inputs.blob_tier),
        throughput_month_before=0.0 if serverless else throughput_cost_month(inputs.provisioned_ru_s, prices),
        throughput_month_after=0.0 if serverless else throughput_cost_month(after_ru_s, prices),
        archive_throughput_share=(total_ru / 1e6 * prices.serverless_usd_per_million_ru if serverless else
                                  headroom / 100.0 * prices.cosmos_ru_per_100_ru_s_hour * eta_s / 3600.0),
    )


def _fmt_ru(value: float) -> str:
    if value >= 1e6:
        millions = f"{value / 1e6:,.2f}".rstrip("0").rstrip(".")
        return f"{millions} M RU ({value:,.0f})"
    return f"{value:,.0f} RU"


def format_plan(plan: CapacityEstimate) -> str:
    i = plan.inputs
    serverless = i.account_mode == "serverless"
    eta = "never (no headroom)" if math.isinf(plan.eta_s) else _days(plan.eta_s)
    if plan.eta_s >= SECONDS_PER_DAY and not math.isinf(plan.eta_s):
        eta += f" ({plan.eta_s / 3600:,.1f} h)"
    rate = (f"{plan.headroom_ru_s:,.0f} RU/s  (= min(({i.ceiling:g} - {i.client_load:g}) x {i.provisioned_ru_s:,.0f}, "
            f"the serverless cap (1 - {i.ceiling:g}) x {i.provisioned_ru_s:,.0f}))" if serverless else
            f"{plan.headroom_ru_s:,.0f} RU/s  (= ({i.ceiling:g} - {i.client_load:g}) x {i.provisioned_ru_s:,.0f})")
    lines = [
        f"records:              {i.records:,} x {i.avg_size_kb:g} KB, {i.ru_per_record:g} RU per record read",
        f"throughput:           {i.provisioned_ru_s:,.0f} RU/s {'(serverless limit)' if serverless else 'provisioned'}"
        f", client load {i.client_load:.0%}, ceiling {i.ceiling:.0%}",
        f"copy read:            {_fmt_ru(plan.total_ru)}  (the read alone; every step and the total below)",
        f"archiver rate:        {rate}",
        f"copy ETA:             {eta} at that rate",
        f"data:                 {plan.data_gb:,.1f} GB in Cosmos -> {plan.blob_gb:,.1f} GB in Blob ({i.blob_tier}, "
        f"compression ratio {i.compression_ratio:g})",
        "monthly cost (USD)        before      after",
        f"  cosmos storage      {plan.cosmos_storage_month_before:10,.2f} {plan.cosmos_storage_month_after:10,.2f}",
        f"  blob storage        {0.0:10,.2f} {plan.blob_storage_month_after:10,.2f}",
    ]
    if not serverless:
        before, after = plan.throughput_month_before, plan.throughput_month_after
        lines.append(f"  provisioned RU/s    {before:10,.2f} {after:10,.2f}")
    lines.append(f"  total               {plan.monthly_before:10,.2f} {plan.monthly_after:10,.2f}")
    if serverless:
        lines.append(f"the copy read is billed ~${plan.archive_throughput_share:,.2f} (serverless: RU per million; "
                     "every step below)")
    else:
        lines.append(f"the copy read uses ~${plan.archive_throughput_share:,.2f} of already-provisioned throughput (no "
                     "extra bill; every step below)")
    lines.append("prices are list-price defaults (USD, pay-as-you-go); override them with --price-* for your "
                 "region/agreement")
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


def _days(seconds: float) -> str:
    """A duration in the unit that shows it: days from a day up, else hours, minutes or seconds."""
    if math.isinf(seconds):
        return "never"
    for unit, size in (("days", SECONDS_PER_DAY), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.2f} {unit}"
    return f"{seconds:.0f} s"


def recorded_step_charges(manifests: list[Any]) -> dict[str, tuple[float, int]]:
    """step -> (RU the pipeline recorded for it over ``manifests``, records of those manifests), from each
    manifest's ``ru_steps`` (manifests written before steps were recorded count their copy RU only)."""
    totals: dict[str, tuple[float, int]] = {}
    for manifest in manifests:
        steps = manifest.ru_steps or {"copy": manifest.ru_charged}
        for step, ru in steps.items():
            ru_sum, records = totals.get(step, (0.0, 0))
            totals[step] = (ru_sum + ru, records + manifest.record_count)
    return totals
