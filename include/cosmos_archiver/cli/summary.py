"""`cosmos-archive summary`: what the archive holds, read from the slice manifests."""

from __future__ import annotations

import argparse
import json

from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.cli.targets import archive_store
from include.cosmos_archiver.settings import ArchiveSettings, SettingsError


def _run(args: argparse.Namespace) -> int:
    try:
        settings = ArchiveSettings.from_mapping(json.loads(args.settings_json)) if args.settings_json else (
            ArchiveSettings())
    except (SettingsError, json.JSONDecodeError) as exc:
        raise UsageError(f"--settings-json: {exc}") from None
    store = archive_store(settings)
    statuses = store.manifest_statuses()
    totals = {"slices": 0, "verified": 0, "records": 0, "record_bytes": 0, "file_bytes": 0, "ru": 0.0,
              "purged": 0, "changed": 0, "gone": 0}
    print(f"{'slice':<14} {'status':<9} {'records':>8} {'bytes':>12} {'parquet':>11} {'RU':>9} "
          f"{'purged':>7} {'changed':>7} {'gone':>5}  digest")
    for slice_id in sorted(statuses):
        manifest = store.read_manifest(slice_id)
        if manifest is None:
            continue
        s = manifest.summary()
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
        if args.all or s["records"]:
            print(f"{slice_id:<14} {s['status']:<9} {s['records']:>8} {s['record_bytes']:>12} "
                  f"{s['file_bytes']:>11} {s['ru']:>9.0f} {purged:>7} {counts.get('changed', 0):>7} "
                  f"{counts.get('gone', 0):>5}  {s['digest'][:16]}")
    print(f"total: {totals['slices']} slices ({totals['verified']} verified), {totals['records']} records, "
          f"{totals['record_bytes'] / 1e6:.1f} MB JSON -> {totals['file_bytes'] / 1e6:.1f} MB Parquet, "
          f"{totals['ru']:.0f} RU; purged {totals['purged']} from Cosmos DB ({totals['changed']} changed since "
          f"their copy and kept there, {totals['gone']} already gone)")
    return 0 if totals["slices"] == totals["verified"] else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("summary", help="print the archive's slices, records, bytes and digests")
    parser.add_argument("--settings-json", help="archive settings as JSON (as in the Airflow Variable)")
    parser.add_argument("--all", action="store_true", help="also list empty slices")
    parser.set_defaults(func=_run)
