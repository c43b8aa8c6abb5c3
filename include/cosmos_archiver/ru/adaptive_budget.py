"""Pace the archiver's RU spend so that TOTAL usage (business + archiver) stays under a ceiling.

:class:`AdaptiveBudget` is a RuBudget: a token bucket whose rate a controller re-sets every control interval from
(a) live usage metrics and (b) throttling, with the per-request charge MEASURED from ``x-ms-request-charge``.
(:mod:`.static_budget` is the seed's fixed formula, the baseline it is compared with.)

Why this controller (and not the Spark connector's throughput control, which books RU after the fact and
promises no cap — users see 100 % at a 0.5 threshold):

* **Budget before spend.** Every request takes its RU from the bucket *before* it is sent (the bucket may go into
  debt for a large request; the next ones wait it off). Actual charges settle the difference, so the long-run
  spend equals the rate — a hard cap per interval, not an after-the-fact average.
* **Feed-forward from usage.** Metrics give TOTAL usage; the archiver knows its own spend per second, so
  client load = total - own (at the same timestamps). The target rate is ceiling - estimated client load.
  Because metrics lag and single grains are noisy, the estimate is a trend line through the newest known
  grains read at "now" (a ramp towards a spike is met while it builds), plus a margin; when nothing recent is
  known (metrics late or broken) the controller falls back to a conservative rate instead of assuming idle.
* **AIMD on 429.** A 429 means the estimate was wrong *now* (a spike the lagging metrics have not shown yet).
  The reaction must be immediate and must not wait for metrics: the rate is multiplied by ``backoff_factor``
  at once (tokens are drained too, so queued requests stop), then recovers additively per interval back to the
  metric-derived target. AIMD is chosen over a PI loop because the plant is a delayed, noisy, unknown
  disturbance (business load): a PI loop on delayed measurements either oscillates or is slow, whereas
  AIMD's asymmetric response (fast down, slow up) is the classic stable answer for a shared bottleneck with
  binary congestion feedback (TCP) — and it needs no tuning of gains against an unknown delay.

* **A measured margin.** With ``error_quantile``, every estimate is graded once the metrics publish the grain
  it was used for (actual client load - estimate, plus the archiver's own spend above its rate), and the margin is
  the ``error_quantile`` of a normal fitted to the upper half of the last ``error_window`` errors (``margin`` is then
  its floor): it covers what the plan really misses — business jitter within a grain, the error of predicting over
  the lag, the archiver's own granularity — instead of a guessed constant.
* **Own spend in the server's grain.** client = total - own is only as good as the booking of own spend: each
  charge is booked in the second of the answer's ``Date`` header (the server's clock), not the client's. ``rise_gain``
  extrapolates a rising trend further than a falling one (meeting a ramp early is safe, meeting a decline early
  is not); ``level_grains`` takes the line's level from the newest grains only (less extrapolated noise).

Limits (measured in bench/ru_budget.py): the controller cannot see a spike before the metrics publish it, so the
first grains of a steep ramp (and the first grains after a steep decline levels off) can go over the ceiling; no
margin short of the ramp's slope x the lag prevents that, and such a margin wastes headroom all day. Per-grain
business noise forces the remaining trade-off between headroom use and seconds over the ceiling. Settings for
Azure Monitor (PT1M grain, minutes of delay): ``usage_poll_s=60``, ``stale_after_s=300``, ``margin=0.01``,
``error_quantile=0.99``, ``error_window=60`` (grains: the last hour) — the RuGovernance defaults. The bench plays
one trace minute per second with a PT1S grain, so its lag in grains is production's.

What bounds any controller that sees usage after the fact is the business's own jitter from one grain to the next:
to stay under the ceiling in 99 % of grains, the margin must cover the 99th percentile of that jitter, and the
headroom it leaves unused is the price. bench/ru_budget.py prints that bound next to the controller's result.

The archiver also marks its requests low priority (``priority="Low"``), so Cosmos throttles them first when
the partition is over budget, and optionally sends them in its own throughput bucket: see
:meth:`RateControlSettings.client_kwargs`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from include.cosmos_archiver.ru.adf_sizing import CopySuggestion, suggest_copy
from include.cosmos_archiver.ru.settings import RateControlError, RateControlSettings
from include.cosmos_archiver.ru.statistics import ChargeMeter, upper_quantile
from include.cosmos_archiver.ru.token_bucket import TokenBucket
from include.cosmos_archiver.ru.usage import RuUsageSource, UsageSample


@dataclass
class ControlState:
    """What the controller last decided, for logs, the DAG and the bench."""

    rate_ru_s: float = 0.0
    target_ru_s: float = 0.0
    aimd_cap_ru_s: float = math.inf
    client_estimate: float | None = None  # share of provisioned
    margin: float = 0.0  # share of provisioned kept free (the setting, or the measured error quantile if higher)
    usage_known: bool = False
    backoffs: int = 0
    reason: str = "starting"


class AdaptiveBudget:
    """RuBudget that keeps business + archiver under the ceiling using live usage and 429 feedback.

    Thread-safe: parallel readers share one bucket. The control step runs lazily inside ``before_request`` /
    ``after_request`` (no background thread), at most once per ``control_interval_s``; a 429 acts at once.
    """

    def __init__(
        self,
        settings: RateControlSettings,
        usage: RuUsageSource | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.usage = usage
        self._clock = clock
        self._wall = wall
        self._meter = ChargeMeter()
        self._reserved = threading.local()
        self._lock = threading.Lock()
        self._samples: deque[UsageSample] = deque(maxlen=1024)
        self._last_poll = -math.inf
        self._last_step = -math.inf
        self._last_backoff = -math.inf
        self._predicted: dict[int, list[tuple[float, float]]] = {}  # wall second -> (client estimate, own rate) plans
        self._errors: deque[float] = deque(maxlen=settings.error_window)  # actual - predicted, graded grains
        self._graded_until = -math.inf
        self._started_wall = wall()
        self._window_start = -math.inf  # start of the oldest grain in the last estimate's trend window
        self.state = ControlState(margin=settings.margin)
        self.throttled = 0
        self.spent_ru = 0.0
        self.usage_errors = 0
        start_rate = self._fallback_rate()  # unknown until the first usage sample arrives: be conservative
        self.state.rate_ru_s = self.state.target_ru_s = start_rate
        self._bucket = TokenBucket(start_rate, settings.burst_s, clock=clock, sleep=sleep)

    # -- the RuBudget protocol -------------------------------------------------------------------------------
    def before_request(self, expected_ru: float) -> None:
        self.step()
        reserve = expected_ru if expected_ru > 0 else (self._meter.ewma or 1.0)
        self._reserved.value = reserve
        self._bucket.take(reserve, on_wait=self.step)

    def after_request(self, charged_ru: float, throttled: bool, served_at: float | None = None) -> None:
        """``served_at``: the server's ``Date`` for the answer (ru_budget.served_at). Own spend is booked in that
        second, the one the server's metrics book it in; the client's clock is off by the round trip (and by clock
        skew), and client load = total - own would then err by a request in two grains."""
        reserved = getattr(self._reserved, "value", 0.0)
        self._reserved.value = 0.0
        self._bucket.adjust(charged_ru - reserved)
        if charged_ru > 0:
            self._meter.record(self._wall() if served_at is None else math.floor(served_at) + 0.5, charged_ru)
            self.spent_ru += charged_ru
        if throttled:
            self.on_throttled()

    # -- readings ----------------------------------------------------------------------------------------------
    def available_ru_per_s(self) -> float:
        """RU/s the archiver may spend right now."""
        self.step()
        return self._bucket.rate

    @property
    def measured_ru_per_request(self) -> float | None:
        return self._meter.ewma

    def suggest_copy(self, ru_per_record: float | None = None, **kwargs: float) -> CopySuggestion:
        per_record = ru_per_record or self._meter.ewma
        if not per_record:
            raise RateControlError("no measured RU per record yet: pass ru_per_record (e.g. from `plan`)")
        return suggest_copy(self.available_ru_per_s(), per_record, **kwargs)  # type: ignore[arg-type]

    # -- control -----------------------------------------------------------------------------------------------
    def on_throttled(self) -> None:
        """Multiplicative decrease, immediately; queued requests stop (tokens drained)."""
        with self._lock:
            self.throttled += 1
            now = self._clock()
            if now - self._last_backoff < self.settings.control_interval_s:
                return  # one halving per interval: parallel readers hitting one spike are one signal (TCP: per RTT)
            self._last_backoff = now
            st = self.state
            st.aimd_cap_ru_s = max(0.0, min(st.rate_ru_s, st.aimd_cap_ru_s) * self.settings.backoff_factor)
            st.rate_ru_s = min(st.target_ru_s, st.aimd_cap_ru_s)
            st.backoffs += 1
            st.reason = f"429: backed off to {st.rate_ru_s:,.0f} RU/s"
            self._bucket.set_rate(st.rate_ru_s, drain=True)
            self._last_step = self._clock()

    def _fallback_rate(self) -> float:
        s = self.settings
        client = s.unknown_client_load if s.unknown_client_load is not None else max(0.0, s.ceiling - 0.05)
        return max(0.0, (s.ceiling - s.margin - client) * s.provisioned_ru_s)

    def _poll(self, now: float) -> None:
        if self.usage is None or now - self._last_poll < self.settings.usage_poll_s:
            return
        self._last_poll = now
        try:
            fresh = self.usage.recent(timedelta(seconds=self.settings.usage_window_s))
        except Exception:  # metrics outage: keep pacing on what we know, conservatively (stale -> fallback)
            self.usage_errors += 1
            return
        known = {s.timestamp: s for s in self._samples}
        for sample in fresh:
            known[sample.timestamp] = sample
        self._samples = deque(sorted(known.values(), key=lambda s: s.timestamp), maxlen=1024)

    def _client_at(self, sample: UsageSample) -> float:
        s = self.settings
        total = sample.usage_fraction(s.provisioned_ru_s) or 0.0
        start = sample.timestamp.timestamp()
        own = self._meter.spent_between(start, start + sample.grain_s) / sample.grain_s / s.provisioned_ru_s
        return max(0.0, total - own)

    def client_estimate(self) -> float | None:
        """Business share of provisioned RU/s NOW, from lagging metrics.

        client(grain) = total(grain) - own spend(grain): the archiver knows its own spend per second. The newest
        known grain is already a grain or two old and single grains are noisy, so the estimate is a least-squares
        line through the newest ``smoothing_grains`` known grains, read at "now" (the trend is extrapolated over
        the lag, x ``trend_gain``, or ``rise_gain`` when rising). Noise averages out instead of being replayed into
        a later second, and a ramp towards a spike is met while it builds. With ``level_grains``, the slope comes
        from the whole window but the level from only the newest grains: a short line extrapolated over the lag
        multiplies per-grain noise (a 4-grain line read 2.75 grains past its newest point: ~2x the noise), a long
        one reacts late to a change of level; this keeps both small. A jump above the line by more than
        ``spike_rise`` (a spike that the line has not caught yet) wins.
        """
        s = self.settings
        known = [x for x in self._samples if x.known]
        if not known:
            return None
        newest = known[-1]
        now = self._wall()
        if now - newest.end.timestamp() > s.stale_after_s:
            return None
        window = known[-s.smoothing_grains :]
        self._window_start = window[0].timestamp.timestamp()
        xs = [x.timestamp.timestamp() + x.grain_s / 2 for x in window]
        ys = [self._client_at(x) for x in window]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        var_x = sum((x - mean_x) ** 2 for x in xs)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var_x if var_x else 0.0
        ahead = now + s.control_interval_s / 2  # the rate set now is spent over the coming interval
        gain = s.rise_gain if slope > 0 and s.rise_gain is not None else s.trend_gain
        level_n = s.level_grains or len(xs)
        # level of the line at the newest grain: mean of the newest level_n grains, each moved along the slope
        level = sum(y + slope * (xs[-1] - x) for x, y in zip(xs[-level_n:], ys[-level_n:], strict=True)) / min(
            level_n, len(xs)
        )
        fitted_now = level + gain * slope * (ahead - xs[-1])
        jump = ys[-1] - level
        estimate = fitted_now + (jump if jump > s.spike_rise else 0.0)
        floor = min(ys) if s.level_grains is None else 0.0  # a long window's minimum is stale on a decline
        return min(1.5, max(0.0, estimate, floor))

    def _grade(self) -> float:
        """Compare what was planned for each second (client estimate, own rate) with what the metrics later showed
        for it, and return the margin: the ``margin`` setting, or the ``error_quantile`` of recent errors if higher.
        An error is the client load above its estimate plus the archiver's own spend above its rate (a request's
        charge does not split at a grain boundary). This measures what the margin must cover — business jitter
        within a second, the error of predicting over the metrics lag, the archiver's own granularity — instead of
        guessing it. The quantile sets the share of grains allowed over the ceiling (0.99: 1 %), read from a normal
        fitted to the last ``error_window`` errors; a ramp's onset error keeps the margin up that long — a short
        window reacts faster but lets more grains over."""
        s = self.settings
        if s.error_quantile is None:
            return s.margin
        for sample in self._samples:
            start = int(sample.timestamp.timestamp())
            if not sample.known or start <= self._graded_until:
                continue
            self._graded_until = start
            predictions = [p for x in range(start, start + int(sample.grain_s)) for p in self._predicted.pop(x, ())]
            if predictions:
                client = sum(c for c, _ in predictions) / len(predictions)
                rate = sum(r for _, r in predictions) / len(predictions)
                own = self._meter.spent_between(start, start + sample.grain_s) / sample.grain_s / s.provisioned_ru_s
                # the business above its estimate, plus the archiver above its own rate (a read more in the grain)
                self._errors.append(self._client_at(sample) - client + max(0.0, own - rate))
        for second in [x for x in self._predicted if x < self._graded_until - 60]:
            del self._predicted[second]
        if len(self._errors) < 3:
            return s.margin
        return max(s.margin, upper_quantile(self._errors, s.error_quantile))

    def step(self) -> None:
        """Re-set the rate once per control interval (cheap no-op otherwise)."""
        now = self._clock()
        if now - self._last_step < self.settings.control_interval_s:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread is stepping
        try:
            if now - self._last_step < self.settings.control_interval_s:
                return
            self._last_step = now
            self._poll(now)
            s, st = self.settings, self.state
            client = self.client_estimate()
            st.client_estimate, st.usage_known = client, client is not None
            st.margin = self._grade()
            if client is None:
                st.target_ru_s = min(self._fallback_rate(), st.target_ru_s)
                st.reason = "usage unknown: conservative rate"
            else:
                st.target_ru_s = max(0.0, (s.ceiling - st.margin - client) * s.provisioned_ru_s)
                st.reason = f"client ~{client:.0%}: target {st.target_ru_s:,.0f} RU/s"
            if math.isfinite(st.aimd_cap_ru_s):
                recovery = s.recovery_ru_s if s.recovery_ru_s is not None else 0.05 * s.provisioned_ru_s
                st.aimd_cap_ru_s += recovery
                if st.aimd_cap_ru_s >= st.target_ru_s:
                    st.aimd_cap_ru_s = math.inf  # recovered: metrics alone steer again
            st.rate_ru_s = min(st.target_ru_s, st.aimd_cap_ru_s)
            if client is not None and self._window_start >= self._started_wall:  # steady state, not start-up
                plan = (client, st.rate_ru_s / s.provisioned_ru_s)
                self._predicted.setdefault(int(self._wall()), []).append(plan)
            self._bucket.set_rate(st.rate_ru_s, drain=st.rate_ru_s < self._bucket.rate * 0.5)
        finally:
            self._lock.release()
