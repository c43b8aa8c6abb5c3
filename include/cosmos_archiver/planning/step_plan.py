"""The plan per step, under the model the RU gateway charges by (Microsoft's published figures) or an account's
measured charges (the survey's calibration file): RU, time at the rate the archiver is really allowed, and money for
the account's billing mode.

Steps and what each pays (``ChargeFigures``, defaults from :mod:`planning.published`, each with its source):

- copy: the slice queries load every document they return: ``size x RU per MB loaded`` per record, plus one query
  page charge per ``page_size`` records and half a page per slice and partition (each slice is one query per
  partition key range, whose last page is partial: ceil(k / page_size) pages, k / page_size + 0.5 on average);
- validation: ``fast`` = one index-served COUNT per slice and physical partition (loads nothing; the archive side is
  Blob reads): its fixed charge, plus ``count_ru_per_record`` for each index entry it counts; ``deep`` = the copy's
  read again;
- purge: one conditional delete per record (published write charge of its size); ``stub`` = that plus writing the
  stub;
- remainder: the share of records changed or arriving after their copy, archived again (copy + validation + purge),
  plus one index-served COUNT per slice;
- census: each daily run counts its own slices (index-served; after their purge they hold only the remainder, so
  the counts pay their fixed charge) and the lookback; the weekly full census loads the
  container a few times (:mod:`source.census_cost`), shown per week while the data is still in Cosmos;
- ADF (route ``adf``): its Copy activity reads like the copy but is not paced (no RU setting on a Copy activity), and
  its slices are deep-validated (their manifests carry no hash taken from Cosmos' bytes).

Time: RU / the rate applied = min((ceiling - business load) x RU/s, the archiver's cap), the cap being
``RateControlSettings.cap_ru_s`` (serverless: 1 - ceiling of the account's RU/s, the only guard there).
Money: serverless = RU billed per million; provisioned = the share of throughput already paid for (no extra bill).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from include.cosmos_archiver.planning import published
from include.cosmos_archiver.planning.capacity import KB_PER_GB, CapacityInputError, _days, _fmt_ru, _require_finite
from include.cosmos_archiver.ru.settings import RateControlSettings

STEPS = ("copy", "validation", "purge", "remainder", "census", "ADF")
CALIBRATION_VERSION = 1


@dataclass(frozen=True)
class ChargeFigures:
    """RU per operation. Defaults: Microsoft's published figures (:mod:`planning.published`); a survey's calibration
    file (``ChargeFigures.from_file``) replaces them with an account's measured charges."""

    ru_per_mb_loaded: float = published.QUERY_RU_PER_MB_LOADED
    query_page_ru: float = published.QUERY_PAGE_RU
    count_ru: float = published.INDEX_COUNT_RU  # one index-served COUNT (per physical partition), its fixed charge
    count_ru_per_record: float = 0.0  # what a COUNT adds per index entry it counts (no published figure; surveyed)
    point_read_ru: float | None = None  # None: the published table at the record size
    delete_ru: float | None = None  # None: the published write charge at the record size
    physical_partitions: int | None = None  # None: ceil(GB / 50), how Azure splits by size (partitioning docs)
    account_mode: str | None = None  # a survey may have read it
    source: str = "Microsoft's published figures (planning/published.py)"

    def read_ru(self, size_kb: float) -> float:
        return self.point_read_ru if self.point_read_ru is not None else published.point_read_ru(size_kb)

    def delete(self, size_kb: float) -> float:
        return self.delete_ru if self.delete_ru is not None else published.delete_ru(size_kb)

    def load_ru(self, size_kb: float) -> float:
        return self.ru_per_mb_loaded * size_kb / 1000.0  # decimal KB and MB (query metrics count bytes)

    @classmethod
    def from_file(cls, path: str | Path) -> ChargeFigures:
        """The figures a survey measured (``cosmos-archive survey --write``); CapacityInputError when unreadable."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CapacityInputError(f"calibration file {path}: cannot be read ({exc}); run `cosmos-archive survey "
                                     "--write FILE` against the account first") from None
        if data.get("calibration_version") != CALIBRATION_VERSION:
            raise CapacityInputError(f"calibration file {path}: version {data.get('calibration_version')!r} is not "
                                     f"{CALIBRATION_VERSION}; run the survey again")
        known = {f.name for f in fields(cls)}
        figures = {k: v for k, v in (data.get("figures") or {}).items() if k in known}
        return cls(**{**figures, "source": f"survey {path} ({data.get('surveyed_at', '?')})"})


@dataclass(frozen=True)
class StepModel:
    validation: str = "fast"  # fast: index-served counts; deep: the whole slice read again
    purge: str = "delete"  # off | delete | stub
    route: str = "local"  # local | adf
    page_size: int = 100
    stub_kb: float = 0.5
    remainder_fraction: float = 0.01  # share of records changed/arriving after their copy
    slices: int = 640  # slices archived (daily slices: lookback 730 - cutoff 90 days)
    slices_per_run: int = 1  # how many slices a run archives (each run's census also counts the lookback once)
    census_weeks: float | None = None  # weekly full censuses while the data is in Cosmos (None: the ETA's weeks)
    serverless_usd_per_million_ru: float = published.SERVERLESS_USD_PER_MILLION_RU

    def validate(self) -> None:
        for name in ("stub_kb", "remainder_fraction", "serverless_usd_per_million_ru"):
            _require_finite(name, getattr(self, name))
        checks = [
            (self.validation in ("fast", "deep"), f"validation {self.validation!r} must be 'fast' or 'deep'"),
            (self.purge in ("off", "delete", "stub"), f"purge {self.purge!r} must be 'off', 'delete' or 'stub'"),
            (self.route in ("local", "adf"), f"route {self.route!r} must be 'local' or 'adf'"),
            (0 <= self.remainder_fraction <= 1,
             f"remainder fraction {self.remainder_fraction} must be in [0, 1], a share of records"),
            (self.page_size >= 1 and self.slices >= 0 and self.slices_per_run >= 1,
             "page size and slices per run must be >= 1 and slices >= 0"),
            (self.stub_kb >= 0 and self.serverless_usd_per_million_ru >= 0, "stub size and prices must be >= 0"),
            (self.census_weeks is None or 0 <= self.census_weeks < math.inf,
             f"census weeks {self.census_weeks} must be a number >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise CapacityInputError(message)


@dataclass(frozen=True)
class PlanTarget:
    """The dataset and the account: what is archived, at which rate, billed how."""

    records: int
    avg_size_kb: float
    ru_s: float  # provisioned RU/s, or the serverless account's RU/s limit the ceiling is a share of
    account_mode: str
    client_load: float = 0.5
    ceiling: float = 0.8

    def rate(self) -> RateControlSettings:
        try:
            return RateControlSettings(provisioned_ru_s=self.ru_s, ceiling=self.ceiling,
                                       assumed_client_load=self.client_load, account_mode=self.account_mode)
        except ValueError as exc:
            raise CapacityInputError(str(exc)) from None

    @property
    def rate_ru_s(self) -> float:
        """What the archiver is allowed: the headroom under the ceiling, capped by the account mode's cap."""
        settings = self.rate()
        return min(settings.static_rate_ru_s, settings.cap_ru_s)


@dataclass(frozen=True)
class Step:
    step: str
    ru: float
    seconds: float
    usd: float
    basis: str
    paced: bool = True


@dataclass
class StepPlan:
    target: PlanTarget
    model: StepModel
    figures: ChargeFigures
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_ru(self) -> float:
        return sum(s.ru for s in self.steps)

    def ru_of(self, step: str) -> float:
        return next((s.ru for s in self.steps if s.step == step), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"target": asdict(self.target), "model": asdict(self.model), "figures": asdict(self.figures),
                "steps": [asdict(s) for s in self.steps], "rate_ru_s": self.target.rate_ru_s}


def plan_steps(target: PlanTarget, model: StepModel | None = None, figures: ChargeFigures | None = None) -> StepPlan:
    """RU, time and money of each step of archiving ``target`` (see the module docstring)."""
    model, figures = model or StepModel(), figures or ChargeFigures()
    model.validate()
    if target.records < 0 or target.avg_size_kb < 0 or target.ru_s <= 0:
        raise CapacityInputError(f"records {target.records}, size {target.avg_size_kb} KB and RU/s {target.ru_s} "
                                 "must be >= 0, >= 0 and > 0")
    n, size = target.records, target.avg_size_kb
    rate = target.rate_ru_s
    data_gb = n * size / KB_PER_GB
    partitions = figures.physical_partitions or max(1, math.ceil(data_gb / published.PARTITION_MAX_GB))
    pages = (n / model.page_size + 0.5 * model.slices * partitions) if n else 0.0
    copy_per = figures.load_ru(size) + (figures.query_page_ru * pages / n if n else 0.0)
    counts_per_slice = figures.count_ru * partitions
    deep = model.validation == "deep" or model.route == "adf"
    validate_ru = n * copy_per if deep else model.slices * counts_per_slice + n * figures.count_ru_per_record
    delete = figures.delete(size)
    purge_per = {"off": 0.0, "delete": delete, "stub": delete + published.delete_ru(model.stub_kb)}[model.purge]
    redo = model.remainder_fraction * n * (copy_per + (copy_per if deep else 0.0) + purge_per)
    sweep = (model.slices * counts_per_slice + model.remainder_fraction * n * figures.count_ru_per_record
             if model.purge != "off" else 0.0)
    runs = math.ceil(model.slices / model.slices_per_run)
    left = n if model.purge == "off" else model.remainder_fraction * n  # what the runs' censuses still count
    daily = (model.slices + runs) * counts_per_slice + left * figures.count_ru_per_record  # slices + the lookback
    cost_model = dict(published=figures.source)
    plan = StepPlan(target, model, figures)
    archive_s = (n * (copy_per + purge_per) + validate_ru) / rate if rate > 0 else math.inf
    weeks = model.census_weeks if model.census_weeks is not None else max(1.0, archive_s / (7 * 86_400))
    full_census = weeks * n * figures.load_ru(size) * 3  # three whole-container loads a week (source.census_cost)
    rows = [
        ("copy", n * copy_per, f"{figures.load_ru(size):,.2f} RU loaded per {size:g} KB record "
                               f"({figures.ru_per_mb_loaded:.2f} RU/MB) + {figures.query_page_ru:g} RU per page: "
                               f"{pages:,.0f} pages of {model.page_size}", model.route == "local"),
        ("validation", validate_ru,
         "the slice read again (deep" + (", ADF slices" if model.route == "adf" else "") + ")" if deep else
         f"{model.slices} slices x {partitions} partition(s) x {figures.count_ru:g} RU index-served COUNT + "
         f"{figures.count_ru_per_record:g} RU per record counted", True),
        ("purge", n * purge_per, {"off": "purge off: nothing leaves Cosmos",
                                  "delete": f"one conditional delete, {delete:,.1f} RU",
                                  "stub": f"replace by a stub, {purge_per:,.1f} RU"}[model.purge], True),
        ("remainder", redo + sweep, f"{model.remainder_fraction:.0%} of records archived again + one COUNT per "
                                    f"slice and partition", True),
        ("census", daily + full_census,
         f"{runs} runs: {daily:,.0f} RU in all (index-served counts); weekly full census ~{weeks:,.1f} x "
         f"{n * figures.load_ru(size) * 3:,.0f} RU (3 loads of the data)", True),
    ]
    if model.route == "adf":
        rows[0] = ("ADF", n * copy_per, "the Copy activity reads like the copy; NOT paced (no RU setting)", False)
    for step, ru, basis, paced in rows:
        seconds = ru / rate if rate > 0 else math.inf
        usd = ru / 1e6 * model.serverless_usd_per_million_ru if target.account_mode == "serverless" else 0.0
        plan.steps.append(Step(step, ru, seconds if paced else 0.0, usd, basis, paced))
    plan.notes.append(f"figures: {cost_model['published']}")
    if figures.account_mode and figures.account_mode != target.account_mode:
        plan.notes.append(f"WARNING: the survey read account mode {figures.account_mode!r}, the plan uses "
                          f"{target.account_mode!r}")
    return plan


def format_step_plan(plan: StepPlan) -> str:
    t, m = plan.target, plan.model
    settings = t.rate()
    cap = "no cap" if math.isinf(settings.cap_ru_s) else f"cap {settings.cap_ru_s:,.0f} RU/s"
    serverless = t.account_mode == "serverless"
    lines = [
        f"per step ({t.account_mode} account, {t.ru_s:,.0f} RU/s, business {t.client_load:.0%}, ceiling "
        f"{t.ceiling:.0%}: the archiver runs at {t.rate_ru_s:,.0f} RU/s = min(headroom "
        f"{settings.static_rate_ru_s:,.0f}, {cap}); validation {m.validation}, purge {m.purge}, route {m.route}):",
        f"  {'step':<11} {'RU':>30} {'time':>12} {'$ billed' if serverless else '$ extra':>10}  basis",
    ]
    for s in plan.steps:
        time = _days(s.seconds) if s.paced else "unpaced"
        lines.append(f"  {s.step:<11} {_fmt_ru(s.ru):>30} {time:>12} {s.usd:>10,.2f}  {s.basis}")
    total_s = sum(s.seconds for s in plan.steps)
    lines.append(f"  {'total':<11} {_fmt_ru(plan.total_ru):>30} {_days(total_s):>12} "
                 f"{sum(s.usd for s in plan.steps):>10,.2f}")
    if serverless:
        lines.append(f"serverless: RU billed at ${m.serverless_usd_per_million_ru:g} per million "
                     f"({published.SOURCE_SERVERLESS}; --price-serverless-ru); no priority or throughput buckets "
                     "there: the archiver's pacing is the only guard")
    else:
        lines.append("provisioned: the archive spends throughput already paid for (no extra bill); its requests "
                     "go at Low priority where the account offers priority-based execution")
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines)
