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

from include.cosmos_archiver.archive.manifest import Manifest, left_out_name
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.id_lists import name_ids

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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunReport:
    run_id: str
    rows: list[SliceRow]
    totals: RunTotals
    html: str
    png: bytes | None

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
) -> RunReport:
    """Assemble the report. ``validations`` are ValidationResult.to_dict() values (the newest per slice wins over
    the manifest's own validation record); ``usage`` is (time, RU/s) samples; ``remaining_slices`` with
    ``rate_ru_per_s`` (the archiver's allowed RU/s) gives an ETA from the average RU per slice seen so far."""
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
    rows = [_row(m, by_slice.get(m.slice_id)) for m in sorted(manifests, key=lambda m: (m.slice_start, m.slice_id))]
    totals = _totals(rows, remaining_slices, rate_ru_per_s)
    png = _plot(rows, usage or [], ceiling_ru_per_s, provisioned_ru_per_s, run_id)
    generated = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    page = _html(run_id, rows, totals, png, usage or [], ceiling_ru_per_s, provisioned_ru_per_s, generated)
    return RunReport(run_id=run_id, rows=rows, totals=totals, html=page, png=png)


def _row(manifest: Manifest, validation: dict[str, Any] | None) -> SliceRow:
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


def _purge_text(purge: dict[str, Any] | None) -> str:
    if not purge:
        return "-"
    counts = purge.get("counts") or {}
    text = ", ".join(f"{counts[k]} {k}" for k in ("purged", "stubbed", "changed", "gone") if counts.get(k))
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
    ru = sum(r.copy_ru + r.validation_ru for r in rows)
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


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
tr.failed td { background: #fde8e8; } .mono { font-family: monospace; font-size: 0.85em; }
"""


def _html(
    run_id: str,
    rows: list[SliceRow],
    totals: RunTotals,
    png: bytes | None,
    usage: list[tuple[dt.datetime, float]],
    ceiling: float | None,
    provisioned: float | None,
    generated: str,
) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>cosmos-archive run {e(run_id)}</title><style>{_STYLE}</style></head><body>",
        f'<h1>cosmos-archive run <span class="mono">{e(run_id)}</span></h1>',
        f"<p>Generated {e(generated)}.</p>",
        "<h2>Totals</h2><table>",
    ]
    summary = [
        ("Slices", f"{totals.slices}"),
        ("Verified / failed / not validated", f"{totals.verified} / {totals.failed} / {totals.not_validated}"),
        ("Records", f"{totals.records:,}"),
        ("Record bytes (canonical JSON)", _fmt_bytes(totals.record_bytes)),
        ("Parquet bytes", _fmt_bytes(totals.file_bytes)),
        ("RU charged (copy + validation)", f"{totals.ru:,.1f}"),
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
    out.append("<h2>Slices</h2><table><tr>")
    headers = [
        "Slice",
        "From",
        "To",
        "Records",
        "Record bytes",
        "Parquet bytes",
        "Files",
        "Copy RU",
        "Validation RU",
        "Copy s",
        "Validation s",
        "Throttled",
        "Hash result",
        "Purge (purged or stubbed, changed, gone)",
        "Purge RU",
        "Slice digest (sha256)",
    ]
    out += [
        f'<th class="l">{e(h)}</th>' if i in (0, 1, 2, 12, 13, 15) else f"<th>{e(h)}</th>"
        for i, h in enumerate(headers)
    ]
    out.append("</tr>")
    for r in rows:
        cls = ' class="failed"' if r.hash_result in ("FAILED", "failed") else ""
        cells = [
            f'<td class="l mono">{e(r.slice_id)}</td>',
            f'<td class="l">{e(r.start)}</td>',
            f'<td class="l">{e(r.end)}</td>',
            f"<td>{r.records:,}</td>",
            f"<td>{e(_fmt_bytes(r.record_bytes))}</td>",
            f"<td>{e(_fmt_bytes(r.file_bytes))}</td>",
            f"<td>{r.files}</td>",
            f"<td>{r.copy_ru:,.1f}</td>",
            f"<td>{r.validation_ru:,.1f}</td>",
            f"<td>{r.copy_s:.3f}</td>",
            f"<td>{r.validation_s:.3f}</td>",
            f"<td>{r.throttled}</td>",
            f'<td class="l">{e(r.hash_result)}</td>',
            f'<td class="l">{e(r.purge)}</td>',
            f"<td>{r.purge_ru:,.1f}</td>",
            f'<td class="l mono">{e(r.digest)}</td>',
        ]
        out.append(f"<tr{cls}>{''.join(cells)}</tr>")
    out.append("</table>")
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
