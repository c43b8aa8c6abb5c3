"""Time slices ``[start, end)`` of the archive, their blob paths, and which ones are due.

A slice is identified by its start; its data lives under ``<prefix>/yyyy/mm/dd[/HH]/`` so that re-running a slice
addresses exactly the same blobs (idempotent backfills).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

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
        base = self.start.strftime("%Y/%m/%d")
        whole_days = (self.end - self.start) % dt.timedelta(days=1) == dt.timedelta(0) and self.start.hour == 0
        return base if whole_days else f"{base}/{self.start:%H}"

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "slice_id": self.slice_id}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> TimeSlice:
        return cls(dt.datetime.fromisoformat(data["start"]), dt.datetime.fromisoformat(data["end"]))


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A plain ``datetime`` in UTC (Airflow hands out pendulum DateTimes, whose arithmetic differs)."""
    if moment.tzinfo is None:
        raise SliceError(f"{moment!r} has no timezone; pass an aware UTC datetime")
    return dt.datetime.fromtimestamp(moment.timestamp(), dt.UTC)


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
        # Fixed-width UTC strings compare lexicographically in time order.
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    raise SliceError(f"timestamp kind {kind!r} is not supported; use 'epoch_seconds' or 'iso8601'")


def slice_grid(start: dt.datetime, end: dt.datetime, *, slice_hours: int = 24) -> list[TimeSlice]:
    """Slices covering [start, end) on a fixed grid from the Unix epoch, oldest first.

    ``slice_hours`` divides 24 (sub-day slices) or is a whole number of days (e.g. 168 for weeks); the grid never
    moves, so the same instant always falls in the same slice and re-planning is idempotent.
    """
    validate_slice_hours(slice_hours)
    step = dt.timedelta(hours=slice_hours)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    cursor = epoch + step * ((as_utc(start) - epoch) // step)
    end = as_utc(end)
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
