"""`cosmos-archive plan`: total RU, the archiver's rate, ETA and the cost before/after archiving a dataset, then RU,
time and money per step (copy, validation, purge, remainder, census, ADF) for the account's billing mode, under
Microsoft's published charges or a survey's calibration (``--calibration``, written by `cosmos-archive survey`)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys

from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.cli.options import settings_from
from include.cosmos_archiver.planning.capacity import (
    CapacityInput,
    Prices,
    estimate_capacity,
    format_plan,
    recorded_step_charges,
    survey_container,
)
from include.cosmos_archiver.planning.step_plan import (
    ChargeFigures,
    PlanTarget,
    StepModel,
    format_step_plan,
    plan_steps,
)
from include.cosmos_archiver.ru.settings import ACCOUNT_MODES


def _figures(args: argparse.Namespace) -> ChargeFigures:
    figures = ChargeFigures.from_file(args.calibration) if args.calibration else ChargeFigures()
    if args.delete_ru_per_record is not None:
        figures = dataclasses.replace(figures, delete_ru=args.delete_ru_per_record)
    return figures


def _account_mode(args: argparse.Namespace, figures: ChargeFigures) -> str:
    mode = args.account_mode or figures.account_mode
    if not mode:
        raise UsageError(f"give --account-mode ({' or '.join(ACCOUNT_MODES)}): it decides the archiver's cap and the "
                         "bill (or --calibration with a survey that read it from the account)")
    return mode


def _inputs(args: argparse.Namespace, figures: ChargeFigures) -> CapacityInput:
    prices = Prices(
        cosmos_storage_gb_month=args.price_cosmos_storage,
        cosmos_ru_per_100_ru_s_hour=args.price_ru,
        serverless_usd_per_million_ru=args.price_serverless_ru,
        blob_gb_month={
            "hot": args.price_blob_hot,
            "cool": args.price_blob_cool,
            "cold": args.price_blob_cold,
            "archive": args.price_blob_archive,
        },
    )
    records, size_kb, ru, provisioned = args.records, args.avg_size_kb, args.ru_per_record, args.provisioned_ru_s
    if args.from_container:
        records, size_kb, ru, provisioned = _from_container(args, records, size_kb, ru, provisioned)
    missing = [
        flag
        for flag, value in [
            ("--records", records),
            ("--avg-size-kb", size_kb),
            ("--provisioned-ru-s", provisioned),
        ]
        if value is None
    ]
    if missing and args.from_container:  # the survey counts, samples and measures; only the throughput can be unread
        raise UsageError(
            f"--from-container could not read the provisioned throughput of {args.database}/{args.container} (a "
            f"serverless account, throughput shared at the database, or an emulator without offers): pass "
            f"{', '.join(missing)} with the RU/s the archive may plan against")
    if missing:
        raise UsageError(f"missing {', '.join(missing)}: give them, or read a live container with --from-container")
    if ru is None:  # the copy's read per record: the documents its queries load
        ru = figures.load_ru(size_kb) + figures.query_page_ru / args.page_size
    return CapacityInput(
        records=records,
        avg_size_kb=size_kb,
        ru_per_record=ru,
        provisioned_ru_s=provisioned,
        client_load=args.client_load,
        ceiling=args.ceiling,
        blob_tier=args.blob_tier,
        compression_ratio=args.compression_ratio,
        provisioned_ru_s_after=args.provisioned_ru_s_after,
        prices=prices,
        account_mode=_account_mode(args, figures),
    )


def _from_container(
    args: argparse.Namespace, records: int | None, size_kb: float | None, ru: float | None, provisioned: float | None
) -> tuple[int | None, float | None, float | None, float | None]:
    from azure.cosmos.exceptions import CosmosHttpResponseError

    from include.cosmos_archiver.clients import cosmos_client
    from include.cosmos_archiver.source.preflight import require_container

    if not (args.endpoint and args.database and args.container):
        raise UsageError("--from-container needs --endpoint, --database and --container")
    key = os.environ.get(args.key_env)
    if not key:
        raise UsageError(
            f"--from-container reads the account key from ${args.key_env}; set it (never on the command line)"
        )
    client = cosmos_client(args.endpoint, key)
    container = client.get_database_client(args.database).get_container_client(args.container)
    require_container(container, args.database, args.container)
    try:
        survey = survey_container(container, sample=args.sample, where=args.where)
    except CosmosHttpResponseError as exc:
        if exc.status_code != 400 or not args.where:
            raise
        raise UsageError(f"--where {args.where!r}: Cosmos DB refused the query ({str(exc.message).splitlines()[0]}); "
                         "give a SQL predicate on c, e.g. 'c._ts < 1700000000'") from None
    print(
        f"container {args.database}/{args.container}: {survey.records:,} records; {survey.sampled} sampled: "
        f"~{survey.avg_size_kb:,.1f} KB, ~{survey.ru_per_record:,.2f} RU per point read"
        + (f"; {survey.provisioned_ru_s:,.0f} RU/s provisioned" if survey.provisioned_ru_s else ""),
        file=sys.stderr if args.json else sys.stdout,  # --json: stdout is the JSON alone
    )
    # Explicit flags win over measurements (e.g. to plan the real account from a sample copy).
    return (
        records if records is not None else survey.records,
        size_kb if size_kb is not None else survey.avg_size_kb,
        ru if ru is not None else survey.ru_per_record,
        provisioned if provisioned is not None else survey.provisioned_ru_s,
    )


def _step_model(args: argparse.Namespace) -> StepModel:
    defaults = StepModel()
    return StepModel(
        validation=args.validation, purge=args.purge, route=args.route, page_size=args.page_size,
        stub_kb=args.stub_kb, remainder_fraction=args.remainder_fraction,
        slices=args.slices if args.slices is not None else defaults.slices, slices_per_run=args.slices_per_run,
        census_weeks=args.census_weeks, serverless_usd_per_million_ru=args.price_serverless_ru,
    )


def _run(args: argparse.Namespace) -> int:
    figures = _figures(args)
    inputs = _inputs(args, figures)  # a CapacityInputError is a terminal error: main prints it and exits 2
    plan = estimate_capacity(inputs)
    target = PlanTarget(records=inputs.records, avg_size_kb=inputs.avg_size_kb, ru_s=inputs.provisioned_ru_s,
                        account_mode=inputs.account_mode, client_load=inputs.client_load, ceiling=inputs.ceiling)
    steps = plan_steps(target, _step_model(args), figures)
    if args.json:
        print(json.dumps(steps.to_dict(), indent=1))
        return 0
    print(format_plan(plan))
    print(format_step_plan(steps))
    print(f"Cosmos storage of the archived records: {plan.data_gb:,.1f} GB -> "
          f"{_left_gb(inputs, args):,.1f} GB after the purge ({args.purge})")
    if args.survey:
        _survey(args)
    return 0


def _left_gb(inputs: CapacityInput, args: argparse.Namespace) -> float:
    return {"off": inputs.records * inputs.avg_size_kb, "delete": 0.0,
            "stub": inputs.records * args.stub_kb}[args.purge] / 1e6


def _survey(args: argparse.Namespace) -> None:
    """What the pipeline recorded per step in the archive's manifests, and what lies beyond the lookback."""
    from include.cosmos_archiver.cli.targets import archive_store, source_container
    from include.cosmos_archiver.planning.due_slices import records_older_than_lookback

    settings = settings_from(args)
    store = archive_store(settings)
    manifests = [m for sid in sorted(store.manifest_metadata()) if (m := store.read_manifest(sid)) is not None]
    print(f"survey of the archive ({len(manifests)} slice manifests): RU recorded per step")
    for step, (ru, records) in sorted(recorded_step_charges(manifests).items()):
        per = f"{ru / records:,.2f} RU per record" if records else "no records"
        print(f"  {step:<10} {ru:>14,.1f} RU over {records:,} records = {per}")
    older = records_older_than_lookback(source_container(settings), settings, now=dt.datetime.now(dt.UTC))
    print(f"records older than lookback_days={settings.lookback_days} (no run archives them): {older:,}"
          + (" -- raise lookback_days or backfill their dates" if older else ""))


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = Prices()
    p = subparsers.add_parser(
        "plan",
        help="total RU, headroom RU/s, ETA and cost before/after for a dataset",
        description="Plan an archive run. Seed case: --records 2000000 --avg-size-kb 300 --provisioned-ru-s 5000 "
        "--account-mode serverless --client-load 0.5 --ceiling 0.8. Prices default to USD list prices: override them.",
    )
    p.add_argument("--records", type=int, help="number of records to archive")
    p.add_argument("--avg-size-kb", type=float, help="average record size in KB")
    p.add_argument("--ru-per-record", type=float,
                   help="RU the copy spends per record (default: the documents its queries load, ~10 RU per MB)")
    p.add_argument("--provisioned-ru-s", type=float, help="provisioned throughput in RU/s")
    p.add_argument("--client-load", type=float, default=0.5, help="business share of provisioned RU/s (default 0.5)")
    p.add_argument("--ceiling", type=float, default=0.8, help="max total share of provisioned RU/s (default 0.8)")
    p.add_argument("--blob-tier", default="cool", choices=sorted(defaults.blob_gb_month), help="default cool")
    p.add_argument("--compression-ratio", type=float, default=1.0, help="JSON size / Parquet size (default 1.0)")
    p.add_argument("--provisioned-ru-s-after", type=float, help="RU/s you will provision after archiving")
    p.add_argument("--price-cosmos-storage", type=float, default=defaults.cosmos_storage_gb_month, help="USD/GB-month")
    p.add_argument("--price-ru", type=float, default=defaults.cosmos_ru_per_100_ru_s_hour, help="USD per 100 RU/s-h")
    for tier, price in defaults.blob_gb_month.items():
        p.add_argument(f"--price-blob-{tier}", type=float, default=price, help=f"USD/GB-month (default {price})")
    live = p.add_argument_group("read counts from a live container")
    live.add_argument("--from-container", action="store_true", help="count/sample/measure the container")
    live.add_argument("--endpoint", help="Cosmos account endpoint, e.g. https://127.0.0.1:8081/")
    live.add_argument("--key-env", default="COSMOS_ARCHIVE_COSMOS_KEY", help="env var holding the account key")
    live.add_argument("--database")
    live.add_argument("--container")
    live.add_argument("--where", help="SQL predicate on c selecting the records to archive, e.g. 'c._ts < 1700000000'")
    live.add_argument("--sample", type=int, default=20, help="records to sample for size and RU (default 20)")
    steps = p.add_argument_group("per-step model (defaults: Microsoft's published charges, planning/published.py)")
    model = StepModel()
    steps.add_argument("--account-mode", choices=ACCOUNT_MODES,
                       help="serverless or provisioned: the archiver's cap and the bill (required unless the "
                            "calibration read it)")
    steps.add_argument("--calibration", help="a survey's calibration file (cosmos-archive survey --write FILE)")
    steps.add_argument("--validation", choices=("fast", "deep"), default=model.validation, help="default fast")
    steps.add_argument("--purge", choices=("off", "delete", "stub"), default=model.purge, help="default delete")
    steps.add_argument("--route", choices=("local", "adf"), default=model.route, help="copy route (default local)")
    steps.add_argument("--page-size", type=int, default=model.page_size, help="records per query page (default 100)")
    steps.add_argument("--delete-ru-per-record", type=float,
                       help="RU to delete one record (default: Microsoft's published write charge at the size)")
    steps.add_argument("--stub-kb", type=float, default=model.stub_kb, help=f"stub size (default {model.stub_kb:g})")
    steps.add_argument("--remainder-fraction", type=float, default=model.remainder_fraction,
                       help="share of records changed/arriving after their copy (default 0.01)")
    steps.add_argument("--slices", type=int, help=f"slices archived (default {model.slices})")
    steps.add_argument("--slices-per-run", type=int, default=model.slices_per_run,
                       help="slices one run archives (each run's census also counts the lookback once; default "
                            f"{model.slices_per_run}, a daily run; a first run may take up to its max_slices)")
    steps.add_argument("--census-weeks", type=float,
                       help="weekly full censuses (3 loads of the data each) while the data is in Cosmos (default: "
                            "the weeks the archive takes; 0 plans the daily runs' censuses only)")
    steps.add_argument("--price-serverless-ru", type=float, default=model.serverless_usd_per_million_ru,
                       help="USD per million RU on a serverless account (default 0.25, the docs' demo price)")
    p.add_argument("--json", action="store_true", help="print the per-step plan as JSON")
    p.add_argument("--survey", action="store_true",
                   help="also report the RU per step recorded in the archive's manifests and the records older than "
                        "lookback_days (needs COSMOS_ARCHIVE_* environment variables)")
    p.add_argument("--settings-json", help="archive settings as JSON, for --survey")
    p.set_defaults(func=_run)
