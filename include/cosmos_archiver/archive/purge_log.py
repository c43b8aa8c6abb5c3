"""A slice's purge progress, beside its manifest (``_purge.json``): what left Cosmos DB, what stayed, and why.

Every outcome is kept with the record's partition key, id and the ``_etag`` it was archived with:

- ``purged`` (deleted) or ``stubbed`` (replaced by a pointer): the archived version left Cosmos;
- ``changed``: Cosmos refused the conditional write (412): the record changed after its copy, it stays in Cosmos
  and a later generation archives the new version (then it is purged under its new etag);
- ``gone``: Cosmos answered 404: already deleted by someone else (or by this purge just before a kill, see below).

The log is rewritten every few records and at the end, so a killed purge resumes where its last write left it:
records already logged with the etag being purged are skipped. A record deleted after the last write and before
the kill is found gone (404) on resume and logged ``gone``: nothing is redone twice, nothing is lost (it is in the
verified archive), only its label differs.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from azure.core.exceptions import ResourceNotFoundError

from include.cosmos_archiver.archive.store import ArchiveStore

PURGE_LOG_NAME = "_purge.json"
Outcome = Literal["purged", "stubbed", "changed", "gone"]
OUTCOMES: tuple[Outcome, ...] = ("purged", "stubbed", "changed", "gone")


def purge_log_path(store: ArchiveStore, slice_id: str) -> str:
    return f"{store.slice_dir(slice_id)}/{PURGE_LOG_NAME}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class PurgeLog:
    slice_id: str
    mode: str = "delete"
    generation: int = -1  # the manifest generation the latest purge worked on
    state: Literal["running", "complete"] = "running"
    started_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    ru_charged: float = 0.0  # over every purge of the slice
    outcomes: dict[str, list[list[str | None]]] = field(default_factory=lambda: {o: [] for o in OUTCOMES})

    def done(self) -> dict[tuple[str, str], str | None]:
        """(partition key, id) -> the etag of its last logged outcome."""
        seen: dict[tuple[str, str], str | None] = {}
        for outcome in OUTCOMES:
            for pk, rid, etag in self.outcomes.get(outcome, []):
                seen[(str(pk), str(rid))] = etag
        return seen

    def add(self, outcome: Outcome, pk: str, rid: str, etag: str | None) -> None:
        self.outcomes.setdefault(outcome, []).append([pk, rid, etag])

    def counts(self) -> dict[str, int]:
        return {o: len(self.outcomes.get(o, [])) for o in OUTCOMES}

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PurgeLog:
        return cls(**json.loads(data))


def read_purge_log(store: ArchiveStore, slice_id: str) -> PurgeLog | None:
    try:
        return PurgeLog.from_json(store.download(purge_log_path(store, slice_id)))
    except ResourceNotFoundError:
        return None


def write_purge_log(store: ArchiveStore, log: PurgeLog) -> None:
    log.updated_at = _now()
    store.upload(purge_log_path(store, log.slice_id), log.to_json(), content_type="application/json")
