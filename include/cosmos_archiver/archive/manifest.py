"""The per-slice manifest written next to the data: what was archived, how to prove it, and what it cost.

The manifest is written last, after every data file is uploaded, so its presence marks a complete copy; its
``status`` moves from ``copied`` to ``verified`` (or ``failed``) when the slice is validated.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

MANIFEST_VERSION = 1
MANIFEST_NAME = "_manifest.json"
Status = Literal["copied", "verified", "failed"]


@dataclass
class FileEntry:
    path: str
    sha256: str
    bytes: int
    records: int


@dataclass
class RecordEntry:
    partition_key: str
    id: str
    sha256: str
    file: int  # index into Manifest.files


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

    @property
    def file_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False).encode()

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
        return cls(**raw)

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
            "digest": self.slice_digest,
            "seconds": round(self.timings_s.get("total", 0.0), 3),
        }
