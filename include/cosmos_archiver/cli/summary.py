"""`cosmos-archive summary`: what the archive holds, read from the slice manifests."""

from __future__ import annotations

import argparse

from include.cosmos_archiver.archive.scrub import scrub_marks
from include.cosmos_archiver.cli.options import add_settings_option, settings_from
from include.cosmos_archiver.cli.targets import archive_store


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    store = archive_store(settings)
    statuses = store.manifest_statuses()
    damaged = {s for s, status in scrub_marks(store).items() if status != "ok"}
    totals = {"slices": 0, "verified": 0, "records": 0, "record_bytes": 0, "file_bytes": 0, "ru": 0.0,
              "purged": 0, "changed": 0, "gone": 0}
    print(f"{'slice':<14} {'status':<9} {'records':>8} {'bytes':>12} {'parquet':>11} {'RU':>9} "
          f"{'purged':>7} {'changed':>7} {'gone':>5}  digest")
    for slice_id in sorted(statuses):
        manifest = store.read_manifest(slice_id)
        if manifest is None:
            continue
        s = manifest.summary()
        if slice_id in damaged:
            s["status"] = "DAMAGED"
        totals["slices"] += 1
        totals["verified"] += manifest.status == "verified"
        totals["records"] += s["records"]
        totals["record_bytes"] += s["record_bytes"]
        totals["file_bytes"] += s["file_bytes"]
        totals["ru"] += s["ru"]
        counts = s["purge"].get("counts") or {}
        purged = counts.get("purged", 0) + counts.get("stubbed", 0)
        totals["purged"] += purged
        totals["changed"] += counts.get("changed", 0)
        totals["gone"] += counts.get("gone", 0)
        if args.all or s["records"] or slice_id in damaged:
            print(f"{slice_id:<14} {s['status']:<9} {s['records']:>8} {s['record_bytes']:>12} "
                  f"{s['file_bytes']:>11} {s['ru']:>9.0f} {purged:>7} {counts.get('changed', 0):>7} "
                  f"{counts.get('gone', 0):>5}  {s['digest'][:16]}")
    print(f"total: {totals['slices']} slices ({totals['verified']} verified), {totals['records']} records, "
          f"{totals['record_bytes'] / 1e6:.1f} MB JSON -> {totals['file_bytes'] / 1e6:.1f} MB Parquet, "
          f"{totals['ru']:.0f} RU; purged {totals['purged']} from Cosmos DB ({totals['changed']} changed since "
          f"their copy and kept there, {totals['gone']} already gone)")
    if damaged:
        print(f"DAMAGED (scrub): {', '.join(sorted(damaged))}: no purge of these slices; re-open them "
              "(cosmos-archive reopen) while their records are in Cosmos DB, or restore their blobs")
    return 0 if totals["slices"] == totals["verified"] and not damaged else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("summary", help="print the archive's slices, records, bytes and digests")
    add_settings_option(parser)
    parser.add_argument("--all", action="store_true", help="also list empty slices")
    parser.set_defaults(func=_run)
