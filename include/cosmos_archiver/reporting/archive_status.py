"""How a halted archive is shown to people: one line for a task log and a run's note, and a banner for pages.

The status itself (Running / Failed / Halted, the slice, the reason, since when) and its rules belong to
``pipeline/run_status.py``; this module only words it. One line, because the first line of a failing task's log is
what the Airflow UI shows first, and a run's note is a short text.
"""

from __future__ import annotations

import html

from include.cosmos_archiver.pipeline.run_status import CLEAR_HINT, ArchiveStatus

MAX_REASON_CHARS = 400  # a note or a log line stays readable; the task log and the notification have the rest


def one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` on one line (whitespace runs folded), cut at ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def halt_line(status: ArchiveStatus) -> str | None:
    """``Halted since <time>: slice <id> failed in run <run> (<reason>); <how to clear>``; None while Running."""
    if status.status == "Running":
        return None
    return (f"{status.status} since {status.since}: slice {status.failed_slice} failed in run {status.run_id} "
            f"({one_line(status.reason or 'no reason recorded')}); no slice starts until it is cleared: {CLEAR_HINT}")


def banner_html(status: ArchiveStatus) -> str:
    """A red banner naming the slice, the reason and how to clear it; a quiet green line while Running (the state's
    name means "not halted", not that a run is in progress: a finished run's report said "Running")."""
    line = halt_line(status)
    if line is None:
        return ('<p class="banner ok">Archive status: not halted (state <span class="mono">Running</span>): '
                "scheduled runs archive the slices that are due.</p>")
    e = html.escape
    return (
        '<div class="banner halted" role="alert">'
        f"<strong>Archive {e(status.status)}</strong> since {e(str(status.since))}: "
        f'slice <span class="mono">{e(str(status.failed_slice))}</span> failed in run '
        f'<span class="mono">{e(str(status.run_id))}</span>.<br>'
        f"Reason: {e(one_line(status.reason or 'no reason recorded'))}<br>"
        f"To clear it: {e(CLEAR_HINT)}.</div>"
    )


BANNER_STYLE = """
.banner { padding: 0.6em 0.9em; border-radius: 4px; margin: 0.5em 0 1em; }
.banner.halted { background: #fde8e8; border: 1px solid #c0392b; }
.banner.ok { background: #e8f6ec; border: 1px solid #2e8b57; }
"""
