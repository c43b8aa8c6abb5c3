"""The gateway's run-time settings and their validation.

API: ``GatewaySettings`` (frozen; ``replace(**changes)`` validates), ``GatewaySettingsError`` (a ``ValueError`` whose
message names the bad value), ``settings_from_json(current, payload)`` for ``POST /_gateway/config``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devstack.ru_gateway.partitions import derived_partition_count

DEFAULT_PROVISIONED_RU = 5000.0
ACCOUNT_MODES = ("provisioned", "serverless")
CONSISTENCY_LEVELS = ("Strong", "BoundedStaleness", "Session", "ConsistentPrefix", "Eventual")


class GatewaySettingsError(ValueError):
    """A gateway setting is out of range; the message names it and the allowed range."""


@dataclass(frozen=True)
class GatewaySettings:
    """``account_mode``: ``provisioned`` (priority-based execution and throughput buckets are honoured) or
    ``serverless`` (as on Azure, neither exists there: the priority and throughput-bucket headers are ignored, every
    request competes for the same budget; ``provisioned_ru`` is then the account's per-partition serverless limit).
    ``low_priority_fraction``: share of each second's budget that requests with priority Low may use (High and
    unmarked requests may use all of it). ``throughput_buckets``: bucket number (1-5) -> maxThroughputPercentage.
    ``reporting_delay_s``: how late metrics become visible (Azure Monitor: a few minutes).
    ``physical_partitions``: how many physical partitions the container has (0: derived from ``data_gb``, 50 GB each,
    as Azure splits; partitions.py); ``data_gb``: the data size the derivation assumes (the local data stands for
    it). ``default_consistency``: the account's consistency level, used when a request names none
    (``x-ms-consistency-level``); Strong and BoundedStaleness double read charges."""

    provisioned_ru: float = DEFAULT_PROVISIONED_RU
    low_priority_fraction: float = 0.9
    throughput_buckets: Mapping[int, float] = field(default_factory=dict)
    reporting_delay_s: float = 0.0
    account_mode: str = "provisioned"
    physical_partitions: int = 0
    data_gb: float = 0.0
    default_consistency: str = "Session"

    def __post_init__(self) -> None:
        if not isinstance(self.physical_partitions, int) or not 0 <= self.physical_partitions <= 1000:
            raise GatewaySettingsError(
                f"physical partitions {self.physical_partitions!r} must be an integer 0-1000 (0: derived from data_gb)"
            )
        if not isinstance(self.data_gb, int | float) or not self.data_gb >= 0:
            raise GatewaySettingsError(f"data_gb {self.data_gb!r} must be a number of GB >= 0")
        if self.default_consistency not in CONSISTENCY_LEVELS:
            raise GatewaySettingsError(
                f"default consistency {self.default_consistency!r} must be one of {', '.join(CONSISTENCY_LEVELS)}"
            )
        if self.account_mode not in ACCOUNT_MODES:
            raise GatewaySettingsError(
                f"account mode {self.account_mode!r} must be one of {', '.join(ACCOUNT_MODES)} "
                "(serverless: priority and throughput buckets are not honoured)"
            )
        if not isinstance(self.provisioned_ru, int | float) or not self.provisioned_ru > 0:
            raise GatewaySettingsError(
                f"provisioned RU/s {self.provisioned_ru!r} must be a number > 0 (e.g. 5000 for the seed account)"
            )
        if not isinstance(self.low_priority_fraction, int | float) or not 0 < self.low_priority_fraction <= 1:
            raise GatewaySettingsError(
                f"low-priority fraction {self.low_priority_fraction!r} must be in (0, 1] (a share of provisioned RU/s)"
            )
        if not isinstance(self.reporting_delay_s, int | float) or not self.reporting_delay_s >= 0:
            raise GatewaySettingsError(f"reporting delay {self.reporting_delay_s!r} must be a number of seconds >= 0")
        buckets: dict[int, float] = {}
        for raw_bucket, raw_pct in dict(self.throughput_buckets).items():
            try:
                bucket, pct = int(raw_bucket), float(raw_pct)
            except (TypeError, ValueError):
                raise GatewaySettingsError(
                    f"throughput bucket {raw_bucket!r}={raw_pct!r} must be an integer 1-5 mapped to a percentage"
                ) from None
            if not 1 <= bucket <= 5:
                raise GatewaySettingsError(f"throughput bucket {raw_bucket!r} must be an integer 1-5")
            if not 0 < pct <= 100:
                raise GatewaySettingsError(
                    f"throughput bucket {bucket} maxThroughputPercentage {raw_pct!r} must be in (0, 100]"
                )
            buckets[bucket] = pct
        object.__setattr__(self, "throughput_buckets", buckets)

    def replace(self, **changes: Any) -> GatewaySettings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "provisioned_ru": self.provisioned_ru,
            "low_priority_fraction": self.low_priority_fraction,
            "throughput_buckets": {str(k): v for k, v in sorted(self.throughput_buckets.items())},
            "reporting_delay_s": self.reporting_delay_s,
            "account_mode": self.account_mode,
            "physical_partitions": self.physical_partitions,
            "data_gb": self.data_gb,
            "default_consistency": self.default_consistency,
        }

    @property
    def serverless(self) -> bool:
        return self.account_mode == "serverless"

    @property
    def partition_count(self) -> int:
        if self.physical_partitions:
            return self.physical_partitions
        return derived_partition_count(self.data_gb)

    @property
    def partition_budget(self) -> float:
        """RU/s each physical partition may use: provisioned RU/s divided evenly; serverless: ``provisioned_ru`` is
        already the per-partition limit (Microsoft Learn serverless-performance; the figure is configurable)."""
        return self.provisioned_ru if self.serverless else self.provisioned_ru / self.partition_count


def settings_from_json(current: GatewaySettings, payload: Any) -> GatewaySettings:
    """Apply a partial JSON object of the ``to_json`` keys to ``current``; reject unknown keys."""
    if not isinstance(payload, dict):
        raise GatewaySettingsError(f"config body must be a JSON object, got {type(payload).__name__}")
    allowed = set(current.to_json())
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise GatewaySettingsError(f"unknown gateway setting(s) {unknown}; allowed: {sorted(allowed)}")
    return current.replace(**payload)
