"""Archive settings: one validated object built from Airflow Variables/params or a plain dict.

Every bad value raises SettingsError naming the key, the value, and what is accepted, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.slices import TimestampKind, validate_field, validate_slice_hours

MiB = 1024 * 1024
PurgeMode = Literal["off", "delete", "stub"]
ValidationMode = Literal["fast", "deep"]
# Read consistency the archiver asks for (x-ms-consistency-level). A request may only weaken the account's default
# (Microsoft Learn, consistency-levels), and reads under Strong or Bounded Staleness cost twice the RU of the others
# (optimize-cost-reads-writes). Eventual is valid on every account and costs 1x; the archiver's safety does not rest
# on read consistency: deletes are conditional on the etag (If-Match, checked at the write) and validation re-reads
# and re-copies on any difference. Session (also 1x) only where the account's default is Session or stronger.
ReadConsistency = Literal["Eventual", "ConsistentPrefix", "Session"]
DOUBLE_COST_CONSISTENCY = ("Strong", "BoundedStaleness")
MIN_LEASE_S, MAX_LEASE_S = 15, 60  # the finite lease durations Blob Storage accepts (slice_lease)
MIN_ENDPOINT_S, MAX_ENDPOINT_S = 10, 3600  # bounds of endpoint_timeout_s
REPLICA_SUFFIX = "-replica"


class SettingsError(TerminalError, ValueError):
    pass


@dataclass(frozen=True)
class ArchiveSettings:
    database: str = "billing"
    container: str = "records"
    partition_key_path: str = "/customerId"
    timestamp_field: str = "_ts"
    timestamp_kind: TimestampKind = "epoch_seconds"
    cutoff_days: int = 90
    slice_hours: int = 24
    lookback_days: int = 730
    blob_container: str = "billing-archive"
    blob_prefix: str = "records"
    page_size: int = 100
    max_file_bytes: int = 128 * MiB
    row_group_bytes: int = 1 * MiB  # small row groups: a point read of an archived record fetches one
    compression_level: int = 1  # zstd 1: twice level 3's speed on billing JSON, within 2 % of its size
    slice_lease_wait_s: int = 900  # how long a copy/validate waits for another run's lease on the same slice
    slice_lease_s: int = 30  # the slice lease's duration: how soon a dead worker's lease expires
    endpoint_timeout_s: int = 180  # how long a Cosmos DB or Blob call keeps retrying an endpoint that does not answer
    purge: PurgeMode = "delete"  # what leaves Cosmos once verified: nothing, the documents, all but a stub
    validation: ValidationMode = "fast"  # fast: archive re-read + ids/etags of the source; deep: full source re-read
    # The purge's second way back (archive.replica): a Blob container holding a hash-verified copy of every part
    # before its records leave Cosmos DB. None: "<blob_container>-replica"; "": no replica (then the storage
    # account must protect the archive: storage_account_id, with versioning, soft delete or an immutability policy).
    replica_container: str | None = None
    storage_account_id: str | None = None  # ARM id of the archive's storage account: its protection is read from it
    read_consistency: ReadConsistency = "Eventual"  # the archiver's reads, never the account's doubling levels

    def __post_init__(self) -> None:
        for name in ("cutoff_days", "slice_hours", "lookback_days", "page_size", "max_file_bytes", "row_group_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingsError(f"{name}={value!r} must be a positive integer")
        try:
            validate_slice_hours(self.slice_hours)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        if self.lookback_days <= self.cutoff_days:
            raise SettingsError(
                f"lookback_days={self.lookback_days} must exceed cutoff_days={self.cutoff_days}: "
                "nothing would be old enough to archive"
            )
        if self.timestamp_kind not in get_args(TimestampKind):
            raise SettingsError(f"timestamp_kind={self.timestamp_kind!r} must be one of {get_args(TimestampKind)}")
        if self.purge not in get_args(PurgeMode):
            raise SettingsError(f"purge={self.purge!r} must be one of {get_args(PurgeMode)} (default 'delete')")
        if self.validation not in get_args(ValidationMode):
            raise SettingsError(
                f"validation={self.validation!r} must be one of {get_args(ValidationMode)} (default 'fast')")
        if self.read_consistency not in get_args(ReadConsistency):
            why = (" (reads under it cost twice the RU; the archiver reads cold data and needs no more than Eventual)"
                   if self.read_consistency in DOUBLE_COST_CONSISTENCY else "")
            raise SettingsError(f"read_consistency={self.read_consistency!r} must be one of "
                                f"{get_args(ReadConsistency)} (default 'Eventual'){why}")
        if not 1 <= self.compression_level <= 22:
            raise SettingsError(f"compression_level={self.compression_level} must be a zstd level 1-22")
        wait, lease = self.slice_lease_wait_s, self.slice_lease_s
        if not isinstance(wait, int) or isinstance(wait, bool) or wait < 0:
            raise SettingsError(f"slice_lease_wait_s={wait!r} must be a whole number of seconds >= 0")
        if not isinstance(lease, int) or isinstance(lease, bool) or not MIN_LEASE_S <= lease <= MAX_LEASE_S:
            raise SettingsError(
                f"slice_lease_s={lease!r} must be {MIN_LEASE_S}-{MAX_LEASE_S} seconds (a finite Blob lease's duration)"
            )
        timeout = self.endpoint_timeout_s
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not MIN_ENDPOINT_S <= timeout <= MAX_ENDPOINT_S:
            raise SettingsError(
                f"endpoint_timeout_s={timeout!r} must be {MIN_ENDPOINT_S}-{MAX_ENDPOINT_S} seconds: how long a task "
                "waits for an unreachable Cosmos DB or Blob Storage endpoint before it fails"
            )
        if not self.partition_key_path.startswith("/"):
            raise SettingsError(
                f"partition_key_path={self.partition_key_path!r} must start with '/', e.g. '/customerId'"
            )
        _check_container_name("blob_container", self.blob_container)
        if self.replica_container:
            _check_container_name("replica_container", self.replica_container)
        elif self.replica_container is None and len(self.blob_container) > 63 - len(REPLICA_SUFFIX):
            raise SettingsError(
                f"blob_container={self.blob_container!r} leaves no room for the replica's default name "
                f"'<blob_container>{REPLICA_SUFFIX}' (63 characters at most): set replica_container")
        if self.storage_account_id is not None and not _is_storage_account_id(self.storage_account_id):
            raise SettingsError(
                f"storage_account_id={self.storage_account_id!r} is not a storage account's ARM id: use "
                "/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/<name>")
        try:
            validate_field(self.timestamp_field)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    @property
    def replica(self) -> str | None:
        """The replica's container name, or None when the archive has none (``replica_container: ""``)."""
        if self.replica_container is None:
            return self.blob_container + REPLICA_SUFFIX
        return self.replica_container or None

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ArchiveSettings:
        """Build from a dict (e.g. an Airflow Variable's JSON); unknown keys are an error, not silently ignored."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SettingsError(f"unknown archive setting(s) {unknown}; known settings are {sorted(known)}")
        converted: dict[str, Any] = {}
        for key, value in values.items():
            default = getattr(cls, key)
            if isinstance(default, str) and not isinstance(value, str):
                raise SettingsError(f"{key}={value!r} must be a string (e.g. {key}={default!r})")
            if isinstance(default, int) and isinstance(value, str):
                try:
                    value = int(value)
                except ValueError:
                    raise SettingsError(f"{key}={value!r} must be an integer") from None
            converted[key] = value
        return cls(**converted)


def _check_container_name(key: str, name: str) -> None:
    # https://learn.microsoft.com/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata
    if not (isinstance(name, str) and 3 <= len(name) <= 63 and name.replace("-", "").isalnum() and name.islower()):
        raise SettingsError(f"{key}={name!r} is not a valid container name: 3-63 lowercase letters, digits and "
                            "hyphens")


def _is_storage_account_id(value: object) -> bool:
    parts = str(value).strip("/").split("/")
    return (isinstance(value, str) and len(parts) == 8 and parts[0].lower() == "subscriptions"
            and parts[2].lower() == "resourcegroups" and parts[4].lower() == "providers"
            and parts[5].lower() == "microsoft.storage" and parts[6].lower() == "storageaccounts")
