"""Create or update the archive's linked services, datasets and pipeline in a data factory, in dependency order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.datafactory import DataFactoryManagementClient

from include.cosmos_archiver.adf.definitions import Resource, unknown_fields
from include.cosmos_archiver.errors import TerminalError


class DeployError(TerminalError, RuntimeError):
    pass


@dataclass(frozen=True)
class Target:
    subscription_id: str
    resource_group: str
    factory: str

    def describe(self) -> str:
        return (
            f"factory {self.factory!r} in resource group {self.resource_group!r} (subscription {self.subscription_id})"
        )


def check_resources(resources: list[Resource]) -> None:
    """Refuse to deploy a definition with properties the SDK model does not know (a typo ADF would reject)."""
    problems = [f"{r.kind} {r.name}: {p}" for r in resources for p in unknown_fields(r.model())]
    if problems:
        raise DeployError("definitions have unknown properties: " + "; ".join(problems))


def deploy(
    client: DataFactoryManagementClient | None,
    target: Target,
    resources: list[Resource],
    *,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """PUT every resource (already rendered and in dependency order); return the lines printed.

    With ``dry_run`` nothing is sent and ``client`` may be None: the plan is printed only.
    """
    check_resources(resources)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        echo(line)

    say(f"{'plan for' if dry_run else 'deploying to'} {target.describe()}:")
    if not dry_run:
        if client is None:
            raise DeployError("a management client is required unless dry_run is set")
        try:
            client.factories.get(target.resource_group, target.factory)
        except ResourceNotFoundError:
            raise DeployError(
                f"{target.describe()} does not exist or is not visible to this identity; create the factory "
                "(with a system-assigned managed identity) first, or check --resource-group/--factory"
            ) from None
    operations = {
        "linkedService": lambda r: client.linked_services.create_or_update(  # type: ignore[union-attr]
            target.resource_group, target.factory, r.name, r.model()
        ),
        "dataset": lambda r: client.datasets.create_or_update(  # type: ignore[union-attr]
            target.resource_group, target.factory, r.name, r.model()
        ),
        "pipeline": lambda r: client.pipelines.create_or_update(  # type: ignore[union-attr]
            target.resource_group, target.factory, r.name, r.model()
        ),
    }
    for index, resource in enumerate(resources, 1):
        kind_type = resource.body["properties"].get("type", "Pipeline")
        prefix = f"  {index}. {resource.kind} {resource.name} ({kind_type})"
        if dry_run:
            say(f"{prefix}: would create or update")
            continue
        result = operations[resource.kind](resource)
        say(f"{prefix}: created/updated (etag {getattr(result, 'etag', None) or '-'})")
    say("dry run: nothing was changed" if dry_run else f"done: {len(resources)} resources deployed")
    return lines
