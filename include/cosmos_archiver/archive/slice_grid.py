"""One grid per archive: every slice under a blob prefix spans the same ``slice_hours``.

Slice ids name only a slice's start (``2025/03/01`` is a day of a 24 h grid and the first 6 hours of a 6 h one), so
a changed ``slice_hours`` would plan new slices across archived ones: records archived twice, a census that counts
a verified slice's range wrong, remainders that no run sweeps. Planning and the census refuse such a change.
"""

from __future__ import annotations

import datetime as dt

from include.cosmos_archiver.errors import TerminalError

METADATA_KEY = "slice_hours"  # in each manifest's blob metadata (Manifest.blob_metadata)


class SliceGridError(TerminalError, ValueError):
    pass


def slice_hours_between(start: str, end: str) -> int:
    """The length in hours of a slice given by its ISO 8601 bounds (as a manifest stores them)."""
    return int((dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)) / dt.timedelta(hours=1))


def check_slice_grid(metadata: dict[str, dict[str, str]], slice_hours: int, prefix: str) -> None:
    """Raise SliceGridError when a manifest under ``prefix`` was written for another ``slice_hours``.

    ``metadata``: slice id -> manifest blob metadata (ArchiveStore.manifest_metadata); manifests written before the
    length was recorded there are not judged.
    """
    other = sorted((sid, meta[METADATA_KEY]) for sid, meta in metadata.items()
                   if meta.get(METADATA_KEY, str(slice_hours)) != str(slice_hours))
    if other:
        example, hours = other[0]
        raise SliceGridError(
            f"slice_hours={slice_hours}, but {len(other)} archived slice(s) under blob prefix {prefix!r} span "
            f"{hours} h (e.g. {example}): set slice_hours back to {hours}, or archive the new grid under another "
            "blob_prefix"
        )
