"""Size a copy engine (ADF Copy activity, the local executor) for an RU/s budget: page size and parallel copies.

Azure Data Factory has no RU cap of its own: the archiver hands it a pageSize and parallelCopies. With a measured
rate of one copy (:class:`AdfCopyRate`, from a Copy activity's output) parallelCopies spends the budget
(:func:`size_adf_copy`); without one, :func:`suggest_copy` guesses one page per copy per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from include.cosmos_archiver.ru.settings import RateControlError


@dataclass(frozen=True)
class CopySuggestion:
    """What to hand a copy engine (ADF Copy activity, local executor) for a given RU/s budget."""

    budget_ru_s: float
    records_per_s: float
    page_size: int  # records per query page (ADF: pageSize); ~one page per second per copy
    parallel_copies: int  # ADF parallelCopies


def suggest_copy(
    budget_ru_s: float, ru_per_record: float, *, single_copy_ru_s: float = 5000.0, max_page_size: int = 1000
) -> CopySuggestion:
    """Size pages and parallelism so the budget is spent in about one page per copy per second.

    ``single_copy_ru_s`` is what one sequential reader sustains (measure it; the default is a cautious guess for
    a reader in the same region). More copies than needed only produce 429s; fewer leave headroom unused.
    """
    if budget_ru_s < 0 or ru_per_record <= 0 or single_copy_ru_s <= 0 or max_page_size < 1:
        raise RateControlError(
            f"budget_ru_s={budget_ru_s!r} must be >= 0, ru_per_record={ru_per_record!r} > 0, "
            f"single_copy_ru_s={single_copy_ru_s!r} > 0 and max_page_size={max_page_size!r} >= 1"
        )
    records_per_s = budget_ru_s / ru_per_record
    copies = max(1, math.ceil(budget_ru_s / single_copy_ru_s))
    page = int(min(max_page_size, max(1, records_per_s // copies)))
    return CopySuggestion(budget_ru_s, records_per_s, page, copies)



@dataclass(frozen=True)
class AdfCopyRate:
    """What an ADF Copy activity of a slice achieved, from its run output (Microsoft Learn, copy-activity-monitoring:
    ``rowsRead``, ``copyDuration`` in seconds, ``usedParallelCopies``) and the ``pageSize`` it ran with."""

    records_per_s_per_copy: float
    page_size: int

    @classmethod
    def from_activity_output(cls, output: dict[str, object], page_size: int) -> AdfCopyRate:
        rows, seconds = float(output["rowsRead"]), float(output["copyDuration"])  # type: ignore[arg-type]
        copies = max(1, int(output.get("usedParallelCopies") or 1))  # type: ignore[call-overload]
        if rows <= 0 or seconds <= 0:
            raise RateControlError(f"an ADF copy of {rows:g} rows in {seconds:g} s measures no rate: measure a slice "
                                   "with records in it")
        return cls(rows / seconds / copies, page_size)


@dataclass(frozen=True)
class AdfCopyPlan:
    """pageSize and parallelCopies for an ADF copy, the RU/s they are expected to spend, and whether that fits."""

    page_size: int
    parallel_copies: int
    expected_ru_s: float
    budget_ru_s: float
    measured: bool
    note: str

    @property
    def fits(self) -> bool:
        return self.expected_ru_s <= self.budget_ru_s


def size_adf_copy(budget_ru_s: float, ru_per_record: float, rate: AdfCopyRate | None) -> AdfCopyPlan:
    """ADF's only rate knob is the number of parallel copies: a copy reads page after page as fast as Cosmos answers
    (a Copy activity's Cosmos source has no RU setting: ``query``, ``pageSize``, ``detectDatetime``), and pageSize
    changes a copy's rate only through the round trips it saves. So with a measured rate, the page size stays the one
    it was measured at and parallelCopies = the budget / one copy's RU/s (rounded down, at least 1); below one copy's
    RU/s ADF cannot be paced at all (``fits`` False: the note says by how much). Unmeasured, :func:`suggest_copy`'s
    guess (one page per copy per second) is all there is, and the note says so."""
    if rate is None:
        guess = suggest_copy(max(budget_ru_s, ru_per_record), ru_per_record)
        return AdfCopyPlan(guess.page_size, guess.parallel_copies, guess.budget_ru_s, budget_ru_s, False,
                           "ADF's rate is not measured: sized on the guess of one page per copy per second; set "
                           "adf_copy_rate from a Copy activity's output (rowsRead, copyDuration, usedParallelCopies)")
    if ru_per_record <= 0 or rate.records_per_s_per_copy <= 0:
        raise RateControlError(f"ru_per_record={ru_per_record!r} and the measured rate "
                               f"{rate.records_per_s_per_copy!r} records/s per copy must be > 0")
    per_copy = rate.records_per_s_per_copy * ru_per_record
    copies = max(1, math.floor(budget_ru_s / per_copy))
    expected = copies * per_copy
    note = (f"{copies} parallel cop{'y' if copies == 1 else 'ies'} x {per_copy:,.0f} RU/s measured per copy at "
            f"pageSize {rate.page_size}")
    if expected > budget_ru_s:
        note += (f": one copy alone spends {per_copy / max(budget_ru_s, 1e-9):.1f}x the {budget_ru_s:,.0f} RU/s the "
                 "archiver may use now; ADF cannot be paced below one copy")
    return AdfCopyPlan(rate.page_size, copies, expected, budget_ru_s, True, note)
