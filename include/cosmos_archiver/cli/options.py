"""Options several subcommands share: the archive settings as JSON (as in the Airflow Variable)."""

from __future__ import annotations

import argparse
import json
import math

from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.settings import ArchiveSettings, SettingsError
from include.cosmos_archiver.slices import SliceError, slice_id_start


def add_settings_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings-json", help="archive settings as JSON (as in the Airflow Variable)")


def positive_number(text: str) -> float:
    """argparse type: a number > 0 (not NaN or infinity)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0")
    return value


def count(text: str) -> int:
    """argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def slice_id(text: str) -> str:
    """argparse type: a slice id yyyy/mm/dd[/HH] naming a real day and hour."""
    try:
        slice_id_start(text)
    except SliceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def settings_from(args: argparse.Namespace) -> ArchiveSettings:
    """The --settings-json of any command: a JSON object of archive settings, or the defaults if not given."""
    if not args.settings_json:
        return ArchiveSettings()
    try:
        values = json.loads(args.settings_json)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--settings-json: {exc}") from None
    if not isinstance(values, dict):
        raise UsageError(f"--settings-json must be a JSON object of settings such as "
                         f'\'{{"database": "billing"}}\', not {args.settings_json!r}')
    try:
        return ArchiveSettings.from_mapping(values)
    except SettingsError as exc:
        raise UsageError(f"--settings-json: {exc}") from None
