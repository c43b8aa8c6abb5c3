"""The reference billing API: the billing team's routes on the read-through repository, plus the lookup route an
API in another language calls on a Cosmos DB 404 (or when it reads a stub).

Bodies are the records' canonical JSON (keys sorted, compact), so a record reads byte for byte the same from
Cosmos DB and from the archive. ``X-Archive-Source`` (cosmos | archive; a list names each source it used) is for
operators, never in the body. Errors are JSON ``{"code", "message", "parameter", "value"}`` naming the bad value.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StringConstraints

from include.cosmos_archiver.readthrough.errors import HTTP_ERRORS, ReadThroughError
from include.cosmos_archiver.readthrough.markers import MARKER_SCHEMA
from include.cosmos_archiver.readthrough.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from include.cosmos_archiver.readthrough.repository import ID_RE, Page, ReadThroughRepository, Record

SOURCE_HEADER = "X-Archive-Source"
ID_PATTERN = ID_RE.pattern
JSON = "application/json"


class ErrorBody(BaseModel):
    code: str
    message: str
    parameter: str | None = None
    value: Any = None


class BillingRecordIn(BaseModel):
    """A billing record as written: any JSON object with an id and a customerId; a marker object of the archive's
    (readthrough/markers.py) is reserved, and system properties (_rid, _etag, ...) are Cosmos DB's to set."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"not": MARKER_SCHEMA})
    id: Annotated[str, StringConstraints(pattern=ID_PATTERN)]
    customerId: Annotated[str, StringConstraints(min_length=1, max_length=255)]


class RecordPage(BaseModel):
    continuation: str | None
    items: list[dict[str, Any]]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


SOURCE = {"description": "where the answer came from (for operators): cosmos or archive; a list names each source it "
          "used, comma-separated", "required": True, "schema": {"type": "string"}}
RECORD = {"content": {JSON: {"schema": {"type": "object"}}}, "description": "the billing record",
          "headers": {SOURCE_HEADER: SOURCE,
                      "ETag": {"description": "the record's _etag", "schema": {"type": "string"}}}}
PAGE = {"model": RecordPage, "headers": {SOURCE_HEADER: SOURCE}}
RecordId = Annotated[str, Path(pattern=ID_PATTERN, description="the record's id")]
CustomerId = Annotated[str, Query(alias="customerId", min_length=1, max_length=255)]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="the ETag the change is conditional on")]


def _record(record: Record, status: int = 200) -> Response:
    headers = {SOURCE_HEADER: record.source}
    if record.etag:
        headers["ETag"] = f'"{record.etag}"'
    return Response(record.body, status_code=status, media_type=JSON, headers=headers)


def _page(page: Page) -> Response:
    return Response(page.body(), media_type=JSON, headers={SOURCE_HEADER: ", ".join(sorted(page.sources)) or "cosmos"})


def create_app(repository: ReadThroughRepository) -> FastAPI:
    app = FastAPI(title="billing records (reference API)", version="1")
    app.state.repository = repository

    def _repository_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ReadThroughError)
        return JSONResponse(jsonable_encoder(exc.to_dict()), status_code=exc.status)

    for error in HTTP_ERRORS:
        app.add_exception_handler(error, _repository_error)

    @app.exception_handler(RequestValidationError)
    def _bad_input(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ())]
        parameter = loc[-1] if len(loc) > 1 else (loc[0] if loc else "request")
        if loc[:1] == ["body"]:
            parameter = "body" if len(loc) == 1 else ".".join(loc[1:])
        value = first.get("input")
        message = f"{parameter}={value!r}: {first.get('msg', 'invalid')}"
        if first.get("type") == "json_invalid":  # loc is ("body", <character offset>)
            why = (first.get("ctx") or {}).get("error", "JSON decode error")
            parameter, value = "body", None
            message = f"the request body is not valid JSON ({why} at character {loc[-1]}); send a JSON object"
        body = {"code": "BadRequest", "message": message[:500], "parameter": parameter,
                "value": jsonable_encoder(value, custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})}
        return JSONResponse(body, status_code=400)

    @app.get("/billing-records/{id}", responses={200: RECORD, **_errors(400, 404, 503)})
    def get_record(id: RecordId, customer: CustomerId) -> Response:
        return _record(repository.get(id, customer))

    @app.get("/billing-records", responses={200: PAGE, **_errors(400, 503)})
    def list_records(
        customer: CustomerId,
        start: Annotated[str | None, Query(alias="from", description="YYYY-MM-DD or ISO-8601, inclusive")] = None,
        end: Annotated[str | None, Query(alias="to", description="YYYY-MM-DD or ISO-8601, exclusive")] = None,
        page_size: Annotated[int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
        continuation: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> Response:
        return _page(repository.list(customer, start, end, page_size, continuation))

    @app.post("/billing-records", status_code=201, responses={201: RECORD, **_errors(400, 409, 503)})
    def create_record(record: Annotated[BillingRecordIn, Body()]) -> Response:
        return _record(repository.create(record.model_dump()), 201)

    @app.put("/billing-records/{id}", responses={200: RECORD, **_errors(400, 404, 412, 503)})
    def replace_record(id: RecordId, record: Annotated[BillingRecordIn, Body()], if_match: IfMatch = None
                       ) -> Response:
        return _record(repository.update(id, record.model_dump(), if_match=if_match))

    @app.delete("/billing-records/{id}", status_code=204, responses={204: {"description": "deleted"},
                                                                     **_errors(400, 404, 412, 503)})
    def delete_record(id: RecordId, customer: CustomerId, if_match: IfMatch = None) -> Response:
        repository.delete(id, customer, if_match=if_match)
        return Response(status_code=204)

    @app.get("/archive/records/{partitionKey}/{id}", responses={200: RECORD, **_errors(400, 404, 503)})
    def lookup_archived(partition_key: Annotated[str, Path(alias="partitionKey", min_length=1, max_length=255)],
                        id: RecordId) -> Response:
        """For an API in another language: call on a Cosmos DB 404, or on a stub (``_cosmosArchive`` holding
        ``{"v": 1, "kind": "stub", ...}``); a tombstone (``"kind": "tombstone"``) is a deleted record (answer 404
        without calling). Any other value of that field is business data."""
        return _record(repository.hydrate_only(partition_key, id))

    return app
