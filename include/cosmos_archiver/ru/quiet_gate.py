"""The RU gate's question: has usage stayed under a threshold for a whole window of KNOWN samples?

Used by the Airflow RU sensor (plugins/ru_sensor.py). Unknown samples (Azure Monitor's lagging newest grains) never
count as quiet, so lagging metrics delay the gate instead of opening it. Usage is the account's (TotalRequestUnits /
provisioned): NormalizedRUConsumption is the hottest partition's share of its own budget, reported beside it (a
partition at 100 % throttles its own keys while the account has headroom; the 429 back-off handles that, the gate
does not wait for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from include.cosmos_archiver.ru.usage import RuUsageSource, UsageConfigError, UsageSample


@dataclass(frozen=True)
class QuietVerdict:
    quiet: bool
    reason: str
    peak_fraction: float | None  # highest known usage share of the account in the window
    known_s: float  # seconds of the window covered by known samples
    hottest_partition: float | None = None  # highest NormalizedRUConsumption share in the window


def assess_quiet(
    samples: Sequence[UsageSample], *, provisioned_ru_s: float, threshold: float, window: timedelta
) -> QuietVerdict:
    """Quiet = the newest ``window`` of KNOWN samples all stay under ``threshold`` (a share of provisioned RU/s)
    and cover the whole window. Unknown samples never count as quiet, so lagging metrics delay the gate
    instead of opening it."""
    if not 0 < threshold <= 1:
        raise UsageConfigError(f"threshold {threshold} must be in (0, 1], a share of provisioned RU/s")
    if provisioned_ru_s <= 0:
        raise UsageConfigError(f"provisioned RU/s {provisioned_ru_s} must be > 0")
    if window <= timedelta(0):
        raise UsageConfigError(f"window {window} must be positive")
    known = [s for s in samples if s.known]
    if not known:
        return QuietVerdict(False, "no usage metrics known yet (metrics lag or missing)", None, 0.0)
    newest_end = known[-1].end
    in_window = [s for s in known if s.timestamp >= newest_end - window]
    known_s = sum(s.grain_s for s in in_window)
    fractions = [f for s in in_window if (f := s.usage_fraction(provisioned_ru_s)) is not None]
    peak = max(fractions) if fractions else None
    hot = max((h for s in in_window if (h := s.hottest_partition_share) is not None), default=None)
    hottest = "" if hot is None else f"; hottest partition {hot:.0%} of its own RU/s"
    if peak is not None and peak >= threshold:
        return QuietVerdict(
            False,
            f"usage peaked at {peak:.0%} of {provisioned_ru_s:,.0f} RU/s in the last {window}, "
            f"above the {threshold:.0%} threshold{hottest}",
            peak,
            known_s,
            hot,
        )
    if known_s + 1e-9 < window.total_seconds():
        return QuietVerdict(
            False, f"only {known_s:.0f}s of the {window.total_seconds():.0f}s window has known usage", peak, known_s,
            hot,
        )
    return QuietVerdict(True, f"usage stayed under {threshold:.0%} (peak {peak:.0%}) for {window}{hottest}", peak,
                        known_s, hot)


def check_quiet(source: RuUsageSource, *, provisioned_ru_s: float, threshold: float, window: timedelta) -> QuietVerdict:
    """Ask the source for the window (it adds its own lagging grains) and judge it."""
    return assess_quiet(source.recent(window), provisioned_ru_s=provisioned_ru_s, threshold=threshold, window=window)


def busy_timeout_message(*, threshold: float, provisioned_ru_s: float, waited: timedelta, window: timedelta) -> str:
    return (
        f"RU usage did not stay under {threshold:.0%} of {provisioned_ru_s:,.0f} RU/s for a {window} window "
        f"during {waited.total_seconds() / 60:.0f} min of waiting: the business is busy, so nothing was archived; "
        f"the next scheduled run will try again (raise the threshold or the sensor timeout to wait longer)"
    )
