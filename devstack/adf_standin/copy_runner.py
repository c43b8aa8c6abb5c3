"""The work behind a stand-in pipeline run: copy the slice named by the run parameters.

Two layouts:

* ``"adf"`` (default): what the real ``cosmos_archive_copy`` pipeline writes — Parquet files named
  ``<fileNamePrefix>_<NNNNN>.parquet`` of at most ``maxRowsPerFile`` rows (both read from the pipeline definition),
  compressed with the dataset's codec, holding the query's projection (id, partition_key, ts, etag, doc) with
  ``doc`` as JSON text NOT in canonical form (key order as served, default separators, non-ASCII escaped), and no
  manifest. ``indexing.index_adf_slice`` and validation have to cope with exactly that.
* ``"archive"``: the local executor's layout and manifest (``copy_slice``).

How it reads Cosmos DB, as ADF does (issue 17): through the RU gateway like every client, identified by the user agent
``azure-data-factory-standin`` so the gateway books its RU under its own traffic class ``adf`` (totals, per-second
stats, the ``TrafficClass`` metric dimension); unpaced (an ADF Copy activity's Cosmos DB source has no RU rate
setting, only ``pageSize``: shared README, facts of 2026-12-04); each query page asks for ``pageSize`` items; and
``parallelCopies`` readers run at once (``adf_pages``). ADF splits a Cosmos DB source among its parallel copies by
physical partition; the local gateway serves one partition key range (proxy.py says why), so the stand-in splits
the slice's time range into ``parallelCopies`` equal parts instead (a guess at the shape; the RU load it sends at
once, what matters to the account, is the same: one query per reader, each paying its pages).
"""

from __future__ import annotations

import dataclasses
import io
import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from azure.cosmos import ContainerProxy

from include.cosmos_archiver.adf import PIPELINE_NAME
from include.cosmos_archiver.adf.definitions import load_definitions
from include.cosmos_archiver.adf.parameters import ParameterError, pipeline_parameters, slice_from_parameters
from include.cosmos_archiver.archive.canonical import partition_key_text, partition_key_value
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import blob_container, cosmos_client
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice
from include.cosmos_archiver.source.reader import ReadStats, SliceRead, read_placed

RunCopy = Callable[[dict[str, Any]], dict[str, Any]]
ADF_USER_AGENT = "azure-data-factory-standin"  # the RU gateway books it as traffic class "adf"
Layout = Literal["adf", "archive"]
LAYOUTS: tuple[Layout, ...] = ("adf", "archive")
ADF_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("partition_key", pa.string()),
        pa.field("ts", pa.int64()),
        pa.field("etag", pa.string()),
        pa.field("doc", pa.string()),
    ]
)


@dataclasses.dataclass(frozen=True)
class AdfSinkFormat:
    """The sink settings of the deployed definitions that shape ADF's files."""

    file_name_prefix: str
    max_rows_per_file: int
    compression: str

    @classmethod
    def from_definitions(cls) -> AdfSinkFormat:
        by_name = {r.name: r.body for r in load_definitions()}
        copy = by_name[PIPELINE_NAME]["properties"]["activities"][0]["typeProperties"]
        fmt = copy["sink"]["formatSettings"]
        dataset = by_name["ArchiveParquetSlice"]["properties"]["typeProperties"]
        return cls(fmt["fileNamePrefix"], int(fmt["maxRowsPerFile"]), dataset.get("compressionCodec", "snappy"))

    def file_name(self, index: int) -> str:
        return f"{self.file_name_prefix}_{index:05d}.parquet"


def _adf_rows(docs: list[dict[str, Any]], partition_key_path: str) -> dict[str, list[Any]]:
    """The pipeline query's projection of ``docs`` with the doc serialised the way a JSON writer that is not ours
    would: served key order, default separators, ASCII escapes."""
    pk = [partition_key_value(d, partition_key_path) for d in docs]
    ts = [d.get("_ts") for d in docs]
    return {
        "id": [d.get("id") for d in docs],
        "partition_key": [None if v is None else partition_key_text(v) for v in pk],
        "ts": [v if isinstance(v, int) and not isinstance(v, bool) else None for v in ts],
        "etag": [d.get("_etag") for d in docs],
        "doc": [json.dumps(d) for d in docs],
    }


def _chunks(pages: Iterator[list[dict[str, Any]]], size: int) -> Iterator[list[dict[str, Any]]]:
    buffered: list[dict[str, Any]] = []
    for page in pages:
        buffered.extend(page)
        while len(buffered) >= size:
            yield buffered[:size]
            buffered = buffered[size:]
    if buffered:
        yield buffered


def adf_pages(
    container: ContainerProxy,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    parallel_copies: int = 1,
    stats: ReadStats | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The pipeline query's pages (``settings.page_size`` items each), read by ``parallel_copies`` concurrent readers
    over equal parts of the slice, unpaced; charges and 429s add up in ``stats``."""
    stats = stats if stats is not None else ReadStats()
    span = (time_slice.end - time_slice.start) / max(1, parallel_copies)
    parts = [TimeSlice(time_slice.start + span * i, time_slice.start + span * (i + 1)) for i in range(parallel_copies)]
    parts[-1] = TimeSlice(parts[-1].start, time_slice.end)
    pages: queue.Queue[list[dict[str, Any]] | BaseException | None] = queue.Queue(maxsize=2 * len(parts))
    part_stats = [ReadStats() for _ in parts]

    def reader(part: TimeSlice, own: ReadStats) -> None:
        try:
            for page in read_placed(SliceRead(  # the pipeline's query: the range with its placedFilter
                container, part, settings.timestamp_field, settings.timestamp_kind, settings.page_size, stats=own,
                partition_key_path=settings.partition_key_path,
            )):  # fmt: skip
                pages.put(page)
            pages.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            pages.put(exc)

    threads = [
        threading.Thread(target=reader, args=(part, own), daemon=True)
        for part, own in zip(parts, part_stats, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        done = 0
        while done < len(threads):
            item = pages.get()
            if item is None:
                done += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for own in part_stats:
            stats.ru_charged += own.ru_charged
            stats.pages += own.pages
            stats.throttled_requests += own.throttled_requests


def adf_source(cosmos_endpoint: str, cosmos_key: str, settings: ArchiveSettings) -> ContainerProxy:
    """The container as ADF's Cosmos DB source reaches it: its own user agent, no priority, no throughput bucket."""
    client = cosmos_client(cosmos_endpoint, cosmos_key, user_agent=ADF_USER_AGENT)
    return client.get_database_client(settings.database).get_container_client(settings.container)


def write_adf_layout(
    container: ContainerProxy,
    store: ArchiveStore,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    sink: AdfSinkFormat | None = None,
    parallel_copies: int = 1,
) -> dict[str, Any]:
    """Copy the slice the way the ADF pipeline does (see the module docstring); return an ADF-like run output.

    Like ADF, it overwrites files of the same name and deletes nothing; an empty slice writes no file.
    """
    sink = sink or AdfSinkFormat.from_definitions()
    stats = ReadStats()
    # the pipeline's query: the range with its placedFilter, nothing placed by instant
    pages = adf_pages(container, time_slice, settings, parallel_copies, stats)
    folder = store.slice_dir(time_slice.slice_id)
    rows = files = written = 0
    for index, docs in enumerate(_chunks(pages, sink.max_rows_per_file)):
        table = pa.table(_adf_rows(docs, settings.partition_key_path), schema=ADF_SCHEMA)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression=sink.compression)
        data = buffer.getvalue()
        store.upload(f"{folder}/{sink.file_name(index)}", data)
        rows, files, written = rows + len(docs), files + 1, written + len(data)
    return {
        "records": rows,
        "rowsRead": rows,
        "rowsCopied": rows,
        "filesWritten": files,
        "dataWritten": written,
        "copiedRu": round(stats.ru_charged, 2),
        "layout": "adf",
    }


def copy_runner(
    cosmos_endpoint: str,
    cosmos_key: str,
    blob_connection_string: str,
    settings: ArchiveSettings,
    *,
    layout: Layout = "adf",
) -> RunCopy:
    """A ``run_copy(parameters) -> output`` that carries out one ``cosmos_archive_copy`` run locally.

    The parameters must be exactly what :func:`pipeline_parameters` makes for ``settings`` (same timestamp
    representation, partition key, folder), otherwise the run fails naming the mismatch: the stand-in checks the
    contract a real factory would silently act on. ``layout`` picks what the run writes (module docstring).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} must be one of {LAYOUTS}")
    lock = threading.Lock()
    clients: dict[str, Any] = {}

    def container() -> ContainerProxy:
        with lock:
            if "cosmos" not in clients:
                clients["cosmos"] = adf_source(cosmos_endpoint, cosmos_key, settings)
                clients["store"] = ArchiveStore(
                    blob_container(blob_connection_string, settings.blob_container), settings.blob_prefix
                )
            return clients["cosmos"]

    def run_copy(parameters: dict[str, Any]) -> dict[str, Any]:
        time_slice, field, page_size = slice_from_parameters(parameters)
        slice_settings = dataclasses.replace(settings, timestamp_field=field, page_size=page_size)
        parallel_copies = int(parameters["parallelCopies"])
        expected = pipeline_parameters(time_slice, slice_settings, page_size, parallel_copies)
        keys = ("sliceStart", "sliceEnd", "partitionKeyPath", "outputPath", "placedFilter")
        mismatched = {k: parameters[k] for k in keys if parameters[k] != expected[k]}
        if mismatched:
            wanted = {k: expected[k] for k in mismatched}
            raise ParameterError(
                f"run parameters {mismatched} do not match the archive settings (expected {wanted}); "
                "build them with pipeline_parameters() from the same settings"
            )
        source = container()
        if layout == "adf":
            store = clients["store"]
            return write_adf_layout(source, store, time_slice, slice_settings, parallel_copies=parallel_copies)
        manifest = copy_slice(
            source,
            clients["store"],
            time_slice,
            slice_settings,
            source={"database": settings.database, "container": settings.container},
        )
        return manifest.summary()

    return run_copy
