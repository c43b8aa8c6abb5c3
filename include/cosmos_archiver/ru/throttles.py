"""Every throttled attempt azure-cosmos makes, counted per thread from the HTTP responses themselves.

azure-cosmos 4.17.1 retries an HTTP 429 on its own (``_retry_utility.Execute`` with
``_resource_throttle_retry_policy.ResourceThrottleRetryPolicy``: 9 attempts / 30 s by default, honouring
``x-ms-retry-after-ms``) *around* its azure-core pipeline, and writes the count (``x-ms-throttle-retry-count``) only
into ``client.last_response_headers`` after the final answer: a ``response_hook`` gets the final answer's headers,
without it (upstream Azure/azure-sdk-for-python issue 36729). Every attempt, however, is one run of the client's
azure-core pipeline (``_synchronized_request._Request`` -> ``pipeline_client._pipeline.run``), whose
``CustomHookPolicy`` calls the client's ``raw_response_hook`` with each HTTP response, the 429s included.
:func:`clients.cosmos_client` installs :func:`observe_response` there.

The sync SDK sends each attempt on the calling thread (no executor unless an availability strategy is configured,
which the archiver does not), so a thread's count is the count of its own requests' 429s: a caller reads
:func:`throttled_attempts` before and after a request (:class:`ThrottleWatch`). A ``raw_response_hook`` passed to
a single call replaces the client's for that call (``CustomHookPolicy.on_request``): the product passes none.
"""

from __future__ import annotations

import threading
from typing import Any

TOO_MANY_REQUESTS = 429
_seen = threading.local()


def observe_response(pipeline_response: Any) -> None:
    """The client's ``raw_response_hook``: count the answer if it is a 429 (a throttled attempt)."""
    if getattr(pipeline_response.http_response, "status_code", None) == TOO_MANY_REQUESTS:
        _seen.count = throttled_attempts() + 1


def throttled_attempts() -> int:
    """How many 429s the clients of this thread have received so far (monotonic)."""
    return getattr(_seen, "count", 0)


class ThrottleWatch:
    """The 429s this thread's clients receive from ``start()`` on: ``watch.start()``, the requests, ``watch.seen()``."""

    def __init__(self) -> None:
        self._from = throttled_attempts()

    def start(self) -> None:
        self._from = throttled_attempts()

    def seen(self) -> int:
        return throttled_attempts() - self._from
