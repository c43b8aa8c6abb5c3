"""Re-open verified slices: archive them again from the source, keeping the old verified copy until the new one is
verified.

For when the census finds documents a verified slice lacks (sealed under a wrong setting, late inserts, changes)
or scrub finds it damaged while its records are still in Cosmos DB (once a slice's purge has started, only what
Cosmos DB still holds is read again, and the result says so). Each slice: its files and manifest are copied
aside to ``<prefix>/_reopened/<slice_id>/<stamp>/`` (the manifest as ``manifest.json``, so planning never takes
the copy for a slice), the slice is copied again (``copy_slice(force=True)``) and validated; only a verified new
copy removes the kept one (and any scrub mark). A new copy that fails validation leaves the old one where the
result says, and the slice is not verified (no purge) until a later re-open or run verifies it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.manifest import MANIFEST_NAME
from include.cosmos_archiver.archive.scrub import clear_scrub_mark
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.ru.budget import RuBudget
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import SLICE_ID_RE, SliceError, TimeSlice, slice_id_start, slice_of

log = logging.getLogger(__name__)
KEPT_FOLDER = "_reopened"


class ReopenError(TerminalError, ValueError):
    """A slice range that cannot be read; the message names it and the accepted forms."""


@dataclass
class ReopenResult:
    slice_id: str
    verified: bool
    records_before: int | None  # None: the slice had no manifest
    records_after: int
    kept_copy: str | None  # where the old copy still is (None once the new copy is verified)
    message: str


def parse_slice_range(text: str, slice_hours: int) -> list[TimeSlice]:
    """Slices ``FROM..TO`` (both included) on the grid; each end a slice id (``2026/02/25``, ``2026/02/25/06``) or
    an ISO date/date-time (``2026-02-25``). A single value is one slice."""
    first, sep, last = text.strip().partition("..")
    last = last if sep else first

    def moment(value: str) -> dt.datetime:
        value = value.strip()
        try:
            if SLICE_ID_RE.match(value):
                return slice_id_start(value)
            parsed = dt.datetime.fromisoformat(value)
        except (ValueError, SliceError):
            raise ReopenError(
                f"slice range {text!r}: {value!r} is neither a slice id (2026/02/25, 2026/02/25/06) nor an ISO date "
                "(2026-02-25); give FROM..TO, e.g. 2026/02/25..2026/02/27") from None
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)

    start, end = moment(first), moment(last)
    if end < start:
        raise ReopenError(f"slice range {text!r} ends before it starts; give FROM..TO with FROM <= TO")
    slices = [slice_of(start, slice_hours)]
    while slices[-1].end <= end:
        slices.append(TimeSlice(slices[-1].end, slices[-1].end + (slices[-1].end - slices[-1].start)))
    return slices


def reopen_slices(
    container: ContainerProxy,
    store: ArchiveStore,
    slices: list[TimeSlice],
    settings: ArchiveSettings,
    *,
    budget: RuBudget | None = None,
    source: dict[str, str] | None = None,
) -> list[ReopenResult]:
    """Re-archive each slice (oldest first) as the module docstring says; one result per slice."""
    return [reopen_slice(container, store, s, settings, budget=budget, source=source) for s in sorted(slices)]


def reopen_slice(
    container: ContainerProxy,
    store: ArchiveStore,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    *,
    budget: RuBudget | None = None,
    source: dict[str, str] | None = None,
) -> ReopenResult:
    slice_id = time_slice.slice_id
    old = store.read_manifest(slice_id)
    kept = _keep_copy(store, slice_id) if old is not None else None
    copy_slice(container, store, time_slice, settings, budget=budget, source=source, force=True)
    result = validate_slice(container, store, time_slice, settings, budget=budget, force=True)
    before = old.record_count if old is not None else None
    if result.ok:
        if kept is not None:
            for blob in list(store.container.list_blobs(name_starts_with=kept + "/")):
                store.delete(blob.name)
        clear_scrub_mark(store, slice_id)
        message = (f"slice {slice_id} re-opened: verified again with {result.sink_count} records "
                   f"(was {before if before is not None else 'not archived'})")
        if old is not None and old.purge_started:
            message += (f"; its purge had started, so only what Cosmos DB still holds in its range was read again "
                        f"({result.source_count} document(s)): the purged records stay as they were archived (a "
                        "damaged file of a purged slice cannot be re-read from Cosmos DB: recover it from Blob "
                        "versioning or soft delete)")
        log.info(message)
        return ReopenResult(slice_id, True, before, result.sink_count, None, message)
    message = (f"slice {slice_id} re-opened but the new copy did not verify ({result.message()}); the previous copy "
               f"is kept at {kept}; re-run the re-open once the cause is fixed")
    log.error(message)
    return ReopenResult(slice_id, False, before, result.sink_count, kept, message)


def _keep_copy(store: ArchiveStore, slice_id: str) -> str:
    """Copy the slice's files and manifest aside; returns the folder."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = f"{store.prefix}/{KEPT_FOLDER}/{slice_id}/{stamp}" if store.prefix else f"{KEPT_FOLDER}/{slice_id}/{stamp}"
    for path in [*store.list_parts(slice_id), store.manifest_path(slice_id)]:
        name = path.rsplit("/", 1)[1]
        target = f"{folder}/{'manifest.json' if name == MANIFEST_NAME else name}"
        store.upload(target, store.download(path), **({"content_type": "application/json"} if path.endswith(".json")
                                                        else {}))
    log.info("slice %s: previous copy kept at %s until the new copy is verified", slice_id, folder)
    return folder
