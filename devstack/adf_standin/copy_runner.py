"""The work behind a stand-in pipeline run: copy the slice named by the run parameters.

Two layouts:

* ``"adf"`` (default): what the real ``cosmos_archive_copy`` pipeline writes — Parquet files named
  ``<fileNamePrefix>_<NNNNN>.parquet`` of at most ``maxRowsPerFile`` rows (both read from the pipeline definition),
  compressed with the dataset's codec, holding the query's projection (id, partition_key, ts, etag, doc) with
  ``doc`` as JSON text NOT in canonical form (key order as served, default separators, non-ASCII escaped), and no
  manifest. ``indexing.index_adf_slice`` and validation have to cope with exactly that.
* ``"archive"``: the local executor's layout and manifest (``copy_slice``).
"""

from __future__ import annotations

import dataclasses
import io
import json
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


def write_adf_layout(
    container: ContainerProxy,
    store: ArchiveStore,
    time_slice: TimeSlice,
    settings: ArchiveSettings,
    sink: AdfSinkFormat | None = None,
) -> dict[str, Any]:
    """Copy the slice the way the ADF pipeline does (see the module docstring); return an ADF-like run output.

    Like ADF, it overwrites files of the same name and deletes nothing; an empty slice writes no file.
    """
    sink = sink or AdfSinkFormat.from_definitions()
    stats = ReadStats()
    pages = read_placed(SliceRead(  # the pipeline's query: the range with its placedFilter, nothing placed by instant
        container, time_slice, settings.timestamp_field, settings.timestamp_kind, settings.page_size, stats=stats,
        partition_key_path=settings.partition_key_path,
    ))  # fmt: skip
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
                db = cosmos_client(cosmos_endpoint, cosmos_key).get_database_client(settings.database)
                clients["cosmos"] = db.get_container_client(settings.container)
                clients["store"] = ArchiveStore(
                    blob_container(blob_connection_string, settings.blob_container), settings.blob_prefix
                )
            return clients["cosmos"]

    def run_copy(parameters: dict[str, Any]) -> dict[str, Any]:
        time_slice, field, page_size = slice_from_parameters(parameters)
        slice_settings = dataclasses.replace(settings, timestamp_field=field, page_size=page_size)
        expected = pipeline_parameters(time_slice, slice_settings, page_size, int(parameters["parallelCopies"]))
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
            return write_adf_layout(source, clients["store"], time_slice, slice_settings)
        manifest = copy_slice(
            source,
            clients["store"],
            time_slice,
            slice_settings,
            source={"database": settings.database, "container": settings.container},
        )
        return manifest.summary()

    return run_copy
