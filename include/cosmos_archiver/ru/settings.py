"""Rate-control settings: the ceiling, the controller's tuning and the client options, validated on creation.

Every value is checked when the object is built; :class:`RateControlError` names the bad value and its range.

The account mode decides what protects the business besides the archiver's own pacing:

* ``provisioned``: requests go at priority Low (and, if set, in the archiver's throughput bucket), so when a second
  is over budget Cosmos throttles the archiver's requests first — a server-side guard.
* ``serverless``: Azure offers neither priority-based execution nor throughput buckets there, so no such header is
  sent and the archiver's pacing is the only guard. The controller is then capped at ``archiver_cap`` (default
  1 - ceiling) of provisioned: while the business stays under the ceiling, no step of it, however sudden, can push
  the total over provisioned in the 1-2 grains before the metrics show it.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.cosmos_archiver.errors import TerminalError

ACCOUNT_MODES = ("provisioned", "serverless")


class RateControlError(TerminalError, ValueError):
    """A rate-control setting is out of range; the message names the value and the allowed range."""


@dataclass(frozen=True)
class RateControlSettings:
    provisioned_ru_s: float
    ceiling: float = 0.8  # share of provisioned RU/s that business + archiver must stay under
    assumed_client_load: float = 0.5  # static baseline only: the business share it assumes
    control_interval_s: float = 1.0  # how often the rate is re-set (and the max reaction time to usage data)
    usage_poll_s: float = 1.0  # how often the usage source is read (Azure Monitor PT1M: use ~30-60 s)
    smoothing_grains: int = 4  # client load = a trend line through this many newest known grains, read at now
    level_grains: int | None = None  # level from this many newest grains; set = no floor at the window's minimum
    spike_rise: float = 0.05  # newest grain above the line by more than this (share of provisioned) = a spike
    trend_gain: float = 1.0  # how much of the trend to extrapolate over the metrics lag
    rise_gain: float | None = None  # the same for a RISING trend (None: trend_gain); > 1 meets a ramp's onset sooner
    usage_window_s: float = 30.0  # how far back to ask the usage source
    stale_after_s: float = 10.0  # no known sample newer than this -> usage unknown
    margin: float = 0.0  # share of provisioned RU/s kept free for estimation error (a floor if error_quantile is set)
    error_quantile: float | None = None  # margin >= this quantile of the measured estimate errors, e.g. 0.9
    error_window: int = 10  # how many recent graded grains the error quantile is taken over
    unknown_client_load: float | None = None  # assumed business share when usage is unknown (None: ceiling - 5 %)
    backoff_factor: float = 0.5  # multiplicative decrease on a 429
    recovery_ru_s: float | None = None  # additive increase per interval (None: 5 % of provisioned)
    burst_s: float = 0.25  # bucket capacity in seconds of rate (small: no bursts above the rate)
    priority: str | None = "Low"  # sent on provisioned accounts only (serverless has no priority-based execution)
    throughput_bucket: int | None = None  # provisioned accounts only
    account_mode: str = "provisioned"  # or "serverless": no server-side guard, the archiver's pacing is the only one
    # the archiver never spends more than this share of provisioned (None: 1 - ceiling on serverless, no cap on
    # provisioned): a business step is seen 1-2 grains late, and until then only this bounds the total
    archiver_cap: float | None = None
    # a change of the business between two consecutive grains larger than this (share of provisioned) is a step,
    # not a trend: the estimate restarts from the grains after it, and the grains it falls in are not graded
    step_change: float = 0.1

    def __post_init__(self) -> None:
        def fraction(name: str, value: float, *, zero_ok: bool) -> None:
            ok = (0 <= value <= 1) if zero_ok else (0 < value <= 1)
            if not isinstance(value, int | float) or not ok:
                rng = "[0, 1]" if zero_ok else "(0, 1]"
                raise RateControlError(f"{name}={value!r} must be in {rng}, a share of provisioned RU/s")

        if not isinstance(self.provisioned_ru_s, int | float) or not self.provisioned_ru_s > 0:
            raise RateControlError(f"provisioned_ru_s={self.provisioned_ru_s!r} must be > 0 (RU/s of the container)")
        fraction("ceiling", self.ceiling, zero_ok=False)
        fraction("assumed_client_load", self.assumed_client_load, zero_ok=True)
        fraction("margin", self.margin, zero_ok=True)
        if self.unknown_client_load is not None:
            fraction("unknown_client_load", self.unknown_client_load, zero_ok=True)
        if not isinstance(self.smoothing_grains, int) or self.smoothing_grains < 1:
            raise RateControlError(f"smoothing_grains={self.smoothing_grains!r} must be an integer >= 1")
        if self.level_grains is not None and (
            not isinstance(self.level_grains, int) or not 1 <= self.level_grains <= self.smoothing_grains
        ):
            raise RateControlError(
                f"level_grains={self.level_grains!r} must be an integer in 1..smoothing_grains "
                f"({self.smoothing_grains}) or None"
            )
        fraction("spike_rise", self.spike_rise, zero_ok=True)
        if self.error_quantile is not None:
            fraction("error_quantile", self.error_quantile, zero_ok=False)
        if not isinstance(self.error_window, int) or self.error_window < 3:
            raise RateControlError(f"error_window={self.error_window!r} must be an integer >= 3 (grains)")
        if not isinstance(self.trend_gain, int | float) or not self.trend_gain >= 0:
            raise RateControlError(f"trend_gain={self.trend_gain!r} must be >= 0 (0 = no extrapolation)")
        if self.rise_gain is not None and not (isinstance(self.rise_gain, int | float) and self.rise_gain >= 0):
            raise RateControlError(f"rise_gain={self.rise_gain!r} must be >= 0 or None (None = trend_gain)")
        for name in ("control_interval_s", "usage_poll_s", "usage_window_s", "stale_after_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise RateControlError(f"{name}={value!r} must be a number of seconds > 0")
        if not 0 < self.backoff_factor < 1:
            raise RateControlError(f"backoff_factor={self.backoff_factor!r} must be in (0, 1), e.g. 0.5")
        if self.recovery_ru_s is not None and not self.recovery_ru_s > 0:
            raise RateControlError(f"recovery_ru_s={self.recovery_ru_s!r} must be > 0 RU/s per interval")
        if not self.burst_s > 0:
            raise RateControlError(f"burst_s={self.burst_s!r} must be > 0 seconds")
        if self.priority is not None and self.priority not in ("Low", "High"):
            raise RateControlError(f"priority={self.priority!r} must be 'Low', 'High' or None")
        if self.throughput_bucket is not None and not 1 <= self.throughput_bucket <= 5:
            raise RateControlError(f"throughput_bucket={self.throughput_bucket!r} must be an integer 1-5 or None")
        if self.account_mode not in ACCOUNT_MODES:
            raise RateControlError(f"account_mode={self.account_mode!r} must be one of {', '.join(ACCOUNT_MODES)}")
        if self.account_mode == "serverless" and self.throughput_bucket is not None:
            raise RateControlError(
                f"throughput_bucket={self.throughput_bucket!r} with account_mode='serverless': serverless accounts "
                "have no throughput buckets; remove throughput_bucket or set account_mode='provisioned'"
            )
        if self.archiver_cap is not None:
            fraction("archiver_cap", self.archiver_cap, zero_ok=False)
        fraction("step_change", self.step_change, zero_ok=False)

    @property
    def ceiling_ru_s(self) -> float:
        return self.ceiling * self.provisioned_ru_s

    @property
    def static_rate_ru_s(self) -> float:
        """The seed formula's fixed archiver budget: (ceiling - assumed client load) x provisioned."""
        return max(0.0, (self.ceiling - self.assumed_client_load) * self.provisioned_ru_s)

    @property
    def serverless(self) -> bool:
        return self.account_mode == "serverless"

    @property
    def cap_ru_s(self) -> float:
        """The most RU/s the archiver may ever spend (inf: no cap)."""
        share = self.archiver_cap if self.archiver_cap is not None else (1 - self.ceiling if self.serverless else None)
        return float("inf") if share is None else share * self.provisioned_ru_s

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments for clients.cosmos_client(): low priority and the archiver's throughput bucket on a
        provisioned account; nothing on a serverless one (Azure offers neither there)."""
        kwargs: dict[str, object] = {}
        if self.serverless:
            return kwargs
        if self.priority is not None:
            kwargs["priority"] = self.priority
        if self.throughput_bucket is not None:
            kwargs["throughput_bucket"] = self.throughput_bucket
        return kwargs

