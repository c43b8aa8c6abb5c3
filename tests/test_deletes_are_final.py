"""Deletes are final (issue 16, item 3), as a hypothesis state machine against the local stack.

Random orders of create / update (moving a record between the archived slices and the hot range, or dropping its
timestamp) / delete through
the read-through repository, and archive runs (copy + validation) / purges (index, then delete or stub) / restores /
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
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

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
MAINTENANCE_EVERY = 14  # API calls between two archive-side steps (those cost seconds, the writes milliseconds)
TALLY: dict[str, Any] = {"runs": 0, "steps": 0, "lost": 0, "unreachable": 0, "resurrected": 0, "archive_steps": 0,
                         "actions": {}}


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

        # -- the API's calls: one rule, so that hypothesis' swarm testing cannot leave writes out of a run ---------
        @rule(op=st.sampled_from(["put", "put", "delete", "create again"]), rid=st.sampled_from(IDS),
              where=st.sampled_from([*WHEN, "no timestamp"]), data=st.data())
        def api_call(self, op: str, rid: str, where: str, data: st.DataObject) -> None:
            {"put": self._put, "delete": self._delete, "create again": self._create_again}[op](rid, where)
            self._maintain(data)

        def _put(self, rid: str, where: str) -> None:
            self.version += 1
            doc: dict[str, Any] = {"id": rid, "customerId": CUSTOMER[rid], "n": self.version}
            if where in WHEN:
                doc["issuedAt"] = (WHEN[where] + dt.timedelta(minutes=self.version)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            if self.model.get(rid) is None:
                self.repo.create(doc)
            else:
                self.repo.update(rid, doc)
            self.model[rid] = doc
            self.dirty.add(where)
            self._check(rid)

        def _delete(self, rid: str, _where: str) -> None:
            if self.model.get(rid) is None:
                with pytest.raises(NotFound):
                    self.repo.delete(rid, CUSTOMER[rid])
                return
            self.repo.delete(rid, CUSTOMER[rid])
            self.model[rid] = None
            self._check(rid)

        def _create_again(self, rid: str, _where: str) -> None:
            doc = self.model.get(rid)
            if doc is not None:
                with pytest.raises(Conflict):
                    self.repo.create(doc)

        # -- the archive's side: one step after every MAINTENANCE_EVERY API calls (a rule of its own would be left out
        # of whole runs by hypothesis' swarm testing) -------------------------------------------------------------
        def _maintain(self, data: st.DataObject) -> None:
            self.writes_since += 1
            if self.writes_since < MAINTENANCE_EVERY:
                return
            self.writes_since = 0
            manifests = {name: self.store.read_manifest(s.slice_id) for name, s in SLICES.items()}
            # the pipeline's own steps weigh three times a restore, a compaction or an erasure
            actions = ["compact", "erase"] + ["archive"] * 3 * bool(self.dirty & set(SLICES))
            for name, m in manifests.items():
                actions += [f"restore {name}"] if m is not None else []
                if m is not None and m.status == "verified" and m.purged_generation < m.generation:
                    actions += [f"purge-delete {name}", f"purge-stub {name}"] * 3
            action = data.draw(st.sampled_from(sorted(actions)), label="action")
            if action == "archive":
                for dirty in sorted(self.dirty & set(SLICES)):
                    # as the DAG: indexed by index_for_purge right before the purge, not after validation
                    assert archive_slice(self.container, self.store, SLICES[dirty], index=False), dirty
                self.dirty -= set(SLICES)
            elif action.startswith("purge"):
                verb, name = action.split()
                purge_like_the_pipeline(self.container, self.store, SLICES[name].slice_id, mode=verb.split("-")[1])
            elif action.startswith("restore"):
                restore_slice(self.container, self.store, SLICES[action.split()[1]].slice_id, SETTINGS)
            elif action == "compact":
                compact_index(self.store)
            else:
                erase_deleted(self.container, self.store, SETTINGS)
            TALLY["actions"][action.split()[0]] = TALLY["actions"].get(action.split()[0], 0) + 1
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
                            CUSTOMER[rid] == customer and "issuedAt" in doc}  # a list orders by the timestamp
                TALLY["resurrected"] += sum(1 for rid in listed if self.model.get(rid, 0) is None)
                assert listed == expected, customer

    return DeletesAreFinal


def _run(stack, database, examples: int, steps: int) -> None:
    for key in TALLY:
        TALLY[key] = {} if key == "actions" else 0
    run_state_machine_as_test(
        machine_for(stack, database),
        settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
                          phases=[Phase.generate], suppress_health_check=list(HealthCheck)),
    )
    TALLY["steps"] -= TALLY["runs"]  # the invariant also runs once after each set-up
    print(f"\ndeletes are final: {TALLY['runs']} runs, {TALLY['steps']} steps ({TALLY['archive_steps']} archive-side "
          f"checks of every record): {TALLY['lost']} lost, {TALLY['unreachable']} unreachable, "
          f"{TALLY['resurrected']} resurrected; archive-side steps: {TALLY['actions']}")
    assert TALLY["steps"] >= examples * steps * 0.5


def test_deletes_are_final_in_any_order(stack, cosmos_database):
    _run(stack, cosmos_database, examples=10, steps=55)
    assert TALLY["steps"] >= 500


@pytest.mark.slow
def test_deletes_are_final_in_any_order_long(stack, cosmos_database):
    _run(stack, cosmos_database, examples=100, steps=50)
