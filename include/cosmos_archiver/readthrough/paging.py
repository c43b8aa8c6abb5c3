"""The list contract: one customer's records with ``from <= t < to`` on the timestamp field, ordered by
(timestamp value, id), pages of ``page_size`` (1..MAX_PAGE_SIZE), and an opaque continuation token.

The token is the last returned record's (timestamp value, id) plus the query it belongs to, base64url JSON: a
pure function of the data, so a page reads the same whether its records came from Cosmos DB or the archive, and
a token stays valid across archiving (keyset paging: records added or removed meanwhile never shift a page).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from include.cosmos_archiver.archive.canonical import partition_key_value
from include.cosmos_archiver.readthrough.errors import BadRequest
from include.cosmos_archiver.slices import TimestampKind, bound_value

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
TOKEN_VERSION = 1
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ListQuery:
    customer: str
    start: Any  # bound in the stored representation of the timestamp field
    end: Any
    page_size: int
    after: tuple[Any, str] | None  # (timestamp value, id) of the previous page's last record

    def in_range(self, order: Any, record_id: str) -> bool:
        if order is None or type(order) is not type(self.start) or not self.start <= order < self.end:
            return False
        return self.after is None or (order, record_id) > self.after


def timestamp_of(doc: dict[str, Any], timestamp_field: str) -> Any:
    return partition_key_value(doc, "/" + timestamp_field.replace(".", "/"))


def parse_moment(text: str | None, parameter: str, default: dt.datetime) -> dt.datetime:
    """``YYYY-MM-DD`` (UTC midnight) or an ISO-8601 date-time with a UTC offset."""
    if text is None or text == "":
        return default
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if "T" in text else (
            dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC))
    except ValueError:
        raise BadRequest(f"{parameter}={text!r} is not a date: use YYYY-MM-DD or an ISO-8601 date-time such as "
                         "2025-03-01T00:00:00Z", parameter=parameter, value=text) from None
    if moment.tzinfo is None:
        raise BadRequest(f"{parameter}={text!r} has no UTC offset: add Z or +00:00", parameter=parameter, value=text)
    return moment.astimezone(dt.UTC)


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
    lo, hi = parse_moment(start, "from", EARLIEST), parse_moment(end, "to", LATEST)
    if lo >= hi:
        raise BadRequest(f"from={start!r} must be before to={end!r}", parameter="from", value=start)
    query = ListQuery(customer, bound_value(lo, kind), bound_value(hi, kind), size, None)
    if continuation:
        return ListQuery(customer, query.start, query.end, size, decode_token(continuation, query))
    return query


def encode_token(query: ListQuery, order: Any, record_id: str) -> str:
    raw = json.dumps([TOKEN_VERSION, query.customer, query.start, query.end, order, record_id],
                     ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, query: ListQuery) -> tuple[Any, str]:
    bad = BadRequest(f"continuation={token[:80]!r} is not a token this API issued for this customerId/from/to: "
                     "start again without it", parameter="continuation", value=token[:200])
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    if not (isinstance(raw, list) and len(raw) == 6 and raw[0] == TOKEN_VERSION
            and raw[1:4] == [query.customer, query.start, query.end] and isinstance(raw[5], str)
            and type(raw[4]) is type(query.start)):
        raise bad
    return raw[4], raw[5]
