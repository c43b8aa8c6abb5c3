"""Run parameters of the ``cosmos_archive_copy`` pipeline for one slice, and their inverse (used by the stand-in).

``sliceStart``/``sliceEnd`` are Cosmos SQL literals of the slice bounds in the stored representation of the
timestamp field: JSON numbers for epoch seconds, JSON (double-quoted) strings for ISO-8601 — both valid Cosmos SQL
constants, so the pipeline's query can splice them in without knowing the representation. ``partitionKeyPath`` is
the container's partition key path as a dotted property path (``/customerId`` -> ``customerId``): the query projects
it as the ``partition_key`` column. ``placedFilter`` is the reader's :func:`placed_filter`, appended to the query's
WHERE clause so the pipeline copies exactly what the local executor's range query reads.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from include.cosmos_archiver.archive.store import slice_folder
from include.cosmos_archiver.errors import TerminalError
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice, bound_value, validate_field
from include.cosmos_archiver.source.reader import placed_filter

PARAMETER_NAMES = (
    "sliceStart",
    "sliceEnd",
    "timestampField",
    "partitionKeyPath",
    "outputPath",
    "pageSize",
    "parallelCopies",
    "placedFilter",
)
MAX_PARALLEL_COPIES = 256  # the Copy activity's documented upper bound


class ParameterError(TerminalError, ValueError):
    pass


def partition_key_field(partition_key_path: str) -> str:
    """``/customerId`` -> ``customerId`` (``/a/b`` -> ``a.b``): the form the pipeline's query splices in."""
    field = partition_key_path.strip("/").replace("/", ".")
    try:
        return validate_field(field)
    except ValueError:
        raise ParameterError(
            f"partition_key_path={partition_key_path!r} is not a plain property path the ADF query can project; "
            "use letters, digits and underscores, e.g. '/customerId'"
        ) from None


def pipeline_parameters(
    time_slice: TimeSlice, settings: ArchiveSettings, page_size: int, parallel_copies: int = 1
) -> dict[str, Any]:
    """The createRun parameters that make the pipeline copy ``time_slice`` into its archive folder.

    ``page_size`` is the batch size the RU controller allows now; ``parallel_copies`` bounds the Copy activity's
    concurrent reads (keep it 1 unless the RU budget was sized for more).
    """
    for name, value, upper in (
        ("page_size", page_size, None),
        ("parallel_copies", parallel_copies, MAX_PARALLEL_COPIES),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (upper and value > upper):
            limit = f"1-{upper}" if upper else "at least 1"
            raise ParameterError(f"{name}={value!r} must be an integer {limit}")
    return {
        "sliceStart": json.dumps(bound_value(time_slice.start, settings.timestamp_kind)),
        "sliceEnd": json.dumps(bound_value(time_slice.end, settings.timestamp_kind)),
        "timestampField": settings.timestamp_field,
        "partitionKeyPath": partition_key_field(settings.partition_key_path),
        "outputPath": slice_folder(settings.blob_prefix, time_slice.slice_id),
        "pageSize": page_size,
        "parallelCopies": parallel_copies,
        # the reader's own narrowing of the range query: the pipeline copies what the local executor's range query
        # reads; documents in other ISO 8601 spellings are added by index_adf_slice, placed by their instant
        "placedFilter": placed_filter(settings.timestamp_field, settings.timestamp_kind, settings.partition_key_path),
    }


def _bound_from_literal(name: str, literal: Any) -> dt.datetime:
    try:
        value = json.loads(literal) if isinstance(literal, str) else literal
        if isinstance(value, int) and not isinstance(value, bool):
            return dt.datetime.fromtimestamp(value, dt.UTC)
        if isinstance(value, str):
            moment = dt.datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment.astimezone(dt.UTC)
    except ValueError:
        pass
    raise ParameterError(
        f'pipeline parameter {name}={literal!r} is not a slice bound; expected epoch seconds (e.g. "1700000000") '
        'or a JSON-quoted UTC ISO-8601 string (e.g. "\\"2024-01-01T00:00:00.000Z\\"")'
    )


def slice_from_parameters(parameters: dict[str, Any]) -> tuple[TimeSlice, str, int]:
    """(slice, timestamp field, page size) back from createRun parameters; bad values raise ParameterError."""
    missing = [n for n in PARAMETER_NAMES if n not in parameters]
    if missing:
        raise ParameterError(f"pipeline parameter(s) {missing} missing; build them with pipeline_parameters()")
    start = _bound_from_literal("sliceStart", parameters["sliceStart"])
    end = _bound_from_literal("sliceEnd", parameters["sliceEnd"])
    try:
        time_slice = TimeSlice(start, end)
        field = validate_field(str(parameters["timestampField"]))
        page_size = int(parameters["pageSize"])
    except ValueError as exc:
        raise ParameterError(f"bad pipeline parameters: {exc}") from None
    return time_slice, field, page_size
