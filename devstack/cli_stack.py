"""`cosmos-archive stack up|down|status|env|charge-model`: the embedded local stack."""

from __future__ import annotations

import argparse
import sys

from devstack import stack


def _run(args: argparse.Namespace) -> int:
    config = stack.StackConfig.from_env()
    try:
        if args.action == "up":
            stack.up(config)
            for name, state in stack.status(config).items():
                print(f"{name}: {state}")
            print(f"cosmos endpoint: {config.cosmos_endpoint}")
            print(f"blob endpoint:   {config.blob_endpoint}")
            print(f"logs:            {config.log_dir}")
        elif args.action == "down":
            stopped = stack.down(config)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        elif args.action == "status":
            states = stack.status(config)
            for name, state in states.items():
                print(f"{name}: {state}")
            return 0 if all("healthy" in s and "UNHEALTHY" not in s for s in states.values()) else 1
        elif args.action == "charge-model":
            print(stack.charge_model_line(config))
        elif args.action == "env":
            for key, value in stack.client_env(config).items():
                print(f"export {key}={value}")
    except stack.StackError as exc:
        print(f"cosmos-archive stack {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stack", help="start/stop the local Cosmos DB + Blob stack (127.0.0.1 only)")
    parser.add_argument("action", choices=["up", "down", "status", "env", "charge-model"],
                        help="charge-model: one line naming the model the running RU gateway charges under")
    parser.set_defaults(func=_run)
