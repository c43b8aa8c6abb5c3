"""A slice's purge progress, beside its manifest: what left Cosmos DB, what stayed, and why.

Every outcome is kept with the record's partition key, id and the ``_etag`` it was archived with:

- ``purged`` (deleted) or ``stubbed`` (replaced by a pointer): the archived version left Cosmos;
- ``changed``: Cosmos refused the conditional write (412): the record changed after its copy, it stays in Cosmos
  and a later generation archives the new version (then it is purged under its new etag);
- ``gone``: Cosmos answered 404: already deleted by someone else (or by this purge just before a kill, see below).

The log is JSON Lines in Blob *append* blobs, ``_purge-NNNNN.jsonl``: each save appends only the outcomes since the
last one (one Append Block) and a status line (mode, generation, state, RU so far), so a purge of N records writes
O(N) bytes — rewriting one ``_purge.json`` whole every few records wrote O(N^2), and with Blob versioning on kept
each rewrite as a version (Append Block creates no new version: Microsoft Learn, versioning-overview). Each purge
session (a run, or the resume of a killed one) appends to a new chunk, and a chunk is closed before the append blob's
limit of 50,000 blocks (Microsoft Learn, understanding-block-blobs--append-blobs--and-page-blobs). A killed purge
resumes from the chunks, read in order (and from a ``_purge.json`` an earlier version left): records already logged
with the etag being purged are skipped. A record deleted after the last save and before the kill is found gone (404)
on resume and logged ``gone``: nothing is redone twice, nothing is lost (it is in the verified archive), only its
label differs. An append block is written whole or not at all, so a chunk never ends in half a line.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContentSettings

from include.cosmos_archiver.archive.store import ArchiveStore

LEGACY_LOG_NAME = "_purge.json"  # whole-file log of earlier versions: still read on resume, never written
CHUNK_PREFIX, CHUNK_SUFFIX = "_purge-", ".jsonl"
MAX_BLOCKS_PER_CHUNK = 49_000  # an append blob takes at most 50,000 blocks
MAX_BLOCK_BYTES = 4 * 1024 * 1024  # one Append Block (4 MiB on every service version)
Outcome = Literal["purged", "stubbed", "changed", "gone"]
OUTCOMES: tuple[Outcome, ...] = ("purged", "stubbed", "changed", "gone")
STATUS_FIELDS = ("mode", "generation", "state", "ru_charged", "started_at", "updated_at")


def purge_log_path(store: ArchiveStore, slice_id: str) -> str:
    """Where the slice's purge log is: its chunks ``_purge-*.jsonl`` (for the manifest and people)."""
    return f"{store.slice_dir(slice_id)}/{CHUNK_PREFIX}*{CHUNK_SUFFIX}"


def chunk_path(store: ArchiveStore, slice_id: str, index: int) -> str:
    return f"{store.slice_dir(slice_id)}/{CHUNK_PREFIX}{index:05d}{CHUNK_SUFFIX}"


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
    unsaved: list[list[str | None]] = field(default_factory=list, repr=False)  # [outcome, pk, id, etag] lines
    chunk: int = -1  # the chunk this session appends to (-1: none yet)
    chunk_blocks: int = 0  # blocks appended to it
    chunks_seen: int = 0  # chunks already in the store when the log was read: this session starts a new one

    def done(self) -> dict[tuple[str, str], str | None]:
        """(partition key, id) -> the etag of its last logged outcome."""
        seen: dict[tuple[str, str], str | None] = {}
        for outcome in OUTCOMES:
            for pk, rid, etag in self.outcomes.get(outcome, []):
                seen[(str(pk), str(rid))] = etag
        return seen

    def add(self, outcome: Outcome, pk: str, rid: str, etag: str | None) -> None:
        self._record(outcome, pk, rid, etag)
        self.unsaved.append([outcome, pk, rid, etag])

    def _record(self, outcome: str, pk: str | None, rid: str | None, etag: str | None) -> None:
        self.outcomes.setdefault(outcome, []).append([pk, rid, etag])

    def counts(self) -> dict[str, int]:
        return {o: len(self.outcomes.get(o, [])) for o in OUTCOMES}

    def status(self) -> dict[str, Any]:
        return {"slice_id": self.slice_id, **{name: getattr(self, name) for name in STATUS_FIELDS}}

    def apply(self, line: Any) -> None:
        """One line of a chunk: an outcome ``[outcome, pk, id, etag]`` or a status object."""
        if isinstance(line, list):
            self._record(*line)
        else:
            for name in STATUS_FIELDS:
                if name in line:
                    setattr(self, name, line[name])

    @classmethod
    def from_legacy_json(cls, data: bytes) -> PurgeLog:
        """A whole-file ``_purge.json`` of an earlier version."""
        return cls(**json.loads(data))


def _lines(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows).encode()


def read_purge_log(store: ArchiveStore, slice_id: str) -> PurgeLog | None:
    """The slice's purge log from its chunks (after a legacy ``_purge.json``, if one is there); None if it has none."""
    folder = store.slice_dir(slice_id) + "/"
    try:
        log: PurgeLog | None = PurgeLog.from_legacy_json(store.download(folder + LEGACY_LOG_NAME))
    except ResourceNotFoundError:
        log = None
    chunks = sorted(b.name for b in store.container.list_blobs(name_starts_with=folder + CHUNK_PREFIX)
                    if b.name.endswith(CHUNK_SUFFIX) and "/" not in b.name[len(folder):])
    if not chunks:
        return log
    log = log or PurgeLog(slice_id)
    for name in chunks:
        for text in store.download(name).decode().splitlines():
            if text.strip():
                log.apply(json.loads(text))
    log.chunks_seen = int(chunks[-1][len(folder) + len(CHUNK_PREFIX):-len(CHUNK_SUFFIX)]) + 1
    return log


def write_purge_log(store: ArchiveStore, log: PurgeLog) -> int:
    """Append the outcomes since the last save and the status to this session's chunk; the bytes appended."""
    log.updated_at = _now()
    rows: list[Any] = [*log.unsaved, log.status()]
    blocks: list[bytes] = []
    for row in rows:  # blocks of whole lines, each within an append block's limit
        line = _lines([row])
        if blocks and len(blocks[-1]) + len(line) <= MAX_BLOCK_BYTES:
            blocks[-1] += line
        else:
            blocks.append(line)
    for block in blocks:
        if log.chunk < 0 or log.chunk_blocks >= MAX_BLOCKS_PER_CHUNK:
            log.chunk = max(log.chunk + 1, log.chunks_seen)
            log.chunk_blocks = 0
            store.container.get_blob_client(chunk_path(store, log.slice_id, log.chunk)).create_append_blob(
                content_settings=ContentSettings(content_type="application/x-ndjson"))
        store.container.get_blob_client(chunk_path(store, log.slice_id, log.chunk)).append_block(
            block, validate_content=True)
        log.chunk_blocks += 1
    log.unsaved.clear()
    return sum(len(b) for b in blocks)
