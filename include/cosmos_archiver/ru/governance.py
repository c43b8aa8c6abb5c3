"""RU governance settings for a run: where usage comes from, the ceiling, and the pacing the archiver uses.

One validated object (from the ``cosmos_archive_ru`` Airflow Variable or a dict) that builds the usage source
for the RU gate, the RuBudget for copy/validation, and the client options (low priority, throughput bucket).

``account_mode`` (no default: set it, or configure ``resource_id`` and it is read from the account, ru/account_mode.py):
``provisioned`` sends priority Low and the throughput bucket, Cosmos's server-side guard; ``serverless`` (the seed's
account) sends neither — Azure offers neither there — and the adaptive controller is the only guard, capped at
``archiver_cap`` (default 1 - ceiling) of ``provisioned_ru_s`` and stopping on a 429.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any

from include.cosmos_archiver.loopback import StaticTokenCredential
from include.cosmos_archiver.ru.account_mode import AccountModeError, missing_mode_message, read_account_mode
from include.cosmos_archiver.ru.adaptive_budget import AdaptiveBudget
from include.cosmos_archiver.ru.adf_sizing import AdfCopyPlan, AdfCopyRate, size_adf_copy
from include.cosmos_archiver.ru.budget import RuBudget, UnlimitedBudget
from include.cosmos_archiver.ru.settings import RateControlError, RateControlSettings
from include.cosmos_archiver.ru.static_budget import StaticBudget
from include.cosmos_archiver.ru.usage import AzureMonitorUsageSource

CONTROLLERS = ("adaptive", "static", "off")


@dataclass(frozen=True)
class RuGovernance:
    provisioned_ru_s: float = 5000.0
    ceiling: float = 0.8
    gate_threshold: float = 0.7  # the gate opens once total usage stayed under this share for quiet_window_s
    quiet_window_s: float = 900.0
    metrics_endpoint: str | None = None  # regional Azure Monitor endpoint, or the local RU gateway
    resource_id: str | None = None  # ARM id of the Cosmos DB account
    credential: str = "default"  # "default" = DefaultAzureCredential; "local" = the gateway's static token
    grain_s: int = 60
    lagging_grains: int = 2
    controller: str = "adaptive"
    assumed_client_load: float = 0.5  # the static formula's assumption
    usage_poll_s: float = 60.0
    stale_after_s: float = 300.0
    throughput_bucket: int | None = None
    # "provisioned" or "serverless" (no priority/throughput-bucket headers, own pacing only); None: not known yet —
    # read from the account (resolve_account_mode) or refused by preflight; paced as serverless until then
    account_mode: str | None = None
    archiver_cap: float | None = None  # share of provisioned the archiver never exceeds (None: serverless 1 - ceiling)
    # The margin kept free under the ceiling: at least `margin`, or the `error_quantile` of a normal fitted to the
    # upper half of the controller's last `error_window` graded errors (business above its estimate, archiver above
    # its rate). 0.99 matches the goal "at most 1 % of seconds over the ceiling"; 60 grains is the last hour at
    # Azure Monitor's PT1M (bench/ru_budget.py measures the trade-off).
    margin: float = 0.01
    error_quantile: float | None = 0.99
    error_window: int = 60
    ru_per_record: float = 300.0  # sizes ADF pages until a slice's manifest has measured it
    # one ADF copy's measured rate: {"records_per_s_per_copy": x, "page_size": n} from a Copy activity's output
    # (rowsRead / copyDuration / usedParallelCopies, at that pageSize); None: sized on a guess (adf_sizing)
    adf_copy_rate: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.account_mode, str):  # "Serverless" from an environment variable is fine
            object.__setattr__(self, "account_mode", self.account_mode.strip().lower())
        if self.controller not in CONTROLLERS:
            raise RateControlError(f"controller={self.controller!r} must be one of {CONTROLLERS}")
        if self.credential not in ("default", "local"):
            raise RateControlError(f"credential={self.credential!r} must be 'default' or 'local'")
        if not 0 < self.gate_threshold <= 1:
            raise RateControlError(f"gate_threshold={self.gate_threshold!r} must be in (0, 1]")
        if (self.metrics_endpoint is None) != (self.resource_id is None):
            raise RateControlError("metrics_endpoint and resource_id go together: set both, or neither")
        self.rate_settings()  # validates the rest, naming any bad value
        self._adf_rate()

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> RuGovernance:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RateControlError(f"unknown RU setting(s) {unknown}; known settings are {sorted(known)}")
        return cls(**values)

    def rate_settings(self) -> RateControlSettings:
        return RateControlSettings(
            provisioned_ru_s=self.provisioned_ru_s, ceiling=self.ceiling,
            assumed_client_load=self.assumed_client_load, usage_poll_s=self.usage_poll_s,
            stale_after_s=self.stale_after_s,
            throughput_bucket=self.throughput_bucket if self.account_mode else None,  # unknown mode: as serverless
            account_mode=self.account_mode or "serverless", archiver_cap=self.archiver_cap,
            margin=self.margin, error_quantile=self.error_quantile, error_window=self.error_window,
            # enough grains for the trend line from the first poll: the line's grains + the unpublished ones + 2
            usage_window_s=self.grain_s * (RateControlSettings.smoothing_grains + self.lagging_grains + 2),
        )

    def resolve_account_mode(self, variable: str,
                             read: Callable[[str], str] = read_account_mode) -> RuGovernance:
        """These settings with ``account_mode`` known: as set, else read from the account when ``resource_id`` names
        it on Azure (``read(resource_id)``: azure-mgmt-cosmosdb), else AccountModeError naming the setting."""
        if self.account_mode is not None:
            return self
        if self.resource_id is None or self.credential == "local":  # the local gateway serves no ARM
            raise AccountModeError(missing_mode_message(variable))
        return replace(self, account_mode=read(self.resource_id))

    def client_kwargs(self) -> dict[str, object]:
        return self.rate_settings().client_kwargs()

    def usage_source(self) -> AzureMonitorUsageSource | None:
        if self.metrics_endpoint is None or self.resource_id is None:
            return None
        return AzureMonitorUsageSource(
            self.metrics_endpoint, self.resource_id,
            credential=StaticTokenCredential() if self.credential == "local" else None,
            grain=timedelta(seconds=self.grain_s), lagging_grains=self.lagging_grains,
        )

    def adf_copy_settings(self) -> AdfCopyPlan:
        """ADF has no RU cap of its own: parallelCopies (at the measured pageSize) from the RU/s the archiver may use
        now and one copy's measured rate (``adf_copy_rate``); ``fits`` False when even one copy spends more."""
        budget = self.budget()
        rate = budget.available_ru_per_s() if hasattr(budget, "available_ru_per_s") else (
            self.rate_settings().static_rate_ru_s)
        return size_adf_copy(rate, self.ru_per_record, self._adf_rate())

    def _adf_rate(self) -> AdfCopyRate | None:
        if self.adf_copy_rate is None:
            return None
        try:
            return AdfCopyRate(float(self.adf_copy_rate["records_per_s_per_copy"]),
                               int(self.adf_copy_rate["page_size"]))
        except (KeyError, TypeError, ValueError):
            raise RateControlError(
                f"adf_copy_rate={self.adf_copy_rate!r} must be {{'records_per_s_per_copy': <rowsRead / copyDuration / "
                "usedParallelCopies of a Copy activity>, 'page_size': <the pageSize it ran with>}") from None

    def budget(self) -> RuBudget:
        """The pacing for one task: adaptive (live usage + 429s), the static formula, or none."""
        if self.controller == "off":
            return UnlimitedBudget()
        if self.controller == "static":
            return StaticBudget(self.rate_settings())
        return AdaptiveBudget(self.rate_settings(), self.usage_source())
