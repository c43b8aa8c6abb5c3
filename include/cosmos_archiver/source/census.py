"""The census: every document of the source container accounted for by what became of it.

Each document is in exactly one category:

- ``archived``: in a verified slice, unchanged since its validation read it;
- ``changed_since_archived``: in a verified slice, written (updated or inserted) in or after the second its
  validation began (``_ts`` has whole seconds, so this errs on the side of "changed"). With a purge, the next run
  archives them as a new generation of the slice (its purge keeps them, the sweep after it copies them); with
  ``purge: off`` nothing does: re-open the slice;
- ``waiting``: due (in a slice that ends by the cutoff, inside the lookback) and not verified yet;
- ``hot``: in a slice that is not cold yet (it ends after the cutoff), as the plan sees it;
- left out, with a reason: ``timestamp_missing`` (no such property, or null), ``timestamp_wrong_kind`` (e.g. a
  number where an ISO 8601 string is configured), ``timestamp_unparseable`` (including impossible dates),
  ``timestamp_out_of_range`` (an instant no slice holds, e.g. ``0001-01-01T00:30:00+01:00``),
  ``partition_key_missing`` (never archived: see source.reader), ``older_than_lookback`` (before the first slice
  any run plans), ``unarchivable`` (in a verified slice, set aside by its copy: its manifest's ``left_out`` names
  the reason), and
  ``missing_from_verified`` (in a verified slice's range but not in its manifest: the slice was sealed without it,
  e.g. under a wrong ``timestamp_field``; re-open the slice).

Several of these queries filter on what the index cannot serve, so on Azure each loads the documents it scopes:
this full census is an occasional, paced job (the weekly scrub DAG, ``cosmos-archive census``, which print
:mod:`source.census_cost`'s estimate first); a daily run counts only its own slices (:mod:`source.run_census`).
When it finds other spellings of the timestamp it records so (archive.source_facts): slice queries then look for
them.

Counts come from queries (``COUNT``, ``IS_DEFINED``, ``IS_STRING``/``IS_NUMBER``, ranges on the timestamp,
``_ts``); ids are listed (up to ``max_listed`` per reason) for the left-out documents. ISO 8601 values in another
spelling than the canonical UTC one are read as (id, partition key, timestamp) and placed by their parsed instant,
as the copy places them. A verified slice's manifest is read only when the slice holds documents; its keys are
compared with the source's when the counts cannot explain the difference (or always with ``exact=True``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from azure.cosmos import ContainerProxy

from include.cosmos_archiver.archive.canonical import partition_key_text, printable
from include.cosmos_archiver.archive.manifest import LeftOutEntry, Manifest
from include.cosmos_archiver.archive.slice_grid import check_slice_grid
from include.cosmos_archiver.archive.source_facts import note_other_spellings
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import endpoint_of, waiting_for
from include.cosmos_archiver.ru.budget import RuBudget, UnlimitedBudget
from include.cosmos_archiver.ru.paid_requests import CHARGE_HEADER
from include.cosmos_archiver.ru.throttles import ThrottleWatch
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import (
    MISSING,
    TimeSlice,
    TimestampError,
    bound_value,
    canonical_iso_sql,
    cutoff,
    field_expression,
    slice_id_start,
    slice_of,
    timestamp_instant,
)
from include.cosmos_archiver.source.reader import RECORDS_ONLY

log = logging.getLogger(__name__)
LEFT_OUT = ("timestamp_missing", "timestamp_wrong_kind", "timestamp_unparseable", "timestamp_out_of_range",
            "partition_key_missing",
            "older_than_lookback", "unarchivable", "missing_from_verified")
ACCOUNTED = ("archived", "changed_since_archived", "waiting", "hot")
CATEGORIES = ACCOUNTED + LEFT_OUT
MAX_LISTED = 50
MAX_OTHER_SPELLINGS = 100_000


@dataclass
class Census:
    source: str
    taken_at: str
    cutoff: str
    lookback_start: str
    timestamp: str  # "<field> (<kind>)"
    total: int
    counts: dict[str, int]
    left_out_ids: dict[str, list[str]]  # reason -> "partition key/id" (up to max_listed each)
    slices_to_reopen: list[str]  # verified slices only a re-open repairs (missing documents; changed, purge off)
    slices_to_sweep: list[str] = field(default_factory=list)  # changed documents the next run archives itself
    other_spellings: int = 0  # ISO 8601 values not in the canonical UTC spelling (placed by their parsed instant)
    ru_charged: float = 0.0
    queries: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def left_out(self) -> int:
        return sum(self.counts[r] for r in LEFT_OUT)

    @property
    def has_left_out(self) -> bool:
        """True when any document is left out of the archive: the DAG warns and notifies."""
        return self.left_out > 0

    @property
    def balanced(self) -> bool:
        """Every document is in exactly one category (else a note says what could not be placed)."""
        return sum(self.counts.values()) == self.total

    def line(self) -> str:
        """One line for a run's log and report."""
        parts = [f"{self.counts[c]} {c.replace('_', ' ')}" for c in ACCOUNTED]
        reasons = [f"{self.counts[r]} {r.replace('_', ' ')}" for r in LEFT_OUT if self.counts[r]]
        text = (f"census of {self.source} ({self.timestamp}, cutoff {self.cutoff[:10]}): {self.total} documents: "
                f"{', '.join(parts)}, {self.left_out} left out" + (f" ({', '.join(reasons)})" if reasons else ""))
        if self.other_spellings:
            text += f"; {self.other_spellings} timestamp(s) in other spellings than canonical UTC"
        if self.slices_to_sweep:
            text += (f"; the next run archives the changed documents of {len(self.slices_to_sweep)} verified "
                     f"slice(s) as a new generation: {_shown(self.slices_to_sweep)}")
        if self.slices_to_reopen:
            text += f"; re-open {len(self.slices_to_reopen)} verified slice(s): {_shown(self.slices_to_reopen)}"
        if not self.balanced:
            text += f"; UNBALANCED: categories sum to {sum(self.counts.values())}"
        return text

    def details(self) -> str:
        """The line, then the listed ids of every left-out reason (for the CLI and a notification)."""
        lines = [self.line()]
        for reason in LEFT_OUT:
            ids = self.left_out_ids.get(reason) or []
            if self.counts[reason]:
                more = self.counts[reason] - len(ids)
                lines.append(f"  {reason}: {', '.join(ids)}" + (f" … (+{more} not listed)" if more > 0 else ""))
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(left_out=self.left_out, has_left_out=self.has_left_out, balanced=self.balanced, line=self.line())
        return data


def _shown(slice_ids: list[str], most: int = 5) -> str:
    return ", ".join(slice_ids[:most]) + (" …" if len(slice_ids) > most else "")


class _Queries:
    """Runs census queries page by page through the RU budget, adding up their RU."""

    def __init__(self, container: ContainerProxy, budget: RuBudget) -> None:
        self.container = container
        self.budget = budget
        self.ru = 0.0
        self.count = 0
        self.what = f"a census query to Cosmos DB container {container.id!r} at {endpoint_of(container)}"

    def rows(self, query: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        self.count += 1
        charge = [0.0]
        throttles = ThrottleWatch()

        def hook(headers: Any, _result: Any) -> None:
            charge[0] += float(headers.get(CHARGE_HEADER, 0) or 0)

        if " FROM c WHERE " in query:  # records only: purge stubs and read-through tombstones are not documents
            query = query.replace(" FROM c WHERE ", f" FROM c WHERE {RECORDS_ONLY} AND (", 1) + ")"
        pages = self.container.query_items(
            query, parameters=[{"name": k, "value": v} for k, v in (params or {}).items()],
            enable_cross_partition_query=True, response_hook=hook).by_page()
        last = 1.0
        while True:
            self.budget.before_request(last)
            charge[0] = 0.0
            throttles.start()
            with waiting_for(self.what):
                page = next(pages, None)
                page = None if page is None else list(page)
            self.ru += charge[0]
            last = charge[0] or 1.0
            self.budget.after_request(charge[0], throttles.seen() > 0)
            if page is None:
                return
            yield from page

    def count_where(self, where: str, params: dict[str, Any] | None = None) -> int:
        # A cross-partition COUNT answers one partial count per partition range: add them up.
        return int(sum(self.rows(f"SELECT VALUE COUNT(1) FROM c WHERE {where}", params)))


def slice_from_id(slice_id: str, slice_hours: int) -> TimeSlice:
    """The slice a ``yyyy/mm/dd[/HH]`` id names, on the configured grid."""
    start = slice_id_start(slice_id)
    return TimeSlice(start, start + dt.timedelta(hours=slice_hours))


def take_census(
    container: ContainerProxy,
    store: ArchiveStore,
    settings: ArchiveSettings,
    *,
    now: dt.datetime,
    max_listed: int = MAX_LISTED,
    exact: bool = False,
    max_other_spellings: int = MAX_OTHER_SPELLINGS,
    budget: RuBudget | None = None,
) -> Census:
    """Count the source container's documents by what became of them (see the module docstring); ``budget``
    paces the census' queries like the copy's (on a serverless account every RU is billed)."""
    q = _Queries(container, budget or UnlimitedBudget())
    kind = settings.timestamp_kind
    t = field_expression(settings.timestamp_field)
    pk_path = settings.partition_key_path
    pk = field_expression(pk_path.strip("/").replace("/", "."))
    limit = cutoff(now, settings.cutoff_days)
    due_end = slice_of(limit, settings.slice_hours).start  # the slice holding the cutoff is not cold yet
    lookback = slice_of(now - dt.timedelta(days=settings.lookback_days), settings.slice_hours).start
    fast = f"(IS_STRING({t}) AND {canonical_iso_sql(t)})" if kind == "iso8601" else f"IS_NUMBER({t})"
    placed = f"{fast} AND IS_DEFINED({pk})"
    counts = dict.fromkeys(CATEGORIES, 0)
    listed: dict[str, list[str]] = {r: [] for r in LEFT_OUT}
    notes: list[str] = []

    def name(row: dict[str, Any]) -> str:
        return printable(f"{partition_key_text(row.get('pk', MISSING))}/{row.get('id')}")

    def list_where(reason: str, where: str, params: dict[str, Any] | None = None) -> None:
        if max_listed > 0:
            rows = q.rows(f"SELECT TOP {int(max_listed)} c.id, {pk} AS pk, {t} AS t FROM c WHERE {where}", params)
            listed[reason].extend(name(r) for r in rows)

    total = q.count_where("true")
    missing_ts = f"(NOT IS_DEFINED({t}) OR IS_NULL({t}))"
    of_kind = f"IS_STRING({t})" if kind == "iso8601" else f"IS_NUMBER({t})"
    wrong_kind = f"(IS_DEFINED({t}) AND NOT IS_NULL({t}) AND NOT {of_kind})"
    for reason, where in (("timestamp_missing", missing_ts), ("timestamp_wrong_kind", wrong_kind),
                          ("partition_key_missing", f"{fast} AND NOT IS_DEFINED({pk})")):
        counts[reason] = q.count_where(where)
        if counts[reason]:
            list_where(reason, where)

    # Verified slices: what their ranges hold now against what their manifests hold.
    metadata = store.manifest_metadata()
    check_slice_grid(metadata, settings.slice_hours, store.prefix)
    statuses = store.manifest_statuses(metadata)
    verified = {sid: slice_from_id(sid, settings.slice_hours) for sid, status in statuses.items()
                if status == "verified"}
    manifests: dict[str, Manifest | None] = {}
    manifest_keys: dict[str, set[tuple[str, str]]] = {}

    def manifest_of(slice_id: str) -> Manifest | None:
        if slice_id not in manifests:
            manifests[slice_id] = store.read_manifest(slice_id)
        return manifests[slice_id]

    def keys_of(slice_id: str) -> set[tuple[str, str]]:
        if slice_id not in manifest_keys:
            manifest = manifest_of(slice_id)
            manifest_keys[slice_id] = {(r.partition_key, r.id) for r in manifest.records} if manifest else set()
        return manifest_keys[slice_id]

    def set_aside(slice_id: str) -> dict[tuple[str, str], LeftOutEntry]:
        """key -> entry of the documents the slice's copy could not archive (they stay in Cosmos DB)."""
        manifest = manifest_of(slice_id)
        return {(e.partition_key, e.id): e for e in manifest.left_out} if manifest else {}

    def unarchivable(row: dict[str, Any], entry: LeftOutEntry) -> None:
        _left(counts, listed, "unarchivable", f"{name(row)}: {printable(entry.reason)}", max_listed)

    def read_since(manifest: Manifest | None) -> int:
        """The epoch second from which a document counts as written after the slice's validation read it."""
        validation = (manifest.validation if manifest else None) or {}
        stamp = validation.get("validated_at") or (manifest.copied_at if manifest else None)
        if not stamp:
            return 0
        started = dt.datetime.fromisoformat(stamp).timestamp() - float(validation.get("seconds") or 0)
        return math.floor(started)

    reopen: set[str] = set()
    changed_in: set[str] = set()
    in_verified = {"older": 0, "due": 0, "hot": 0}
    for slice_id, time_slice in sorted(verified.items()):
        rng = {"@start": bound_value(time_slice.start, kind), "@end": bound_value(time_slice.end, kind)}
        in_range = f"{placed} AND {t} >= @start AND {t} < @end"
        held = q.count_where(in_range, rng)
        zone = "older" if time_slice.end <= lookback else "hot" if time_slice.start >= due_end else "due"
        in_verified[zone] += held
        if not held:
            continue
        manifest = manifest_of(slice_id)
        since = read_since(manifest)
        changed = q.count_where(f"{in_range} AND c._ts >= @since", {**rng, "@since": since})
        unchanged = held - changed
        kept_aside = set_aside(slice_id)
        if changed and kept_aside:  # a set-aside document as its copy saw it is unarchivable, not changed
            for row in q.rows(f"SELECT c.id, {pk} AS pk, c._etag AS etag FROM c WHERE {in_range} AND c._ts >= @since",
                              {**rng, "@since": since}):
                entry = kept_aside.get((partition_key_text(row.get("pk", MISSING)), str(row["id"])))
                if entry is not None and entry.etag == row.get("etag"):
                    changed -= 1
                    unarchivable(row, entry)
        counts["changed_since_archived"] += changed
        if changed:
            changed_in.add(slice_id)
        record_count = manifest.record_count if manifest else 0
        foreign = manifest is not None and manifest.timestamp_field != settings.timestamp_field
        if exact or foreign or unchanged > record_count or kept_aside:
            keys = keys_of(slice_id)
            rows = q.rows(f"SELECT c.id, {pk} AS pk, c._ts AS ts FROM c WHERE {in_range} AND c._ts < @since",
                          {**rng, "@since": since})
            for row in rows:
                key = (partition_key_text(row.get("pk", MISSING)), str(row["id"]))
                if key in keys:
                    counts["archived"] += 1
                elif key in kept_aside:
                    unarchivable(row, kept_aside[key])
                else:
                    counts["missing_from_verified"] += 1
                    reopen.add(slice_id)
                    if len(listed["missing_from_verified"]) < max_listed:
                        listed["missing_from_verified"].append(name(row))
            if foreign:
                notes.append(f"slice {slice_id} was verified with timestamp_field={manifest.timestamp_field!r}, "
                             f"not the configured {settings.timestamp_field!r}")
        else:
            counts["archived"] += unchanged

    # Documents of the fast kind outside verified slices, by range counts.
    bounds = {"@lookback": bound_value(lookback, kind), "@cutoff": bound_value(due_end, kind)}
    older = f"{placed} AND {t} < @lookback"
    counts["older_than_lookback"] = q.count_where(older, bounds) - in_verified["older"]
    counts["hot"] = q.count_where(f"{placed} AND {t} >= @cutoff", bounds) - in_verified["hot"]
    counts["waiting"] = (q.count_where(f"{placed} AND {t} >= @lookback AND {t} < @cutoff", bounds)
                         - in_verified["due"])
    if counts["older_than_lookback"]:
        rows = q.rows(f"SELECT TOP {int(max_listed) + 100} c.id, {pk} AS pk, {t} AS t FROM c WHERE {older}", bounds)
        for row in rows:
            try:
                sid = slice_of(timestamp_instant(row.get("t", MISSING), kind), settings.slice_hours).slice_id
            except TimestampError:
                sid = None
            if sid not in verified and len(listed["older_than_lookback"]) < max_listed:
                listed["older_than_lookback"].append(name(row))

    # ISO 8601 values in other spellings: placed by their parsed instant, as the copy places them.
    seen = 0
    if kind == "iso8601":
        others = f"IS_STRING({t}) AND NOT {canonical_iso_sql(t)}"
        for row in q.rows(f"SELECT c.id, {pk} AS pk, {t} AS t, c._ts AS ts FROM c WHERE {others}"):
            seen += 1
            if seen > max_other_spellings:
                notes.append(f"more than {max_other_spellings} documents spell {settings.timestamp_field} other "
                             "than the canonical UTC form; the rest were not placed (raise max_other_spellings)")
                break
            try:
                instant = timestamp_instant(row.get("t"), kind, settings.timestamp_field)
                slice_id = slice_of(instant, settings.slice_hours).slice_id
            except TimestampError as exc:
                _left(counts, listed, exc.problem, name(row), max_listed)
                continue
            if "pk" not in row:
                _left(counts, listed, "partition_key_missing", name(row), max_listed)
                continue
            if slice_id in verified:
                manifest = manifest_of(slice_id)
                key = (partition_key_text(row["pk"]), str(row["id"]))
                if (row.get("ts") or 0) >= read_since(manifest):
                    counts["changed_since_archived"] += 1
                    changed_in.add(slice_id)
                elif key in keys_of(slice_id):
                    counts["archived"] += 1
                elif key in set_aside(slice_id):
                    unarchivable(row, set_aside(slice_id)[key])
                else:
                    reopen.add(slice_id)
                    _left(counts, listed, "missing_from_verified", name(row), max_listed)
            elif instant < lookback:
                _left(counts, listed, "older_than_lookback", name(row), max_listed)
            elif instant >= due_end:
                counts["hot"] += 1
            else:
                counts["waiting"] += 1

    if seen:  # from now on slice queries look for other spellings near each slice (archive.source_facts)
        note_other_spellings(store, found_by="the census", count=seen)
    if settings.purge == "off":  # no purge, no sweep: the archive keeps the old version until a re-open
        reopen |= changed_in
    census = Census(
        source=f"{settings.database}/{settings.container}", taken_at=dt.datetime.now(dt.UTC).isoformat(),
        cutoff=limit.isoformat(), lookback_start=lookback.isoformat(),
        timestamp=f"{settings.timestamp_field} ({kind})", total=total, counts=counts,
        left_out_ids={r: ids for r, ids in listed.items() if ids}, slices_to_reopen=sorted(reopen),
        slices_to_sweep=sorted(changed_in - reopen),
        other_spellings=seen, ru_charged=round(q.ru, 2), queries=q.count, notes=notes,
    )
    (log.warning if census.has_left_out or not census.balanced else log.info)(census.line())
    return census


def _left(counts: dict[str, int], listed: dict[str, list[str]], reason: str, name: str, max_listed: int) -> None:
    counts[reason] += 1
    if len(listed[reason]) < max_listed:
        listed[reason].append(name)
