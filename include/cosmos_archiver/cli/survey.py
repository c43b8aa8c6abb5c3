"""`cosmos-archive survey`: measure, read-only, what the plan needs from the account (planning.survey) and write a
calibration file for `cosmos-archive plan --calibration FILE`."""

from __future__ import annotations

import argparse

from include.cosmos_archiver.cli.main import UsageError, printed_here
from include.cosmos_archiver.cli.options import add_settings_option, settings_from
from include.cosmos_archiver.cli.targets import source_container
from include.cosmos_archiver.loopback import StaticTokenCredential, is_loopback
from include.cosmos_archiver.planning.survey import survey_account, write_calibration
from include.cosmos_archiver.ru.usage import AzureMonitorUsageSource, UsageConfigError
from include.cosmos_archiver.source.census import slice_from_id


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    time_slice = None
    if args.slice:
        try:
            time_slice = slice_from_id(args.slice, settings.slice_hours)
        except (ValueError, TypeError):
            raise UsageError(f"--slice {args.slice!r} is not a slice id like 2025/03/01") from None
    usage = None
    if args.metrics_endpoint and args.resource_id:
        try:  # the local gateway takes any bearer token; Azure: DefaultAzureCredential (this identity)
            usage = AzureMonitorUsageSource(
                args.metrics_endpoint, args.resource_id,
                credential=StaticTokenCredential() if is_loopback(args.metrics_endpoint) else None)
        except UsageConfigError as exc:
            raise UsageError(str(exc)) from None
    with printed_here(survey_account.__module__):
        survey = survey_account(source_container(settings), settings, usage=usage, time_slice=time_slice)
    print("\n".join(survey.lines()))
    if args.write:
        write_calibration(survey, args.write)
        print(f"calibration written to {args.write}: `cosmos-archive plan --calibration {args.write} ...`")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "survey", help="measure the account's charges, partitions, mode and metrics access (read-only)",
        description="Read-only: sends reads and queries only, deletes nothing. Writes a calibration file for plan.")
    add_settings_option(parser)
    parser.add_argument("--write", metavar="FILE", help="write the calibration file here")
    parser.add_argument("--slice", help="the slice whose copy query is measured (default: a sampled document's)")
    parser.add_argument("--metrics-endpoint",
                        help="Azure Monitor metrics endpoint (https://<region>.metrics.monitor.azure.com) or the local "
                             "gateway's, to check that TotalRequestUnits/NormalizedRUConsumption can be read")
    parser.add_argument("--resource-id", help="the account's ARM resource id, for the metrics check")
    parser.set_defaults(func=_run)
