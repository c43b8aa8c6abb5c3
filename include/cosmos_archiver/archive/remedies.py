"""What to do about a failed check, by its cause: every failure message (validation, purge, scrub, halt) says which
case it is and the remedy for that case.

- ``damaged``: an archive part no longer hashes to its manifest, and no record of it was purged: Cosmos DB still
  holds every record, so the slice is copied again from Cosmos DB automatically; nothing is lost.
- ``damaged_purged``: a part whose records were purged is damaged: Cosmos DB no longer holds them, so copying again
  cannot help and waiting cannot either (no retry, no back-off). It is repaired from the replica (archive.replica)
  or a previous blob version; where neither exists the records at risk are named with how to restore the part.
- ``changed``: records differ between Cosmos DB and the archive, no file damaged (changed, arrived or left after
  their copy, or copied wrong): nothing to do; the slice is copied again and the current versions are archived.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.id_lists import name_ids

Cause = Literal["damaged", "damaged_purged", "changed"]


def remedy(cause: Cause, slice_id: str, records: Iterable[str] = (), not_repaired: str = "") -> str:
    """The case and what to do about it, as one sentence for a log line, a task failure or a notification."""
    why = f" (not repaired: {not_repaired})" if not_repaired else ""
    if cause == "changed":
        return ("Case: records differ between Cosmos DB and the archive (changed in Cosmos DB after their copy, or "
                "copied wrong), no archive file is damaged. Nothing to do: Cosmos DB still holds them, the slice is "
                "copied again and the current versions are archived")
    if cause == "damaged":
        return (f"Case: damaged archive, not purged yet{why}. Cosmos DB still holds every record, nothing is lost: "
                "the slice is copied again from Cosmos DB automatically (by validation, or by the next run once the "
                f"status is clear; cosmos-archive reopen --slices {slice_id} does it by hand); it is purged only "
                "once it verifies")
    return (f"Case: damaged archive of a PURGED slice{why}. Its records are no longer in Cosmos DB, so it is NOT "
            "copied again and not retried; these records are at risk, their only copy is the damaged part: "
            f"{name_ids(sorted(set(records)))}. Restore the part from the replica container or a previous version / "
            "soft-deleted snapshot (Blob versioning / soft delete: az storage blob undelete, or copy the version "
            f"over the blob) or a backup, prove it with cosmos-archive scrub --slice {slice_id} (the scrub repairs "
            "from the replica by itself), then clear the archive status")


def remedy_for_damage(manifest: Manifest, records: Iterable[str], not_repaired: str = "") -> str:
    """The remedy for damaged parts of ``manifest``'s slice (the case follows from its purge)."""
    return remedy("damaged_purged" if manifest.purge_started else "damaged", manifest.slice_id, records,
                  not_repaired)
