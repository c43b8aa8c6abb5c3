"""The run report for people: per-slice counts, bytes, RU, duration and hash result, plus a plot of RU usage.

One self-contained HTML page (the PNG is embedded, every value is escaped) and the PNG on its own, written next
to the manifests under ``<prefix>/_reports/<run_id>/`` so the task log can link to them. Built from manifests and
validation results only: nothing here reads Cosmos DB, so a report costs no RU.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import ResourceNotFoundError

from include.cosmos_archiver.archive.manifest import Manifest, left_out_name
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.id_lists import name_ids
from include.cosmos_archiver.pipeline.run_status import ArchiveStatus
from include.cosmos_archiver.planning.published import SERVERLESS_USD_PER_MILLION_RU
from include.cosmos_archiver.reporting.archive_status import BANNER_STYLE, banner_html
from include.cosmos_archiver.reporting.run_work import Progress, SliceWork

REPORT_HTML = "report.html"
REPORT_PNG = "ru.png"


class RunReportError(TerminalError, ValueError):
    """Bad input for a report; the message names the value."""


@dataclass(frozen=True)
class SliceRow:
    slice_id: str
    start: str
    end: str
    records: int
    record_bytes: int
    file_bytes: int
    files: int
    copy_ru: float
    validation_ru: float
    copy_s: float
    validation_s: float
    throttled: int
    digest: str
    hash_result: str  # "verified", "FAILED", "not validated"
    detail: str  # what failed, or the validation message
    purge: str = "-"  # the last purge: its counts (purged / changed since copy / already gone), or its state
    purge_ru: float = 0.0
    sweep_ru: float = 0.0
    removed: int = 0  # records this run's purge removed from Cosmos DB (deleted or stubbed)
    left_out: tuple[str, ...] = ()  # "pk/id: reason" of documents the copy could not archive (kept in Cosmos DB)


@dataclass(frozen=True)
class RunTotals:
    slices: int
    records: int
    record_bytes: int
    file_bytes: int
    ru: float
    seconds: float
    verified: int
    failed: int
    not_validated: int
    remaining_slices: int | None
    eta_s: float | None  # for the remaining slices, at the given RU rate (or, without RU, at the seconds/slice seen)
    ru_by_step: dict[str, float] | None = None  # copy, validate, purge, sweep
    removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunReport:
    run_id: str
    rows: list[SliceRow]
    totals: RunTotals
    html: str
    png: bytes | None

    def line(self) -> str:
        """The report in one log line: what this run did, in the numbers an operator reads."""
        t = self.totals
        steps = " / ".join(f"{k} {v:,.0f}" for k, v in (t.ru_by_step or {}).items())
        return (f"{t.slices} slices ({t.verified} verified, {t.failed} failed), {t.records:,} records copied, "
                f"{t.record_bytes / 1e6:,.1f} MB JSON, RU {steps} = {t.ru:,.0f}, {t.removed:,} records purged")

    def write(self, store: ArchiveStore, run_id: str | None = None) -> list[str]:
        """Upload report.html and ru.png next to the manifests; return their blob URLs (HTML first)."""
        directory = report_dir(store, run_id or self.run_id)
        urls = []
        store.upload(f"{directory}/{REPORT_HTML}", self.html.encode(), content_type="text/html; charset=utf-8")
        urls.append(f"{store.container.url}/{quote(directory + '/' + REPORT_HTML)}")
        if self.png is not None:
            store.upload(f"{directory}/{REPORT_PNG}", self.png, content_type="image/png")
            urls.append(f"{store.container.url}/{quote(directory + '/' + REPORT_PNG)}")
        return urls

    def write_local(self, directory: str | Path) -> list[Path]:
        """Write report.html (and ru.png) into ``directory``, creating it; return the paths written."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        written = [target / REPORT_HTML]
        written[0].write_text(self.html, encoding="utf-8")
        if self.png is not None:
            (target / REPORT_PNG).write_bytes(self.png)
            written.append(target / REPORT_PNG)
        return written


def safe_run_id(run_id: str) -> str:
    """The run id as one blob-path segment: Airflow ids keep their ':' and '+', a '/' cannot split the path."""
    if not run_id or not run_id.strip():
        raise RunReportError(f"run_id={run_id!r} is empty; pass the DAG run id (e.g. '{{{{ run_id }}}}')")
    return re.sub(r"[^A-Za-z0-9._:+@=-]", "_", run_id.strip())


def report_dir(store: ArchiveStore, run_id: str) -> str:
    name = f"_reports/{safe_run_id(run_id)}"
    return f"{store.prefix}/{name}" if store.prefix else name


def build_run_report(
    run_id: str,
    manifests: list[Manifest],
    validations: list[dict[str, Any]],
    usage: list[tuple[dt.datetime, float]] | None,
    ceiling_ru_per_s: float | None,
    provisioned_ru_per_s: float | None,
    *,
    remaining_slices: int | None = None,
    rate_ru_per_s: float | None = None,
    now: dt.datetime | None = None,
    work: dict[str, SliceWork] | None = None,
    progress: Progress | None = None,
    started: dt.datetime | None = None,
    halt: ArchiveStatus | None = None,
) -> RunReport:
    """Assemble the report. ``validations`` are ValidationResult.to_dict() values (the newest per slice wins over
    the manifest's own validation record); ``usage`` is (time, RU/s) samples; ``remaining_slices`` with
    ``rate_ru_per_s`` (the archiver's allowed RU/s) gives an ETA from the average RU per slice seen so far.
    ``work``: this run's own numbers per slice (run_work.slice_work); without it a row shows the slice's totals.
    ``progress``: the whole archive (slices done/left, ETA, money); ``started``: when the run started; ``halt``:
    the archive status, shown as a banner unless Running."""
    safe_run_id(run_id)
    for name, value in (
        ("ceiling_ru_per_s", ceiling_ru_per_s),
        ("provisioned_ru_per_s", provisioned_ru_per_s),
        ("rate_ru_per_s", rate_ru_per_s),
    ):
        if value is not None and not value > 0:
            raise RunReportError(f"{name}={value!r} must be a positive number of RU/s (or None)")
    if remaining_slices is not None and remaining_slices < 0:
        raise RunReportError(f"remaining_slices={remaining_slices} must be >= 0 (or None)")
    by_slice = {v.get("slice_id"): v for v in validations}
    rows = [_row(m, by_slice.get(m.slice_id), (work or {}).get(m.slice_id) if work is not None else None,
                 this_run=work is not None)
            for m in sorted(manifests, key=lambda m: (m.slice_start, m.slice_id))]
    totals = _totals(rows, remaining_slices, rate_ru_per_s)
    png = _plot(rows, usage or [], ceiling_ru_per_s, provisioned_ru_per_s, run_id)
    now = now or dt.datetime.now(dt.UTC)
    page = _html(run_id, rows, totals, png, usage or [], ceiling_ru_per_s, provisioned_ru_per_s,
                 now.isoformat(timespec="seconds"),
                 extra=_run_sections(totals, progress, started, now, halt, this_run=work is not None))
    return RunReport(run_id=run_id, rows=rows, totals=totals, html=page, png=png)


def _row(manifest: Manifest, validation: dict[str, Any] | None, work: SliceWork | None = None, *,
         this_run: bool = False) -> SliceRow:
    """A slice's row: this run's work when ``this_run`` (zeros where the run did nothing), else its totals."""
    recorded = manifest.validation or {}
    if validation is not None and not validation.get("skipped_reason"):
        ok = bool(validation.get("ok"))
        detail = _failure_detail(validation) if not ok else ""
        validation_ru = float(validation.get("ru_charged") or 0.0)
        validation_s = float(validation.get("seconds") or 0.0)
    elif recorded:
        ok = bool(recorded.get("ok"))
        detail = "" if ok else str(recorded.get("message", ""))
        validation_ru = float(recorded.get("ru_charged") or 0.0)
        validation_s = float(recorded.get("seconds") or 0.0)
    else:
        ok, detail, validation_ru, validation_s = None, "", 0.0, 0.0
    if ok is None:
        result = "not validated" if manifest.status == "copied" else manifest.status
    else:
        result = "verified" if ok else "FAILED"
    if this_run:
        done = work or SliceWork(manifest.slice_id, 0, 0, 0, {}, {})
        copied = done.records > 0
        return SliceRow(
            slice_id=manifest.slice_id, start=manifest.slice_start, end=manifest.slice_end, records=done.records,
            record_bytes=done.record_bytes, file_bytes=done.file_bytes,
            files=sum(1 for f in manifest.files if copied and f.generation == manifest.generation),
            copy_ru=done.ru.get("copy", 0.0), validation_ru=done.ru.get("validate", 0.0),
            copy_s=float(manifest.timings_s.get("total", 0.0)) if copied else 0.0,
            validation_s=validation_s if done.ru.get("validate") else 0.0,
            throttled=manifest.throttled_requests if copied else 0, digest=manifest.slice_digest,
            hash_result=result, detail=detail, purge=_counts_text(done.purge_counts) or "-",
            purge_ru=done.ru.get("purge", 0.0), sweep_ru=done.ru.get("sweep", 0.0), removed=done.removed,
            left_out=tuple(left_out_name(e) for e in manifest.left_out),
        )
    return SliceRow(
        slice_id=manifest.slice_id,
        start=manifest.slice_start,
        end=manifest.slice_end,
        records=manifest.record_count,
        record_bytes=manifest.record_bytes,
        file_bytes=manifest.file_bytes,
        files=len(manifest.files),
        copy_ru=float(manifest.ru_charged),
        validation_ru=validation_ru,
        copy_s=float(manifest.timings_s.get("total", 0.0)),
        validation_s=validation_s,
        throttled=manifest.throttled_requests,
        digest=manifest.slice_digest,
        hash_result=result,
        detail=detail,
        purge=_purge_text(manifest.purge),
        purge_ru=float((manifest.purge or {}).get("ru_charged") or 0.0),
        left_out=tuple(left_out_name(e) for e in manifest.left_out),
    )


def _counts_text(counts: dict[str, Any]) -> str:
    return ", ".join(f"{counts[k]} {k}" for k in ("purged", "stubbed", "changed", "gone") if counts.get(k))


def _purge_text(purge: dict[str, Any] | None) -> str:
    if not purge:
        return "-"
    text = _counts_text(purge.get("counts") or {})
    return f"{purge.get('state', '?')}: {text}" if text else str(purge.get("state", "?"))


def _failure_detail(validation: dict[str, Any]) -> str:
    parts = [f"source {validation.get('source_count', '?')}, archive {validation.get('sink_count', '?')}"]
    for key, label in (("missing", "missing from archive"), ("extra", "extra in archive"), ("differing", "differing")):
        ids = list(validation.get(key) or [])
        if ids:
            parts.append(f"{len(ids)} {label}: {name_ids(ids)}")
    for bad in validation.get("bad_files") or []:
        parts.append(f"damaged file {bad.get('path')}: {bad.get('reason')} ({len(bad.get('records') or [])} records)")
    return "; ".join(parts)


def _totals(rows: list[SliceRow], remaining: int | None, rate_ru_per_s: float | None) -> RunTotals:
    by_step = {"copy": sum(r.copy_ru for r in rows), "validate": sum(r.validation_ru for r in rows),
               "purge": sum(r.purge_ru for r in rows), "sweep": sum(r.sweep_ru for r in rows)}
    ru = sum(by_step.values())
    seconds = sum(r.copy_s + r.validation_s for r in rows)
    eta: float | None = None
    if remaining is not None and rows:
        if rate_ru_per_s and ru > 0:
            eta = remaining * (ru / len(rows)) / rate_ru_per_s
        elif seconds > 0:
            eta = remaining * seconds / len(rows)
    elif remaining == 0:
        eta = 0.0
    return RunTotals(
        slices=len(rows),
        records=sum(r.records for r in rows),
        record_bytes=sum(r.record_bytes for r in rows),
        file_bytes=sum(r.file_bytes for r in rows),
        ru=round(ru, 2),
        seconds=round(seconds, 3),
        verified=sum(r.hash_result == "verified" for r in rows),
        failed=sum(r.hash_result in ("FAILED", "failed") for r in rows),
        not_validated=sum(r.hash_result not in ("verified", "FAILED", "failed") for r in rows),
        remaining_slices=remaining,
        eta_s=None if eta is None else round(eta, 1),
        ru_by_step={k: round(v, 2) for k, v in by_step.items()},
        removed=sum(r.removed for r in rows),
    )


def _plot(
    rows: list[SliceRow],
    usage: list[tuple[dt.datetime, float]],
    ceiling: float | None,
    provisioned: float | None,
    run_id: str,
) -> bytes | None:
    """RU/s over time against the ceiling and provisioned lines; without samples, RU per slice as bars."""
    if not usage and not rows:
        return None
    # Imported here: matplotlib is slow to import and only report tasks need it (keeps DAG parsing fast).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if usage:
        points = sorted(usage)
        ax.plot([t for t, _ in points], [v for _, v in points], color="tab:blue", label="RU/s used (all traffic)")
        for value, style, color, label in ((ceiling, "--", "tab:red", "ceiling"), (provisioned, ":", "black",
                                                                                   "provisioned")):
            if value is not None:
                ax.axhline(value, color=color, linestyle=style, label=f"{label} {value:g} RU/s")
        top = max([v for _, v in points] + [provisioned or 0.0, ceiling or 0.0])
        ax.set_ylim(0, top * 1.08 or 1)
        ax.set_ylabel("RU/s")
        ax.set_xlabel("time (UTC)")
        fig.autofmt_xdate()
        title = f"RU/s over time — {run_id}"
    else:
        positions = list(range(len(rows)))
        ax.bar(positions, [r.copy_ru for r in rows], color="tab:blue", label="copy RU")
        ax.bar(
            positions,
            [r.validation_ru for r in rows],
            bottom=[r.copy_ru for r in rows],
            color="tab:orange",
            label="validation RU",
        )
        step = max(1, len(rows) // 30)  # at most ~30 labels stay readable
        ax.set_xticks(positions[::step], [r.slice_id for r in rows][::step], rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("RU per slice")
        title = f"RU per slice (no usage samples) — {run_id}"
        rates = [(i, r.copy_ru / r.copy_s) for i, r in zip(positions, rows, strict=True) if r.copy_s > 0]
        if rates and (ceiling is not None or provisioned is not None):
            # The slice's average RU/s while copying, on its own axis, is what the ceiling compares with.
            rate_ax = ax.twinx()
            rate_ax.plot(
                [i for i, _ in rates], [v for _, v in rates], "o", color="tab:green", label="average RU/s while copying"
            )
            for value, style, color, label in (
                (ceiling, "--", "tab:red", "ceiling"),
                (provisioned, ":", "black", "provisioned"),
            ):
                if value is not None:
                    rate_ax.axhline(value, color=color, linestyle=style, label=f"{label} {value:g} RU/s")
            rate_ax.set_ylabel("RU/s")
            rate_ax.set_ylim(bottom=0)
            rate_ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover - loop always returns


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = round(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {s}s" if minutes else f"{s}s"


_STYLE = BANNER_STYLE + """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 100%; }
.wide { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; vertical-align: top; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; } td.n { white-space: nowrap; }
tr.failed td { background: #fde8e8; } .mono { font-family: monospace; font-size: 0.9em; }
img { max-width: 100%; height: auto; }
"""


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def _run_sections(totals: RunTotals, progress: Progress | None, started: dt.datetime | None, now: dt.datetime,
                  halt: ArchiveStatus | None, *, this_run: bool) -> str:
    """The halt banner, this run's work per step (with its money) and the whole archive's progress."""
    e = html.escape
    out = [banner_html(halt)] if halt is not None else []
    timing = f"ended (report written) {now.isoformat(timespec='seconds')}"
    if started is not None:
        took = _fmt_duration((now - started).total_seconds())
        timing = f"started {started.isoformat(timespec='seconds')}, {timing}, {took}"
    out.append(f"<p>Run {e(timing)}.</p>")
    steps = totals.ru_by_step or {}
    title = "This run's work per step" if this_run else "RU per step (whole slices)"
    out.append(f"<h2>{e(title)}</h2><table><tr><th class='l'>Step</th><th>RU</th><th>Serverless $</th></tr>")
    for step, ru in steps.items():
        out.append(f"<tr><td class='l'>{e(step)}</td><td>{ru:,.1f}</td>"
                   f"<td>{_usd(ru / 1e6 * SERVERLESS_USD_PER_MILLION_RU)}</td></tr>")
    total_ru = sum(steps.values())
    out.append(f"<tr><th class='l'>total</th><th>{total_ru:,.1f}</th>"
               f"<th>{_usd(total_ru / 1e6 * SERVERLESS_USD_PER_MILLION_RU)}</th></tr></table>")
    out.append(f"<p>Records copied {totals.records:,} ({_fmt_bytes(totals.record_bytes)} JSON, "
               f"{_fmt_bytes(totals.file_bytes)} Parquet); removed from Cosmos DB by the purge: "
               f"{totals.removed:,}.</p>")
    if progress is not None:
        p = progress
        out += [
            "<h2>The whole archive</h2><table>",
            f"<tr><th class='l'>Slices done / in the window</th><td>{p.slices_done:,} / {p.slices_in_window:,} "
            f"({p.slices_left:,} left)</td></tr>",
            f"<tr><th class='l'>Records archived and purged</th><td>{p.records_archived:,}</td></tr>",
            f"<tr><th class='l'>Cosmos DB storage of those records</th><td>before {_fmt_bytes(p.bytes_archived)} "
            "&rarr; after 0 B (JSON bytes; stubs ~0.5 KB each in stub mode)</td></tr>",
            f"<tr><th class='l'>ETA for the slices left</th><td>{e(_fmt_duration(p.eta_s))}</td></tr>",
            f"<tr><th class='l'>Money for the slices left</th><td>serverless {_usd(p.serverless_usd_left)}; "
            f"provisioned: {_usd(p.provisioned_usd_left)} of throughput already paid for</td></tr>",
            f"<tr><th class='l'>Basis</th><td class='l'>{e(p.basis)}</td></tr>",
            "</table>",
        ]
    return "\n".join(out)


def _html(
    run_id: str,
    rows: list[SliceRow],
    totals: RunTotals,
    png: bytes | None,
    usage: list[tuple[dt.datetime, float]],
    ceiling: float | None,
    provisioned: float | None,
    generated: str,
    extra: str = "",
) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>cosmos-archive run {e(run_id)}</title><style>{_STYLE}</style></head><body>",
        f'<h1>cosmos-archive run <span class="mono">{e(run_id)}</span></h1>',
        f"<p>Generated {e(generated)}.</p>",
        extra,
        "<h2>Totals</h2><table>",
    ]
    summary = [
        ("Slices", f"{totals.slices}"),
        ("Verified / failed / not validated", f"{totals.verified} / {totals.failed} / {totals.not_validated}"),
        ("Records", f"{totals.records:,}"),
        ("Record bytes (canonical JSON)", _fmt_bytes(totals.record_bytes)),
        ("Parquet bytes", _fmt_bytes(totals.file_bytes)),
        ("RU charged (copy + validation + purge + sweep)", f"{totals.ru:,.1f}"),
        ("Time in copy + validation", _fmt_duration(totals.seconds)),
        ("RU ceiling", "not given" if ceiling is None else f"{ceiling:g} RU/s"),
        ("Provisioned", "not given" if provisioned is None else f"{provisioned:g} RU/s"),
    ]
    if usage:
        peak = max(v for _, v in usage)
        summary.append(("Peak RU/s seen", f"{peak:,.1f}"))
    if totals.remaining_slices is not None:
        summary.append(("Remaining slices", f"{totals.remaining_slices}"))
        summary.append(("ETA for the remaining slices", _fmt_duration(totals.eta_s)))
    out += [f'<tr><th class="l">{e(k)}</th><td>{e(v)}</td></tr>' for k, v in summary]
    out.append("</table>")
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        out.append(f'<h2>RU usage</h2><img alt="RU usage plot" src="data:image/png;base64,{data}">')
    headers = ["Slice", "Hash result", "Records", "JSON", "Parquet", "Files", "Copy RU", "Validation RU",
               "Purge RU", "Copy s", "Validation s", "Throttled", "Purge (purged or stubbed, changed, gone)",
               "Digest"]
    left = {"Slice", "Hash result", "Purge (purged or stubbed, changed, gone)", "Digest"}
    out.append('<h2>Slices</h2><div class="wide"><table><tr>')
    out += [f'<th class="l">{e(h)}</th>' if h in left else f"<th>{e(h)}</th>" for h in headers]
    out.append("</tr>")
    for r in rows:
        cls = ' class="failed"' if r.hash_result in ("FAILED", "failed") else ""
        cells = [
            f'<td class="l mono n" title="{e(r.start)} .. {e(r.end)}">{e(r.slice_id)}</td>',
            f'<td class="l">{e(r.hash_result)}</td>',
            f"<td>{r.records:,}</td>",
            f'<td class="n">{e(_fmt_bytes(r.record_bytes))}</td>',
            f'<td class="n">{e(_fmt_bytes(r.file_bytes))}</td>',
            f"<td>{r.files}</td>",
            f"<td>{r.copy_ru:,.1f}</td>",
            f"<td>{r.validation_ru:,.1f}</td>",
            f"<td>{r.purge_ru:,.1f}</td>",
            f"<td>{r.copy_s:.3f}</td>",
            f"<td>{r.validation_s:.3f}</td>",
            f"<td>{r.throttled}</td>",
            f'<td class="l">{e(r.purge)}</td>',
            f'<td class="l mono" title="{e(r.digest)}">{e(r.digest[:12])}</td>',
        ]
        out.append(f"<tr{cls}>{''.join(cells)}</tr>")
    out.append("</table></div>")
    failed = [r for r in rows if r.hash_result in ("FAILED", "failed")]
    if failed:
        out.append("<h2>Failed validations</h2><ul>")
        out += [f'<li><span class="mono">{e(r.slice_id)}</span>: {e(r.detail)}</li>' for r in failed]
        out.append("</ul>")
    set_aside = [(r.slice_id, name) for r in rows for name in r.left_out]
    if set_aside:
        out.append("<h2>Documents left in Cosmos DB: the copy cannot archive them (never purged)</h2><ul>")
        out += [f'<li><span class="mono">{e(sid)}</span>: {e(name)}</li>' for sid, name in set_aside]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)

def read_report_html(store: ArchiveStore, run_id: str) -> bytes | None:
    """The report.html of a run from the archive, or None when the run wrote none."""
    try:
        return store.download(f"{report_dir(store, run_id)}/{REPORT_HTML}")
    except ResourceNotFoundError:
        return None


def list_reports(store: ArchiveStore, limit: int = 50) -> list[tuple[str, dt.datetime | None]]:
    """(run id as written, last modified) of the archive's run reports, newest first, at most ``limit``."""
    prefix = report_dir(store, "x")[: -len("x")]
    found = [(blob.name[len(prefix):-len(f"/{REPORT_HTML}")], blob.last_modified)
             for blob in store.container.list_blobs(name_starts_with=prefix) if blob.name.endswith(f"/{REPORT_HTML}")]
    found.sort(key=lambda item: item[1] or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True)
    return found[:limit]
