"""Which capacity mode the Cosmos DB account runs in: set in the ``cosmos_archive_ru`` Variable, or read from Azure.

The mode decides what protects the business besides the archiver's own pacing (ru/settings.py): run as
``provisioned`` on a serverless account, the archiver has no cap and its priority header protects nothing (Azure
offers no priority-based execution on serverless). So the archiver never guesses: ``account_mode`` is set, or it is
read from the account's ARM resource (``resource_id``) through azure-mgmt-cosmosdb — a serverless account lists the
capability ``EnableServerless`` (Microsoft Learn, cosmos-db/how-to-create-serverless: ``--capabilities
EnableServerless``). Reading needs the Reader role (Microsoft.DocumentDB/databaseAccounts/read) on the account.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.ru.settings import ACCOUNT_MODES

SERVERLESS_CAPABILITY = "EnableServerless"
ARM_ACCOUNT_ID = ("/subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.DocumentDB/"
                  "databaseAccounts/<account>")


class AccountModeError(TerminalError, ValueError):
    """The account's capacity mode is not known: the message names the setting, its two values and how to find it."""


def mode_from_capabilities(capabilities: Iterable[Any]) -> str:
    """``serverless`` when the account's capabilities include EnableServerless, else ``provisioned``."""
    names = {str(getattr(c, "name", None) or (c.get("name") if isinstance(c, dict) else c)) for c in capabilities}
    return "serverless" if SERVERLESS_CAPABILITY in names else "provisioned"


def parse_account_id(resource_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, account) of a Cosmos DB account's ARM id."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if (len(parts) != 8 or lowered[0] != "subscriptions" or lowered[2] != "resourcegroups"
            or lowered[4:7] != ["providers", "microsoft.documentdb", "databaseaccounts"]):
        raise AccountModeError(f"resource_id={resource_id!r} is not a Cosmos DB account's ARM id ({ARM_ACCOUNT_ID})")
    return parts[1], parts[3], parts[7]


def read_account_mode(resource_id: str, credential: Any = None, **client_kwargs: Any) -> str:
    """The account's mode from Azure Resource Manager (``client_kwargs``: e.g. ``base_url`` of another cloud)."""
    from azure.mgmt.cosmosdb import CosmosDBManagementClient

    subscription, group, name = parse_account_id(resource_id)
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    with CosmosDBManagementClient(credential, subscription, **client_kwargs) as client:
        account = client.database_accounts.get(group, name)
    return mode_from_capabilities(getattr(account.properties, "capabilities", None) or [])


def missing_mode_message(variable: str) -> str:
    return (
        f"account_mode is not set in the {variable} Variable and no resource_id is configured to read it from the "
        f"account: set account_mode to one of {', '.join(repr(m) for m in ACCOUNT_MODES)} (the account's capacity "
        "mode: Azure portal > the Cosmos DB account > Overview > Capacity mode), or set resource_id (and "
        "metrics_endpoint) so it is read from the account's capabilities. The archiver does not guess: as "
        "'provisioned' on a serverless account it would have no cap and its priority header would protect nothing"
    )
