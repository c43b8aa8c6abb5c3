"""`cosmos-archive` command line: one subcommand per concern, each registered by its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from include.cosmos_archiver.errors import TerminalError

# Each module listed here defines `register(subparsers)` adding its subcommand(s) with `set_defaults(func=...)`.
SUBCOMMAND_MODULES = (
    "include.cosmos_archiver.cli.summary",
    "include.cosmos_archiver.cli.plan",
    "include.cosmos_archiver.cli.adf",
    "include.cosmos_archiver.cli.api",
    "include.cosmos_archiver.cli.restore",
    "include.cosmos_archiver.cli.census",
    "include.cosmos_archiver.cli.reopen",
    "include.cosmos_archiver.cli.scrub",
)


class UsageError(TerminalError):
    """Bad input: the message names the value and what to do instead."""


def build_parser(modules: Sequence[str] = SUBCOMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cosmos-archive", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, *, modules: Sequence[str] = SUBCOMMAND_MODULES) -> int:
    args = build_parser(modules).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"cosmos-archive: error: {exc}", file=sys.stderr)
        return 2
