"""The repository's errors, one per HTTP status the billing API answers with; each names the bad value.

Each is of the library's kinds (:mod:`include.cosmos_archiver.errors`): bad input, a missing record, a conflict
and a stale ETag are terminal (the same request fails again); an unreadable archive is transient (retry).
"""

from __future__ import annotations

from typing import Any

from include.cosmos_archiver.errors import TerminalError, TransientError


class ReadThroughError:
    """Mixin of the repository's errors: the HTTP status, a code and the JSON body naming the bad value."""

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


class BadRequest(ReadThroughError, TerminalError, ValueError):
    """The caller's input is wrong; nothing was written."""

    status = 400
    code = "BadRequest"


class NotFound(ReadThroughError, TerminalError, LookupError):
    status = 404
    code = "NotFound"


class Conflict(ReadThroughError, TerminalError):
    status = 409
    code = "Conflict"


class PreconditionFailed(ReadThroughError, TerminalError):
    status = 412
    code = "PreconditionFailed"


class ArchiveUnavailable(ReadThroughError, TransientError):
    """The archive (or Cosmos DB) could not be read, or writes kept racing: retry; never answered as a 404."""

    status = 503
    code = "ArchiveUnavailable"


HTTP_ERRORS = (BadRequest, NotFound, Conflict, PreconditionFailed, ArchiveUnavailable)
