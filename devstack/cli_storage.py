"""`cosmos-archive storage`: what the local Cosmos DB container holds (documents, stubs, JSON bytes).

Cosmos DB bills storage per GB of data and index; on Azure read the container's DataUsage metric. The local server
reports none, so this counts the documents' JSON bytes, read straight from cosmosdb-server (no RU booked).
"""

from __future__ import annotations

import argparse
import json

from azure.cosmos import ContainerProxy

from devstack.targets import local_container
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.source.preflight import require_container
from include.cosmos_archiver.source.reader import STUB_MARKER


def stored_bytes(container: ContainerProxy) -> tuple[int, int, int]:
    """(documents, of which purge stubs, JSON bytes of all of them)."""
    documents = stubs = size = 0
    for doc in container.query_items("SELECT * FROM c", enable_cross_partition_query=True):
        documents += 1
        stubs += STUB_MARKER in doc
        size += len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())
    return documents, stubs, size


def _run(args: argparse.Namespace) -> int:
    settings = ArchiveSettings(database=args.database, container=args.container)
    container = local_container(settings, bypass_gateway=True)
    require_container(container, settings.database, settings.container)  # a missing one is named, not a 404
    documents, stubs, size = stored_bytes(container)
    print(f"{args.label + ': ' if args.label else ''}Cosmos DB {settings.database}/{settings.container} holds "
          f"{documents} documents ({stubs} purge stubs), {size / 1e6:.1f} MB JSON")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("storage", help="count the local container's documents and JSON bytes")
    parser.add_argument("--database", default="billing")
    parser.add_argument("--container", default="records")
    parser.add_argument("--label", default="", help="a word printed before the line, e.g. before/after")
    parser.set_defaults(func=_run)
