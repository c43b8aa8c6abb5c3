"""The reference billing API: the billing team's routes on the read-through repository, plus the lookup route an
API in another language calls on a Cosmos DB 404 (or when it reads a stub).

Bodies are the records' canonical JSON (keys sorted, compact), so a record reads byte for byte the same from
Cosmos DB and from the archive. ``X-Archive-Source`` (cosmos | archive; a list names each source it used) is for
operators, never in the body. Errors are JSON ``{"code", "message", "parameter", "value"}`` naming the bad value,
4xx for anything a client sent, never a 5xx: ids follow :mod:`..readthrough.ids` on every route (checked again in
the repository), a write's body is read within a size limit and parsed strictly (:mod:`..readthrough.documents`)
before FastAPI sees it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException

from include.cosmos_archiver.readthrough.documents import MAX_ITEM_BYTES, check_size, parse_body
from include.cosmos_archiver.readthrough.errors import HTTP_ERRORS, ReadThroughError
from include.cosmos_archiver.readthrough.ids import ID_RULE, ID_SCHEMA_PATTERN, MAX_ID_BYTES, check_id
from include.cosmos_archiver.readthrough.markers import STUB_MARKER, TOMBSTONE_MARKER
from include.cosmos_archiver.readthrough.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from include.cosmos_archiver.readthrough.repository import Page, ReadThroughRepository, Record

SOURCE_HEADER = "X-Archive-Source"
JSON = "application/json"
ID_SCHEMA = {"pattern": ID_SCHEMA_PATTERN, "maxLength": MAX_ID_BYTES}


class AnyIdConvertor(PathConvertor):
    """The rest of the path, newlines and slashes included, so that every id reaches :func:`ids.check_id` and is
    refused there with 400 naming the rule (Starlette's ``path`` stops at a newline: a 404 that names nothing)."""

    regex = r"[\s\S]*"


register_url_convertor("any_id", AnyIdConvertor())


class ErrorBody(BaseModel):
    code: str
    message: str
    parameter: str | None = None
    value: Any = None


class BillingRecordIn(BaseModel):
    """A billing record as written: any JSON object with an id and a customerId; the archive's markers are
    reserved, and system properties (_rid, _etag, ...) are Cosmos DB's to set."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "not": {"anyOf": [{"required": [STUB_MARKER]}, {"required": [TOMBSTONE_MARKER]}]}})
    id: Annotated[str, Field(description=ID_RULE, json_schema_extra=ID_SCHEMA)]
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
# OpenAPI links: what a client (and schemathesis' stateful run) may do with a record it just created
_KEYS = {"id": "$response.body#/id", "customerId": "$response.body#/customerId"}
CREATED = {**RECORD, "links": {
    "GetRecord": {"operationId": "get_record", "parameters": _KEYS},
    "ReplaceRecord": {"operationId": "replace_record", "parameters": {"id": "$response.body#/id"},
                      "requestBody": "$response.body#"},
    "DeleteRecord": {"operationId": "delete_record", "parameters": _KEYS},
    "ListRecords": {"operationId": "list_records", "parameters": {"customerId": "$response.body#/customerId"}},
    "LookupRecord": {"operationId": "lookup_archived",
                     "parameters": {"partitionKey": "$response.body#/customerId", "id": "$response.body#/id"}},
}}
PAGE = {"model": RecordPage, "headers": {SOURCE_HEADER: SOURCE}}
RecordId = Annotated[str, Path(description=f"the record's id: {ID_RULE}", json_schema_extra=ID_SCHEMA)]
CustomerId = Annotated[str, Query(alias="customerId", min_length=1, max_length=255)]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="the ETag the change is conditional on; * "
                                       "matches any current record (RFC 9110 13.1.1)")]


def _record(record: Record, status: int = 200) -> Response:
    headers = {SOURCE_HEADER: record.source}
    if record.etag:
        headers["ETag"] = f'"{record.etag}"'
    return Response(record.body, status_code=status, media_type=JSON, headers=headers)


def _page(page: Page) -> Response:
    return Response(page.body(), media_type=JSON, headers={SOURCE_HEADER: ", ".join(sorted(page.sources)) or "cosmos"})


def _error(body: dict[str, Any], status: int) -> Response:
    """The error shape, UTF-8 even when the bad value holds a lone surrogate (sent as U+FFFD)."""
    text = json.dumps(jsonable_encoder(body), ensure_ascii=False, separators=(",", ":"))
    return Response(text.encode("utf-8", "replace"), status_code=status, media_type=JSON)


def _checked_body(max_body_bytes: int) -> type[APIRoute]:
    """A route class that reads a write's body within ``max_body_bytes`` and parses it strictly
    (:func:`documents.parse_body`) before FastAPI does; FastAPI then takes the parsed value from Starlette's cache."""

    class CheckedBodyRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def checked(request: Request) -> Response:
                if request.method in ("POST", "PUT", "PATCH"):
                    length = request.headers.get("content-length", "")
                    if length.isdigit():
                        check_size(int(length), max_body_bytes)
                    raw = bytearray()
                    async for chunk in request.stream():
                        raw += chunk
                        check_size(len(raw), max_body_bytes)
                    request._body = bytes(raw)  # Starlette's cache, where FastAPI reads the body
                    if raw and "json" in request.headers.get("content-type", JSON):
                        request._json = parse_body(request._body, max_body_bytes)
                return await handler(request)

            return checked

    return CheckedBodyRoute


def create_app(repository: ReadThroughRepository, *, max_body_bytes: int = MAX_ITEM_BYTES) -> FastAPI:
    """The billing API on ``repository``; a write's body over ``max_body_bytes`` (default: Cosmos DB's 2 MB item
    size limit) is refused with 413 as soon as it is known to be over."""
    app = FastAPI(title="billing records (reference API)", version="1")
    app.router.route_class = _checked_body(max_body_bytes)
    app.state.repository = repository

    def _repository_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ReadThroughError)
        return _error(exc.to_dict(), exc.status)

    for error in HTTP_ERRORS:
        app.add_exception_handler(error, _repository_error)

    @app.exception_handler(HTTPException)
    def _http_error(request: Request, exc: Exception) -> Response:  # no such route or method: the same shape
        assert isinstance(exc, HTTPException)
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(status, "BadRequest")
        return _error({"code": code, "message": f"{request.method} {request.url.path}: {exc.detail}",
                       "parameter": "path", "value": request.url.path}, status)

    @app.exception_handler(RequestValidationError)
    def _bad_input(_request: Request, exc: RequestValidationError) -> Response:
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
        return _error(body, 400)

    @app.get("/billing-records/{id:any_id}", operation_id="get_record",
             responses={200: RECORD, **_errors(400, 404, 503)})
    def get_record(id: RecordId, customer: CustomerId) -> Response:
        return _record(repository.get(check_id(id), customer))

    @app.get("/billing-records", operation_id="list_records", responses={200: PAGE, **_errors(400, 503)})
    def list_records(
        customer: CustomerId,
        start: Annotated[str | None, Query(alias="from", description="YYYY-MM-DD or ISO-8601 with an offset, "
                                           "inclusive; compared as an instant")] = None,
        end: Annotated[str | None, Query(alias="to", description="YYYY-MM-DD or ISO-8601 with an offset, "
                                         "exclusive; compared as an instant")] = None,
        page_size: Annotated[int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
        continuation: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> Response:
        return _page(repository.list(customer, start, end, page_size, continuation))

    @app.post("/billing-records", operation_id="create_record", status_code=201,
              responses={201: CREATED, **_errors(400, 409, 413, 503)})
    def create_record(record: Annotated[BillingRecordIn, Body()]) -> Response:
        return _record(repository.create(record.model_dump()), 201)

    @app.put("/billing-records/{id:any_id}", operation_id="replace_record",
             responses={200: RECORD, **_errors(400, 404, 412, 413, 503)})
    def replace_record(id: RecordId, record: Annotated[BillingRecordIn, Body()], if_match: IfMatch = None
                       ) -> Response:
        return _record(repository.update(check_id(id), record.model_dump(), if_match=if_match))

    @app.delete("/billing-records/{id:any_id}", operation_id="delete_record", status_code=204,
                responses={204: {"description": "deleted"}, **_errors(400, 404, 412, 503)})
    def delete_record(id: RecordId, customer: CustomerId, if_match: IfMatch = None) -> Response:
        repository.delete(check_id(id), customer, if_match=if_match)
        return Response(status_code=204)

    @app.get("/archive/records/{partitionKey}/{id:any_id}", operation_id="lookup_archived",
             responses={200: RECORD, **_errors(400, 404, 503)})
    def lookup_archived(partition_key: Annotated[str, Path(alias="partitionKey", min_length=1, max_length=255)],
                        id: RecordId) -> Response:
        """For an API in another language: call on a Cosmos DB 404, or on a document carrying the stub marker
        ``_archived``; a document carrying ``_archiveDeleted`` is a deleted record (answer 404 without calling)."""
        return _record(repository.hydrate_only(partition_key, check_id(id)))

    return app
