"""The per-slice manifest written next to the data: what was archived, how to prove it, and what it cost.

The manifest is written last, after every data file is uploaded, so its presence marks a complete copy; its
``status`` moves from ``copied`` to ``verified`` (or ``failed``) when the slice is validated.

Generations (convergence after a purge): what a purge leaves in a slice's range (records changed after their
copy, late inserts) is archived by a later run as generation N+1 of the same slice, appended to the verified files
and records of generations 0..N, which are kept as they are. ``verified_generation`` is the newest generation
proven; ``status`` describes the newest generation. A record archived twice has an entry per generation: the
newest generation wins (:meth:`Manifest.latest_records`) for reads, restore and summaries.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from include.cosmos_archiver.archive.canonical import printable
from include.cosmos_archiver.archive.slice_grid import METADATA_KEY as SLICE_HOURS_KEY
from include.cosmos_archiver.archive.slice_grid import slice_hours_between

MANIFEST_VERSION = 1
MANIFEST_NAME = "_manifest.json"
Status = Literal["copied", "verified", "failed"]


@dataclass
class FileEntry:
    path: str
    sha256: str
    bytes: int
    records: int
    generation: int = 0


@dataclass
class RecordEntry:
    partition_key: str
    id: str
    sha256: str
    file: int  # index into Manifest.files
    etag: str | None = None  # the source's _etag when copied (local executor): the purge's If-Match
    generation: int = 0


@dataclass
class LeftOutEntry:
    """A document of the slice's range the copy could not archive (see canonical.archivable_json): it stays in
    Cosmos DB, is never purged, and validation lists it instead of failing the slice."""

    partition_key: str
    id: str
    reason: str
    etag: str | None = None
    ts: int | None = None
    generation: int = 0


def left_out_name(entry: LeftOutEntry) -> str:
    """``partition key/id: reason``, printable (a lone surrogate in an id or key is written ``\\udxxx``)."""
    return printable(f"{entry.partition_key}/{entry.id}: {entry.reason}")


def latest_entries(records: list[RecordEntry]) -> dict[tuple[str, str], RecordEntry]:
    """(partition key, id) -> the entry of the newest generation among ``records``: the newest version wins."""
    latest: dict[tuple[str, str], RecordEntry] = {}
    for entry in sorted(records, key=lambda r: r.generation):
        latest[(entry.partition_key, entry.id)] = entry
    return latest


@dataclass
class Manifest:
    slice_id: str
    slice_start: str
    slice_end: str
    timestamp_field: str
    source: dict[str, str]
    status: Status
    record_count: int
    record_bytes: int
    slice_digest: str
    ru_charged: float
    throttled_requests: int
    files: list[FileEntry]
    records: list[RecordEntry]
    timings_s: dict[str, float]
    copied_at: str
    tool_version: str
    executor: str = "local"
    validation: dict[str, Any] | None = None
    manifest_version: int = MANIFEST_VERSION
    notes: list[str] = field(default_factory=list)
    generation: int = 0  # the newest generation (0 = the first copy)
    verified_generation: int = -1  # the newest generation validation proved (-1: none)
    ru_steps: dict[str, float] = field(default_factory=dict)  # RU per step: copy, validate, purge (cumulative)
    purge: dict[str, Any] | None = None  # the last purge's summary (its generation, state, counts, RU)
    replica: dict[str, Any] | None = None  # the verified replica (archive.replica): container, generation, files
    generation_bytes: dict[str, int] = field(default_factory=dict)  # generation -> its records' JSON bytes
    left_out: list[LeftOutEntry] = field(default_factory=list)  # the newest generation's unarchivable documents
    # Epoch second from which a source document counts as written during or after the newest generation's copy
    # (validation: changed, not a failure). None: written before this field existed (validation derives it).
    read_since: int | None = None
    # what the newest generation's copy read from each partition key range (range key -> documents its range query
    # placed), whether it read other spellings and how many: validation's index-served count proof (local copies)
    source_counts: dict[str, Any] | None = None

    @property
    def file_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_json(self) -> bytes:
        data = asdict(self)
        try:
            return json.dumps(data, indent=1, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # an id or key with a lone surrogate (a left-out document): \u-escaped, exact
            return json.dumps(data, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        if raw.get("manifest_version") != MANIFEST_VERSION:
            raise ValueError(
                f"manifest version {raw.get('manifest_version')!r} is not {MANIFEST_VERSION}; "
                "upgrade cosmos-archive to read it"
            )
        raw["files"] = [FileEntry(**f) for f in raw["files"]]
        raw["records"] = [RecordEntry(**r) for r in raw["records"]]
        raw["left_out"] = [LeftOutEntry(**r) for r in raw.get("left_out", [])]
        if "verified_generation" not in raw:  # written before generations existed
            raw["verified_generation"] = 0 if raw.get("status") == "verified" else -1
        return cls(**raw)

    def copy_read_since(self) -> int:
        """:attr:`read_since`, or for a manifest written without it the second before the copy began (its
        ``copied_at`` less its total time; an ADF copy's indexing time, later than its copy: errs on "unchanged")."""
        if self.read_since is not None:
            return self.read_since
        began = dt.datetime.fromisoformat(self.copied_at).timestamp() - float(self.timings_s.get("total", 0.0))
        return math.floor(began) - 1

    def left_out_versions(self) -> dict[tuple[str, str], str | None]:
        """(partition key, id) -> ``_etag`` of the documents the newest copy set aside: what a range may still hold
        without anything new to archive (a set-aside document changed since is copied again)."""
        return {(e.partition_key, e.id): e.etag for e in self.left_out}

    def add_ru(self, step: str, ru: float) -> None:
        self.ru_steps[step] = round(self.ru_steps.get(step, 0.0) + ru, 2)

    def latest_records(self) -> dict[tuple[str, str], RecordEntry]:
        """(partition key, id) -> the record's entry in the newest generation that holds it."""
        return latest_entries(self.records)

    @property
    def purge_started(self) -> bool:
        """True once a purge has started on any generation: records may have left Cosmos, so the archive's parts
        are the only copy of them; a re-copy must append a generation (local executor), never rebuild the slice
        or rewrite its files (an Azure Data Factory re-run would overwrite its own files)."""
        return self.purge is not None

    @property
    def purged_generation(self) -> int:
        """The newest generation whose purge completed (-1: none)."""
        purge = self.purge or {}
        return int(purge.get("generation", -1)) if purge.get("state") == "complete" else -1

    def blob_metadata(self) -> dict[str, str]:
        """What planning and the run report's progress read from one listing: status, record count and bytes, the
        generations verified/purged, how many documents the copy set aside (they stay in the range), the slice's
        length in hours (its grid) and its RU per step (JSON)."""
        return {"status": self.status, "records": str(self.record_count), "generation": str(self.generation),
                "purged_generation": str(self.purged_generation), "left_out": str(len(self.left_out)),
                SLICE_HOURS_KEY: str(slice_hours_between(self.slice_start, self.slice_end)),
                "record_bytes": str(self.record_bytes), "ru_steps": json.dumps(self.ru_steps, sort_keys=True)}

    def kept_before(self, generation: int) -> tuple[list[FileEntry], list[RecordEntry]]:
        """The files and records of the generations before ``generation``: what a new generation keeps as it is."""
        return ([f for f in self.files if f.generation < generation],
                [r for r in self.records if r.generation < generation])

    def summary(self) -> dict[str, Any]:
        """The line an operator reads in a task log or report."""
        return {
            "slice": self.slice_id,
            "status": self.status,
            "records": self.record_count,
            "record_bytes": self.record_bytes,
            "file_bytes": self.file_bytes,
            "files": len(self.files),
            "ru": round(self.ru_charged, 1),
            "ru_steps": dict(self.ru_steps),
            "generation": self.generation,
            "purge": {k: v for k, v in (self.purge or {}).items() if k in ("state", "counts", "ru_charged")},
            "digest": self.slice_digest,
            "left_out": [left_out_name(e) for e in self.left_out],
            "seconds": round(self.timings_s.get("total", 0.0), 3),
        }
