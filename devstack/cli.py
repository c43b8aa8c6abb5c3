"""The dev kit's `cosmos-archive` (bin/cosmos-archive): the product's commands pointed at the local stack, plus
`stack`, `seed`, `storage`, `report` and `load`.

Against the local stack, ``--settings-json`` defaults to the ``cosmos_archive_settings`` Variable of the repo's
airflow_settings.yaml: the settings the local archive is written with (``bin/archive-local``). The product CLI
(include/cosmos_archiver/cli) keeps the library defaults.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from devstack.airflow_settings import SETTINGS_VARIABLE, variable
from devstack.targets import use_local_stack
from include.cosmos_archiver.cli.main import SUBCOMMAND_MODULES
from include.cosmos_archiver.cli.main import main as product_main

DEV_SUBCOMMAND_MODULES = ("devstack.cli_stack", "devstack.cli_seed", "devstack.cli_storage", "devstack.cli_report",
                          "devstack.business_load")
SETTINGS_DEST = "settings_json"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Registered last: default every subcommand's ``--settings-json`` to the local stack's settings."""
    settings = variable(SETTINGS_VARIABLE)
    for parser in subparsers.choices.values():
        for action in parser._actions:
            if action.dest == SETTINGS_DEST and action.default is None:
                action.default = settings
                action.help = (f"{action.help or 'archive settings as JSON'}; default here: the "
                               f"{SETTINGS_VARIABLE} Variable in airflow_settings.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    use_local_stack()
    return product_main(argv, modules=(*SUBCOMMAND_MODULES, *DEV_SUBCOMMAND_MODULES, __name__))
