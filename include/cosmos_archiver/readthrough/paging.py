"""The list contract: one customer's records with ``from <= t < to``, where t is the INSTANT the timestamp field
means (as slices place records: :func:`slices.timestamp_instant`), ordered by (instant, id), pages of ``page_size``
(1..MAX_PAGE_SIZE), and an opaque continuation token.

A record written ``2026-06-06T01:00:00+01:00`` is at 2026-06-06T00:00Z: it is listed, and ordered, with the records
written ``2026-06-06T00:00:00.000Z``, the same before and after archiving (the archive index keeps the value as
written; both sides are placed here by its instant). A value that has no instant (missing, of the other kind, not
ISO 8601, out of datetime's range) is in no slice and in no list. ``from``/``to`` beyond the years 0001..9999 in
UTC (``0001-01-01T00:30:00+01:00``) are open bounds, not errors.

The token is the last returned record's (instant key, id) plus the query it belongs to, base64url JSON: a pure
function of the data, so a page reads the same whether its records came from Cosmos DB or the archive, and a token
stays valid across archiving (keyset paging: records added or removed meanwhile never shift a page).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from include.cosmos_archiver.archive.canonical import partition_key_value
from include.cosmos_archiver.readthrough.errors import BadRequest
from include.cosmos_archiver.slices import (
    MAX_UTC_OFFSET,
    SliceError,
    TimestampKind,
    as_utc,
    timestamp_instant,
)

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
TOKEN_VERSION = 2  # 2: ordered by instant (1 ordered by the stored value)
FIRST = dt.datetime.min.replace(tzinfo=dt.UTC)
_WRITTEN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # the date an ISO value leads with (ASCII digits only)


def instant_of(value: Any, kind: TimestampKind) -> dt.datetime | None:
    """The UTC instant a stored timestamp value means, None when it has none (see the module docstring)."""
    try:
        return timestamp_instant(value, kind)
    except (SliceError, OverflowError, ValueError):
        return None


def instant_key(instant: dt.datetime) -> str:
    """Fixed-width UTC text of an instant (years 0001..9999, microseconds): sorts in time order."""
    return as_utc(instant).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ListQuery:
    customer: str
    start: dt.datetime | None  # inclusive instant; None: open
    end: dt.datetime | None  # exclusive instant; None: open
    page_size: int
    after: tuple[str, str] | None  # (instant key, id) of the previous page's last record
    kind: TimestampKind = "iso8601"

    def place(self, value: Any, record_id: str) -> str | None:
        """The record's instant key when its timestamp ``value`` is in [start, end) and it comes after the token's
        record, else None."""
        instant = instant_of(value, self.kind)
        if instant is None or (self.start is not None and instant < self.start) or (
                self.end is not None and instant >= self.end):
            return None
        key = instant_key(instant)
        return None if self.after is not None and (key, record_id) <= self.after else key

    def server_filter(self, expr: str) -> tuple[str, list[dict[str, Any]]]:
        """A flat Cosmos SQL condition (ANDs only, no parentheses: cosmosdb-server parses nested ones in exponential
        time) on the timestamp expression, and its parameters, that holds at least every record :meth:`place`
        keeps: numbers by their range; ISO strings of any spelling by their written date within MAX_UTC_OFFSET of
        the range (as source.reader.spelling_query reads a slice). Loose on purpose: :meth:`place` decides."""
        lows = [m for m in (self.start, self._after_instant()) if m is not None]
        low, high = (max(lows) if lows else None), self.end
        if self.kind == "epoch_seconds":
            bounds = [(">=", None if low is None else math.floor(low.timestamp())),
                      ("<=", None if high is None else math.ceil(high.timestamp()))]
            cond = f"IS_NUMBER({expr})"
        else:
            bounds = [(">=", None if low is None else _date_or_none(low, -MAX_UTC_OFFSET)),
                      ("<", None if high is None else _date_or_none(high, MAX_UTC_OFFSET + dt.timedelta(days=1)))]
            cond = f"IS_STRING({expr})"
        params: list[dict[str, Any]] = []
        for n, (op, value) in enumerate(bounds):
            if value is not None:
                cond += f" AND {expr} {op} @b{n}"
                params.append({"name": f"@b{n}", "value": value})
        return cond, params

    def settled_below(self, value: Any) -> str | None:
        """The instant key under which the list knows every record once it has read, in the server's order of the
        stored values, everything up to ``value``: a record whose value sorts after it has an instant above the key.
        Numbers sort as instants. An ISO string's written date leads (:func:`slices.timestamp_instant`), so a value
        sorting after ``value`` is written on ``value``'s date or later, any time of day and with any separator,
        and its offset moves its instant less than MAX_UTC_OFFSET back from that date's midnight. None: no such
        key (not a value of the kind, or before year 0001)."""
        try:
            if self.kind == "epoch_seconds":
                instant = instant_of(value, self.kind)
            else:
                written = dt.date.fromisoformat(value[:10]) if isinstance(value, str) and _WRITTEN_DATE.match(
                    value) else None
                instant = None if written is None else (
                    dt.datetime.combine(written, dt.time(), dt.UTC) - MAX_UTC_OFFSET)
        except (ValueError, OverflowError):
            return None
        return None if instant is None else instant_key(instant)

    def next_batch(self, keys: list[str], first: Any, last: Any, rows: int, batch: int) -> int:
        """How many stored values the next keyset query reads, having read ``rows`` from ``first`` to ``last`` and
        placed ``keys``: about as many as lie, at the density read so far, between ``last`` and the value that would
        settle the ``page_size + 1``-th smallest key found (:meth:`settled_below`), and at least ``page_size + 1``;
        twice ``batch`` while fewer than ``page_size + 1`` records are placed. An estimate only: the reading goes
        on until the page is settled, whatever it reads."""
        need = self.page_size + 1
        if len(keys) < need:
            return 2 * batch
        target = _position(dt.datetime.fromisoformat(sorted(keys)[need - 1]), self.kind, settling=True)
        start, end = _position(first, self.kind), _position(last, self.kind)
        if target is None or start is None or end is None or target <= end:
            return need
        return max(need, math.ceil(rows * (target - end) / max(end - start, 1)))

    def _after_instant(self) -> dt.datetime | None:
        return None if self.after is None else dt.datetime.fromisoformat(self.after[0])


def _position(value: Any, kind: TimestampKind, settling: bool = False) -> float | None:
    """Where a stored value (or, ``settling``, the value that settles an instant) lies on the axis the keyset reads
    along: epoch seconds, or the ordinal of an ISO string's written date."""
    try:
        if settling:
            return value.timestamp() + 1 if kind == "epoch_seconds" else (
                (value + MAX_UTC_OFFSET).date().toordinal() + 1)
        if kind == "epoch_seconds":
            return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        return dt.date.fromisoformat(value[:10]).toordinal() if isinstance(value, str) and _WRITTEN_DATE.match(
            value) else None
    except (ValueError, OverflowError):
        return None


def _date_or_none(moment: dt.datetime, delta: dt.timedelta) -> str | None:
    try:
        return (moment + delta).date().isoformat()
    except OverflowError:
        return None


def timestamp_of(doc: dict[str, Any], timestamp_field: str) -> Any:
    return partition_key_value(doc, "/" + timestamp_field.replace(".", "/"))


def parse_moment(text: str | None, parameter: str) -> tuple[dt.datetime | None, int]:
    """``YYYY-MM-DD`` (UTC midnight) or an ISO-8601 date-time with a UTC offset, as ``(UTC instant, 0)``;
    ``(None, 0)`` for none given; an instant before 0001-01-01T00:00Z is ``(None, -1)``, one after
    9999-12-31T23:59:59.999999Z ``(None, 1)`` (datetime cannot hold them)."""
    if text is None or text == "":
        return None, 0
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if "T" in text else (
            dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC))
    except ValueError:
        raise BadRequest(f"{parameter}={text!r} is not a date: use YYYY-MM-DD or an ISO-8601 date-time such as "
                         "2025-03-01T00:00:00Z", parameter=parameter, value=text) from None
    if moment.tzinfo is None:
        raise BadRequest(f"{parameter}={text!r} has no UTC offset: add Z or +00:00", parameter=parameter, value=text)
    try:
        return as_utc(moment), 0
    except OverflowError:  # its UTC instant is outside years 0001..9999
        return None, -1 if moment.year == 1 else 1


def page_size_of(value: Any) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            value = None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PAGE_SIZE:
        raise BadRequest(f"pageSize={value!r} must be a whole number from 1 to {MAX_PAGE_SIZE}",
                         parameter="pageSize", value=value)
    return value


def build_query(customer: str, start: str | None, end: str | None, page_size: Any, continuation: str | None,
                kind: TimestampKind) -> ListQuery:
    """Validate the list parameters (a BadRequest names the first bad one) into a ListQuery."""
    if not customer:
        raise BadRequest("customerId is required", parameter="customerId", value=customer)
    size = page_size_of(page_size)
    (lo, lo_beyond), (hi, hi_beyond) = parse_moment(start, "from"), parse_moment(end, "to")
    if lo_beyond > 0 or hi_beyond < 0:  # from after the last instant, or to before the first: nothing is in range
        lo = hi = FIRST
    elif lo is not None and hi is not None and lo >= hi:
        raise BadRequest(f"from={start!r} must be before to={end!r}", parameter="from", value=start)
    query = ListQuery(customer, lo, hi, size, None, kind)
    if continuation:
        return ListQuery(customer, lo, hi, size, decode_token(continuation, query), kind)
    return query


def _bounds(query: ListQuery) -> list[str | None]:
    return [None if m is None else instant_key(m) for m in (query.start, query.end)]


def encode_token(query: ListQuery, order: str, record_id: str) -> str:
    raw = json.dumps([TOKEN_VERSION, query.customer, *_bounds(query), order, record_id],
                     ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, query: ListQuery) -> tuple[str, str]:
    bad = BadRequest(f"continuation={token[:80]!r} is not a token this API issued for this customerId/from/to: "
                     "start again without it", parameter="continuation", value=token[:200])
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    if not (isinstance(raw, list) and len(raw) == 6 and raw[0] == TOKEN_VERSION
            and raw[1:4] == [query.customer, *_bounds(query)] and isinstance(raw[4], str) and isinstance(raw[5], str)):
        raise bad
    try:  # a key this API wrote: fixed-width UTC (a crafted naive or offset one would compare wrongly)
        if instant_key(dt.datetime.fromisoformat(raw[4])) != raw[4]:
            raise bad
    except (ValueError, OverflowError):
        raise bad from None
    return raw[4], raw[5]
