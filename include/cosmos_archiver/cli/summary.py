"""`cosmos-archive summary`: what the archive holds, read from the slice manifests."""

from __future__ import annotations

import argparse

from include.cosmos_archiver.archive.scrub import scrub_marks
from include.cosmos_archiver.cli.options import add_settings_option, settings_from
from include.cosmos_archiver.cli.targets import archive_store
from include.cosmos_archiver.planning.capacity import recorded_step_charges

RU_COLUMNS = ("copy", "validate", "purge")  # steps with a column of their own; "RU total" sums every step
HEADER = (f"{'slice':<13} {'status':<8} {'records':>7} {'JSON MB':>7} {'parq MB':>7} "
          + " ".join(f"{'RU ' + step if step == 'copy' else step:>8}" for step in RU_COLUMNS)
          + f" {'RU total':>8} {'purged':>7} {'changed':>7} {'gone':>5}  digest")


def _row(slice_id: str, status: str, s: dict, ru: dict[str, float], counts: dict[str, int]) -> str:
    purged = counts.get("purged", 0) + counts.get("stubbed", 0)
    return (f"{slice_id:<13} {status:<8} {s['records']:>7} {s['record_bytes'] / 1e6:>7.1f} "
            f"{s['file_bytes'] / 1e6:>7.1f} " + " ".join(f"{ru.get(step, 0.0):>8.0f}" for step in RU_COLUMNS)
            + f" {sum(ru.values()):>8.0f} {purged:>7} {counts.get('changed', 0):>7} {counts.get('gone', 0):>5}  "
            f"{s['digest'][:12]}")


def _ru_line(steps: dict[str, float]) -> str:
    """Every step's RU, labelled, and their sum: the purge often costs more than the copy."""
    order = [*RU_COLUMNS, *sorted(set(steps) - set(RU_COLUMNS))]
    parts = [f"{step} {steps.get(step, 0.0):,.0f}" for step in order]
    return (f"RU by step (the whole archive, every run so far): {' + '.join(parts)} = {sum(steps.values()):,.0f} "
            "RU in all")


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    store = archive_store(settings)
    statuses = store.manifest_statuses()
    damaged = {s for s, status in scrub_marks(store).items() if status != "ok"}
    totals = {"slices": 0, "verified": 0, "records": 0, "record_bytes": 0, "file_bytes": 0,
              "purged": 0, "changed": 0, "gone": 0, "unlisted": 0}
    ru_totals: dict[str, float] = {}
    print(HEADER)
    for slice_id in sorted(statuses):
        manifest = store.read_manifest(slice_id)
        if manifest is None:
            continue
        s = manifest.summary()
        ru = {step: charged for step, (charged, _records) in recorded_step_charges([manifest]).items()}
        for step, charged in ru.items():
            ru_totals[step] = ru_totals.get(step, 0.0) + charged
        totals["slices"] += 1
        totals["verified"] += manifest.status == "verified"
        totals["records"] += s["records"]
        totals["record_bytes"] += s["record_bytes"]
        totals["file_bytes"] += s["file_bytes"]
        counts = s["purge"].get("counts") or {}
        totals["purged"] += counts.get("purged", 0) + counts.get("stubbed", 0)
        totals["changed"] += counts.get("changed", 0)
        totals["gone"] += counts.get("gone", 0)
        if args.all or s["records"] or slice_id in damaged:
            print(_row(slice_id, "DAMAGED" if slice_id in damaged else s["status"], s, ru, counts))
        else:
            totals["unlisted"] += 1
    print(f"total: {totals['slices']} slices ({totals['verified']} verified), {totals['records']} records, "
          f"{totals['record_bytes'] / 1e6:.1f} MB JSON -> {totals['file_bytes'] / 1e6:.1f} MB Parquet")
    print(f"purged {totals['purged']} from Cosmos DB ({totals['changed']} changed since their copy and kept there, "
          f"{totals['gone']} already gone)")
    print(_ru_line(ru_totals))
    if totals["unlisted"]:
        print(f"({totals['unlisted']} empty slice(s) not listed; --all lists them)")
    if damaged:
        print(f"DAMAGED (scrub): {', '.join(sorted(damaged))}: no purge of these slices; re-open them "
              "(cosmos-archive reopen) while their records are in Cosmos DB, or restore their blobs")
    return 0 if totals["slices"] == totals["verified"] and not damaged else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "summary", help="print the archive's slices, records, bytes, RU per step and digests",
        description="RU columns: what the pipeline recorded per step in each manifest (copy, validate, purge); "
        "RU total sums every step (the remainder sweep too). Exit status 1 when a slice is not verified or damaged.")
    add_settings_option(parser)
    parser.add_argument("--all", action="store_true", help="also list empty slices")
    parser.set_defaults(func=_run)
