"""The archive's run status (Running / Failed / Halted) and the rule that halts the remaining slices.

Slices are archived oldest first. When slice k fails validation persistently, the status becomes Failed, then
Halted once the operator has been notified; every slice newer than k that has not started is skipped, so the
verified archive stays a contiguous prefix of time. A Halted status blocks later runs until an operator clears
it (sets it to Running, or deletes the Variable). ``slice_workflow`` makes the transitions; this module holds the
value and the skip rule.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

HALT_NOTE_KEY = "cosmos_archive_halt"  # XCom: a halted run's note (read by plugins/cosmos_archive_ui.py)
State = Literal["Running", "Failed", "Halted"]
STATES: tuple[State, ...] = ("Running", "Failed", "Halted")
CLEAR_HINT = (
    "after fixing the cause, clear it from the Airflow UI (Admin > Variables: set cosmos_archive_status to "
    '{"status": "Running"}) or run: airflow variables delete cosmos_archive_status'
)


@dataclass(frozen=True)
class ArchiveStatus:
    status: State = "Running"
    run_id: str | None = None
    failed_slice: str | None = None
    failed_slice_start: str | None = None
    reason: str | None = None
    since: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | None) -> ArchiveStatus:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = {"status": raw.strip()}
        if data.get("status") not in STATES:
            raise ValueError(
                f"archive status {data.get('status')!r} is not one of {STATES}; {CLEAR_HINT}"
            )
        return cls(**{k: data.get(k) for k in asdict(cls())})

    def failed(
        self, run_id: str, slice_id: str, slice_start: str, reason: str, *, at: dt.datetime | None = None
    ) -> ArchiveStatus:
        since = at or dt.datetime.now(dt.UTC)
        return ArchiveStatus("Failed", run_id, slice_id, slice_start, reason, since.isoformat(timespec="seconds"))

    def halted(self) -> ArchiveStatus:
        return ArchiveStatus("Halted", self.run_id, self.failed_slice, self.failed_slice_start, self.reason,
                             self.since)


def halt_reason(status: ArchiveStatus, run_id: str, slice_start: dt.datetime) -> str | None:
    """Why this slice must not start, or None if it may."""
    if status.status == "Running":
        return None
    if status.run_id != run_id:
        return (f"the archive is {status.status} since {status.since} because slice {status.failed_slice} failed "
                f"validation in run {status.run_id}: {status.reason}; {CLEAR_HINT}")
    if status.failed_slice_start and slice_start >= dt.datetime.fromisoformat(status.failed_slice_start):
        return (f"halted: slice {status.failed_slice} failed for good in this run ({status.reason}); newer slices "
                f"are not archived or purged until it is fixed; {CLEAR_HINT}")
    return None


@dataclass(frozen=True)
class RunActivity:
    """What one run did before a halt: the slices it verified and the slices it purged (with records purged)."""

    archived: tuple[str, ...] = ()
    purged: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_results(
        cls, validated: Iterable[Mapping[str, Any] | None], purged: Iterable[Mapping[str, Any] | None]
    ) -> RunActivity:
        """From the run's validation outcomes (SliceOutcome dicts) and purge results (PurgeResult dicts); a slice
        validated or purged by an earlier run (``skipped_reason``) is not this run's work."""
        archived = tuple(v["slice_id"] for v in validated
                         if v and v.get("ok") and not (v.get("validation") or {}).get("skipped_reason"))
        done = tuple((p["slice_id"], int(p.get("purged", 0))) for p in purged
                     if p and not p.get("skipped_reason") and p.get("generation", -1) >= 0)
        return cls(archived, done)

    def line(self) -> str:
        archived = ", ".join(self.archived) if self.archived else "none"
        purged = ", ".join(f"{s} ({n} records)" for s, n in self.purged) if self.purged else "none"
        return (f"Before the halt this run archived and verified {len(self.archived)} slice(s): {archived}; and "
                f"purged {len(self.purged)} slice(s): {purged}")


def halt_note(status: ArchiveStatus, activity: RunActivity) -> str:
    """The halted run's note (Airflow's DagRun note, readable in the UI and through the REST API)."""
    return (f"HALTED since {status.since}: slice {status.failed_slice} failed for good; no newer slice of any run "
            f"starts its copy or purge. {activity.line()}. To resume: {CLEAR_HINT}. Reason: {status.reason}")
