"""Options several subcommands share: the archive settings as JSON (as in the Airflow Variable)."""

from __future__ import annotations

import argparse
import json

from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.settings import ArchiveSettings, SettingsError


def add_settings_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings-json", help="archive settings as JSON (as in the Airflow Variable)")


def settings_from(args: argparse.Namespace) -> ArchiveSettings:
    try:
        return ArchiveSettings.from_mapping(json.loads(args.settings_json)) if args.settings_json else (
            ArchiveSettings())
    except (SettingsError, json.JSONDecodeError) as exc:
        raise UsageError(f"--settings-json: {exc}") from None
