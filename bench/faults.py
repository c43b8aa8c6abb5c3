"""Fault suite summary: every fault class injected into the archive pipeline on a local stack of its own, each
followed by a rerun that must converge to the same verified archive. The cases are devstack/fault_suite.py's (the
same ones tests/test_faults.py runs one by one); this prints what survived.

Run:  PYTHONPATH=. .venv/bin/python bench/faults.py [--quick] [--only storage] [--repeat 1]

Printed per case: injected (faults that really happened: a crash reached, a corruption written, gateway
injections counted), converged (rerun verified, digest equal to the seeded source, no duplicate row, no stale
part, source untouched), records lost (must be 0), corruptions detected / injected (must be 100 %), seconds
(fault, detection and rerun). Then one line per fault class and a verdict. ``--quick`` leaves out the slow cases
(SIGKILLed workers wait out their 15 s slice lease; Blob unreachable waits out the Blob SDK's own back-off).

Measured (2026-12-02 00:28 UTC, on main with purge and restore, the shared 2-core machine under other helpers'
load; ``bench/faults.py --verbose``, all 27 cases, 290 s):

  fault class        cases injected converged lost  corruptions detected/injected  time s
  crash (exception)      6        6         6    0                              -    13.4
  crash (SIGKILL)        6        6         6    0                              -    98.0
  storage                7        7         7    0                     7/7 (100%)    15.0
  service (Cosmos)       6        6         6    0                              -    27.8
  service (Blob)         2        2         2    0                              -    89.7
  ALL 27 CASES SURVIVED: every fault injected, 0 records lost, every corruption detected

Crashes (mid-copy, mid-upload, after the files before the manifest, mid-validation, mid-purge, mid-restore): the
first four left "no manifest" or "copied", never "verified"; a killed purge resumed from its _purge.json and a
killed restore's rerun restored every record; each SIGKILL rerun of the pipeline waited out the dead worker's 15 s
slice lease. Storage faults after the copy were caught by validation (slice failed) and the purge refused
(SliceNotVerifiedError); a flipped byte after verification was caught by the purge's own re-verification
(PurgeIntegrityError, slice failed); nothing left Cosmos in any of them. Service faults (the run under the fault,
before the rerun): a 3 s 429 storm (14 answers), 4 answers slowed by 1.5 s and 2 answers of 500 — the run
completed on the SDK's retries; 503 for 3 s — failed after 1.7 s (CosmosHttpResponseError ServiceUnavailable);
connection resets (30 %) — completed in one run, failed after 0.9 s (ServiceResponseError) in another, depending on
which request was cut; Cosmos down for 4 s — failed after 0.1 s (connection reset): the SDK does not retry a cut
query and the pipeline has no retry of its own, so the outage is ridden out by the task's retries (the DAG's
default_args: 2 retries, 2 min exponential back-off); Blob paused for 3 s — the upload waited it out; Blob
unreachable — the Blob SDK's default back-off gave up after 83 s (ServiceRequestError: connection refused). Every
failed run was followed by a rerun that converged.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.fault_suite import CaseResult, FaultCase, all_cases, run_case
from devstack.stack import StackConfig, free_port, running_stack


def case_line(result: CaseResult) -> str:
    corr = f"{result.corruptions_detected}/{result.corruptions_injected}" if result.corruptions_injected else "  -  "
    return (
        f"  {result.fault_class:18s} {result.name:48s} injected {result.injected:2d}  "
        f"{'converged' if result.converged else 'NOT CONVERGED'}  lost {result.records_lost}  "
        f"corruptions {corr}  {result.seconds:6.1f}s"
    )


def summary(results: list[CaseResult]) -> list[str]:
    by_class: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        by_class[r.fault_class].append(r)
    lines = [
        f"  {'fault class':18s} {'cases':>5s} {'injected':>8s} {'converged':>9s} {'lost':>4s} "
        f"{'corruptions detected/injected':>30s} {'time s':>7s}"
    ]
    for fault_class, rs in by_class.items():
        injected = sum(r.corruptions_injected for r in rs)
        detected = sum(r.corruptions_detected for r in rs)
        corr = f"{detected}/{injected} ({detected / injected:.0%})" if injected else "-"
        lines.append(
            f"  {fault_class:18s} {len(rs):5d} {sum(r.injected > 0 for r in rs):8d} "
            f"{sum(r.converged for r in rs):9d} {sum(r.records_lost for r in rs):4d} {corr:>30s} "
            f"{sum(r.seconds for r in rs):7.1f}"
        )
    return lines


def verdict(results: list[CaseResult]) -> str:
    failed = [
        r
        for r in results
        if not (r.injected and r.converged and r.records_lost == 0 and r.corruptions_detected == r.corruptions_injected)
    ]
    if not failed:
        return f"ALL {len(results)} CASES SURVIVED: every fault injected, 0 records lost, every corruption detected"
    return f"{len(failed)} of {len(results)} cases NOT survived: " + "; ".join(
        f"{r.fault_class}: {r.name}: {r.detail}" for r in failed
    )


def run_all(stack: StackConfig, cases: list[FaultCase], verbose: bool, t0: float) -> list[CaseResult]:
    print(f"local stack up in {time.monotonic() - t0:.1f}s; {len(cases)} cases", flush=True)
    results = []
    for case in cases:
        try:
            result = run_case(stack, case)
        except Exception as exc:  # a case that blew up is a case not survived: say so, go on
            result = CaseResult(case.fault_class, case.name, detail=f"the case itself failed: {exc!r}"[:300])
        results.append(result)
        print(case_line(result), flush=True)
        if verbose or not result.converged:
            print(f"      {result.detail}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="leave out the slow cases")
    parser.add_argument("--only", help="run only cases whose fault class or name contains this text")
    parser.add_argument("--verbose", action="store_true", help="print each case's detail line")
    args = parser.parse_args(argv)
    # the product logs each detected corruption at ERROR (as a run would): shown with --verbose only
    logging.basicConfig(
        level=logging.ERROR if args.verbose else logging.CRITICAL, format="%(levelname)s %(name)s: %(message)s"
    )
    cases: list[FaultCase] = [
        c for c in all_cases() if not (args.quick and c.slow) and (not args.only or args.only in c.id)
    ]
    if not cases:
        parser.error(f"no case matches --only {args.only!r}")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faults-bench-") as state:
        config = StackConfig(
            state_dir=Path(state), cosmos_port=free_port(), cosmos_backend_port=free_port(), blob_port=free_port(),
            provisioned_ru=1_000_000,
        )  # fmt: skip
        with running_stack(config) as stack:
            results = run_all(stack, cases, args.verbose, t0)
    print()
    print("SUMMARY per fault class")
    print("\n".join(summary(results)))
    print(verdict(results))
    print(f"total {time.monotonic() - t0:.0f}s")
    return 0 if all(r.converged and r.records_lost == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
