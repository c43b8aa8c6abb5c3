"""Size a copy engine (ADF Copy activity, the local executor) for an RU/s budget: page size and parallel copies.

Azure Data Factory has no RU cap of its own, so the archiver hands it a pageSize and parallelCopies that spend the
budget in about one page per copy per second.
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

