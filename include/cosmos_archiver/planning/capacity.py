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


def headroom_ru_s(provisioned_ru_s: float, ceiling: float, client_load: float) -> float:
    """RU/s the archiver may spend so that business + archiver stays under the ceiling."""
    return max(0.0, (ceiling - client_load) * provisioned_ru_s)


def estimate_capacity(inputs: CapacityInput) -> CapacityEstimate:
    inputs.validate()
    total_ru = inputs.records * inputs.ru_per_record
    headroom = headroom_ru_s(inputs.provisioned_ru_s, inputs.ceiling, inputs.client_load)
    eta_s = total_ru / headroom if headroom > 0 else math.inf
    data_gb = inputs.records * inputs.avg_size_kb / KB_PER_GB
    blob_gb = data_gb / inputs.compression_ratio
    prices = inputs.prices
    after_ru_s = inputs.provisioned_ru_s if inputs.provisioned_ru_s_after is None else inputs.provisioned_ru_s_after
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
        throughput_month_before=throughput_cost_month(inputs.provisioned_ru_s, prices),
        throughput_month_after=throughput_cost_month(after_ru_s, prices),
        archive_throughput_share=headroom / 100.0 * prices.cosmos_ru_per_100_ru_s_hour * eta_s / 3600.0,
    )


def _fmt_ru(value: float) -> str:
    if value >= 1e6:
        millions = f"{value / 1e6:,.2f}".rstrip("0").rstrip(".")
        return f"{millions} M RU ({value:,.0f})"
    return f"{value:,.0f} RU"


def format_plan(plan: CapacityEstimate) -> str:
    i = plan.inputs
    eta = "never (no headroom)" if math.isinf(plan.eta_s) else _days(plan.eta_s)
    if plan.eta_s >= SECONDS_PER_DAY and not math.isinf(plan.eta_s):
        eta += f" ({plan.eta_s / 3600:,.1f} h)"
    lines = [
        f"records:              {i.records:,} x {i.avg_size_kb:g} KB, {i.ru_per_record:g} RU per record",
        f"throughput:           {i.provisioned_ru_s:,.0f} RU/s provisioned, client load {i.client_load:.0%}, "
        f"ceiling {i.ceiling:.0%}",
        f"copy read:            {_fmt_ru(plan.total_ru)}  (the read alone; every step and the total below)",
        f"headroom:             {plan.headroom_ru_s:,.0f} RU/s  (= ({i.ceiling:g} - {i.client_load:g}) x "
        f"{i.provisioned_ru_s:,.0f})",
        f"copy ETA:             {eta} at full headroom",
        f"data:                 {plan.data_gb:,.1f} GB in Cosmos -> {plan.blob_gb:,.1f} GB in Blob ({i.blob_tier}, "
        f"compression ratio {i.compression_ratio:g})",
        "monthly cost (USD)        before      after",
        f"  cosmos storage      {plan.cosmos_storage_month_before:10,.2f} {plan.cosmos_storage_month_after:10,.2f}",
        f"  blob storage        {0.0:10,.2f} {plan.blob_storage_month_after:10,.2f}",
        f"  provisioned RU/s    {plan.throughput_month_before:10,.2f} {plan.throughput_month_after:10,.2f}",
        f"  total               {plan.monthly_before:10,.2f} {plan.monthly_after:10,.2f}",
        f"the copy read uses ~${plan.archive_throughput_share:,.2f} of already-provisioned throughput (no extra bill; "
        "every step below)",
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


# -- every step of the archive: copy read, validation, purge, remainder sweep ----------------------------------------

SERVERLESS_USD_PER_MILLION_RU = 0.25  # Microsoft's serverless docs' demonstration price: override with yours
STEPS = ("copy read", "validation", "purge", "remainder sweep")
PUBLISHED_DELETE_RU = 150.0  # mid-range of Microsoft's published ~98-185 RU for deleting a 256-512 KB item
PUBLISHED_DELETE_KB = (256.0, 512.0)  # the item sizes that published figure is for


@dataclass(frozen=True)
class StepModel:
    """How many RU each step charges per record, under a documented charge model; every figure is overridable.

    Defaults are the seed's model, which the local RU gateway implements: reads 1 RU/KB (the seed's 300 RU per
    300 KB record; queries add 2 RU per page), writes and deletes 5 RU/KB (1,500 RU to delete 300 KB). Microsoft
    publishes ~20-41 RU per point read and ~100-185 RU per delete of a 256-512 KB item: give the real charges with
    --delete-ru-per-record / --ru-per-record, or measure them (``--from-container``, ``--survey``).
    """

    validation: str = "fast"  # fast: ids + etags listed; deep: the whole slice read again
    purge: str = "delete"  # off | delete | stub
    write_ru_per_kb: float = 5.0
    delete_ru_per_record: float | None = None  # None: write_ru_per_kb x record size
    listing_kb_per_record: float = 0.1  # one {id, _etag, pk} row of the fast validation's listing
    listing_page_records: int = 1000
    query_page_overhead_ru: float = 2.0
    stub_kb: float = 0.5  # size of a purge stub (id, pk, timestamp, _archived pointer)
    remainder_fraction: float = 0.01  # share of records changed/arriving after their copy: archived twice
    slices: int = 640  # slices the sweep counts (daily slices: lookback 730 - cutoff 90 days)
    count_ru_per_slice: float = 3.0  # one SELECT VALUE COUNT(1) per slice per run
    serverless_usd_per_million_ru: float = SERVERLESS_USD_PER_MILLION_RU

    def validate(self) -> None:
        if self.validation not in ("fast", "deep"):
            raise CapacityInputError(f"validation {self.validation!r} must be 'fast' or 'deep'")
        if self.purge not in ("off", "delete", "stub"):
            raise CapacityInputError(f"purge {self.purge!r} must be 'off', 'delete' or 'stub'")
        for name in ("remainder_fraction", "write_ru_per_kb", "listing_kb_per_record", "query_page_overhead_ru",
                     "stub_kb", "count_ru_per_slice", "serverless_usd_per_million_ru", "delete_ru_per_record"):
            _require_finite(name, getattr(self, name))
        if not 0 <= self.remainder_fraction <= 1:
            raise CapacityInputError(
                f"remainder fraction {self.remainder_fraction} must be in [0, 1], a share of records")
        for name in ("write_ru_per_kb", "listing_kb_per_record", "query_page_overhead_ru", "stub_kb",
                     "count_ru_per_slice", "serverless_usd_per_million_ru"):
            if getattr(self, name) < 0:
                raise CapacityInputError(
                    f"{name.replace('_', ' ')} {getattr(self, name)} is negative; give a value >= 0")
        if self.delete_ru_per_record is not None and self.delete_ru_per_record < 0:
            raise CapacityInputError(f"delete RU per record {self.delete_ru_per_record} is negative")
        if self.listing_page_records < 1 or self.slices < 0:
            raise CapacityInputError("listing page records must be >= 1 and slices >= 0")


@dataclass(frozen=True)
class StepEstimate:
    step: str
    ru: float
    seconds: float  # at the archive's headroom
    serverless_usd: float  # RU billed per million on a serverless account
    provisioned_usd: float  # the share of already-provisioned throughput it uses (no extra bill)
    basis: str  # how the RU figure was derived


@dataclass(frozen=True)
class StepPlan:
    plan: CapacityEstimate
    model: StepModel
    steps: list[StepEstimate]
    cosmos_gb_after: float  # what stays in Cosmos of the archived records (stubs; nothing when deleted)

    @property
    def total_ru(self) -> float:
        return sum(s.ru for s in self.steps)

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    @property
    def storage_cut(self) -> float:
        """Share of the archived records' Cosmos storage that the purge removes."""
        return 1.0 - self.cosmos_gb_after / self.plan.data_gb if self.plan.data_gb else 0.0


def estimate_steps(inputs: CapacityInput, model: StepModel | None = None) -> StepPlan:
    """RU, time and money of each step of archiving ``inputs.records`` records, for both billing models."""
    model = model or StepModel()
    model.validate()
    plan = estimate_capacity(inputs)
    n, size = inputs.records, inputs.avg_size_kb
    read_per_kb = inputs.ru_per_record / size if size else 0.0
    delete = model.delete_ru_per_record if model.delete_ru_per_record is not None else model.write_ru_per_kb * size
    if model.validation == "deep":
        validate_per_record, validate_basis = inputs.ru_per_record, "the whole slice read again (deep)"
    else:
        validate_per_record = (model.listing_kb_per_record * read_per_kb
                               + model.query_page_overhead_ru / model.listing_page_records)
        validate_basis = f"ids + etags listed, ~{model.listing_kb_per_record:g} KB per record (fast)"
    if model.purge == "delete":
        purge_per_record, purge_basis = delete, f"one conditional delete, {delete:,.0f} RU"
    elif model.purge == "stub":
        stub_write = max(model.write_ru_per_kb * model.stub_kb, 0.0)
        purge_per_record = delete + stub_write
        purge_basis = f"replace by a stub = delete {delete:,.0f} + write {stub_write:,.0f} RU"
    else:
        purge_per_record, purge_basis = 0.0, "purge off: nothing leaves Cosmos"
    redo = model.remainder_fraction * n * (inputs.ru_per_record + validate_per_record + purge_per_record)
    counts = model.slices * model.count_ru_per_slice if model.purge != "off" else 0.0
    figures = [
        ("copy read", n * inputs.ru_per_record, f"{inputs.ru_per_record:g} RU per record read"),
        ("validation", n * validate_per_record, validate_basis),
        ("purge", n * purge_per_record, purge_basis),
        ("remainder sweep", redo + counts,
         f"{model.remainder_fraction:.0%} of records archived again + one COUNT per slice ({model.slices})"),
    ]
    steps = []
    for step, ru, basis in figures:
        seconds = ru / plan.headroom_ru_s if plan.headroom_ru_s > 0 else math.inf
        share = plan.headroom_ru_s / 100.0 * inputs.prices.cosmos_ru_per_100_ru_s_hour * seconds / 3600.0
        steps.append(StepEstimate(step, ru, seconds, ru / 1e6 * model.serverless_usd_per_million_ru,
                                  share if not math.isinf(seconds) else math.inf, basis))
    after_gb = {"off": plan.data_gb, "delete": 0.0, "stub": n * model.stub_kb / KB_PER_GB}[model.purge]
    return StepPlan(plan, model, steps, after_gb)


def _days(seconds: float) -> str:
    """A duration in the unit that shows it: days from a day up, else hours, minutes or seconds."""
    if math.isinf(seconds):
        return "never"
    for unit, size in (("days", SECONDS_PER_DAY), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.2f} {unit}"
    return f"{seconds:.0f} s"


def format_steps(step_plan: StepPlan) -> str:
    p, m = step_plan.plan, step_plan.model
    lines = [
        f"per step (validation {m.validation}, purge {m.purge}; at {p.headroom_ru_s:,.0f} RU/s headroom):",
        f"  {'step':<16} {'RU':>30} {'time':>12} {'serverless $':>13} {'provisioned $':>14}  basis",
    ]
    for s in step_plan.steps:
        lines.append(f"  {s.step:<16} {_fmt_ru(s.ru):>30} {_days(s.seconds):>12} {s.serverless_usd:>13,.2f} "
                     f"{s.provisioned_usd:>14,.2f}  {s.basis}")
    total_usd = sum(s.serverless_usd for s in step_plan.steps)
    lines += [
        f"  {'total':<16} {_fmt_ru(step_plan.total_ru):>30} {_days(step_plan.total_seconds):>12} "
        f"{total_usd:>13,.2f} {sum(s.provisioned_usd for s in step_plan.steps):>14,.2f}  end-to-end ETA",
        f"serverless: RU billed at ${m.serverless_usd_per_million_ru:g} per million (the docs' demonstration price; "
        "--price-serverless-ru); no priority or throughput buckets there: the archiver's pacing is the only guard",
        "provisioned: the archive spends headroom already paid for (the $ column is that share, not an extra bill); "
        "deletes go at Low priority where the account offers priority-based execution",
    ]
    if m.purge != "off" and m.delete_ru_per_record is None and PUBLISHED_DELETE_KB[0] <= p.inputs.avg_size_kb <= \
            PUBLISHED_DELETE_KB[1]:
        published = p.inputs.records * PUBLISHED_DELETE_RU
        lines.append(f"note: the purge above uses the seed model's {m.write_ru_per_kb:g} RU/KB; at Microsoft's "
                     f"published ~{PUBLISHED_DELETE_RU:g} RU per delete of a 256-512 KB item it would be "
                     f"{_fmt_ru(published)}, {_days(published / p.headroom_ru_s if p.headroom_ru_s else math.inf)} "
                     "(--delete-ru-per-record; measure it with a real account)")
    lines += [
        f"Cosmos storage of the archived records: {p.data_gb:,.1f} GB -> {step_plan.cosmos_gb_after:,.1f} GB "
        f"(cut {step_plan.storage_cut:.1%}, goal >= 95 %), "
        f"${p.data_gb * p.inputs.prices.cosmos_storage_gb_month:,.2f} -> "
        f"${step_plan.cosmos_gb_after * p.inputs.prices.cosmos_storage_gb_month:,.2f} per month",
    ]
    return "\n".join(lines)


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
