"""The dev kit's `cosmos-archive` (bin/cosmos-archive): the product's commands pointed at the local stack, plus
`stack`, `seed`, `storage` and `load`."""

from __future__ import annotations

from collections.abc import Sequence

from devstack.targets import use_local_stack
from include.cosmos_archiver.cli.main import SUBCOMMAND_MODULES
from include.cosmos_archiver.cli.main import main as product_main

DEV_SUBCOMMAND_MODULES = ("devstack.cli_stack", "devstack.cli_seed", "devstack.cli_storage", "devstack.business_load")


def main(argv: Sequence[str] | None = None) -> int:
    use_local_stack()
    return product_main(argv, modules=(*SUBCOMMAND_MODULES, *DEV_SUBCOMMAND_MODULES))
