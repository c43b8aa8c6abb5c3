"""How a message names records: the first IDS_NAMED ids of a list, then how many more (objects keep them all).

One cap for every message (validation results, halt notifications, the run report), so a reader sees the same ids
in each.
"""

from __future__ import annotations

from collections.abc import Sequence

IDS_NAMED = 20


def name_ids(ids: Sequence[object], limit: int = IDS_NAMED) -> str:
    """``"a, b, c … (+7 more)"``: the first ``limit`` ids, and the count of the rest."""
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" … (+{len(ids) - limit} more)" if len(ids) > limit else "")
