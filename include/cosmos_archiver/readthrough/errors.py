"""The repository's errors, one per HTTP status the billing API answers with; each names the bad value."""

from __future__ import annotations

from typing import Any


class ReadThroughError(Exception):
    status = 500
    code = "Error"

    def __init__(self, message: str, *, parameter: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.parameter is not None:
            body["parameter"] = self.parameter
            body["value"] = self.value
        return body


class BadRequest(ReadThroughError):
    """Terminal: the caller's input is wrong; nothing was written."""

    status = 400
    code = "BadRequest"


class NotFound(ReadThroughError):
    status = 404
    code = "NotFound"


class Conflict(ReadThroughError):
    status = 409
    code = "Conflict"


class PreconditionFailed(ReadThroughError):
    status = 412
    code = "PreconditionFailed"


class ArchiveUnavailable(ReadThroughError):
    """Transient: the archive could not be read (retry); never answered as a 404."""

    status = 503
    code = "ArchiveUnavailable"
