"""schemathesis against the billing API's OpenAPI schema, on the real local stack (the app in-process over ASGI,
its repository on cosmosdb-server + Azurite): data that fits the schema and data that does not, for every
operation, then stateful runs that follow the schema's OpenAPI links (POST -> GET/PUT/DELETE/list/lookup). No answer
may be a 5xx or break the schema; each run prints how many requests it sent.

Default run: >= FUZZ_REQUESTS requests (about a minute on a busy 2-core machine); ``-m slow`` runs ten times more.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from include.cosmos_archiver.api.app import create_app
from include.cosmos_archiver.readthrough.index import ArchiveIndex
from include.cosmos_archiver.readthrough.repository import ReadThroughRepository
from tests.readthrough_helpers import SETTINGS, archive_slice, due_slices, purge_like_the_pipeline, seed, seed_spec

FUZZ_REQUESTS = 1000

schemathesis = pytest.importorskip("schemathesis")


def _fuzz(cosmos_container, archive_store, scale: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Flaky
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.engine.errors import is_inconsistent_replay
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    docs = seed(cosmos_container, seed_spec(30))
    for time_slice in due_slices()[-3:]:  # some records answered from the archive
        if archive_slice(cosmos_container, archive_store, time_slice):
            purge_like_the_pipeline(cosmos_container, archive_store, time_slice.slice_id, mode="stub")
    # the index is re-listed once a minute here (no purge races this run), so requests stay fast
    repo = ReadThroughRepository(cosmos_container, archive_store, SETTINGS, index=ArchiveIndex(archive_store,
                                                                                              max_age_s=60))
    app = create_app(repo)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
              response_headers_conformance]
    statuses: Counter[int] = Counter()
    exercised: set[str] = set()
    failures: list[str] = []
    began = time.monotonic()

    def record(case, response) -> None:
        statuses[response.status_code] += 1
        exercised.add(f"{case.method} {case.operation.path}")
        try:
            case.validate_response(response, checks=checks)
        except Exception as exc:  # schemathesis raises a group of check failures
            failures.append(f"{case.method} {case.formatted_path} {case.query}: {exc}"[:800])

    fuzz = settings(max_examples=150 * scale, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @fuzz
        @given(case=schema.as_strategy(generation_mode=mode))
        def stateless(case) -> None:
            record(case, case.call())

        stateless()
    stateless_requests = statuses.total()

    class Linked(schema.as_state_machine()):  # type: ignore[misc]
        def call(self, case, **kwargs):
            response = case.call(**kwargs)
            record(case, response)
            return response

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            """Checked in ``call`` (failures collected, the run goes on)."""

    # The stack keeps its state between scenarios (a replayed POST answers 409 where it answered 201), so
    # Hypothesis may call a scenario inconsistent: like schemathesis' own runner, start another run then.
    restarts = 0
    while statuses.total() < FUZZ_REQUESTS * scale and restarts < 25 * scale:  # a restart: ~150 requests
        try:
            Linked.run(settings=settings(max_examples=50 * scale, stateful_step_count=10, deadline=None,
                                         database=None, phases=[Phase.generate],
                                         suppress_health_check=list(HealthCheck)))
        except Exception as exc:
            if not (isinstance(exc, Flaky) or is_inconsistent_replay(exc)):
                raise
            restarts += 1
    requests = statuses.total()
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    print(f"\nschemathesis: {requests} requests ({stateless_requests} generated cases, "
          f"{requests - stateless_requests} in linked sequences, {restarts} restarts) in "
          f"{time.monotonic() - began:.0f} s; "
          f"{server_errors} answered 5xx; statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n".join(failures[:5])
    assert server_errors == 0
    assert requests >= FUZZ_REQUESTS * scale, f"only {requests} requests"
    assert len(exercised) == 6, f"every operation must be exercised, got {sorted(exercised)}"
    linked = {s for s in statuses if s in (200, 201, 204)}
    assert {201, 200} <= linked, f"the links must reach records that exist: {dict(statuses)}"
    assert len(docs) == 30


def test_schemathesis_finds_no_server_error_or_schema_violation(cosmos_container, archive_store):
    _fuzz(cosmos_container, archive_store, scale=1)


@pytest.mark.slow
def test_schemathesis_long_run(cosmos_container, archive_store):
    _fuzz(cosmos_container, archive_store, scale=10)


def test_openapi_links_connect_create_to_the_record_routes():
    app = create_app(None)  # type: ignore[arg-type]  # the schema only
    links = TestClient(app).get("/openapi.json").json()["paths"]["/billing-records"]["post"]["responses"]["201"]
    assert {v["operationId"] for v in links["links"].values()} == {
        "get_record", "replace_record", "delete_record", "list_records", "lookup_archived"}
