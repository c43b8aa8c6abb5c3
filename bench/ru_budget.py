"""RU pacing bench: the seed's static formula vs the adaptive controller, same gateway, same business trace.

Run:  PYTHONPATH=. .venv/bin/python bench/ru_budget.py [--seconds 75] [--trace-start-h 18.25] [--only adaptive]
      PYTHONPATH=. .venv/bin/python bench/ru_budget.py --trace bench/traces/spike.csv --account serverless
          [--trace-unit ru|fraction|percent] [--trace-provisioned 5000] [--trace-speed 60] [--only adaptive]

It starts its own cosmosdb-server (+ Azurite) and RU gateway on free loopback ports (ru_lab), seeds a few dozen
documents, then for each controller runs the business load (`cosmos-archive load` in its own process, the diurnal trace)
and an archiver reader (point reads through clients.cosmos_client with the controller as RuBudget, priority Low)
concurrently, and reads the gateway's per-second, per-traffic-class RU accounting as ground truth.

Scaling (documented, so the numbers can be read against the seed case; printed at the start of each run):
* provisioned throughput 1000 RU/s instead of 5000, documents of 10 KB (10 RU per read) instead of 300 KB — the
  same ~1 RU/KB. One read is 1 % of provisioned (seed: 300 RU = 6 %): finer than the seed case, so that one read
  more or less in a second does not decide the score; ~110 requests/s in all still fits 2 cores. Ceiling 0.8.
* business: ``--business-workers`` threads on an even schedule (slots spaced by expected charge / rate, no
  catch-up bursts), 90 % point reads, 10 % single-partition queries. The archiver: ``--readers`` point readers at
  priority Low, paced by the controller's token bucket (capacity ``--burst-s``, so its spend is spread over the
  second, not sent at its start).
* time: one trace minute per wall second by default (``--trace-hours`` = seconds / 60), so the PT1S grain and its
  1-2 s lag are production's PT1M grain and its 1-2 minute lag, in grains: ramps move per grain what they move in
  production. ``--seconds`` (default 75) from ``--trace-start-h`` (default 18.25: the evening ramp to the 88 %
  spike at 19:00 and half of its decline — the hardest hour of the day, business mean ~73 %, headroom ~8 %).
  Other windows: ``--trace-start-h 21.25`` (an ordinary evening, ~46 %), ``2.0`` (night, ~35 %).
* metrics: the gateway's local PT1S grain with a 1 s reporting delay; the adaptive controller reads them through
  the real MetricsClient.
* the static formula is given the trace's TRUE mean over the played window as its client load (its best case);
  the archiver starts once the business has run for the trend window (smoothing grains + 3 s), and its first 3 s
  (controller start-up) are not scored.

The noise bound: the business's own per-second jitter (RU in a second minus the mean of its 2+2 neighbours) is
what no controller that sees usage after the fact can predict. To be over the ceiling in at most 1 % of seconds a
controller must keep the 99th percentile of that jitter free even if it knew the trend perfectly; "noise bound" is
the utilisation left then. A controller near it is limited by the business, not by its estimates.

Measured on the shared 2-core machine (2026-11-25, runs of 75 s per controller; the business's per-second jitter
itself varies between runs, p99 11-31 RU, and with it the noise bound and the controller's score). Defaults
(adaptive: own spend booked by the answers' Date; margin >= 1 % or the 99 % quantile of a normal fitted to the
upper half of its last 60 graded errors), utilisation / archiver-caused seconds over the ceiling:
* 18:15 (ramp to the 88 % spike; business mean 72 %, headroom ~75 RU/s): static 63.4 %, 18 of 64 s over, 3
  archiver 429s; adaptive 63.0 % / 1 of 64 s (noise bound 81.8 %); other runs 67.3 % / 0 (bound 83.5 %), 72.4 % / 0
  (bound 79.1 %).
* 21:15 (ordinary evening, 46 %; headroom 344 RU/s): static 97.2 %, 25 of 64 s over; adaptive 95.3 % / 2 of 64 s
  (noise bound 96.7 %); another run 89.7 % / 1 (bound 92.8 %).
* 02:00 (night, 34 %; headroom 460 RU/s): static 99.1 %, 27 of 64 s over; adaptive 92.3 % / 3 of 64 s (bound
  95.6 %); another run 93.9 % / 0 (bound 95.1 %).
Client 429s 0 in every run; every adaptive over-second was by < 2 % of provisioned (two reads).
Before own spend was booked by the server's Date (booked by the client's clock, a third of the seconds put a read
in the wrong grain) and with the empirical quantile: 18:15 80.6 % / 1 and 75.7 % / 2, 21:15 90.4-91.2 % / 1-3,
02:00 93.8 % / 2 — more of the spike window's little headroom, less of the ordinary hours', more seconds over.
The issue's goal (>= 95 % with <= 1 % of seconds over, i.e. 0 of 64) sits at or above the noise bound in the
spike window and at it elsewhere: the business's per-second jitter (p99 ~20 RU = two reads) leaves no controller
that sees usage after the fact both.

An operator's own load (``--trace FILE``): a per-second or per-minute CSV of ``timestamp,value`` as Azure Monitor
exports TotalRequestUnits (Sum per grain; ``# provisioned_ru=5000`` in the file or ``--trace-provisioned`` says what
it was recorded against), or a fraction/percent of provisioned (devstack/business_load.read_trace_csv; a bad line
is named with its number). It replaces the diurnal trace, played from its start, one grain per wall second by
default (``--trace-speed``), the whole file unless ``--seconds``. Examples in bench/traces/: ``spike.csv`` (55 % ->
107 % of provisioned for 5 minutes, per-minute RU), ``plateau.csv`` (65 minutes at 77 %, 3 points under the
ceiling), ``square.csv`` (35 % <-> 72 % every 10 s, per-second percent).

Account mode (``--account``): of the gateway AND of the controller (``RateControlSettings.account_mode``, the
``cosmos_archive_ru`` Variable's ``account_mode``). ``provisioned``: the archiver sends priority Low and the gateway
honours it (Cosmos throttles the archiver's requests first). ``serverless`` (the seed's account): neither priority
nor throughput buckets exist, as on Azure, so the archiver sends neither and its pacing is the only protection; the
controller is then capped at ``--archiver-cap`` (default 1 - ceiling = 200 RU/s here) and stops on a 429. Printed at
the start and on every result line.

Goals per played window (issue 12), printed as a "goals" line per controller: client 429s the archiver caused = 0
(those in seconds where the business alone asked for more than provisioned — from the trace's demand in that
second or the one before, whose overspend carries — are printed apart: no archiver can prevent them); the
adaptive controller's utilisation outside ramps within 3 points of the noise bound over the same seconds (with a
cap, the bound under the cap is printed too: the cap forbids the headroom above it by design);
archiver-caused seconds over the ceiling <= 3 %; never over the ceiling by more than 2 % of provisioned.

Measured on recorded traces (2026-12-02 00:56-01:09 UTC, commit 479e729's controller — add5f64 only made its
grading cheaper, same decisions on the replayed dumps — adaptive only,
``--seconds 90`` (plateau 80), one run each; 2 shared cores under other helpers' runs: the business's jitter p99
outside ramps was 13-40 RU, 1.3-4 % of provisioned)::

  for t in square spike plateau; do for a in serverless provisioned; do
    PYTHONPATH=. .venv/bin/python bench/ru_budget.py --trace bench/traces/$t.csv --seconds 90 --only adaptive
        --account $a; done; done          # plateau: --seconds 80

  trace    account      util.  outside ramps / noise bound   caused over, by >2 %   client 429s: alone / archiver
                                (under the cap)
  square   serverless   35.8 %  39.6 / 84.8 (45.7) NOT MET   10.0 % NOT, 8 s NOT      0 / 0 MET
  spike    serverless   73.7 %  76.7 / 91.2 (81.7) NOT MET    2.5 % MET, 2 s NOT     57 / 0 MET
  plateau  serverless   27.8 %   0.6 / 37.0        NOT MET    2.9 % MET, 1 s NOT      0 / 0 MET
  square   provisioned  70.9 %  85.2 / 91.4        NOT MET   13.9 % NOT, 9 s NOT      0 / 2 NOT MET
  spike    provisioned  70.1 %  73.5 / 91.3        NOT MET    3.8 % NOT, 3 s NOT     58 / 0 MET
  plateau  provisioned  34.3 %   0.0 / 39.2        NOT MET    4.3 % NOT, 3 s NOT      0 / 0 MET
  square   provisioned  34.6 %  39.0 / 95.4 (51.2) NOT MET   10.3 % NOT, 8 s NOT      0 / 0 MET
           with --archiver-cap 0.2 (the serverless cap on a provisioned account)
  confirmation runs with add5f64 (01:18-01:21 UTC):
  square   serverless   34.3 %  38.4 / 93.2 (50.2) NOT MET   10.3 % NOT, 8 s NOT      0 / 0 MET
  square   provisioned  75.5 %  91.8 / 95.4        NOT MET   20.3 % NOT, 12 s NOT     0 / 5 NOT MET

Before (the same traces, 00:13-00:28 UTC, the controller without account mode, step handling or ramp-aware
grading): outside ramps / noise bound square 17.7 / 88.7 (provisioned) and 11.5 / 92.5 (serverless), spike 66.1 /
87.2 and 66.9 / 91.5, plateau 0.0 / 6.4 and 0.0 / 33.1; archiver-caused client 429s square 2 (provisioned) and 8
(serverless), spike 0 and 0.

What changed and what it did (include/cosmos_archiver/ru/adaptive_budget.py, settings.py):
* serverless: the archiver is capped at (1 - ceiling) x provisioned, a 429 stops it, no priority/bucket headers:
  the square wave's archiver-caused client 429s 8 -> 0; through the spike above 100 % 0 as before (it spends
  nothing while the business is over the ceiling, and waits for a trend window clear of it).
* a step (a change of more than ``step_change`` = 10 % of provisioned between grains, held the next grain) is a
  new level: the trend line restarts after it instead of extrapolating it (client estimates of 105-150 % and rate 0
  for 3-4 s after each edge are gone), and neither a step nor a ramp's onset (the business moved more than
  ``step_change`` from what the plan knew, and stayed) nor a grain the business alone was over provisioned in is
  graded into the margin; the margin's centre is never below 0. The margin after an edge stays 2-4 % instead of
  40-60 %: the square wave's steady utilisation 17.7 % -> 85.2 % (provisioned), 11.5 % -> 39.6 % (serverless,
  where the cap allows 45.7 %), the spike's 66 % -> 73.5-76.7 %.

What is NOT met, and why:
(1) within 3 points of the noise bound: missed by 6 points (square provisioned; 5-6 under the serverless cap) to
18 points (spike), and entirely on the plateau (77 %: headroom 3 % = 30 RU/s = three reads): the bound assumes
the trend known exactly; the controller reads it 1-2 grains late from a 4-grain line extrapolated over the lag
(about twice the per-grain noise) and keeps a measured margin (1-4 %) for its own errors — on the plateau that
alone exceeds the headroom. A ramp of 5-8 % per grain (under ``step_change``) is still graded and lifts the margin
to 8-14 % for a part of the window (spike, plateau onset); grading at half a step measured +5-6 points on the
replayed spike but more seconds over the ceiling (bench/ru_replay.py), so it was not taken. The bound itself
moves with the 2 shared cores' load (jitter p99 13-40 RU between runs).
(2) seconds over the ceiling <= 3 % and never by > 2 % of provisioned: every archiver-caused second over was in a
ramp — the square wave's up-edges (35 % -> 72 % in one second, four in a run, 2 s each before the metrics show
them: 8-11 s = 10-14 % of the run) and the spike's onset (2-3 s). No controller that sees usage 1-2 grains late
meets these on such a trace without keeping the edge's 37 % free all the time.
(3) provisioned square wave: 2 and 5 client 429s the archiver caused (two runs; 4 of the second run's 16 seconds
over the ceiling were outside the 3-s ramp window, just after an edge). Priority Low does not prevent them: the gateway,
like Cosmos, lets Low requests use up to 90 % of a second before refusing them, and the business's requests later
in that second find it full. ``archiver_cap`` (the serverless cap, settable on provisioned too: last row) makes
them 0, at the price of the low phase's headroom above 20 %.

Physical partitions (``--partitions N``, issue 18; default 1): the gateway divides provisioned RU/s evenly among N
partitions (serverless: each has ``--provisioned`` as its own limit) and refuses a request its partition cannot
serve this second (devstack/ru_gateway/throttle.py); ru_lab picks the seeded customers by the gateway's own hashing so
that every partition holds documents, dealt round-robin, so the business's sampled keys and the archiver's reads in
turn hit all of them. Printed per partition and controller, from the gateway's books over the business's whole run:
business RU/s and client 429s, split into the business's own — in a partition-second where the archiver booked no
request there (that second or the one before: an overspend carries), or where the business alone filled the
partition (its RU served there plus one more of its requests over the partition's RU/s, or its RU the second before
over it) — and archiver-caused (the rest); archiver RU/s and the gateway's archiver 429s next to the archiver's
throttled attempts as the product counted them (ru/throttles.py, the client's raw_response_hook; the reader passes no
per-call hook, which would replace it). Exit 1 when any partition saw an archiver-caused client 429. ``--readers 0``
runs the business alone (its own 429s); ``--dump`` also writes ``<prefix>-<controller>-partitions.csv`` (second,
partition, class, RU, requests, 429s).

Measured 2026-12-05 01:27-01:44 UTC (shared 2-core machine), ``--partitions 4 --only adaptive --seconds 40
[--trace-start-h 21.25] [--readers 0]``, provisioned 1000 RU/s = 4 x 250, under ru_lab's ``seed`` charge preset (10
KB read = 10 RU; NOT the published model, see "Scaling"); client 429s are the gateway's, summed over 4 partitions::

  window (business mean)   controller                      utilisation  client 429s: business's own / archiver-caused
  18:15 (69 %)             business alone (--readers 0)        -          10, 24 / -   (3 and 4 of 4 partitions)
  18:15                    account share (before)            34.1 %        9 / 8   (3 partitions; archiver 11 RU/s each)
                                                           29.2 %       27 in all, 10 with no archiver request there
  18:15                    hottest partition (after)         3.6, 2.1 %   33, 25 / 0, 0   (archiver ~1 RU/s each)
  21:15 (47 %)             account share (before)            80.2 %        0 / 8   (3 partitions)
  21:15                    hottest partition (after)         18.2 %        0 / 0
  21:15, --partitions 1    hottest partition (after)         84.3 %        0 / 0   (one partition: as before)

The product counted the archiver's throttled attempts exactly as the gateway booked them on every partition (before:
1+3+0+0 and 0+5+4+5; after: none). Why the business got 429s before: NOT a burst after idle (the bucket holds 0.1 s
of rate), nor pages piling on one partition (the reads go round the partitions: ~11 RU/s each), nor the metrics'
lag: the business's own load per physical partition. Keys sampled at random leave each partition ~15-17 reads a
second, jittering by several; in the 18:15 window the hottest partition's business alone is at 87 % of its RU/s in
the median second (p90 100 %, over the 80 % ceiling in 25 of 37 s) while the account sits at 69 %, and the business
alone makes 10 and 24 client 429s in two runs (25 and 33 beside the idling archiver: run to run, with the
machine's load). The controller paced against the account's headroom (~130 RU/s) that the hottest partition did not
have; Low priority lets the archiver use up to 90 % of a partition's second, so its one read landing in a partition's
full second was the business's 429. Issue 18's "0
client 429s on any partition" is therefore unreachable with this trace (the business's own); 0 archiver-caused is met
by pacing against the hottest partition (NormalizedRUConsumption less the archiver's even share, ru/adaptive_budget.py
``_client_at``). Its price is the headroom the account shows but no partition has: at 21:15 the hottest partition's
business p99 is 79-87 % of its RU/s, at or over the ceiling, so the archiver keeps only what the seconds below that
leave (18 % of the account headroom, was 80 % with 8 client 429s). Not measured: ``--account serverless`` with
partitions (each partition then has the whole ``--provisioned`` limit, so the scaled business would load each to
~17 %: it needs a per-partition scaling of the trace first).

Printed per controller:
* headroom utilisation: archiver RU used within the headroom / headroom, per second summed over the run, where
  headroom = max(0, ceiling x provisioned - business RU that second). (Archiver RU above the headroom is not
  counted as "use"; the raw ratio is printed too.)
* seconds over the ceiling: business + archiver > ceiling; "caused" = those where business alone was under it;
  "in a ramp" = caused seconds where the business moved by more than 3 x 2 % of provisioned over the last 3 s;
  "by >2%" = caused seconds over the ceiling by more than 2 % of provisioned.
* client (business) 429s and archiver 429s (each 429 answer, including ones the SDK retried).
* the seed-case ETA implied: 600 M RU / (utilisation x 1500 RU/s headroom), next to the 4.63-day limit.
* a goal-check line per controller against issue 12's goals for the window (see "Goals per played window"),
  each MET or NOT MET.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.business_load import TRACE_UNITS, LoadTrace, TraceFileError, read_trace_csv
from devstack.ru_gateway import GatewaySettings
from devstack.ru_lab import RuLab, ru_lab
from include.cosmos_archiver.planning.capacity import CapacityInput, estimate_capacity
from include.cosmos_archiver.ru.adaptive_budget import AdaptiveBudget
from include.cosmos_archiver.ru.budget import served_at
from include.cosmos_archiver.ru.settings import RateControlSettings
from include.cosmos_archiver.ru.static_budget import StaticBudget
from include.cosmos_archiver.ru.throttles import ThrottleWatch

ROOT = Path(__file__).resolve().parents[1]
RAMP_RU_S_PER_S = 0.02  # business moving > 2 % of provisioned per second (over 3 s) = a ramp, not steady load
SEED = CapacityInput(records=2_000_000, avg_size_kb=300, ru_per_record=300, provisioned_ru_s=5000)


@dataclass
class RunResult:
    name: str
    seconds: int
    utilisation: float
    raw_ratio: float
    over_s: int
    caused_over_s: int
    caused_over_tol_s: int
    caused_over_ramp_s: int  # caused seconds while the business moved fast (a spike's ramp, its onset or its end)
    client_429: int
    archiver_429: int
    archiver_ru: float
    business_ru: float
    mean_headroom: float
    jitter_p99: float  # business RU in a second above the mean of its 4 neighbours, 99th percentile
    noise_bound: float  # best utilisation with a margin of jitter_p99 on a perfectly known trend
    account: str = "provisioned"
    utilisation_steady: float = 0.0  # utilisation over the seconds 2 s or more away from a ramp
    noise_bound_steady: float = 0.0  # the noise bound over the same seconds (their own jitter)
    jitter_p99_steady: float = 0.0
    noise_bound_capped: float = 0.0  # the noise bound outside ramps if no second may exceed the controller's cap
    client_429_alone: int = 0  # client 429s in seconds where the business alone asked for more than provisioned
    client_429_caused: int = 0  # client 429s in other seconds while the archiver ran: the archiver's doing
    client_429_before: int = 0  # client 429s before the archiver started
    extra: str = ""
    # physical partition -> business RU/429s and archiver RU/429s from the gateway, and the archiver's throttled
    # attempts as the product counted them (ru/throttles.py, through the client's raw_response_hook)
    per_partition: dict[str, dict[str, float]] = field(default_factory=dict)
    per_partition_seconds: int = 0  # the gateway seconds per_partition covers


def archiver_reader(lab: RuLab, budget: Any, stop: threading.Event, counters: dict[str, int], index: int) -> None:
    """Point reads of the seeded documents in turn (so every physical partition is read), through the product's
    client: its raw_response_hook counts each throttled HTTP attempt, the SDK's own retries included
    (ru/throttles.py); the count is read per request with a ThrottleWatch and booked per physical partition."""
    client_kwargs = budget.settings.client_kwargs()
    container = lab.container_proxy(**client_kwargs)  # user agent suffix "cosmos-archive" = archiver traffic
    watch = ThrottleWatch()
    n = index * 7
    while not stop.is_set():
        i = n % len(lab.doc_keys)
        doc, pk = lab.doc_keys[i]
        n += 1
        budget.before_request(0.0)  # 0 = "use your measured charge"
        if stop.is_set():
            budget.after_request(0.0, False)
            return
        watch.start()
        container.read_item(doc, partition_key=pk)  # no per-call hook: it would replace the product's counter
        headers = container.client_connection.last_response_headers
        charge = float(headers.get("x-ms-request-charge") or 0)
        throttled = watch.seen()
        partition = lab.doc_partitions[i] if lab.doc_partitions else 0
        with counters_lock:
            counters["429"] += throttled
            counters[f"429@{partition}"] = counters.get(f"429@{partition}", 0) + throttled
            counters["reads"] += 1
        budget.after_request(charge, throttled > 0, served_at(headers))


counters_lock = threading.Lock()


def partition_figures(
    rows: list[dict[str, Any]], counters: dict[str, int], partitions: int, budget_ru: float
) -> dict[str, dict]:
    """Per physical partition over the gateway seconds ``rows``: business and archiver RU and 429s (the gateway's
    books, a 429 on the partition that refused it), next to the archiver's throttled attempts the product counted.
    Client 429s in a partition-second are the business's own (``client_429_business_own``) when the archiver booked
    no request on that partition in that second nor the one before (a second's overspend carries into the next), or
    when the business alone filled the partition's ``budget_ru`` there: its RU served in that second plus one more of
    its requests (its mean charge there), or its RU served in the second before, above the budget — the same
    requests without any archiver would have been refused too. ``client_429_archiver`` = the rest: the seconds the
    archiver's spend on that partition decided."""
    empty = {"business_ru": 0.0, "client_429": 0, "client_429_without_archiver": 0, "client_429_business_own": 0,
             "client_429_archiver": 0, "archiver_ru": 0.0, "archiver_429": 0, "product_throttled": 0}  # fmt: skip
    figures = {str(p): {**empty, "product_throttled": counters.get(f"429@{p}", 0)} for p in range(partitions)}
    cells = {
        (row["second"], partition): classes
        for row in rows
        for partition, classes in row.get("partition_classes", {}).items()
    }

    def of(second: int, partition: str, cls: str, what: str) -> float:
        return cells.get((second, partition), {}).get(cls, {}).get(what, 0)

    for (second, partition), classes in cells.items():
        cell = figures.setdefault(partition, dict(empty))
        business, archiver = classes.get("business", {}), classes.get("archiver", {})
        cell["business_ru"] += business.get("ru", 0.0)
        cell["archiver_ru"] += archiver.get("ru", 0.0)
        cell["archiver_429"] += archiver.get("throttled", 0)
        throttled = business.get("throttled", 0)
        if not throttled:
            continue
        cell["client_429"] += throttled
        served = business.get("ru", 0.0)
        served_requests = business.get("requests", 0) - throttled
        one_more = served / served_requests if served_requests > 0 else 0.0
        no_archiver = not any(of(second - k, partition, "archiver", "requests") for k in (0, 1))
        if no_archiver:
            cell["client_429_without_archiver"] += throttled
        if no_archiver or served + one_more > budget_ru or of(second - 1, partition, "business", "ru") > budget_ru:
            cell["client_429_business_own"] += throttled
        else:
            cell["client_429_archiver"] += throttled
    return figures


def partition_report(result: RunResult) -> str:
    n = max(1, result.per_partition_seconds)
    lines = [
        f"per physical partition, {result.name} [{result.account}] (gateway's books over the business's whole run, "
        f"{n} s; product = the archiver's throttled attempts counted by ru/throttles.py):"
    ]
    for partition, f in sorted(result.per_partition.items(), key=lambda item: int(item[0])):
        match = "=" if f["product_throttled"] == f["archiver_429"] else "!="
        lines.append(
            f"  partition {partition}: business {f['business_ru'] / n:5.0f} RU/s, client 429s {f['client_429']:3d} "
            f"({f['client_429_without_archiver']} with no archiver request there that second or the one before, "
            f"{f['client_429_business_own']} the business's own in all, {f['client_429_archiver']} archiver-caused) | "
            f"archiver {f['archiver_ru'] / n:5.0f} RU/s, archiver 429s (gateway) {f['archiver_429']:3d} {match} "
            f"throttled attempts (product) {f['product_throttled']:3d}"
        )
    return "\n".join(lines)


def run_one(name: str, lab: RuLab, budget: Any, args: argparse.Namespace) -> RunResult:
    stop = threading.Event()
    counters = {"429": 0, "reads": 0}
    readers = [
        threading.Thread(target=archiver_reader, args=(lab, budget, stop, counters, i), daemon=True)
        for i in range(args.readers)
    ]
    warmup_s = 3.0
    trace: dict[int, tuple[float, float | None, float]] = {}

    def sample() -> None:
        while not stop.is_set():
            state = getattr(budget, "state", None)
            if state is not None:
                trace[int(time.time())] = (round(state.rate_ru_s), state.client_estimate, state.margin)
            time.sleep(0.25)

    # The business runs in its own process (`cosmos-archive load`), as real clients do: in this process its threads
    # would share one GIL with the archiver and the gateway, and the stalls would show up as business jitter.
    command = [
        sys.executable, "-m", "devstack", "load", "--endpoint", lab.endpoint,
        "--database", lab.database, "--container", lab.container, "--duration-s", str(args.seconds),
        "--provisioned-ru", str(args.provisioned), "--trace-start-h", str(args.trace_start_h),
        "--trace-span-h", str(args.trace_hours), "--workers", str(args.business_workers), "--mix", "0.9:0.1:0",
        "--seed", "7",
    ]  # fmt: skip
    if args.trace:
        command += ["--trace-file", str(args.trace), "--trace-unit", args.trace_unit]
        if args.trace_provisioned:
            command += ["--trace-provisioned", str(args.trace_provisioned)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    business_started = time.time()
    business_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 60
        while not any(r["business"]["ru"] > 0 for r in lab.gateway.stats(2)["per_second"]):
            if business_process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"business load did not start: {business_process.communicate()[1][-2000:]}")
            time.sleep(0.05)
        # The archiver starts with the business already running and published, as in production: its trend window
        # (smoothing grains + the metrics lag) must see the business's load, not the load generator's own start.
        time.sleep(args.smoothing_grains + 3.0)
        started = time.time()
        threading.Thread(target=sample, daemon=True).start()
        for r in readers:
            r.start()
        out, err = business_process.communicate(timeout=args.seconds + 120)
    finally:
        stop.set()
        if business_process.poll() is None:  # interrupted: stop the load too
            business_process.kill()
            business_process.wait(10)
    if business_process.returncode != 0:
        raise RuntimeError(f"business load failed ({business_process.returncode}): {err[-2000:]}")
    business = json.loads(out)
    for r in readers:
        r.join(timeout=10)
    ended = time.time()
    rows = lab.gateway.stats(int(ended - started) + 5)["per_second"]
    whole_run = lab.gateway.stats(int(ended - business_started) + 3)["per_second"]
    if args.dump:
        with open(f"{args.dump}-{name}.csv", "w") as out:
            out.write("second,business,archiver,rate,client_est,margin\n")
            for row in rows:
                rate, est, margin = trace.get(row["second"], (None, None, None))
                est_s = "" if est is None else f"{est:.3f}"
                margin_s = "" if margin is None else f"{margin:.3f}"
                out.write(
                    f"{row['second']},{row['business']['ru']:.0f},{row['archiver']['ru']:.0f},{rate},{est_s},{margin_s}\n"
                )
        with open(f"{args.dump}-{name}-partitions.csv", "w") as out:
            out.write("second,partition,class,ru,requests,throttled\n")
            for row in whole_run:
                for partition, classes in sorted(row.get("partition_classes", {}).items()):
                    for cls, cell in sorted(classes.items()):
                        out.write(
                            f"{row['second']},{partition},{cls},{cell['ru']:.1f},{cell['requests']},"
                            f"{cell['throttled']}\n"
                        )
    first, last = int(started + warmup_s) + 1, int(ended) - 1  # whole seconds with both loads running
    ceiling_ru = args.ceiling * args.provisioned
    used = headroom_sum = arch_sum = bus_sum = steady_used = steady_headroom = 0.0
    over = caused = over_tol = over_ramp = n = 0
    tolerance = 0.02 * args.provisioned
    business_at = {row["second"]: row["business"]["ru"] for row in rows}
    ramps: set[int] = set()
    for row in rows:
        if not first <= row["second"] < last:
            continue
        window = [business_at.get(row["second"] - k, 0.0) for k in range(4)]  # this second and the 3 before
        ramping = max(window) - min(window) > 3 * RAMP_RU_S_PER_S * args.provisioned
        if ramping:
            ramps.add(row["second"])
        n += 1
        bus, arch = row["business"]["ru"], row["archiver"]["ru"]
        headroom = max(0.0, ceiling_ru - bus)
        headroom_sum += headroom
        used += min(arch, headroom)
        arch_sum += arch
        bus_sum += bus
        if bus + arch > ceiling_ru:
            over += 1
            if bus <= ceiling_ru:
                caused += 1
                over_ramp += ramping
        if bus + arch > ceiling_ru + tolerance and bus <= ceiling_ru:
            over_tol += 1
    jitter_p99, noise_bound = noise_floor(business_at, first, last, ceiling_ru)
    # "outside ramps": seconds at least 2 s away from a ramp second (the jitter's trend spans +-2 s)
    near_ramps = {second + k for second in ramps for k in range(-2, 3)}
    for row in rows:
        if first <= row["second"] < last and row["second"] not in near_ramps:
            headroom = max(0.0, ceiling_ru - row["business"]["ru"])
            steady_headroom += headroom
            steady_used += min(row["archiver"]["ru"], headroom)
    jitter_p99_steady, noise_bound_steady = noise_floor(business_at, first, last, ceiling_ru, skip=near_ramps)
    cap_ru = getattr(getattr(budget, "settings", None), "cap_ru_s", math.inf)
    _, noise_bound_capped = noise_floor(business_at, first, last, ceiling_ru, skip=near_ramps, cap_ru=cap_ru)
    alone, caused_429, before = split_client_429s(rows, business, args, started, ended)
    extra = ""
    if isinstance(budget, AdaptiveBudget):
        extra = f"backoffs={budget.state.backoffs} usage_errors={budget.usage_errors}"
    return RunResult(
        name=name,
        seconds=n,
        utilisation=used / headroom_sum if headroom_sum else 0.0,
        raw_ratio=arch_sum / headroom_sum if headroom_sum else 0.0,
        over_s=over,
        caused_over_s=caused,
        caused_over_tol_s=over_tol,
        caused_over_ramp_s=over_ramp,
        client_429=business["throttled_429"],
        archiver_429=counters["429"],
        archiver_ru=arch_sum,
        business_ru=bus_sum,
        mean_headroom=headroom_sum / n if n else 0.0,
        jitter_p99=jitter_p99,
        noise_bound=noise_bound,
        account=args.account,
        utilisation_steady=steady_used / steady_headroom if steady_headroom else 0.0,
        noise_bound_steady=noise_bound_steady,
        jitter_p99_steady=jitter_p99_steady,
        noise_bound_capped=noise_bound_capped,
        client_429_alone=alone,
        client_429_caused=caused_429,
        client_429_before=before,
        extra=extra,
        per_partition=partition_figures(whole_run, counters, args.partitions, lab.gateway.settings.partition_budget),
        per_partition_seconds=len(whole_run),
    )


def business_demand(args: argparse.Namespace, started_at: float) -> Any:
    """The business's asked RU/s at a wall time (what the trace asked, before any 429 cut it down)."""
    trace = played_trace(args)
    compression = args.trace_hours * 3600.0 / args.seconds

    def demand(t: float) -> float:
        return trace.at(args.trace_start_h * 3600.0 + max(0.0, t - started_at) * compression) * args.provisioned

    return demand


def split_client_429s(
    rows: list[dict[str, Any]], business: dict[str, Any], args: argparse.Namespace, started: float, ended: float
) -> tuple[int, int, int]:
    """Client 429s per gateway second -> (business alone over provisioned, caused while the archiver ran, before it
    started). "Alone": the business asked for more than provisioned in that second or the one before (a second's
    overspend is carried into the next), from the trace's demand, or was served more than provisioned."""
    demand = business_demand(args, float(business.get("started_at") or started))
    alone = caused = before = 0
    for row in rows:
        throttled = row["business"]["throttled"]
        if not throttled:
            continue
        second = row["second"]
        asked = max(sum(demand(second + k / 10) for k in range(10)) / 10, row["business"]["ru"])
        asked_before = sum(demand(second - 1 + k / 10) for k in range(10)) / 10
        if max(asked, asked_before) > args.provisioned:
            alone += throttled
        elif second < int(started) or second > int(ended) + 1:
            before += throttled
        else:
            caused += throttled
    return alone, caused, before


def noise_floor(
    business_at: dict[int, float],
    first: int,
    last: int,
    ceiling_ru: float,
    skip: set[int] | None = None,
    cap_ru: float = math.inf,
) -> tuple[float, float]:
    """What the business's own per-second jitter leaves to ANY controller that sees usage only after the fact.

    Jitter = business RU in a second minus the mean of its two neighbours on each side (the trend). A controller
    that knew the trend perfectly must still keep the 99th percentile of the jitter free to stay under the ceiling
    in 99 % of seconds; the bound is then sum(max(0, trend headroom - p99)) / sum(headroom). ``skip``: seconds left
    out (e.g. near ramps, where the "jitter" is the ramp itself), from the jitter's p99 and from the sums.
    ``cap_ru``: the most the archiver may spend in a second (a serverless account's cap): the bound under it."""
    seconds = [
        s
        for s in range(first + 2, last - 2)
        if all(s + k in business_at for k in (-2, -1, 1, 2)) and not (skip and s in skip)
    ]
    if len(seconds) < 5:
        return 0.0, 0.0
    trend = {s: sum(business_at[s + k] for k in (-2, -1, 1, 2)) / 4 for s in seconds}
    jitter = sorted(business_at[s] - trend[s] for s in seconds)
    p99 = max(0.0, jitter[min(len(jitter) - 1, math.ceil(0.99 * len(jitter)) - 1)])
    headroom = sum(max(0.0, ceiling_ru - business_at[s]) for s in seconds)
    usable = sum(min(cap_ru, max(0.0, ceiling_ru - trend[s] - p99)) for s in seconds)
    return p99, (usable / headroom if headroom else 0.0)


def report(result: RunResult) -> str:
    seed = estimate_capacity(SEED)
    eta = seed.eta_days / result.utilisation if result.utilisation else float("inf")
    n = max(1, result.seconds)
    return (
        f"{result.name:9s} [{result.account}] utilisation {result.utilisation:6.1%} (raw {result.raw_ratio:6.1%}; "
        f"outside ramps {result.utilisation_steady:6.1%}, noise bound there {result.noise_bound_steady:6.1%} "
        f"(under the archiver's cap {result.noise_bound_capped:6.1%}) with "
        f"jitter p99 {result.jitter_p99_steady:3.0f} RU) | "
        f"over ceiling {result.over_s / n:5.1%} ({result.over_s}/{n} s; archiver-caused "
        f"{result.caused_over_s / n:5.1%} = {result.caused_over_s} s, {result.caused_over_ramp_s} of them in a ramp; "
        f"by >2% {result.caused_over_tol_s / n:5.1%})"
        f" | 429s client {result.client_429} (business alone over provisioned {result.client_429_alone}, "
        f"archiver-caused {result.client_429_caused}, before the archiver {result.client_429_before}) "
        f"archiver {result.archiver_429} | "
        f"seed ETA {eta:5.2f} d (limit {seed.eta_days:.2f} d) | "
        f"archiver {result.archiver_ru / n:5.0f} RU/s, mean headroom {result.mean_headroom:5.0f} RU/s, "
        f"business {result.business_ru / n:5.0f} RU/s, its jitter p99 {result.jitter_p99:3.0f} RU -> noise bound "
        f"{result.noise_bound:.1%} {result.extra}"
    )


def _met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def goal_check(r: RunResult) -> str:
    """The played window's goals (issue 12): no client 429 the archiver caused (those in seconds where the business
    alone asked for more than provisioned are printed apart: no archiver can prevent them); the adaptive controller
    within 3 points of the noise bound outside ramps, archiver-caused seconds over the ceiling <= 3 %, never over by
    more than 2 % of provisioned. On a serverless account the first goal is the whole protection: there is no
    priority to make Cosmos throttle the archiver first; the controller's cap there forbids using headroom above it,
    so the bound under the cap is printed too."""
    n = max(1, r.seconds)
    if len(r.per_partition) > 1:  # each partition's own budget decides, not the account's (partition_figures)
        caused = sum(int(f["client_429_archiver"]) for f in r.per_partition.values())
        own = sum(int(f["client_429_business_own"]) for f in r.per_partition.values())
        line = (
            f"goals {r.name:8s} [{r.account}]: archiver-caused client 429s = 0 on every partition: {caused} "
            f"{_met(caused == 0)} (the business's own on its partitions: {own})"
        )
    else:
        line = (
            f"goals {r.name:8s} [{r.account}]: archiver-caused client 429s = 0: {r.client_429_caused} "
            f"{_met(r.client_429_caused == 0)} (business alone over provisioned: {r.client_429_alone})"
        )
    if r.name.startswith("adaptive"):
        gap = r.noise_bound_steady - r.utilisation_steady
        line += (
            f" | within 3 points of the noise bound outside ramps: {r.utilisation_steady:.1%} vs "
            f"{r.noise_bound_steady:.1%} {_met(gap <= 0.03)}"
        )
        if r.noise_bound_capped < r.noise_bound_steady - 1e-9:  # capped (serverless): what the cap itself allows
            capped_gap = r.noise_bound_capped - r.utilisation_steady
            line += f" (under the cap: {r.noise_bound_capped:.1%} {_met(capped_gap <= 0.03)})"
    line += (
        f" | archiver-caused seconds over the ceiling <= 3 %: {r.caused_over_s / n:.1%} "
        f"{_met(r.caused_over_s / n <= 0.03)}"
        f" | never over by > 2 % of provisioned: {r.caused_over_tol_s} s {_met(r.caused_over_tol_s == 0)}"
    )
    return line


def played_trace(args: argparse.Namespace) -> LoadTrace:
    return args.trace_file.trace if args.trace else LoadTrace.diurnal()


def add_controller_options(parser: argparse.ArgumentParser) -> None:
    """The scaled container and the adaptive controller's settings (shared with bench/ru_replay.py)."""
    parser.add_argument("--provisioned", type=float, default=1000.0, help="scaled provisioned RU/s (default 1000)")
    parser.add_argument("--ceiling", type=float, default=0.8)
    parser.add_argument("--margin", type=float, default=0.01, help="adaptive: floor of the share kept free")
    parser.add_argument(
        "--error-quantile",
        type=float,
        default=0.99,
        help="adaptive: margin >= this quantile of measured errors (0: off; 0.99 matches '<= 1 %% of seconds over')",
    )
    parser.add_argument("--error-window", type=int, default=60, help="adaptive: graded grains for the quantile")
    parser.add_argument("--smoothing-grains", type=int, default=4, help="adaptive: grains in the trend line")
    parser.add_argument("--level-grains", type=int, default=0, help="adaptive: grains for the level (0: all)")
    parser.add_argument("--spike-rise", type=float, default=0.02, help="adaptive: jump above the line = spike")
    parser.add_argument("--trend-gain", type=float, default=1.0, help="adaptive: extrapolation of the load trend")
    parser.add_argument("--rise-gain", type=float, default=2.0, help="adaptive: extrapolation of a rising trend")
    parser.add_argument("--interval", type=float, default=0.25, help="adaptive: control and metrics-poll interval")
    parser.add_argument(
        "--burst-s", type=float, default=0.1, help="token bucket capacity in seconds (both controllers)"
    )
    parser.add_argument("--backoff-factor", type=float, default=0.5, help="adaptive: rate x this on a 429")
    parser.add_argument(
        "--account",
        choices=["provisioned", "serverless"],
        default="provisioned",
        help="account mode of the gateway and the controller (serverless: priority Low and throughput buckets not "
        "honoured, the controller capped at --archiver-cap)",
    )
    parser.add_argument(
        "--archiver-cap",
        type=float,
        help="adaptive: the archiver's most RU/s as a share of provisioned (default: 1 - ceiling on serverless, none "
        "on provisioned)",
    )
    parser.add_argument(
        "--step-change", type=float, default=0.1, help="adaptive: a grain-to-grain change above this is a step"
    )


def adaptive_settings(args: argparse.Namespace) -> RateControlSettings:
    """The adaptive controller's settings from the controller options (PT1S metrics seen 1-2 s late)."""
    return RateControlSettings(
        provisioned_ru_s=args.provisioned,
        ceiling=args.ceiling,
        control_interval_s=args.interval,
        usage_poll_s=args.interval,
        trend_gain=args.trend_gain,
        rise_gain=args.rise_gain,
        smoothing_grains=args.smoothing_grains,
        level_grains=args.level_grains or None,
        spike_rise=args.spike_rise,
        usage_window_s=max(8.0, args.smoothing_grains + 4.0),
        stale_after_s=4.0,
        margin=args.margin,
        error_quantile=args.error_quantile if args.error_quantile > 0 else None,
        error_window=args.error_window,
        burst_s=args.burst_s,
        backoff_factor=args.backoff_factor,
        account_mode=args.account,
        archiver_cap=args.archiver_cap,
        step_change=args.step_change,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seconds", type=float, help="wall seconds per controller (default 75; with --trace: the whole file)"
    )
    add_controller_options(parser)
    parser.add_argument(
        "--assumed-client-load",
        type=float,
        help="static formula's business share (default: the trace's true mean over the played window)",
    )
    parser.add_argument(
        "--trace", type=Path, help="business trace CSV (timestamp,value; Azure Monitor export) instead of the diurnal"
    )
    parser.add_argument("--trace-unit", choices=TRACE_UNITS, default="auto", help="--trace values: RU per grain, ...")
    parser.add_argument("--trace-provisioned", type=float, help="RU/s a --trace of RU values was recorded against")
    parser.add_argument(
        "--trace-speed", type=float, help="--trace seconds played per wall second (default: its grain, 1 grain/s)"
    )
    parser.add_argument(
        "--trace-start-h", type=float, help="trace hour the run starts at (default 18.25; with --trace: 0)"
    )
    parser.add_argument(
        "--trace-hours",
        type=float,
        help="trace hours played in --seconds (default seconds/60: 1 s = 1 trace minute, the PT1M grain)",
    )
    parser.add_argument("--doc-kb", type=int, default=10, help="document size = RU per read (default 10)")
    parser.add_argument("--readers", type=int, default=3, help="archiver reader threads")
    parser.add_argument("--business-workers", type=int, default=8)
    parser.add_argument("--dump", help="write per-second CSVs with this path prefix")
    parser.add_argument("--only", choices=["static", "adaptive"], help="run one controller only")
    parser.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="physical partitions of the container (default 1); provisioned RU/s are divided evenly among them, "
        "serverless: each has --provisioned as its own limit (devstack/ru_gateway/partitions.py)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.partitions <= 64:
        parser.error(f"--partitions {args.partitions!r} must be 1-64 (the seeded documents must cover each)")
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so the lab's servers and the business load are stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.trace:
        try:
            args.trace_file = read_trace_csv(args.trace, unit=args.trace_unit, provisioned_ru=args.trace_provisioned)
        except TraceFileError as exc:
            parser.error(str(exc))
        speed = args.trace_speed or args.trace_file.grain_s
        if not speed > 0:
            parser.error(f"--trace-speed {speed!r} must be > 0 trace seconds per wall second")
        if args.trace_start_h is None:
            args.trace_start_h = 0.0
        left_s = args.trace_file.span_s - args.trace_start_h * 3600
        if left_s <= 0:
            span_h = args.trace_file.span_s / 3600
            parser.error(f"--trace-start-h {args.trace_start_h:g} is past the end of {args.trace} ({span_h:.2f} h)")
        if args.seconds is None:
            args.seconds = left_s / speed
        if args.trace_hours is None:
            args.trace_hours = args.seconds * speed / 3600.0
        name = f"{args.trace_file.describe()}, {speed:g} trace s per wall s;"
    else:
        args.seconds = args.seconds or 75.0
        args.trace_start_h = 18.25 if args.trace_start_h is None else args.trace_start_h
        if args.trace_hours is None:
            args.trace_hours = args.seconds / 60.0
        name = "diurnal"

    trace = played_trace(args)
    played = [trace.at((args.trace_start_h + args.trace_hours * i / 1000) * 3600) for i in range(1000)]
    window_mean = sum(played) / len(played)
    assumed = args.assumed_client_load if args.assumed_client_load is not None else round(window_mean, 3)
    print(
        f"account: {args.account} ("
        + (
            "priority Low and throughput buckets NOT honoured: the archiver's pacing is the only protection; "
            f"adaptive capped at {adaptive_settings(args).cap_ru_s:g} RU/s"
            if args.account == "serverless"
            else "priority Low honoured: Cosmos throttles the archiver first"
        )
        + ")"
    )
    print(
        f"trace: {name} {args.trace_start_h:g}h + {args.trace_hours:g}h in {args.seconds:g}s "
        f"(mean business {window_mean:.1%}, peak {max(played):.0%}); "
        f"static assumes {assumed:.1%}; adaptive margin >= {args.margin:.1%}"
        + (f" or the {args.error_quantile:.0%} quantile of its measured errors" if args.error_quantile > 0 else "")
    )
    print(
        f"scaling: {args.provisioned:g} RU/s provisioned (seed 5000), {args.doc_kb} KB documents = {args.doc_kb} RU "
        f"per read, one read = {args.doc_kb / args.provisioned:.1%} of provisioned (seed: 300 RU = 6 %); business "
        f"paced on an even schedule by {args.business_workers} workers, archiver {args.readers} readers (Low); "
        f"metrics PT1S with a 1 s reporting delay (seen 1-2 s late)"
    )
    print(
        "definitions (per gateway second s, scored from 3 s after the archiver starts): headroom_s = max(0, "
        f"{args.ceiling:g} x provisioned - business_s); utilisation = sum min(archiver_s, headroom_s) / sum "
        "headroom_s; over = business_s + archiver_s > ceiling (all; archiver-caused = business_s alone <= ceiling)"
    )
    gateway_settings = GatewaySettings(
        provisioned_ru=args.provisioned,
        reporting_delay_s=1.0,
        account_mode=args.account,
        physical_partitions=args.partitions,
    )
    print(
        f"physical partitions: {args.partitions}, each {gateway_settings.partition_budget:g} RU/s; the seeded "
        "documents' keys are spread so that every partition holds documents (devstack/ru_lab.seeded_keys)"
    )
    t0 = time.time()
    with (
        tempfile.TemporaryDirectory(prefix="ru-bench-") as state,
        ru_lab(Path(state), settings=gateway_settings, docs=60, doc_kb=args.doc_kb) as lab,
    ):
        print(f"lab up in {time.time() - t0:.1f}s: gateway {lab.endpoint}, {args.provisioned:g} RU/s provisioned")
        base = RateControlSettings(
            provisioned_ru_s=args.provisioned, ceiling=args.ceiling, assumed_client_load=assumed, burst_s=args.burst_s,
            account_mode=args.account,
        )
        results = []
        if args.only in (None, "static"):
            results.append(run_one("static", lab, StaticBudget(base), args))
            print(report(results[-1]), flush=True)
            print(partition_report(results[-1]), flush=True)
        if args.only in (None, "adaptive"):
            source = lab.usage_source(lagging_grains=0)
            time.sleep(3)  # let the previous run's traffic age out of the gateway's recent seconds
            results.append(run_one("adaptive", lab, AdaptiveBudget(adaptive_settings(args), source), args))
            print(report(results[-1]), flush=True)
            print(partition_report(results[-1]), flush=True)
    for r in results:
        print(goal_check(r))
    print(f"total {time.time() - t0:.0f}s")
    hit = [(r.name, p) for r in results for p, f in r.per_partition.items() if f["client_429_archiver"] > 0]
    if hit:
        print("archiver-caused client 429s on " + ", ".join(f"{name}: partition {p}" for name, p in hit) + " (exit 1)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
