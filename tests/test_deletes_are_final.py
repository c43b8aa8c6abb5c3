"""Deletes are final (issue 16, item 3), as a hypothesis state machine against the local stack.

Random orders of create / update (moving a record between the archived slices and the hot range) / delete through
the read-through repository, and archive runs (copy + validation + index) / purges (delete or stub) / restores /
index compactions / erasures, checked against a model of what the API must answer: after every step the record
touched, and after every archive-side step every record and every customer's list. A record the model holds must
be served in its newest version (else it is lost, or unreachable when the answer is an error); a deleted one must
be 404 and absent from the list (else it is resurrected). The default run drives >= 500 steps; ``slow`` more."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from include.cosmos_archiver.pipeline.restore import restore_slice
from include.cosmos_archiver.readthrough.erasure import erase_deleted
from include.cosmos_archiver.readthrough.errors import BadRequest, Conflict, NotFound
from include.cosmos_archiver.readthrough.index import compact_index
from tests.readthrough_helpers import (
    SETTINGS,
    archive_slice,
    fresh_stores,
    purge_like_the_pipeline,
    repository,
    slice_at,
)

SYSTEM = ("_rid", "_self", "_etag", "_ts", "_attachments")
IDS = [f"rec-{i}" for i in range(6)]
CUSTOMER = {rid: f"cust-{i % 2}" for i, rid in enumerate(IDS)}
# two archivable slices and a hot (recent) time: an update may move a record between them
WHEN = {"A": dt.datetime(2025, 10, 10, 12, tzinfo=dt.UTC), "B": dt.datetime(2025, 12, 20, 12, tzinfo=dt.UTC),
        "hot": dt.datetime(2026, 5, 20, 12, tzinfo=dt.UTC)}
SLICES = {name: slice_at(WHEN[name]) for name in ("A", "B")}
MAINTENANCE_EVERY = 4  # API writes between two archive-side steps (those cost seconds, the writes milliseconds)
TALLY = {"runs": 0, "steps": 0, "lost": 0, "unreachable": 0, "resurrected": 0, "archive_steps": 0}


def _user(body: bytes) -> dict[str, Any]:
    return {k: v for k, v in json.loads(body).items() if k not in SYSTEM}


def machine_for(stack, database):
    class DeletesAreFinal(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self._stores = fresh_stores(stack, database)
            self.container, self.store = self._stores.__enter__()
            self.repo = repository(self.container, self.store)
            self.model: dict[str, dict[str, Any] | None] = {}  # id -> current content; None: deleted
            self.version = 0
            self.dirty: set[str] = set()  # slices written since their last archive run
            self.writes_since = 0
            TALLY["runs"] += 1

        def teardown(self) -> None:
            self._stores.__exit__(None, None, None)

        # -- the API's writes -------------------------------------------------------------------------------------
        @rule(rid=st.sampled_from(IDS), where=st.sampled_from(list(WHEN)))
        def put(self, rid: str, where: str) -> None:
            self.version += 1
            doc = {"id": rid, "customerId": CUSTOMER[rid], "n": self.version,
                   "issuedAt": (WHEN[where] + dt.timedelta(minutes=self.version)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
            if self.model.get(rid) is None:
                self.repo.create(doc)
            else:
                self.repo.update(rid, doc)
            self.model[rid] = doc
            self.dirty.add(where)
            self.writes_since += 1
            self._check(rid)

        @rule(rid=st.sampled_from(IDS))
        def delete(self, rid: str) -> None:
            if self.model.get(rid) is None:
                with pytest.raises(NotFound):
                    self.repo.delete(rid, CUSTOMER[rid])
                return
            self.repo.delete(rid, CUSTOMER[rid])
            self.model[rid] = None
            self.writes_since += 1
            self._check(rid)

        @rule(rid=st.sampled_from(IDS))
        def create_existing_conflicts(self, rid: str) -> None:
            doc = self.model.get(rid)
            if doc is not None:
                with pytest.raises(Conflict):
                    self.repo.create(doc)

        # -- the archive's side: one step in (at most) every MAINTENANCE_EVERY --------------------------------------
        @precondition(lambda self: self.writes_since >= MAINTENANCE_EVERY)
        @rule(action=st.sampled_from(["archive", "purge delete", "purge stub", "restore", "compact", "erase"]),
              name=st.sampled_from(list(SLICES)))
        def maintenance(self, action: str, name: str) -> None:
            self.writes_since = 0
            slice_id = SLICES[name].slice_id
            manifest = self.store.read_manifest(slice_id)
            if action == "archive" and self.dirty & set(SLICES):
                for dirty in sorted(self.dirty & set(SLICES)):
                    assert archive_slice(self.container, self.store, SLICES[dirty]), dirty
                self.dirty -= set(SLICES)
            elif action.startswith("purge") and manifest is not None and manifest.status == "verified":
                purge_like_the_pipeline(self.container, self.store, slice_id, mode=action.split()[1])
            elif action == "restore" and manifest is not None:
                restore_slice(self.container, self.store, slice_id, SETTINGS)
            elif action == "compact":
                compact_index(self.store)
            elif action == "erase":
                erase_deleted(self.container, self.store, SETTINGS)
            else:
                return
            self._check_all()

        @invariant()
        def count_step(self) -> None:
            TALLY["steps"] += 1

        # -- checks ------------------------------------------------------------------------------------------------
        def _check(self, rid: str) -> None:
            expected = self.model.get(rid, None)
            try:
                got = _user(self.repo.get(rid, CUSTOMER[rid]).body)
            except NotFound:
                got = None
            except Exception:  # 503 or another error: the record cannot be read
                TALLY["unreachable"] += expected is not None
                raise
            if expected is None and got is not None:
                TALLY["resurrected"] += rid in self.model
            elif expected is not None and got != expected:
                TALLY["lost" if got is None or got.get("n") != expected["n"] else "unreachable"] += 1
            assert got == expected, (rid, expected, got)

        def _check_all(self) -> None:
            TALLY["archive_steps"] += 1
            for rid in IDS:
                self._check(rid)
            for customer in sorted(set(CUSTOMER.values())):
                try:
                    listed = {json.loads(r.body)["id"]: _user(r.body)
                              for r in self.repo.list(customer, page_size=100).records}
                except BadRequest:  # "not a known customer": right only while none of its records was ever written
                    assert not any(CUSTOMER[rid] == customer for rid in self.model), customer
                    listed = {}
                expected = {rid: doc for rid, doc in self.model.items() if doc is not None and
                            CUSTOMER[rid] == customer}
                TALLY["resurrected"] += sum(1 for rid in listed if self.model.get(rid, 0) is None)
                assert listed == expected, customer

    return DeletesAreFinal


def _run(stack, database, examples: int, steps: int) -> None:
    for key in TALLY:
        TALLY[key] = 0
    run_state_machine_as_test(
        machine_for(stack, database),
        settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
                          phases=[Phase.generate], suppress_health_check=list(HealthCheck)),
    )
    TALLY["steps"] -= TALLY["runs"]  # the invariant also runs once after each set-up
    print(f"\ndeletes are final: {TALLY['runs']} runs, {TALLY['steps']} steps ({TALLY['archive_steps']} archive-side "
          f"checks of every record): {TALLY['lost']} lost, {TALLY['unreachable']} unreachable, "
          f"{TALLY['resurrected']} resurrected")
    assert TALLY["steps"] >= examples * steps * 0.5


def test_deletes_are_final_in_any_order(stack, cosmos_database):
    _run(stack, cosmos_database, examples=12, steps=50)
    assert TALLY["steps"] >= 500


@pytest.mark.slow
def test_deletes_are_final_in_any_order_long(stack, cosmos_database):
    _run(stack, cosmos_database, examples=100, steps=50)
