"""compact_index runs one at a time: the runs of a backfill compact the read-through index at once (Airflow 3
backfills ignore the DAG's max_active_runs), and two interleaved compactions lose index entries or fail on a delta
the other deleted (BlobNotFound, then a 2-minute retry: tests/test_backfill.py timed out on it)."""

from __future__ import annotations

import pytest

from include.cosmos_archiver.archive.slice_lease import SliceBusyError, slice_lease
from include.cosmos_archiver.readthrough.index import INDEX_DIR, compact_index


def test_a_compaction_waits_for_the_one_holding_the_index_lease(archive_store):
    with slice_lease(archive_store, INDEX_DIR, wait_s=0), pytest.raises(SliceBusyError, match="busy"):
        compact_index(archive_store, wait_s=0)
    assert compact_index(archive_store, wait_s=0) == {"deltas": 0, "shards_written": 0, "entries": 0}
