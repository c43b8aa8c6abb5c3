"""Time slices ``[start, end)`` of the archive, their blob paths, and which ones are due.

A slice is identified by its start; its data lives under ``<prefix>/yyyy/mm/dd[/HH]/`` so that re-running a slice
addresses exactly the same blobs (idempotent backfills).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

from include.cosmos_archiver.errors import TerminalError

TimestampKind = Literal["epoch_seconds", "iso8601"]
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class SliceError(TerminalError, ValueError):
    pass


@dataclass(frozen=True, order=True)
class TimeSlice:
    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise SliceError(f"slice bounds must be timezone-aware UTC datetimes, got {self.start!r}, {self.end!r}")
        if self.end <= self.start:
            raise SliceError(f"slice end {self.end.isoformat()} must be after its start {self.start.isoformat()}")

    @property
    def slice_id(self) -> str:
        """yyyy/mm/dd of the start for slices of whole days, yyyy/mm/dd/HH for sub-day slices."""
        base = f"{self.start.year:04d}/{self.start:%m/%d}"  # %Y is not zero-padded below year 1000 on glibc
        whole_days = (self.end - self.start) % dt.timedelta(days=1) == dt.timedelta(0) and self.start.hour == 0
        return base if whole_days else f"{base}/{self.start:%H}"

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "slice_id": self.slice_id}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> TimeSlice:
        return cls(dt.datetime.fromisoformat(data["start"]), dt.datetime.fromisoformat(data["end"]))


SLICE_ID_RE = re.compile(r"^\d{4}/\d{2}/\d{2}(/\d{2})?$")


def slice_id_start(slice_id: str) -> dt.datetime:
    """The UTC start a slice id ``yyyy/mm/dd[/HH]`` names; SliceError naming it when it is not one."""
    try:
        if not SLICE_ID_RE.match(slice_id):
            raise ValueError(slice_id)
        parts = [int(p) for p in slice_id.split("/")]
        return dt.datetime(*parts[:3], parts[3] if len(parts) > 3 else 0, tzinfo=dt.UTC)
    except ValueError:
        raise SliceError(f"{slice_id!r} is not a slice id: use yyyy/mm/dd (e.g. 2025/03/01) or yyyy/mm/dd/HH for "
                         "sub-day slices") from None


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A plain ``datetime`` in UTC (Airflow hands out pendulum DateTimes, whose arithmetic differs)."""
    if moment.tzinfo is None:
        raise SliceError(f"{moment!r} has no timezone; pass an aware UTC datetime")
    utc = moment.astimezone(dt.UTC)  # field by field, not through a float timestamp: exact to the microsecond
    return dt.datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=dt.UTC)


def validate_field(field: str) -> str:
    if not _FIELD_RE.match(field):
        raise SliceError(
            f"timestamp field {field!r} is not a plain property path; use e.g. '_ts' or 'invoice.issuedAt'"
        )
    return field


def field_expression(field: str, alias: str = "c") -> str:
    """Cosmos SQL property access for a validated dotted path (property names cannot be query parameters)."""
    return alias + "".join(f'["{part}"]' for part in validate_field(field).split("."))


def bound_value(moment: dt.datetime, kind: TimestampKind) -> int | str:
    """The query parameter for a slice bound in the stored representation of the timestamp field."""
    if kind == "epoch_seconds":
        return int(moment.timestamp())
    if kind == "iso8601":
        # Fixed-width UTC strings compare lexicographically in time order (isoformat pads years below 1000).
        return as_utc(moment).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    raise SliceError(f"timestamp kind {kind!r} is not supported; use 'epoch_seconds' or 'iso8601'")


def slice_grid(start: dt.datetime, end: dt.datetime, *, slice_hours: int = 24) -> list[TimeSlice]:
    """Slices covering [start, end) on a fixed grid from the Unix epoch, oldest first.

    ``slice_hours`` divides 24 (sub-day slices) or is a whole number of days (e.g. 168 for weeks); the grid never
    moves, so the same instant always falls in the same slice and re-planning is idempotent.
    """
    first = slice_of(start, slice_hours)
    step = first.end - first.start
    cursor, end = first.start, as_utc(end)
    slices = []
    while cursor < end:
        slices.append(TimeSlice(cursor, cursor + step))
        cursor += step
    return slices


def validate_slice_hours(slice_hours: int) -> int:
    if slice_hours <= 0 or (24 % slice_hours and slice_hours % 24):
        raise SliceError(
            f"slice_hours={slice_hours} must divide 24 (1, 2, 3, 4, 6, 8, 12) "
            "or be a whole number of days (24, 168, 720, ...)"
        )
    return slice_hours


def cutoff(now: dt.datetime, cutoff_days: int) -> dt.datetime:
    """Records strictly older than this (UTC midnight, ``cutoff_days`` back) are cold enough to archive."""
    if cutoff_days < 1:
        raise SliceError(f"cutoff_days={cutoff_days} must be at least 1 (the default is 90)")
    day = (as_utc(now) - dt.timedelta(days=cutoff_days)).date()
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


# --- timestamps as instants ------------------------------------------------------------------------------------------
# The server-side range query compares the stored values: numbers numerically, strings lexicographically. Strings
# compare in time order only in the canonical UTC spelling ``bound_value`` writes (``2026-06-06T00:00:00.000Z``);
# any other ISO 8601 spelling (an offset, no or more fractional digits, a date only) is parsed to its UTC instant
# here and assigned by that instant (source.reader reads such spellings near a slice's range; source.census counts
# them). A value that is missing, of another kind, or not parseable is never silently dropped: it has a reason.

TimestampProblem = Literal["timestamp_missing", "timestamp_wrong_kind", "timestamp_unparseable",
                           "timestamp_out_of_range"]
CANONICAL_ISO_LENGTH = 24  # len("2026-06-06T00:00:00.000Z")
MAX_UTC_OFFSET = dt.timedelta(hours=24)  # the widest offset an ISO 8601 value can carry (Python accepts < 24 h)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?![0-9])")
_LEAP_SECOND_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:)60(?:[.,]\d+)?(?=$|Z|[+-])")
MISSING: Any = _Missing()  # a property the document does not have (distinct from JSON null)


class TimestampError(SliceError):
    """A document's timestamp cannot place it in a slice; ``problem`` says why (a census category)."""

    def __init__(self, problem: TimestampProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def field_value(document: dict[str, Any], field: str) -> Any:
    """The value at a dotted property path, or MISSING."""
    value: Any = document
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def is_canonical_iso(value: Any) -> bool:
    """The spelling whose lexicographic order is time order (the shape :func:`canonical_iso_sql` tests server-side)."""
    return (isinstance(value, str) and len(value) == CANONICAL_ISO_LENGTH and value[10] == "T" and value[19] == "."
            and value.endswith("Z"))


def canonical_iso_sql(expr: str) -> str:
    """Cosmos SQL for :func:`is_canonical_iso` of a string expression (LENGTH/SUBSTRING/ENDSWITH, as cosmosdb-server
    and Cosmos DB both evaluate them)."""
    return (f'(LENGTH({expr}) = {CANONICAL_ISO_LENGTH} AND SUBSTRING({expr}, 10, 1) = "T" '
            f'AND SUBSTRING({expr}, 19, 1) = "." AND ENDSWITH({expr}, "Z"))')


def timestamp_instant(value: Any, kind: TimestampKind, field: str = "timestamp") -> dt.datetime:
    """The UTC instant a stored timestamp value means, or TimestampError naming the problem.

    ``iso8601``: any ISO 8601 string Python reads (offsets, fractional seconds, ``Z``, a date only = its UTC
    midnight; no offset = UTC). ``epoch_seconds``: an int or float of seconds since the Unix epoch. ``null`` counts
    as missing; a value of the other kind (a number where a string is expected, or the reverse) is ``wrong_kind``.

    A leap second (``...T23:59:60Z``, which Python does not read) is the last microsecond of its minute: where the
    canonical spelling's text order puts it, before the next minute. An impossible date (``2026-02-30``) is
    ``unparseable``; an instant outside what a slice can hold (before 0001-01-01 or from 9999-12-31 in UTC, e.g.
    ``0001-01-01T00:30:00+01:00``) is ``out_of_range``. (The server-side range query places a canonical spelling by
    its text alone, so a canonical-looking impossible date is archived in the slice its text falls in.)
    """
    if value is MISSING or value is None:
        raise TimestampError("timestamp_missing", f"{field} is {'missing' if value is MISSING else 'null'}")
    if kind == "iso8601":
        if not isinstance(value, str):
            raise TimestampError("timestamp_wrong_kind",
                                 f"{field}={value!r} is a {type(value).__name__}, not an ISO 8601 string")
        try:
            if not _ISO_DATE_RE.match(value):  # the written date leads, so the reader finds it near its slice
                raise ValueError(value)
            leap = _LEAP_SECOND_RE.match(value)
            text = value if leap is None else f"{leap.group(1)}59.999999{value[leap.end():]}"
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise TimestampError("timestamp_unparseable", f"{field}={value!r} is not an ISO 8601 date/time "
                                 "in extended format (YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM])") from None
        try:
            instant = parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
            slice_of(instant, 24)  # every instant has a day slice, so a slice of any grid (up to a day)
        except (OverflowError, TimestampError):
            raise _out_of_range(field, value) from None
        return instant
    if kind == "epoch_seconds":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TimestampError("timestamp_wrong_kind",
                                 f"{field}={value!r} is a {type(value).__name__}, not a number of epoch seconds")
        try:
            instant = dt.datetime.fromtimestamp(value, dt.UTC)
            slice_of(instant, 24)
        except (OverflowError, OSError, ValueError, TimestampError):
            raise _out_of_range(field, value) from None
        return instant
    raise SliceError(f"timestamp kind {kind!r} is not supported; use 'epoch_seconds' or 'iso8601'")


def _out_of_range(field: str, value: Any) -> TimestampError:
    return TimestampError("timestamp_out_of_range", f"{field}={value!r} is outside the instants a slice can hold "
                          "(0001-01-01T00:00:00Z up to the last whole slice before year 10000)")


def slice_of(instant: dt.datetime, slice_hours: int) -> TimeSlice:
    """The grid slice holding ``instant`` (the grid of :func:`slice_grid`); TimestampError (``out_of_range``) when
    that slice would begin before year 1 or end after year 9999."""
    step = dt.timedelta(hours=validate_slice_hours(slice_hours))
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    try:
        start = epoch + step * ((as_utc(instant) - epoch) // step)
        return TimeSlice(start, start + step)
    except OverflowError:
        raise _out_of_range("instant", instant.isoformat()) from None
