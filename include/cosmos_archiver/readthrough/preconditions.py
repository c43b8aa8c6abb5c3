"""``If-Match`` as RFC 9110 section 13.1.1 defines it, for the billing API's writes.

``*`` matches any current representation and fails when there is none (the record is missing or deleted);
otherwise the header is a list of entity tags, compared strongly: a weak tag (``W/"..."``) never matches. A tag is
compared without its quotes, so a client that sends the bare ``_etag`` is understood too.
"""

from __future__ import annotations

from include.cosmos_archiver.readthrough.errors import PreconditionFailed


def if_match_holds(header: str, etag: str | None) -> bool:
    """Whether ``If-Match: header`` holds for a record whose current ETag is ``etag`` (None: no record)."""
    if etag is None:
        return False
    if header.strip() == "*":
        return True
    current = etag.strip('"')
    return any(not tag.startswith("W/") and tag.strip('"') == current
               for tag in (t.strip() for t in header.split(",")))


def check_if_match(header: str | None, etag: str | None, record_id: str) -> None:
    """PreconditionFailed unless there is no ``If-Match`` or it holds."""
    if header is not None and not if_match_holds(header, etag):
        now = f"its current ETag is {etag!r}" if etag else "it does not exist"
        raise PreconditionFailed(f"If-Match {header!r} does not hold for {record_id!r} ({now}): read the record "
                                 "again and retry", parameter="If-Match", value=header)
