"""The slice workflow's rules, without Airflow and without servers: scripted validation results, copy-again
callables that record their calls, an in-memory status, a fixed clock and a sleep that only records."""

from __future__ import annotations

import datetime as dt

import pytest

from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.pipeline.purge import PurgeIntegrityError, PurgeResult
from include.cosmos_archiver.pipeline.run_status import ArchiveStatus
from include.cosmos_archiver.pipeline.slice_workflow import (
    ArchiveHaltedError,
    RunDates,
    SliceIntegrityError,
    SliceOutcome,
    SliceSkipped,
    SliceWorkflow,
    run_window,
)
from include.cosmos_archiver.pipeline.validate import BadFile, ValidationResult
from include.cosmos_archiver.planning.due_slices import DueSlicesError
from include.cosmos_archiver.settings import SettingsError
from include.cosmos_archiver.slices import TimeSlice

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)
FIRST = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
SLICES = [TimeSlice(FIRST + i * WEEK, FIRST + (i + 1) * WEEK) for i in range(4)]  # oldest first
RUN = "scheduled__2026-06-01"


class MemoryStatus:
    def __init__(self, status: ArchiveStatus | None = None) -> None:
        self.value = status or ArchiveStatus()
        self.writes: list[ArchiveStatus] = []

    def read(self) -> ArchiveStatus:
        return self.value

    def write(self, status: ArchiveStatus) -> None:
        self.value = status
        self.writes.append(status)


class Scripted:
    """A check answering ok/mismatch in the given order (the last answer repeats)."""

    def __init__(self, *answers: bool) -> None:
        self.answers, self.calls = list(answers), 0

    def __call__(self, time_slice: TimeSlice) -> ValidationResult:
        ok = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if ok:
            return ValidationResult(time_slice.slice_id, ok=True, source_count=3, sink_count=3)
        return ValidationResult(time_slice.slice_id, ok=False, source_count=3, sink_count=3, differing=["cust-1/inv-2"])


class Copier(list):
    def __call__(self, time_slice: TimeSlice) -> None:
        self.append(time_slice.slice_id)


@pytest.fixture
def status() -> MemoryStatus:
    return MemoryStatus()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def workflow(status, sleeps) -> SliceWorkflow:
    return SliceWorkflow(status, attempts=3, backoff_s=30, clock=lambda: NOW, sleep=sleeps.append)


def _copiers() -> dict[str, Copier]:
    return {"adf": Copier(), "local": Copier()}


def test_verified_first_time_copies_nothing_again_and_leaves_the_status(workflow, status, sleeps):
    copiers = _copiers()
    outcome = workflow.validate(SLICES[0], RUN, route="local", check=Scripted(True), copiers=copiers)
    assert outcome.ok and outcome.attempts == 1 and "verified 3 records" in outcome.message
    assert copiers == {"adf": [], "local": []} and sleeps == [] and status.writes == []
    assert workflow.next_step(outcome) == "continue"
    assert SliceOutcome.from_dict(outcome.to_dict()) == outcome  # the XCom round trip


@pytest.mark.parametrize(("route", "other"), [("adf", "local"), ("local", "adf")])
def test_a_mismatch_is_copied_again_by_the_slices_own_executor_then_verified(workflow, status, sleeps, route, other):
    copiers = _copiers()
    check = Scripted(False, False, True)
    outcome = workflow.validate(SLICES[1], RUN, route=route, check=check, copiers=copiers)
    assert outcome.ok and outcome.attempts == 3 and check.calls == 3
    assert copiers[route] == [SLICES[1].slice_id] * 2 and copiers[other] == []
    assert sleeps == [30, 60]  # back-off doubles
    assert status.writes == []  # never Failed


def test_persistent_failure_goes_failed_then_halted_with_one_notification(workflow, status, sleeps):
    copiers = _copiers()
    outcome = workflow.validate(SLICES[1], RUN, route="adf", check=Scripted(False), copiers=copiers)
    assert not outcome.ok and outcome.attempts == 3 and copiers["adf"] == [SLICES[1].slice_id] * 2
    assert "validation FAILED" in outcome.message and outcome.validation["differing"] == ["cust-1/inv-2"]
    failed = status.value
    assert (failed.status, failed.run_id, failed.failed_slice) == ("Failed", RUN, SLICES[1].slice_id)
    assert failed.failed_slice_start == SLICES[1].start.isoformat() and failed.since == NOW.isoformat()
    assert workflow.next_step(outcome) == "halt"

    # Another failed slice's halt fails it without a notification; so does a retry of the halt.
    second = SliceOutcome(**{**outcome.to_dict(), "slice_id": SLICES[2].slice_id})
    notices: list[SliceOutcome] = []
    with pytest.raises(SliceIntegrityError, match="status Halted"):
        workflow.halt(outcome, notices.append)
    with pytest.raises(SliceIntegrityError, match="failed validation") as other:
        workflow.halt(second, notices.append)
    assert "Halted" not in str(other.value)
    with pytest.raises(SliceIntegrityError):  # a retried halt task does not notify twice
        workflow.halt(outcome, notices.append)
    assert notices == [outcome]
    assert [s.status for s in status.writes] == ["Failed", "Halted"]
    assert status.value.failed_slice == SLICES[1].slice_id and status.value.since == NOW.isoformat()
    assert isinstance(SliceIntegrityError("x"), TerminalError)  # so the Airflow layer fails it without retries


def test_two_slices_failing_in_one_run_notify_once(workflow, status):
    """A newer slice whose validation started before an older one failed fails too: the older keeps the status."""
    first: list[SliceOutcome] = []
    newer_check = Scripted(False)

    def check_newer(time_slice: TimeSlice) -> ValidationResult:
        if not first:  # meanwhile, the older slice fails for good
            first.append(workflow.validate(SLICES[1], RUN, route="local", check=Scripted(False), copiers=_copiers()))
        return newer_check(time_slice)

    newer = workflow.validate(SLICES[2], RUN, route="local", check=check_newer, copiers=_copiers())
    assert not newer.ok and newer_check.calls == 3
    assert status.value.failed_slice == SLICES[1].slice_id and [s.status for s in status.writes] == ["Failed"]
    notices: list[SliceOutcome] = []
    for outcome in (newer, first[0]):
        with pytest.raises(SliceIntegrityError):
            workflow.halt(outcome, notices.append)
    assert notices == first and status.value.status == "Halted"


def test_a_halted_archive_skips_newer_slices_and_blocks_later_runs(workflow, status):
    workflow.validate(SLICES[1], RUN, route="local", check=Scripted(False), copiers=_copiers())
    with pytest.raises(SliceIntegrityError):
        workflow.halt(SliceOutcome.from_dict({**SLICES[1].to_dict(), "ok": False, "message": "m", "attempts": 3,
                                              "validation": {}}), lambda o: None)
    workflow.ensure_may_start(SLICES[0], RUN)  # older than the failed slice: may go on
    for newer in SLICES[1:]:
        with pytest.raises(SliceSkipped, match="newer slices are not archived"):
            workflow.ensure_may_start(newer, RUN)
    check = Scripted(True)
    with pytest.raises(SliceSkipped):  # validation of a newer slice does not even start
        workflow.validate(SLICES[3], RUN, route="local", check=check, copiers=_copiers())
    assert check.calls == 0
    with pytest.raises(SliceSkipped, match=r"because slice .* failed validation in run"):
        workflow.ensure_may_start(SLICES[0], "scheduled__2026-06-02")
    with pytest.raises(ArchiveHaltedError, match=r"the archive is Halted .* cosmos_archive_status") as halted:
        workflow.ensure_running()
    assert isinstance(halted.value, TerminalError)
    status.write(ArchiveStatus())  # an operator clears it
    assert workflow.ensure_running().status == "Running"
    workflow.ensure_may_start(SLICES[3], "scheduled__2026-06-02")


def test_a_verified_slice_never_halts(workflow, status):
    outcome = workflow.validate(SLICES[0], RUN, route="local", check=Scripted(True), copiers=_copiers())
    with pytest.raises(SliceSkipped, match="nothing to halt"):
        workflow.halt(outcome, lambda o: pytest.fail("notified"))
    assert status.writes == []


def test_a_route_without_a_copier_is_a_terminal_error_naming_it(workflow):
    with pytest.raises(SettingsError, match="'adf'"):
        workflow.validate(SLICES[0], RUN, route="adf", check=Scripted(False), copiers={"local": Copier()})


@pytest.mark.parametrize(("attempts", "backoff"), [(0, 1.0), (1, -1.0)])
def test_bad_attempt_settings_are_terminal(status, attempts, backoff):
    with pytest.raises(SettingsError):
        SliceWorkflow(status, attempts=attempts, backoff_s=backoff)


def test_backfill_window_is_its_logical_day_even_with_airflow_3s_empty_interval():
    day = dt.datetime(2026, 2, 3, tzinfo=dt.UTC)
    now, window = run_window(RunDates(day, day, day, backfill=True), clock=lambda: NOW)
    assert now == NOW  # cold as of today, not as of the backfilled day
    assert window == (day, day + dt.timedelta(days=1))
    # An interval longer than a day is kept as it is.
    _, wide = run_window(RunDates(day, day, day + 3 * dt.timedelta(days=1), backfill=True), clock=lambda: NOW)
    assert wide == (day, day + dt.timedelta(days=3))


def test_scheduled_run_plans_every_due_slice_as_of_its_interval_end():
    end = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    now, window = run_window(RunDates(end, end, end), clock=lambda: NOW)
    assert (now, window) == (end, None)
    assert run_window(RunDates(), clock=lambda: NOW) == (NOW, None)  # a manual run without a logical date


def test_from_to_dates_pick_exactly_that_range_and_need_each_other():
    now, window = run_window(RunDates(NOW, NOW, NOW, from_date="2026-01-05", to_date="2026-01-19"))
    assert now == NOW
    # to_date is inclusive, like Airflow's backfill To: 2026-01-19 is archived too (issue 19: a 02-28 -> 03-08
    # run left out 2026/03/08)
    assert window == (dt.datetime(2026, 1, 5, tzinfo=dt.UTC), dt.datetime(2026, 1, 20, tzinfo=dt.UTC))
    with pytest.raises(DueSlicesError, match="before from_date"):
        run_window(RunDates(NOW, from_date="2026-01-19", to_date="2026-01-05"))
    with pytest.raises(DueSlicesError, match="give both"):
        run_window(RunDates(NOW, from_date="2026-01-05"))
    with pytest.raises(DueSlicesError, match="to_date='19/01/2026'") as bad:
        run_window(RunDates(NOW, from_date="2026-01-05", to_date="19/01/2026"))
    assert isinstance(bad.value, TerminalError)


# --- purge: only a verified slice, never in a halted archive; a damaged archive halts like a failed validation ---

def _verified(time_slice: TimeSlice) -> SliceOutcome:
    return SliceOutcome(time_slice.slice_id, time_slice.start.isoformat(), time_slice.end.isoformat(), True,
                        "verified", 1, {})


def test_a_verified_slice_is_purged_once(workflow, status) -> None:
    purged: list[str] = []

    def purge(time_slice: TimeSlice) -> PurgeResult:
        purged.append(time_slice.slice_id)
        return PurgeResult(time_slice.slice_id, "delete", purged=3)

    result = workflow.purge(_verified(SLICES[0]), RUN, purge=purge, notify=lambda o: pytest.fail("notified"))
    assert (result.purged, purged, status.writes) == (3, [SLICES[0].slice_id], [])


def test_a_damaged_archive_found_by_the_purge_fails_then_halts_with_one_notification(workflow, status) -> None:
    notified: list[SliceOutcome] = []

    def purge(time_slice: TimeSlice) -> PurgeResult:
        raise PurgeIntegrityError(f"slice {time_slice.slice_id}: the archive no longer matches its manifest")

    with pytest.raises(SliceIntegrityError, match="status Halted"):
        workflow.purge(_verified(SLICES[1]), RUN, purge=purge, notify=notified.append)
    assert [s.status for s in status.writes] == ["Failed", "Halted"]
    assert status.value.failed_slice == SLICES[1].slice_id
    assert len(notified) == 1 and "no longer matches" in notified[0].message
    with pytest.raises(SliceSkipped):  # a newer slice of the run: skipped, nothing purged
        workflow.purge(_verified(SLICES[2]), RUN, purge=lambda s: pytest.fail("purged in a halted archive"),
                       notify=notified.append)


def test_a_halted_archive_purges_nothing(status) -> None:
    status.value = ArchiveStatus().failed("another-run", SLICES[0].slice_id, SLICES[0].start.isoformat(), "bad",
                                          at=NOW).halted()
    workflow = SliceWorkflow(status, clock=lambda: NOW, sleep=lambda s: None)
    with pytest.raises(SliceSkipped):
        workflow.purge(_verified(SLICES[3]), RUN, purge=lambda s: pytest.fail("purged"), notify=lambda o: None)


def test_an_unverified_slice_is_never_purged(workflow) -> None:
    outcome = SliceOutcome(SLICES[0].slice_id, SLICES[0].start.isoformat(), SLICES[0].end.isoformat(), False,
                           "1 record(s) differ", 3, {})
    with pytest.raises(SliceSkipped, match="not verified"):
        workflow.purge(outcome, RUN, purge=lambda s: pytest.fail("purged"), notify=lambda o: None)


# --- remedies by cause: a damaged archive of a purged slice is never copied again and never waited for ---

class Damaged(Scripted):
    """A check whose failures are a damaged part holding two records (not a changed record)."""

    def __call__(self, time_slice: TimeSlice) -> ValidationResult:
        result = super().__call__(time_slice)
        if not result.ok:
            result.differing = []
            result.bad_files = [BadFile("records/p/part-00000.parquet", "sha256 differs", ["c-1/i-1", "c-2/i-2"])]
        return result


def test_a_damaged_purged_slice_is_repaired_not_copied_again_and_never_waited_for(workflow, status, sleeps):
    copiers, repairs = _copiers(), []
    outcome = workflow.validate(SLICES[1], RUN, route="local", check=Damaged(False, True), copiers=copiers,
                                purge_started=lambda s: True,
                                repair=lambda s: repairs.append(s.slice_id) or "part-00000: repaired from the replica")
    assert outcome.ok and repairs == [SLICES[1].slice_id]
    assert copiers == {"adf": [], "local": []} and sleeps == [] and status.writes == []


def test_a_damaged_purged_slice_without_a_way_back_fails_for_good_at_once_naming_the_records(workflow, status,
                                                                                             sleeps):
    copiers = _copiers()
    outcome = workflow.validate(SLICES[1], RUN, route="local", check=Damaged(False), copiers=copiers,
                                purge_started=lambda s: True, repair=lambda s: None)
    assert not outcome.ok and outcome.attempts == 1
    assert copiers == {"adf": [], "local": []} and sleeps == []  # no re-copy from an emptied source, no back-off
    assert "PURGED" in outcome.message and "c-1/i-1" in outcome.message and "NOT copied again" in outcome.message
    assert status.value.status == "Failed" and status.value.failed_slice == SLICES[1].slice_id  # at once


def test_a_damaged_slice_not_purged_yet_is_copied_again_and_says_so(workflow, status, sleeps):
    copiers = _copiers()
    outcome = workflow.validate(SLICES[1], RUN, route="local", check=Damaged(False), copiers=copiers,
                                purge_started=lambda s: False)
    assert not outcome.ok and copiers["local"] == [SLICES[1].slice_id] * 2 and sleeps == [30, 60]
    assert "not purged yet" in outcome.message and "copied again from Cosmos DB automatically" in outcome.message
