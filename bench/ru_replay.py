"""Replay recorded business load through the adaptive controller offline: a settings comparison in a second
instead of a 90 s bench run per setting and window.

Record:  PYTHONPATH=. .venv/bin/python bench/ru_budget.py --trace-start-h 21.25 --dump /tmp/rub/evening
Replay:  PYTHONPATH=. .venv/bin/python bench/ru_replay.py /tmp/rub/evening-*.csv [--smoothing-grains 6 ...]

Each CSV's ``business`` column (RU per gateway second) is the business load; the controller (AdaptiveBudget with
the settings bench/ru_budget.py would run, from the same controller options) runs on a simulated clock: it steps
every control interval, reads PT1S metrics published 1 s late (business + its own spend), and spends its rate in
whole reads of ``--read-ru``.
Own spend is booked in the right second (as the Date header does live), so what is left is the estimator and the
margin against the business's own jitter. Printed per file: utilisation and seconds over the ceiling that the
archiver caused, scored like the bench (from 3 s after the archiver starts, which is 4 s into the series), and
the seconds it pushed the total over PROVISIONED while the business alone was under the ceiling (where the bench's
client 429s the archiver caused fall), with the margin's median. It is a
model — reads land at step starts and the business does not react to the archiver — so compare settings with it
and confirm the choice with the bench.
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ru_budget import adaptive_settings, add_controller_options
from include.cosmos_archiver.ru.adaptive_budget import AdaptiveBudget
from include.cosmos_archiver.ru.settings import RateControlSettings
from include.cosmos_archiver.ru.usage import UsageSample


class ReplayedMetrics:
    """PT1S usage samples of what has been replayed so far, published ``delay_s`` after each second ends."""

    def __init__(self, delay_s: float) -> None:
        self.now = 0.0
        self.delay_s = delay_s
        self.total: dict[int, float] = {}

    def recent(self, window: timedelta) -> list[UsageSample]:
        samples = []
        for second in range(int(self.now - window.total_seconds()), int(self.now) + 1):
            published = second + 1 <= self.now - self.delay_s and second in self.total
            value = self.total[second] if published else None
            samples.append(UsageSample(datetime.fromtimestamp(second, UTC), 1.0, value, None))
        return samples


def replay(
    business: list[float], settings: RateControlSettings, *, read_ru: float, delay_s: float = 1.0, lead_s: int = 4
) -> tuple[float, int, int, int, float]:
    """Return (utilisation, archiver-caused seconds over the ceiling, seconds scored, archiver-caused seconds over
    provisioned, median margin)."""
    t0 = 1_800_000_000
    metrics = ReplayedMetrics(delay_s)
    for i in range(lead_s):  # the business runs (and is published) before the archiver starts
        metrics.total[t0 + i] = business[i]
    metrics.now = t0 + lead_s
    budget = AdaptiveBudget(
        settings, metrics, clock=lambda: metrics.now, wall=lambda: metrics.now, sleep=lambda _s: None
    )
    own: dict[int, float] = {}
    margins: list[float] = []
    owed = 0.0
    step = settings.control_interval_s
    for i in range(lead_s, len(business)):
        second = t0 + i
        for k in range(round(1 / step)):
            metrics.now = second + k * step
            budget.step()
            margins.append(budget.state.margin)
            owed += budget.state.rate_ru_s * step
            while owed >= read_ru:  # whole reads, booked in the second they are answered
                owed -= read_ru
                own[second] = own.get(second, 0.0) + read_ru
                budget.after_request(read_ru, False, float(second))
        metrics.total[second] = business[i] + own.get(second, 0.0)
    ceiling = settings.ceiling_ru_s
    used = headroom = 0.0
    over = scored = over_provisioned = 0
    for i in range(lead_s + 3, len(business)):
        spent = own.get(t0 + i, 0.0)
        room = max(0.0, ceiling - business[i])
        headroom += room
        used += min(spent, room)
        scored += 1
        over += business[i] + spent > ceiling and business[i] <= ceiling
        over_provisioned += business[i] + spent > settings.provisioned_ru_s and business[i] <= ceiling
    margin = sorted(margins)[len(margins) // 2] if margins else 0.0
    return (used / headroom if headroom else 0.0), over, scored, over_provisioned, margin


def business_series(path: Path) -> list[float]:
    """The dump's business RU per second, from the first second with business traffic on."""
    with path.open() as f:
        values = [float(row["business"]) for row in csv.DictReader(f)]
    first = next((i for i, v in enumerate(values) if v > 0), len(values))
    return values[first:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dumps", nargs="+", type=Path, help="CSV files written by bench/ru_budget.py --dump")
    parser.add_argument("--read-ru", type=float, default=10.0, help="RU per archiver read (the bench: 10)")
    add_controller_options(parser)
    args = parser.parse_args(argv)
    settings = adaptive_settings(args)
    total_over = total_scored = 0
    for path in args.dumps:
        utilisation, over, scored, over_provisioned, margin = replay(
            business_series(path), settings, read_ru=args.read_ru
        )
        total_over, total_scored = total_over + over, total_scored + scored
        print(
            f"{path.name} [{settings.account_mode}]: utilisation {utilisation:.1%}, over the ceiling {over} of "
            f"{scored} s, over provisioned {over_provisioned} s, median margin {margin:.1%}"
        )
    print(f"all: {total_over} of {total_scored} s over ({total_over / max(1, total_scored):.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
