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
* **Every physical partition.** Each partition has its own RU/s (provisioned / partitions) and throttles its keys
  while the account has headroom, so the business load that counts is the larger of the account's share and the
  hottest partition's (NormalizedRUConsumption, less the archiver's own even share): the archiver's reads go round
  the partitions, and a partition the business alone holds near the ceiling has no room for them
  (:meth:`AdaptiveBudget._client_at`; bench/ru_budget.py ``--partitions``).
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

* **Steps are not trends.** A change of the business between two consecutive grains larger than ``step_change``
  and held the grain after (e.g. a square wave's 35 % -> 72 %) restarts the trend line after it (fewer than 3
  grains there: their highest, no slope), instead of extrapolating a one-grain step as a ramp; the grains planned
  before such a step (or a ramp's move of that size) was published are not graded, so one edge does not hold the
  margin at 40 % for an error window. The margin is for the business's jitter; a step is met by the account's
  guard (below) and the 429 back-off. After the business was over the ceiling, the archiver waits for a trend
  window clear of it.
* **The account's guard.** On a provisioned account the archiver's requests go at priority Low (and optionally in
  its own throughput bucket): Cosmos throttles them first. A serverless account offers neither, so there the
  archiver is capped at ``archiver_cap`` (default 1 - ceiling) of provisioned — a business step under the ceiling
  cannot push the total over provisioned before the metrics show it — and a 429 stops it at once (on serverless
  the archiver's 429 is the business's too) before the additive recovery.

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

On a provisioned account the archiver also marks its requests low priority (``priority="Low"``), so Cosmos
throttles them first when the partition is over budget, and optionally sends them in its own throughput bucket; on
a serverless account neither header is sent: see :meth:`RateControlSettings.client_kwargs`.
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


def confirmed_steps(values: list[float], step_change: float) -> list[int]:
    """Indices of steps in a series of grains: a change from a level (the grain before, itself within
    ``step_change`` of its own predecessor) larger than ``step_change`` that the next grain confirms (still that far
    from the level, on the same side). A one-grain jump that comes back — and its return — is jitter, which the
    margin is for; the newest grain cannot be confirmed yet."""
    return [
        i
        for i in range(1, len(values) - 1)
        if (i < 2 or abs(values[i - 1] - values[i - 2]) <= step_change)
        and held_move(values[i - 1], values[i], values[i + 1], step_change)
    ]


def held_move(level: float, value: float, following: float, step_change: float) -> bool:
    """``value`` is more than ``step_change`` away from ``level`` and ``following`` is too, on the same side: the
    business moved (a ramp or a step) and stayed, rather than jittered for one grain."""
    moved, held = value - level, following - level
    return abs(moved) > step_change and abs(held) > step_change and (moved > 0) == (held > 0)


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
        # wall second -> plans for it: (client estimate, own rate, start of the newest grain the estimate knew)
        self._predicted: dict[int, list[tuple[float, float, int]]] = {}
        self._errors: deque[float] = deque(maxlen=settings.error_window)  # actual - predicted, graded grains
        self._graded_until = -math.inf
        self._started_wall = wall()
        self._window_start = -math.inf  # start of the oldest grain in the last estimate's trend window
        self._basis = 0  # start of the newest known grain behind the last estimate
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
            # serverless: no priority, so the archiver's 429 is the business's too: stop, then recover additively
            factor = 0.0 if self.settings.serverless else self.settings.backoff_factor
            st.aimd_cap_ru_s = max(0.0, min(st.rate_ru_s, st.aimd_cap_ru_s) * factor)
            st.rate_ru_s = min(st.target_ru_s, st.aimd_cap_ru_s)
            st.backoffs += 1
            st.reason = f"429: backed off to {st.rate_ru_s:,.0f} RU/s"
            self._bucket.set_rate(st.rate_ru_s, drain=True)
            self._last_step = self._clock()

    def _fallback_rate(self) -> float:
        s = self.settings
        client = s.unknown_client_load if s.unknown_client_load is not None else max(0.0, s.ceiling - 0.05)
        return min(s.cap_ru_s, max(0.0, (s.ceiling - s.margin - client) * s.provisioned_ru_s))

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
        """The business's share in a grain, on the partition that binds: the larger of the account's share (total -
        own) and the hottest physical partition's (NormalizedRUConsumption - own share there). Each partition has
        its own RU/s (provisioned / partitions) and throttles its keys while the account has headroom, so a ceiling
        on the account's share alone lets the archiver's spread reads fill a hot partition (bench/ru_budget.py
        --partitions). The archiver's own share of a partition is taken as own / provisioned: its spend spread evenly
        over the partitions (the copy reads the feed ranges in turn, the purge interleaves across them) on a
        provisioned account, where each partition has provisioned / partitions; on a serverless account
        (``provisioned_ru_s`` = the per-partition limit) that is all of its spend on one partition, the most it can
        be there (the cap, 1 - ceiling, bounds what that leaves unseen)."""
        s = self.settings
        total = sample.usage_fraction(s.provisioned_ru_s) or 0.0
        start = sample.timestamp.timestamp()
        own = self._meter.spent_between(start, start + sample.grain_s) / sample.grain_s / s.provisioned_ru_s
        account = max(0.0, total - own)
        hottest = sample.hottest_partition_share
        if hottest is None:
            return account
        return max(account, hottest - own)

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
        ``spike_rise`` (a spike that the line has not caught yet) wins. A step (a change between consecutive grains
        above ``step_change``) is a new level, not a trend: the line restarts after the step's grain (partial: the
        step began within it); with fewer than 3 grains there, the estimate is their highest, without
        extrapolation, and while the step's grain is the newest, a rise is taken at up to twice what it shows.
        While a grain of the window (and the one before it) was at or over the ceiling, the estimate is at least that
        grain: the archiver resumes after a spike once a whole window is back under the ceiling.
        """
        s = self.settings
        known = [x for x in self._samples if x.known]
        if not known:
            return None
        newest = known[-1]
        now = self._wall()
        if now - newest.end.timestamp() > s.stale_after_s:
            return None
        self._basis = int(newest.timestamp.timestamp())
        recent = known[-(s.smoothing_grains + 1) :]  # one grain more: a step INTO the line's oldest grain counts too
        clients = [self._client_at(x) for x in recent]
        steps = confirmed_steps(clients, s.step_change)
        rising = len(clients) > 1 and clients[-1] - clients[-2] > s.step_change  # a rise is met before it is confirmed
        step_at = len(clients) - 1 if rising else (steps[-1] if steps else None)
        if step_at is None:
            window = recent[-s.smoothing_grains :]
        else:  # a new level: the step's own grain is partial (the step began within it), the line starts after it
            window = recent[step_at + 1 :]
            if len(window) < 3:
                self._window_start = recent[step_at].timestamp.timestamp()
                if not window:  # the step's grain is the newest: up to twice what it shows if rising
                    return min(1.5, clients[step_at] + max(0.0, clients[step_at] - clients[step_at - 1]))
                return min(1.5, max(clients[step_at + 1 :]))  # its new level, no slope through one or two grains
        self._window_start = window[0].timestamp.timestamp()
        xs = [x.timestamp.timestamp() + x.grain_s / 2 for x in window]
        ys = clients[-len(window) :]
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
        if max(clients) >= s.ceiling:  # over the ceiling within the window: its served load swings with its own
            floor = max(floor, max(clients))  # 429s and says little of its demand; wait until a clear window
        return min(1.5, max(0.0, estimate, floor))

    def _grade(self) -> float:
        """Compare what was planned for each second (client estimate, own rate) with what the metrics later showed
        for it, and return the margin: the ``margin`` setting, or the ``error_quantile`` of recent errors if higher.
        An error is the client load above its estimate plus the archiver's own spend above its rate (a request's
        charge does not split at a grain boundary). This measures what the margin must cover — business jitter
        within a second, the error of predicting over the metrics lag, the archiver's own granularity — instead of
        guessing it. The quantile sets the share of grains allowed over the ceiling (0.99: 1 %), read from a normal
        fitted to the last ``error_window`` errors; a ramp's onset error keeps the margin up that long — a short
        window reacts faster but lets more grains over. A grain planned before a step (``step_change``) between the
        plan's newest known grain (inclusive: a step's grain is partial, the next one shows its full size) and it
        is not graded: no margin short of the step covers it, and one such error would hold the margin near the
        step's size for a whole window; nor is one whose business moved by more than ``step_change`` from the plan's
        newest known grain and stayed there the grain after (a ramp's onset, which no margin short of the ramp
        covers either), nor one where the business alone was at or over provisioned (its served load then swings
        with its own 429s)."""
        s = self.settings
        if s.error_quantile is None:
            return s.margin
        # the grains still to grade and the few before them (a plan's newest grain, a step's level): not all 1024
        horizon = self._graded_until - 10 * self._samples[-1].grain_s if self._samples else -math.inf
        known = [x for x in self._samples if x.known and x.timestamp.timestamp() >= horizon]
        if not known:
            return s.margin
        starts = [int(x.timestamp.timestamp()) for x in known]
        values = [self._client_at(x) for x in known]
        index = {start: i for i, start in enumerate(starts)}
        steps = {starts[i] for i in confirmed_steps(values, s.step_change)}
        for k, sample in enumerate(known[:-1]):  # the newest grain waits for its successor: a step, or jitter?
            start = starts[k]
            if start <= self._graded_until:
                continue
            self._graded_until = start
            predictions = [p for x in range(start, start + int(sample.grain_s)) for p in self._predicted.pop(x, ())]
            if predictions:
                basis = min(b for _, _, b in predictions)
                if any(basis <= second <= start for second in steps):
                    continue  # planned before a step was published (or on its partial first grain): not noise
                if values[k] >= 1.0:
                    continue  # the business alone at or over provisioned: its own 429s, no archiver error
                b = index.get(basis)
                if b is not None and held_move(values[b], values[k], values[k + 1], s.step_change):
                    continue  # the business moved (a ramp) since the plan's newest grain, and stayed: not noise
                client = sum(c for c, _, _ in predictions) / len(predictions)
                rate = sum(r for _, r, _ in predictions) / len(predictions)
                own = self._meter.spent_between(start, start + sample.grain_s) / sample.grain_s / s.provisioned_ru_s
                # the business above its estimate, plus the archiver above its own rate (a read more in the grain)
                self._errors.append(values[k] - client + max(0.0, own - rate))
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
            st.rate_ru_s = min(st.target_ru_s, st.aimd_cap_ru_s, s.cap_ru_s)
            if client is not None and self._window_start >= self._started_wall:  # steady state, not start-up
                plan = (client, st.rate_ru_s / s.provisioned_ru_s, self._basis)
                self._predicted.setdefault(int(self._wall()), []).append(plan)
            self._bucket.set_rate(st.rate_ru_s, drain=st.rate_ru_s < self._bucket.rate * 0.5)
        finally:
            self._lock.release()
