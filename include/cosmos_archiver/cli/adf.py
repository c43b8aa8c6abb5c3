"""`cosmos-archive adf deploy`: publish the ADF pipeline definitions (include/cosmos_archiver/adf/resources/) to a
data factory."""

from __future__ import annotations

import argparse
from typing import Any

from include.cosmos_archiver.cli.main import UsageError


def register(subparsers: Any) -> None:
    from include.cosmos_archiver.settings import ArchiveSettings

    defaults = ArchiveSettings()
    adf = subparsers.add_parser("adf", help="Azure Data Factory copy path")
    adf_sub = adf.add_subparsers(dest="adf_command", required=True)
    deploy = adf_sub.add_parser(
        "deploy",
        help="create/update the linked services, datasets and the cosmos_archive_copy pipeline",
        description="Authenticates with DefaultAzureCredential (az login, managed or workload identity). The Cosmos "
        "DB key is never passed here: the factory reads it from Key Vault (secret --cosmos-key-secret-name) and "
        "writes to Blob Storage with its managed identity.",
    )
    deploy.add_argument("--subscription-id", required=True)
    deploy.add_argument("--resource-group", required=True)
    deploy.add_argument("--factory", required=True, help="data factory name")
    deploy.add_argument("--cosmos-endpoint", required=True, help="https://<account>.documents.azure.com:443/")
    deploy.add_argument("--key-vault-url", required=True, help="https://<vault>.vault.azure.net/")
    deploy.add_argument("--blob-endpoint", required=True, help="https://<account>.blob.core.windows.net/")
    deploy.add_argument("--cosmos-key-secret-name", default="cosmos-archive-account-key")
    deploy.add_argument("--database", default=defaults.database)
    deploy.add_argument("--container", default=defaults.container)
    deploy.add_argument("--blob-container", default=defaults.blob_container)
    deploy.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    deploy.add_argument("--local-base-url", help=argparse.SUPPRESS)  # the loopback stand-in (tests, local stack)
    deploy.set_defaults(func=run_deploy)


def _https_url(option: str, value: str) -> str:
    if not value.startswith("https://"):
        raise UsageError(f"{option}={value!r} must be an https:// URL")
    return value


def run_deploy(args: argparse.Namespace) -> int:
    from azure.core.exceptions import HttpResponseError

    from include.cosmos_archiver.adf.definitions import DefinitionError, load_definitions, render
    from include.cosmos_archiver.adf.deploy import DeployError, Target, deploy

    values = {
        "cosmosEndpoint": _https_url("--cosmos-endpoint", args.cosmos_endpoint),
        "keyVaultUrl": _https_url("--key-vault-url", args.key_vault_url),
        "blobServiceEndpoint": _https_url("--blob-endpoint", args.blob_endpoint),
        "cosmosKeySecretName": args.cosmos_key_secret_name,
        "cosmosDatabase": args.database,
        "cosmosContainer": args.container,
        "blobContainer": args.blob_container,
    }
    target = Target(args.subscription_id, args.resource_group, args.factory)
    try:
        resources = render(load_definitions(), values)
        client = None if args.dry_run else _client(args)
        deploy(client, target, resources, dry_run=args.dry_run)
    except (DefinitionError, DeployError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except HttpResponseError as exc:  # authentication, authorisation and validation errors from the factory
        raise UsageError(f"the data factory refused the deployment: {exc.message}") from None
    return 0


def _client(args: argparse.Namespace) -> Any:
    if args.local_base_url:
        from include.cosmos_archiver.adf.management_client import local_management_client

        return local_management_client(args.local_base_url, args.subscription_id)
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.datafactory import DataFactoryManagementClient

    return DataFactoryManagementClient(DefaultAzureCredential(), args.subscription_id)
