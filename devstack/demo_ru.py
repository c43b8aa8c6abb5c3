"""The RU a `bin/archive-local` run booked, per step, as JSON (the demo's ``RU_JSON=FILE``), for a bench to set
beside a plan (bench/plan_vs_demo.py).

- ``steps``: copy, validate, purge (and sweep, when one ran): the slice manifests' ``ru_steps``, what
  `cosmos-archive summary` prints (planning.capacity.recorded_step_charges);
- ``census``: the run's census task, from its line in the `airflow dags test` log (source.run_census.RunCensus.line);
- ``gateway``: every RU the local RU gateway charged while the DAG ran (its ``/_gateway/stats`` totals before and
  after the run): the steps and the census, plus what no step books (preflight's samples, the plan task's counts).

    python -m devstack.demo_ru gateway-total              # before the run: the gateway's total so far
    python -m devstack.demo_ru write FILE --log LOG --gateway-before RU
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from devstack.airflow_settings import SETTINGS_VARIABLE, variable
from devstack.stack import StackConfig, charge_model_line, gateway_ru_total
from devstack.targets import use_local_stack
from include.cosmos_archiver.cli.targets import archive_store
from include.cosmos_archiver.planning.capacity import recorded_step_charges
from include.cosmos_archiver.settings import ArchiveSettings

CENSUS_LINE = re.compile(r"census of this run's (\d+) slice\(s\) \(index-served counts, (\d+) queries, ([\d,.]+) RU\)")


def census_from_log(text: str) -> dict[str, float]:
    """The last census line of a run's log: slices, queries and RU; ValueError when the run logged none."""
    found = CENSUS_LINE.findall(text)
    if not found:
        raise ValueError("no census line (\"census of this run's N slice(s) ...\") in the run's log: did the "
                         "census task run?")
    slices, queries, ru = found[-1]
    return {"slices": int(slices), "queries": int(queries), "ru": float(ru.replace(",", ""))}


def booked(log: Path, gateway_before: float, config: StackConfig | None = None) -> dict[str, Any]:
    """What the run whose `airflow dags test` log is ``log`` booked (module docstring)."""
    use_local_stack()
    store = archive_store(ArchiveSettings.from_mapping(json.loads(variable(SETTINGS_VARIABLE))))
    manifests = [m for sid in sorted(store.manifest_metadata()) if (m := store.read_manifest(sid)) is not None]
    charges = recorded_step_charges(manifests)
    return {
        "steps": {step: round(ru, 3) for step, (ru, _records) in sorted(charges.items())},
        "records": sum(m.record_count for m in manifests),
        "slices": len(manifests),
        "census": census_from_log(log.read_text(errors="replace")),
        "gateway": round(gateway_ru_total(config) - gateway_before, 3),
        "charge_model": charge_model_line(config),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo_ru", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("gateway-total", help="print every RU the running gateway has charged so far")
    write = sub.add_parser("write", help="write the RU the run booked as JSON")
    write.add_argument("file", type=Path)
    write.add_argument("--log", type=Path, required=True, help="the run's `airflow dags test` log")
    write.add_argument("--gateway-before", type=float, required=True, help="gateway-total before the run")
    args = parser.parse_args(argv)
    if args.command == "gateway-total":
        print(f"{gateway_ru_total():.3f}")
        return 0
    args.file.write_text(json.dumps(booked(args.log, args.gateway_before), indent=1) + "\n")
    print(f"RU booked per step written to {args.file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
