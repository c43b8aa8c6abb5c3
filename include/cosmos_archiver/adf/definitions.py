"""Load, check and order the ADF resource definitions kept as JSON in this package's ``resources/`` (ADF git layout).

The files hold ``{{name}}`` placeholders for deployment-specific values (account endpoints, container names), so the
repository carries no environment and no secret; :func:`render` fills them in before deployment.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from azure.mgmt.datafactory import models

from include.cosmos_archiver.errors import TerminalError

DEFINITIONS_DIR = Path(str(resources.files(__package__) / "resources"))  # package data, not a repository path
Kind = Literal["linkedService", "dataset", "pipeline"]
KINDS: tuple[Kind, ...] = ("linkedService", "dataset", "pipeline")  # also the deployment order of kinds
RESOURCE_MODELS: dict[Kind, type] = {
    "linkedService": models.LinkedServiceResource,
    "dataset": models.DatasetResource,
    "pipeline": models.PipelineResource,
}
REFERENCE_KINDS: dict[str, Kind] = {
    "LinkedServiceReference": "linkedService",
    "DatasetReference": "dataset",
    "PipelineReference": "pipeline",
}
PLACEHOLDER_RE = re.compile(r"\{\{([A-Za-z][A-Za-z0-9]*)\}\}")


class DefinitionError(TerminalError, ValueError):
    pass


@dataclass(frozen=True)
class Resource:
    kind: Kind
    name: str
    body: dict[str, Any]
    path: Path | None = None

    def model(self) -> Any:
        """The azure-mgmt-datafactory model (LinkedServiceResource, DatasetResource or PipelineResource)."""
        return RESOURCE_MODELS[self.kind](self.body)

    def references(self) -> set[tuple[Kind, str]]:
        return set(_references(self.body))


def _references(value: Any) -> Iterator[tuple[Kind, str]]:
    if isinstance(value, dict):
        kind = REFERENCE_KINDS.get(value.get("type", "")) if isinstance(value.get("type"), str) else None
        if kind is not None and "referenceName" in value:
            yield kind, value["referenceName"]
        for child in value.values():
            yield from _references(child)
    elif isinstance(value, list):
        for child in value:
            yield from _references(child)


def load_definitions(directory: Path = DEFINITIONS_DIR) -> list[Resource]:
    """Every resource under ``<directory>/{linkedService,dataset,pipeline}/*.json``, in dependency order."""
    resources = []
    for kind in KINDS:
        for path in sorted((directory / kind).glob("*.json")):
            try:
                body = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise DefinitionError(f"{path} is not valid JSON ({exc}); fix the file") from None
            name = body.get("name")
            if name != path.stem or not isinstance(body.get("properties"), dict):
                raise DefinitionError(
                    f'{path} must be {{"name": "{path.stem}", "properties": {{...}}}} (the ADF git layout); '
                    f"found name {name!r}"
                )
            resources.append(Resource(kind, name, body, path))
    if not resources:
        raise DefinitionError(
            f"no ADF definitions found under {directory}; expected linkedService/, dataset/ and pipeline/ folders"
        )
    return deploy_order(resources)


def deploy_order(resources: list[Resource]) -> list[Resource]:
    """Order resources so that everything a resource references is created before it; raise on missing ones."""
    by_key = {(r.kind, r.name): r for r in resources}
    ordered: list[Resource] = []
    state: dict[tuple[Kind, str], str] = {}

    def visit(key: tuple[Kind, str], chain: tuple[str, ...]) -> None:
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            raise DefinitionError(f"reference cycle: {' -> '.join((*chain, key[1]))}")
        state[key] = "visiting"
        for ref in sorted(by_key[key].references()):
            if ref not in by_key:
                raise DefinitionError(
                    f"{key[0]} {key[1]!r} references {ref[0]} {ref[1]!r}, which is not defined; "
                    f"add include/cosmos_archiver/adf/resources/{ref[0]}/{ref[1]}.json or fix the reference"
                )
            visit(ref, (*chain, key[1]))
        state[key] = "done"
        ordered.append(by_key[key])

    for kind in KINDS:
        for resource in resources:
            if resource.kind == kind:
                visit((resource.kind, resource.name), ())
    return ordered


def placeholders(resources: list[Resource]) -> set[str]:
    return {m.group(1) for r in resources for m in PLACEHOLDER_RE.finditer(json.dumps(r.body))}


def render(resources: list[Resource], values: Mapping[str, str]) -> list[Resource]:
    """Fill every ``{{name}}`` placeholder; a missing value is an error naming it."""
    missing = sorted(placeholders(resources) - set(values))
    if missing:
        raise DefinitionError(f"no value for deployment setting(s) {missing}; pass them to `cosmos-archive adf deploy`")

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], value)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return [Resource(r.kind, r.name, fill(copy.deepcopy(r.body)), r.path) for r in resources]


def _concrete_class(cls: type, data: Mapping[str, Any]) -> type:
    """The most specific model class for a discriminated value.

    azure-mgmt-datafactory 10.0.0 only looks one level down (Activity -> "Copy" is registered under
    ExecutionActivity, so an activity deserialises as the bare Activity); search the nested mappings instead.
    """
    discriminator = data.get("type")
    if not isinstance(discriminator, str):
        return cls
    pending, seen = [cls], set()
    while pending:
        current = pending.pop()
        seen.add(current)
        mapping = current.__dict__.get("__mapping__") or {}  # own mapping only: subclasses inherit the attribute
        if discriminator in mapping:
            return mapping[discriminator]
        pending.extend(c for c in mapping.values() if c not in seen)
    return cls


def unknown_fields(model: Any, path: str = "") -> list[str]:
    """JSON paths of keys the SDK model does not define (typos, misplaced properties), searched recursively."""
    problems: list[str] = []
    cls = _concrete_class(type(model), model)
    if cls is not type(model):
        model = cls(dict(model))
    fields = {f._rest_name: attr for attr, f in type(model)._attr_to_rest_field.items()}
    for key in model:
        where = f"{path}.{key}" if path else key
        if key not in fields:
            problems.append(f"{where} (not a property of {type(model).__name__})")
            continue
        problems.extend(_unknown_in_value(getattr(model, fields[key]), where))
    return problems


def _unknown_in_value(value: Any, path: str) -> list[str]:
    if hasattr(value, "_attr_to_rest_field"):  # an SDK model
        return unknown_fields(value, path)
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _unknown_in_value(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _unknown_in_value(v, f"{path}.{k}")]
    return []
