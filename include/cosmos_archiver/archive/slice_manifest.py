"""Assemble a copied slice's manifest, the same way for every copy engine (the local executor, an ADF run).

A copy engine writes the slice's Parquet files, removes the parts an earlier copy left (:func:`remove_stale_parts`),
then builds the manifest from what it wrote (:func:`copied_manifest`) and commits it last: its presence marks a
complete copy with status ``copied``, which validation moves on to ``verified`` or ``failed``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable

from include.cosmos_archiver import __version__
from include.cosmos_archiver.archive.canonical import slice_digest
from include.cosmos_archiver.archive.manifest import FileEntry, LeftOutEntry, Manifest, RecordEntry, latest_entries
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice


def remove_stale_parts(store: ArchiveStore, slice_id: str, *, keep: Callable[[str], bool], left_by: str) -> list[str]:
    """Delete the slice folder's Parquet files that ``keep`` rejects (hold the slice's lease); a note for each."""
    notes = []
    for stale in store.list_parts(slice_id):
        if not keep(stale):
            store.delete(stale)
            notes.append(f"removed stale part {stale} from {left_by}")
    return notes


def read_since_of(*moments: float) -> int:
    """The epoch second from which a source document counts as written during or after a copy that began at the
    earliest of ``moments`` (our clock, the server's Date, ADF's ``runStart``): less a second, as ``_ts`` and those
    clocks have whole seconds. Erring early only counts more records as changed, which keeps them in Cosmos DB for a
    later generation."""
    return math.floor(min(moments)) - 1


def copied_manifest(
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    *,
    files: list[FileEntry],
    records: Iterable[RecordEntry],
    record_bytes: int,
    timings_s: dict[str, float],
    notes: list[str],
    executor: str = "local",
    source: dict[str, str] | None = None,
    ru_charged: float = 0.0,
    throttled_requests: int = 0,
    base: Manifest | None = None,
    generation: int = 0,
    left_out: list[LeftOutEntry] | None = None,
    read_since: int | None = None,
) -> Manifest:
    """The ``copied`` manifest of a slice whose ``files`` hold ``records``.

    ``left_out``: the documents of the range the copy could not archive; ``read_since``: the epoch second from which
    a source document counts as written during or after this copy (see Manifest.read_since).
    With ``base`` (the slice's manifest whose verified generations are kept), the new generation's files and records
    come after the kept ones; count and digest are over the newest version of each record (newest wins).
    """
    kept_files, kept_records = base.kept_before(generation) if base is not None else ([], [])
    new_records = list(records)
    all_records = kept_records + new_records
    per_generation = {g: b for g, b in (base.generation_bytes if base is not None else {}).items()
                      if int(g) < generation}
    if base is not None and not base.generation_bytes:  # written before bytes were kept per generation
        per_generation = {str(base.generation): base.record_bytes} if base.generation < generation else {}
    per_generation[str(generation)] = record_bytes
    record_bytes = sum(per_generation.values())  # JSON bytes of the kept generations + this one: a re-copy replaces
    if base is not None:
        ru_charged += base.ru_charged
        notes = [*base.notes, f"generation {generation}: {len(new_records)} record(s) changed or arrived after the "
                 f"purge of generation {base.verified_generation}", *notes]
    latest = sorted(latest_entries(all_records).values(), key=lambda r: (r.partition_key, r.id))
    return Manifest(
        slice_id=time_slice.slice_id,
        slice_start=time_slice.start.isoformat(),
        slice_end=time_slice.end.isoformat(),
        timestamp_field=settings.timestamp_field,
        source=source or {"database": settings.database, "container": settings.container},
        status="copied",
        record_count=len(latest),
        record_bytes=record_bytes,
        slice_digest=slice_digest([(r.partition_key, r.id, r.sha256) for r in latest]),
        ru_charged=round(ru_charged, 2),
        throttled_requests=throttled_requests,
        files=kept_files + files,
        records=sorted(all_records, key=lambda r: (r.generation, r.partition_key, r.id)),
        timings_s=timings_s,
        copied_at=dt.datetime.now(dt.UTC).isoformat(),
        tool_version=__version__,
        executor=executor,
        notes=notes,
        generation=generation,
        verified_generation=base.verified_generation if base is not None else -1,
        ru_steps=dict(base.ru_steps) if base is not None else {},
        purge=base.purge if base is not None else None,
        generation_bytes=per_generation,
        left_out=list(left_out or []),
        read_since=read_since,
    )
