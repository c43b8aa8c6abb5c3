"""Preflight: before any slice task is mapped, prove the settings fit the source container.

- the Cosmos database and container exist (else PreflightError naming both: a terminal error, not retried);
- the container's partition key path is the configured one;
- a sample of the container's documents has the timestamp field, of the configured kind and parseable, and the
  partition key (else PreflightError naming the field and showing a sample document's keys);
- ISO 8601 timestamps in the sample spelt other than canonical UTC are counted (``other_spellings``): the DAG then
  records that the source has them (archive.source_facts), so slice queries look for them.

- a purge has a second way back for every record it removes: a replica, or a storage account that protects the
  archive (else PreflightError naming ``replica_container`` and ``storage_account_id``).

A wrong ``timestamp_field`` therefore cannot seal slices with 0 records; what a sample cannot see (a few odd
documents among many good ones) is counted by source.census.

And the account's capacity mode is known (:func:`require_account_mode`): set in the RU settings or read from the
account, never guessed (a serverless account run as provisioned has no cap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from include.cosmos_archiver.archive.protection import StorageProtection
from include.cosmos_archiver.archive.replica import missing_way_back
from include.cosmos_archiver.clients import endpoint_of, waiting_for
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.ru.account_mode import AccountModeError
from include.cosmos_archiver.ru.governance import RuGovernance
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import MISSING, TimestampError, field_value, is_canonical_iso, timestamp_instant

SAMPLE_SIZE = 20
MIN_GOOD_FRACTION = 0.5  # below this share of good samples the setting is wrong, not a few documents


class PreflightError(TerminalError, ValueError):
    """The settings do not fit the source container (terminal: fix the setting or the container, then re-run)."""


@dataclass
class PreflightResult:
    sampled: int
    good: int
    problems: dict[str, list[str]] = field(default_factory=dict)  # "<reason>" -> sample ids
    other_spellings: int = 0  # sampled ISO 8601 timestamps not in the canonical UTC spelling

    def line(self) -> str:
        bad = "; ".join(f"{len(ids)} {reason}: {', '.join(ids[:5])}" for reason, ids in self.problems.items())
        return f"preflight: {self.good} of {self.sampled} sampled documents fit the settings" + (
            f" ({bad}; the census counts all of them)" if bad else "")


def require_account_mode(governance: RuGovernance, variable: str, **read: Any) -> RuGovernance:
    """The RU settings with ``account_mode`` known (set, or read from the account); PreflightError naming the setting
    and its two values when it is neither. ``read``: RuGovernance.resolve_account_mode's reader (tests)."""
    try:
        return governance.resolve_account_mode(variable, **read)
    except AccountModeError as exc:
        raise PreflightError(f"{exc}; nothing was archived") from None


def _where(container: ContainerProxy, database: str, name: str) -> str:
    return f"database {database!r}, container {name!r} at the Cosmos DB account {endpoint_of(container)}"


def require_container(container: ContainerProxy, database: str, name: str) -> dict[str, Any]:
    """The container's properties; PreflightError naming the database and container when either does not exist."""
    try:
        with waiting_for(f"Cosmos DB at {endpoint_of(container)} (reading container {name!r})"):
            return container.read()
    except CosmosResourceNotFoundError:
        raise PreflightError(
            f"{_where(container, database, name)} does not exist: check the archive settings 'database' and "
            "'container' (and the connection's account), or create the container; nothing was archived"
        ) from None


def check_source(container: ContainerProxy, settings: ArchiveSettings, *, sample: int = SAMPLE_SIZE) -> PreflightResult:
    """Raise PreflightError when the container is missing or the settings do not fit its documents."""
    where = _where(container, settings.database, settings.container)
    properties = require_container(container, settings.database, settings.container)
    paths = (properties.get("partitionKey") or {}).get("paths") or []
    if paths and paths[0] != settings.partition_key_path:
        raise PreflightError(
            f"{where} is partitioned by {paths[0]!r}, but the setting partition_key_path is "
            f"{settings.partition_key_path!r}: set partition_key_path to {paths[0]!r}"
        )
    docs = list(container.query_items(f"SELECT TOP {int(sample)} * FROM c", enable_cross_partition_query=True))
    result = PreflightResult(sampled=len(docs), good=0)
    if not docs:
        return result  # an empty container: nothing to archive, nothing to check
    pk_field = settings.partition_key_path.strip("/").replace("/", ".")
    for doc in docs:
        doc_id = str(doc.get("id"))
        value = field_value(doc, settings.timestamp_field)
        try:
            timestamp_instant(value, settings.timestamp_kind, settings.timestamp_field)
        except TimestampError as exc:
            result.problems.setdefault(exc.problem, []).append(doc_id)
            continue
        result.other_spellings += settings.timestamp_kind == "iso8601" and not is_canonical_iso(value)
        if field_value(doc, pk_field) is MISSING:
            result.problems.setdefault("partition_key_missing", []).append(doc_id)
            continue
        result.good += 1
    if result.good < MIN_GOOD_FRACTION * len(docs):
        raise PreflightError(_explain(result, docs, settings, where))
    return result


def _explain(result: PreflightResult, docs: list[dict[str, Any]], settings: ArchiveSettings, where: str) -> str:
    reason, ids = max(result.problems.items(), key=lambda item: len(item[1]))
    example = next(d for d in docs if str(d.get("id")) == ids[0])
    keys = sorted(k for k in example if not k.startswith("_") or k == settings.timestamp_field)
    value = field_value(example, settings.timestamp_field)
    if reason == "partition_key_missing":
        what = (f"the partition key {settings.partition_key_path!r} is missing in {len(ids)} of {result.sampled} "
                "sampled documents")
        fix = "check partition_key_path"
    else:
        what = (f"timestamp_field={settings.timestamp_field!r} ({settings.timestamp_kind}) does not fit "
                f"{len(ids)} of {result.sampled} sampled documents ({reason.replace('_', ' ')}; e.g. "
                f"{settings.timestamp_field}={value!r})")
        fix = "set timestamp_field/timestamp_kind to the property that holds each record's date"
    return (f"preflight of {where}: {what}; a sample document ({ids[0]!r}) has the keys {keys}: {fix}; "
            "nothing was archived")


def check_way_back(settings: ArchiveSettings, protection: StorageProtection | None = None) -> str:
    """What keeps purged records recoverable without Cosmos DB (a line for the log); PreflightError naming the
    missing setting when a purge would leave them with no second way back (archive.replica)."""
    missing = missing_way_back(settings, protection)
    if missing:
        raise PreflightError(missing)
    if settings.purge == "off":
        return "purge is off: nothing leaves Cosmos DB"
    parts = []
    if settings.replica is not None:
        parts.append(f"a verified replica in container {settings.replica!r} before each purge")
    if protection is not None:
        parts.append(protection.describe())
    return "way back for purged records: " + "; ".join(parts)
