"""What the archive has learnt about its source that changes which queries a run must send (``_source_facts.json``
at the archive prefix's root).

``other_spellings``: whether any document spells its ISO 8601 timestamp other than the canonical UTC form
(``2025-03-01T00:00:00.000Z``). Such a value cannot be placed by the slice's range query, so every slice query
would add a second query over the neighbouring days with LENGTH/SUBSTRING/ENDSWITH filters, which the index cannot
serve: on Azure it loads every document of those days (+3 to +12 RU per record at ~10 RU per MB loaded,
troubleshoot-query-performance). The archiver therefore sends it only once the source is known to have such values:
found by preflight's sample, by validation (a slice's index-served range count exceeds what its copy placed), or
by the occasional full census. Until then nothing is lost: a document the range query does not place stays in
Cosmos DB (the purge deletes only archived versions), and the first of those three to see one turns this on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from azure.core.exceptions import ResourceNotFoundError

from include.cosmos_archiver.archive.store import ArchiveStore

log = logging.getLogger(__name__)
FACTS_NAME = "_source_facts.json"


def facts_path(store: ArchiveStore) -> str:
    return f"{store.prefix}/{FACTS_NAME}" if store.prefix else FACTS_NAME


def read_source_facts(store: ArchiveStore) -> dict:
    try:
        return json.loads(store.download(facts_path(store)))
    except ResourceNotFoundError:
        return {}


def other_spellings_seen(store: ArchiveStore) -> bool:
    """True once any document was seen with a non-canonical ISO 8601 timestamp: slice queries look for them."""
    return bool((read_source_facts(store).get("other_spellings") or {}).get("seen"))


def note_other_spellings(store: ArchiveStore, *, found_by: str, count: int) -> None:
    """Record that the source holds ``count`` (at least) non-canonical timestamps: from now on slice queries look for
    them (idempotent; the first finding is kept, later ones only raise the count)."""
    facts = read_source_facts(store)
    known = facts.get("other_spellings") or {}
    if known.get("seen") and int(known.get("count", 0)) >= count:
        return
    facts["other_spellings"] = {"seen": True, "found_by": known.get("found_by") or found_by,
                                "at": known.get("at") or dt.datetime.now(dt.UTC).isoformat(),
                                "count": max(count, int(known.get("count", 0)))}
    store.upload(facts_path(store), json.dumps(facts, indent=1).encode(), content_type="application/json")
    log.warning("the source holds %d timestamp(s) in another spelling than canonical UTC (found by %s): slice "
                "queries now look for them near each slice", count, found_by)
