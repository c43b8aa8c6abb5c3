"""Run the RU gateway as a process (the local stack does): ``python -m devstack.ru_gateway --port P
--backend https://127.0.0.1:B --provisioned-ru 5000 --state-dir D [--account provisioned|serverless]
[--low-priority-fraction F]
[--throughput-bucket N=PCT ...] [--reporting-delay-s S] [--charge-model published|seed] [--read-ru-per-kb R]
[--write-ru-per-kb W] [--physical-partitions N] [--data-gb G] [--default-consistency LEVEL]``.

TLS material comes from ``ensure_local_tls(D)``. Bad arguments exit with status 2 and a message naming the value.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devstack.ru_gateway.charge_model import PRESETS, ChargeModel
from devstack.ru_gateway.config import DEFAULT_PROVISIONED_RU, GatewaySettings, GatewaySettingsError
from devstack.ru_gateway.proxy import Gateway
from devstack.tls import ensure_local_tls


def _bucket(raw: str) -> tuple[int, float]:
    number, sep, pct = raw.partition("=")
    try:
        if not sep:
            raise ValueError
        return int(number), float(pct)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"throughput bucket {raw!r} must look like N=PCT, e.g. 1=20 (bucket 1 may use 20%)"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.ru_gateway",
        description="Loopback TLS RU gateway in front of cosmosdb-server (charges, throttles, reports RU).",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--backend", required=True, help="cosmosdb-server URL, e.g. https://127.0.0.1:8091")
    parser.add_argument("--state-dir", type=Path, required=True, help="state directory holding the local TLS files")
    parser.add_argument("--provisioned-ru", type=float, default=DEFAULT_PROVISIONED_RU)
    parser.add_argument(
        "--account",
        default="provisioned",
        help="account mode: provisioned (priority and throughput buckets honoured) or serverless (not honoured)",
    )
    parser.add_argument("--low-priority-fraction", type=float, default=GatewaySettings.low_priority_fraction)
    parser.add_argument("--throughput-bucket", type=_bucket, action="append", default=[], metavar="N=PCT")
    parser.add_argument("--reporting-delay-s", type=float, default=0.0)
    parser.add_argument(
        "--charge-model",
        default="published",
        help=f"charge model preset: {' or '.join(PRESETS)} (published: Microsoft's figures; seed: 1/5 RU per KB)",
    )
    parser.add_argument("--read-ru-per-kb", type=float, default=ChargeModel.read_ru_per_kb, help="seed preset only")
    parser.add_argument("--write-ru-per-kb", type=float, default=ChargeModel.write_ru_per_kb, help="seed preset only")
    parser.add_argument("--physical-partitions", type=int, default=0, help="0: derived from --data-gb (50 GB each)")
    parser.add_argument("--data-gb", type=float, default=0.0, help="data size the partition count is derived from")
    parser.add_argument("--default-consistency", default="Session", help="the account's consistency level")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range; use 1-65535")
    try:
        settings = GatewaySettings(
            provisioned_ru=args.provisioned_ru,
            low_priority_fraction=args.low_priority_fraction,
            throughput_buckets=dict(args.throughput_bucket),
            reporting_delay_s=args.reporting_delay_s,
            account_mode=args.account,
            physical_partitions=args.physical_partitions,
            data_gb=args.data_gb,
            default_consistency=args.default_consistency,
        )
        model = ChargeModel(
            preset=args.charge_model, read_ru_per_kb=args.read_ru_per_kb, write_ru_per_kb=args.write_ru_per_kb
        )
        gateway = Gateway(
            args.backend, ensure_local_tls(args.state_dir), port=args.port, settings=settings, charge_model=model
        )
    except (GatewaySettingsError, ValueError) as exc:
        parser.error(str(exc))
    except OSError as exc:
        parser.error(f"cannot listen on 127.0.0.1:{args.port}: {exc}")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    ru = settings.provisioned_ru
    print(
        f"ru-gateway listening on {gateway.endpoint} -> {gateway.backend}; {settings.account_mode} account, "
        f"{ru:g} RU/s, {settings.partition_count} physical partition(s), {model.preset} charge model",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        gateway.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
