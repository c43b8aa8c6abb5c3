"""The rules of an archive run, without Airflow: which window a run archives, and the life of a slice after its copy.

    validate -> verified
             -> mismatch, by its cause (archive.remedies): records changed, or a damaged archive not purged yet:
                wait (back-off, doubled each time), copy the slice again the way it was copied (ADF or the local
                executor), validate again ... up to ``attempts`` validations;
                a damaged archive of a PURGED slice: never copied again (Cosmos DB no longer holds its records)
                and never retried: repaired from the replica once if one can, else it fails for good at once
             -> still failing: status Failed at once (newer slices of every run that have not started their
                copy, validation or purge are skipped from this moment)
    purge    -> (verified only) the archive re-verified from Blob, then records deleted or stubbed on their etag
             -> the archive no longer matches its manifest: nothing deleted, status Failed, then as halt
    halt     -> notify once, status Halted, the slice's task fails (terminal: no retry)

The orchestrator supplies what lives outside the library through small seams: a :class:`StatusStore` (where
the Running/Failed/Halted status is kept), the check (``validate_slice`` bound to its clients), one copy-again
callable per route, a notify callable, and a clock and a sleep (so unit tests run without waiting).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, NoReturn, Protocol

from include.cosmos_archiver.archive.remedies import Cause, remedy
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.pipeline.purge import PurgeIntegrityError, PurgeResult
from include.cosmos_archiver.pipeline.run_status import CLEAR_HINT, ArchiveStatus, halt_reason
from include.cosmos_archiver.pipeline.validate import ValidationResult
from include.cosmos_archiver.planning.due_slices import DueSlicesError
from include.cosmos_archiver.settings import SettingsError
from include.cosmos_archiver.slices import TimeSlice, as_utc

log = logging.getLogger(__name__)

Route = Literal["adf", "local"]
ROUTES: tuple[Route, ...] = ("adf", "local")
Step = Literal["continue", "halt"]
Check = Callable[[TimeSlice], ValidationResult]
CopyAgain = Callable[[TimeSlice], object]
PurgeStarted = Callable[[TimeSlice], bool]  # whether records of the slice may have left Cosmos DB
Repair = Callable[[TimeSlice], str | None]  # repair damaged parts (e.g. from the replica): what was done, or None
Purge = Callable[[TimeSlice], PurgeResult]
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StatusStore(Protocol):
    """Where the archive's status lives (the ``cosmos_archive_status`` Variable under Airflow)."""

    def read(self) -> ArchiveStatus: ...

    def write(self, status: ArchiveStatus) -> None: ...


class SliceSkipped(Exception):  # an outcome, not an error: the orchestrator marks the task skipped
    """The slice must not be worked on (the archive is halted, or there is nothing to do); the message says why."""


class ArchiveHaltedError(TerminalError):
    """The archive is Failed/Halted: nothing starts until an operator clears the status."""


class SliceIntegrityError(TerminalError):
    """A slice failed validation persistently: the archive halts until a person looks at it."""


@dataclass(frozen=True)
class SliceOutcome:
    """What validation concluded for one slice (the validate task's XCom; halt and the report read it)."""

    slice_id: str
    start: str
    end: str
    ok: bool
    message: str
    attempts: int
    validation: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SliceOutcome:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class RunDates:
    """What the orchestrator knows about a run's dates (Airflow: logical date, data interval, run type, params)."""

    logical_date: dt.datetime | None = None
    data_interval_start: dt.datetime | None = None
    data_interval_end: dt.datetime | None = None
    backfill: bool = False
    from_date: str | None = None
    to_date: str | None = None


def run_window(
    run: RunDates, *, clock: Clock = utc_now
) -> tuple[dt.datetime, tuple[dt.datetime, dt.datetime] | None]:
    """(now, window) for planning a run: ``now`` decides which slices are cold; ``window`` restricts the run to
    exactly the slices of a range (None: every due slice).

    * ``from_date``/``to_date`` (both, YYYY-MM-DD, both inclusive like a backfill's From/To): exactly those days.
    * A backfill run: the day of its logical date. A ``@daily`` schedule is a CronTriggerTimetable in Airflow 3,
      whose data interval is empty (start == end == the logical date), so the window is widened to one day.
      "Now" is the wall clock, not the logical date: a backfilled day is due if it is cold today.
    * A scheduled or manual run: every due slice, as of the end of its data interval (else its logical date).
    """
    now = run.data_interval_end or run.logical_date
    if run.backfill or now is None:
        now = clock()
    if run.from_date or run.to_date:
        if not (run.from_date and run.to_date):
            raise DueSlicesError(
                f"from_date={run.from_date!r}, to_date={run.to_date!r}: give both (YYYY-MM-DD), or neither"
            )
        first, last = _utc_day(run.from_date, "from_date"), _utc_day(run.to_date, "to_date")
        if last < first:
            raise DueSlicesError(f"to_date={run.to_date!r} is before from_date={run.from_date!r}: both are inclusive "
                                 "days (YYYY-MM-DD), e.g. from_date 2026-02-28, to_date 2026-03-08")
        return as_utc(now), (first, last + dt.timedelta(days=1))
    if run.backfill:
        start = run.data_interval_start or run.logical_date
        if start is None:
            raise DueSlicesError("a backfill run without a logical date: cannot tell which day it archives")
        end = run.data_interval_end or start
        return as_utc(now), (as_utc(start), as_utc(max(end, start + dt.timedelta(days=1))))
    return as_utc(now), None


def _utc_day(value: str, name: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise DueSlicesError(f"{name}={value!r} is not a date: use YYYY-MM-DD") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


class SliceWorkflow:
    """One archive's slice rules over a :class:`StatusStore`; see the module docstring."""

    def __init__(
        self,
        status: StatusStore,
        *,
        attempts: int = 3,
        backoff_s: float = 30.0,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise SettingsError(f"validation_attempts={attempts!r} must be at least 1")
        if backoff_s < 0:
            raise SettingsError(f"validation_backoff_s={backoff_s!r} must be 0 or more seconds")
        self.status, self.attempts, self.backoff_s = status, attempts, float(backoff_s)
        self.clock, self.sleep = clock, sleep

    def ensure_running(self) -> ArchiveStatus:
        """The status, if work may start; ArchiveHaltedError (naming the failed slice and the fix) otherwise."""
        status = self.status.read()
        if status.status != "Running":
            raise ArchiveHaltedError(
                f"the archive is {status.status} since {status.since}: slice {status.failed_slice} failed validation "
                f"in run {status.run_id} ({status.reason}); no slice starts until an operator clears it: {CLEAR_HINT}"
            )
        return status

    def ensure_may_start(self, time_slice: TimeSlice, run_id: str) -> None:
        """SliceSkipped when the archive is halted for this slice: by another run, or by an older slice of this
        run (the verified archive stays a contiguous prefix of time)."""
        reason = halt_reason(self.status.read(), run_id, time_slice.start)
        if reason:
            log.warning("slice %s skipped: %s", time_slice.slice_id, reason)
            raise SliceSkipped(reason)

    def validate(
        self, time_slice: TimeSlice, run_id: str, *, route: Route, check: Check, copiers: Mapping[Route, CopyAgain],
        purge_started: PurgeStarted = lambda _s: False, repair: Repair | None = None,
    ) -> SliceOutcome:
        """Validate a copied slice; on a mismatch act by its cause (module docstring): copy it again through
        ``copiers[route]`` (the way it was copied) and validate again, with back-off; or, for a damaged archive of
        a slice whose purge has started, ``repair`` it once and validate again, never copy or wait. A failure for
        good sets the status Failed at once and is returned (``ok`` False, the message says the case and what to
        do) for :meth:`halt`; the slice's manifest already says ``failed``."""
        self.ensure_may_start(time_slice, run_id)
        if route not in copiers:
            raise SettingsError(f"slice {time_slice.slice_id} was copied by {route!r}, which cannot copy it again "
                                f"here (known: {sorted(copiers)})")
        attempt, backoff, repaired = 1, self.backoff_s, None
        result = self._check(check, time_slice, attempt)
        cause = None if result.ok else failure_cause(result, purge_started(time_slice))
        while cause == "damaged_purged" and repair is not None and repaired is None:
            repaired = repair(time_slice) or ""
            if repaired:
                log.warning("slice %s: %s", time_slice.slice_id, repaired)
                attempt += 1
                result = self._check(check, time_slice, attempt)
                cause = None if result.ok else failure_cause(result, purge_started(time_slice))
        while cause in ("damaged", "changed") and attempt < self.attempts:
            log.warning("re-copying %s through %s in %.0f s: %s", time_slice.slice_id, route, backoff,
                        remedy(cause, time_slice.slice_id))
            self.sleep(backoff)
            backoff *= 2
            copiers[route](time_slice)
            attempt += 1
            result = self._check(check, time_slice, attempt)
            cause = None if result.ok else failure_cause(result, purge_started(time_slice))
        message = result.message()
        if cause is not None:
            message += ". " + remedy(cause, time_slice.slice_id, damaged_records(result), repaired or "")
        outcome = SliceOutcome(time_slice.slice_id, time_slice.start.isoformat(), time_slice.end.isoformat(),
                               result.ok, message, attempt, result.to_dict())
        if not result.ok:
            self._mark_failed(outcome, run_id)
        return outcome

    def _check(self, check: Check, time_slice: TimeSlice, attempt: int) -> ValidationResult:
        result = check(time_slice)
        log.info("validate %s attempt %d/%d: %s; %.1f RU, %.1f s", time_slice.slice_id, attempt, self.attempts,
                 result.message(), result.ru_charged, result.seconds)
        return result

    def _mark_failed(self, outcome: SliceOutcome, run_id: str) -> None:
        # The failure is known now: from here on, newer slices that have not started are skipped. The first
        # slice to fail owns the status; a later one leaves it (its halt then fails without a second notification).
        status = self.status.read()
        if status.status == "Running":
            self.status.write(status.failed(run_id, outcome.slice_id, outcome.start, outcome.message, at=self.clock()))
        log.error("status Failed: slice %s failed validation %d times", outcome.slice_id, outcome.attempts)

    def purge(
        self, outcome: SliceOutcome, run_id: str, *, purge: Purge, notify: Callable[[SliceOutcome], None]
    ) -> PurgeResult:
        """Purge a slice validation verified (in this run or an earlier one). A halted archive purges nothing; an
        archive that no longer matches its manifest is treated as a failed validation: Failed, notify, Halted."""
        time_slice = TimeSlice.from_dict({"start": outcome.start, "end": outcome.end})
        self.ensure_may_start(time_slice, run_id)
        if not outcome.ok:
            raise SliceSkipped(f"slice {outcome.slice_id} is not verified: nothing is purged")
        try:
            result = purge(time_slice)
        except PurgeIntegrityError as exc:
            failed = SliceOutcome(outcome.slice_id, outcome.start, outcome.end, False, str(exc), outcome.attempts,
                                  outcome.validation)
            self._mark_failed(failed, run_id)
            self.halt(failed, notify)
        log.info("purge: %s, %.1f s", result.message(), result.seconds)
        return result

    @staticmethod
    def next_step(outcome: SliceOutcome) -> Step:
        return "continue" if outcome.ok else "halt"

    def halt(self, outcome: SliceOutcome, notify: Callable[[SliceOutcome], None]) -> NoReturn:
        """Failed -> notify -> Halted, once per archive: only the slice that set Failed notifies and halts; any
        other failed slice just fails. Always raises: SliceSkipped for a verified slice, else SliceIntegrityError."""
        if outcome.ok:  # belt and braces: only a failed slice may halt the archive
            raise SliceSkipped(f"slice {outcome.slice_id} is verified; nothing to halt")
        status = self.status.read()
        if status.status == "Halted" or status.failed_slice != outcome.slice_id:
            log.error("slice %s failed too; the archive was already stopped by slice %s",
                      outcome.slice_id, status.failed_slice)
            raise SliceIntegrityError(f"slice {outcome.slice_id} failed validation: {outcome.message}")
        notify(outcome)
        self.status.write(status.halted())
        raise SliceIntegrityError(
            f"status Halted: slice {outcome.slice_id} failed for good after {outcome.attempts} validation(s): "
            f"{outcome.message}; since then no newer slice of any run starts its copy, validation or purge, and "
            f"later runs wait for an operator: {CLEAR_HINT}"
        )


def damaged_records(result: ValidationResult) -> list[str]:
    """The records of archive parts that no longer hash to their manifest (a stray part names none)."""
    return sorted({name for bad in result.bad_files for name in bad.records})


def failure_cause(result: ValidationResult, purge_started: bool) -> Cause:
    """The case of a failed validation (archive.remedies): damaged parts holding records of a slice whose purge has
    started; other damaged or stray parts; else records that changed in Cosmos DB."""
    if damaged_records(result) and purge_started:
        return "damaged_purged"
    return "damaged" if result.bad_files else "changed"
