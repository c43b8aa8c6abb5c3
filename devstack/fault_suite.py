"""The fault suite: inject every fault class into the archive pipeline on the local stack, then prove that a rerun
converges to the same verified archive — no record lost, no duplicate row, no stale part — and that every
corruption was detected. Used by tests/test_faults.py (one test per case) and bench/faults.py (the summary).

Shape (so later stages plug in):
- ``PIPELINE``: the steps a run performs, in order (copy, validate, purge). A stage added later (erasure, index
  update) appends a ``Step``; the worker and every rerun run the whole list. ``OPERATIONS`` are the runs a crash can
  hit: ``pipeline`` and ``restore`` (an operator's restore of a purged slice, after a complete pipeline).
- ``CRASH_POINTS``: where a crash is injected — a function or method of the product wrapped so that its n-th call
  (or n-th yielded item) kills the process (SIGKILL, in a worker subprocess) or raises ``InjectedCrash``
  (in-process). A new stage adds its crash points (e.g. ``mid-erasure`` on the erasure's delete call).
- ``CASES``: ``FaultCase(fault_class, name, run, slow)``; ``run(lab) -> CaseResult``. ``crash_cases()``,
  ``storage_cases()`` and ``service_cases()`` build them; a new fault class adds a builder.
- ``FaultLab``: a fresh Cosmos container (seeded with realistic invoices inside one slice), a fresh blob
  container, small files (several parts per slice) and the shortest slice lease (15 s: how long a killed worker's
  lease blocks the rerun). ``inspect(lab)`` is the convergence check every case ends with.

Service faults go through an RU gateway in this process, in front of the stack's cosmosdb-server, driven over its
``/_gateway/faults`` endpoint; Blob faults pause Azurite (SIGSTOP/SIGCONT) or point the store at a closed port.

Worker (the SIGKILL cases): ``python -m devstack.fault_suite worker LAB_JSON CRASH_POINT``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from azure.cosmos import ContainerProxy, PartitionKey

from devstack.drills import flip_byte
from devstack.ru_gateway import Gateway, start_gateway
from devstack.seed import SeedSpec, make_record
from devstack.stack import EMULATOR_COSMOS_KEY, REPO_ROOT, StackConfig, free_port
from include.cosmos_archiver.archive.canonical import canonical_json, record_key, sha256_hex, slice_digest
from include.cosmos_archiver.archive.manifest import Manifest
from include.cosmos_archiver.archive.parquet_layout import decode_any
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import blob_container, cosmos_client
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.purge import PurgeError, PurgeResult, purge_slice
from include.cosmos_archiver.pipeline.restore import SYSTEM_PROPERTIES, RestoreResult, restore_slice
from include.cosmos_archiver.pipeline.validate import ValidationResult, validate_slice
from include.cosmos_archiver.readthrough.markers import is_stub
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice

log = logging.getLogger(__name__)
DATABASE = "faults"
SLICE = TimeSlice(dt.datetime(2025, 6, 1, tzinfo=dt.UTC), dt.datetime(2025, 6, 2, tzinfo=dt.UTC))
SETTINGS = ArchiveSettings(
    database=DATABASE,
    timestamp_field="issuedAt",
    timestamp_kind="iso8601",
    page_size=8,
    max_file_bytes=90_000,  # several parts per slice, so a crash can fall between two of them
    row_group_bytes=30_000,
    slice_lease_s=15,  # the shortest Blob lease: a killed worker's lease blocks a rerun at most this long
    slice_lease_wait_s=60,
)
DOCS, DOC_KB = 40, 8
FAILURE_BOUND_S = 120.0  # a run under a service fault must succeed or fail clearly within this


class InjectedCrash(RuntimeError):
    """The crash a fault case injected (the in-process variant of a killed worker)."""


# -- the lab -------------------------------------------------------------------------------------------------------
@dataclass
class FaultLab:
    cosmos_endpoint: str  # what the pipeline talks to (the stack's gateway, or a faulty one)
    backend_endpoint: str  # cosmosdb-server itself: the ground truth, never faulted
    blob_connection_string: str
    blob_container: str
    container: str
    expected: dict[str, str] = field(default_factory=dict)  # "pk/id" -> sha256 of the seeded documents
    expected_content: dict[str, str] = field(default_factory=dict)  # "pk/id" -> sha256 without system properties
    settings: ArchiveSettings = SETTINGS
    time_slice: TimeSlice = SLICE
    stack_state_dir: str = ""

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["settings"] = dataclasses.asdict(self.settings)
        data["time_slice"] = self.time_slice.to_dict()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> FaultLab:
        data = json.loads(text)
        data["settings"] = ArchiveSettings(**data["settings"])
        data["time_slice"] = TimeSlice.from_dict(data["time_slice"])
        return cls(**data)

    def with_endpoint(self, endpoint: str) -> FaultLab:
        return dataclasses.replace(self, cosmos_endpoint=endpoint)

    def source(self, endpoint: str | None = None) -> ContainerProxy:
        client = cosmos_client(endpoint or self.cosmos_endpoint, EMULATOR_COSMOS_KEY)
        return client.get_database_client(DATABASE).get_container_client(self.container)

    def store(self, connection_string: str | None = None) -> ArchiveStore:
        client = blob_container(connection_string or self.blob_connection_string, self.blob_container)
        return ArchiveStore(client, self.settings.blob_prefix)


def new_lab(stack: StackConfig, *, docs: int = DOCS, doc_kb: int = DOC_KB, seed: int = 12) -> FaultLab:
    """A fresh container seeded (straight into cosmosdb-server, no RU spent) with realistic invoices inside SLICE."""
    name = f"f-{uuid.uuid4().hex[:10]}"
    backend = stack.cosmos_backend_endpoint
    database = cosmos_client(backend, EMULATOR_COSMOS_KEY).create_database_if_not_exists(DATABASE)
    container = database.create_container(name, PartitionKey(SETTINGS.partition_key_path))
    spec = SeedSpec(records=docs, seed=seed, target_kb=doc_kb, end=SLICE.end)
    expected, content = {}, {}
    for i in range(docs):
        doc = make_record(spec, i, SLICE.end)
        issued = SLICE.start + dt.timedelta(minutes=31 * i + 7)  # inside the slice
        doc["issuedAt"] = issued.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        doc["archiveTs"] = int(issued.timestamp())
        stored = container.create_item(doc)
        pk, rid = record_key(stored, SETTINGS.partition_key_path)
        expected[f"{pk}/{rid}"] = sha256_hex(canonical_json(stored))
        content[f"{pk}/{rid}"] = content_hash(stored)
    blob_name = f"f-{uuid.uuid4().hex[:12]}"
    blob_container(stack.blob_connection_string, blob_name)
    return FaultLab(
        stack.cosmos_endpoint, backend, stack.blob_connection_string, blob_name, name, expected, content,
        stack_state_dir=str(stack.state_dir),
    )  # fmt: skip


def content_hash(doc: dict[str, Any]) -> str:
    """sha256 of a document without the properties Cosmos sets (what a restore gives back)."""
    return sha256_hex(canonical_json({k: v for k, v in doc.items() if k not in SYSTEM_PROPERTIES}))


def drop_lab(lab: FaultLab) -> None:
    with contextlib.suppress(Exception):
        cosmos_client(lab.backend_endpoint, EMULATOR_COSMOS_KEY).get_database_client(DATABASE).delete_container(
            lab.container
        )
    with contextlib.suppress(Exception):
        lab.store().container.delete_container()


# -- the pipeline and its crash points ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[FaultLab], Any]


def _copy(lab: FaultLab) -> Manifest:
    return copy_slice(lab.source(), lab.store(), lab.time_slice, lab.settings)


def _validate(lab: FaultLab) -> ValidationResult:
    return validate_slice(lab.source(), lab.store(), lab.time_slice, lab.settings)


def _purge(lab: FaultLab) -> PurgeResult:
    return purge_slice(lab.source(), lab.store(), lab.time_slice, lab.settings)


PIPELINE: list[Step] = [Step("copy", _copy), Step("validate", _validate), Step("purge", _purge)]  # erasure, ...


def run_pipeline(lab: FaultLab) -> dict[str, Any]:
    """Run every step; return each step's result by name."""
    return {step.name: step.run(lab) for step in PIPELINE}


def run_restore(lab: FaultLab) -> RestoreResult:
    return restore_slice(lab.source(), lab.store(), lab.time_slice.slice_id, lab.settings)


OPERATIONS: dict[str, Callable[[FaultLab], Any]] = {"pipeline": run_pipeline, "restore": run_restore}


@dataclass(frozen=True)
class CrashPoint:
    """Crash on the call (or yielded item) after ``after`` matching ones of ``target`` ("module:attr" or
    "module:Class.method"); ``when(args, kwargs)`` narrows which calls count."""

    name: str
    target: str
    after: int = 0
    iterate: bool = False
    when: Callable[[tuple[Any, ...], dict[str, Any]], bool] | None = None
    operation: str = "pipeline"  # the run it hits (OPERATIONS); "restore" runs after a complete pipeline
    before_verified: bool = True  # the crash comes before validation ends: the slice must not be left verified


def _is_part(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return str(args[1] if len(args) > 1 else kwargs.get("path", "")).endswith(".parquet")


def _copied_manifest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    manifest = args[1] if len(args) > 1 else kwargs.get("manifest")
    return getattr(manifest, "status", None) == "copied"


CRASH_POINTS: dict[str, CrashPoint] = {
    p.name: p
    for p in (
        CrashPoint("mid-copy", "include.cosmos_archiver.pipeline.copy:read_slice", after=2, iterate=True),
        CrashPoint("mid-upload", "include.cosmos_archiver.archive.store:ArchiveStore.upload", after=1, when=_is_part),
        CrashPoint(
            "after files, before manifest",
            "include.cosmos_archiver.archive.store:ArchiveStore.write_manifest",
            when=_copied_manifest,
        ),
        # while counting the source side, after the files were re-read (fast validation, the local default; not in
        # decode_any: validation takes any exception there for a damaged file and marks the slice failed)
        CrashPoint("mid-validation", "include.cosmos_archiver.pipeline.validate:count_range"),
        CrashPoint("mid-purge", "include.cosmos_archiver.pipeline.purge:_write_one", after=15, before_verified=False),
        CrashPoint(
            "mid-restore", "include.cosmos_archiver.pipeline.restore:_write_back", after=15, operation="restore",
            before_verified=False,
        ),
        # later: mid-erasure, mid-index update: a CrashPoint on the call that does the stage's work
    )
}


def _crash(point: CrashPoint, action: str) -> None:
    log.warning("fault suite: crashing %s (%s)", point.name, action)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedCrash(f"injected crash {point.name}")


@contextlib.contextmanager
def armed(point: CrashPoint, action: str) -> Iterator[None]:
    """Patch ``point.target`` so it crashes (``action`` "kill" or "raise") at the point; restore afterwards."""
    module_name, _, attr_path = point.target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, attr = attr_path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, attr)
    seen = [0]

    def counts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        return point.when is None or point.when(args, kwargs)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if point.iterate:
            return _crashing_iterator(original(*args, **kwargs))
        if counts(args, kwargs):
            seen[0] += 1
            if seen[0] > point.after:
                _crash(point, action)
        return original(*args, **kwargs)

    def _crashing_iterator(inner: Iterator[Any]) -> Iterator[Any]:
        for item in inner:
            seen[0] += 1
            if seen[0] > point.after:
                _crash(point, action)
            yield item

    setattr(owner, attr, wrapper)
    try:
        yield
    finally:
        setattr(owner, attr, original)


# -- the convergence check ------------------------------------------------------------------------------------------
@dataclass
class ArchiveCheck:
    status: str | None
    archived: int = 0
    lost: int = 0  # seeded records neither in Cosmos (unchanged) nor in the verified archive
    missing_from_archive: int = 0
    duplicates: int = 0
    stale_parts: int = 0
    digest_ok: bool = False
    source_intact: bool = False
    in_cosmos: int = 0  # seeded records still in Cosmos as documents (not stubs), any version
    restored: int = 0  # seeded records in Cosmos with their archived content (system properties aside)

    @property
    def archived_ok(self) -> bool:
        return (
            self.status == "verified" and self.missing_from_archive == 0 and self.duplicates == 0
            and self.stale_parts == 0 and self.digest_ok and self.lost == 0
        )  # fmt: skip

    def describe(self) -> str:
        return (
            f"status {self.status}, {self.archived} rows, missing {self.missing_from_archive}, duplicates "
            f"{self.duplicates}, stale parts {self.stale_parts}, digest {'ok' if self.digest_ok else 'WRONG'}, "
            f"source {'intact' if self.source_intact else 'changed'}, {self.in_cosmos} still in Cosmos, "
            f"{self.restored} restored, lost {self.lost}"
        )


def inspect(lab: FaultLab) -> ArchiveCheck:
    """Read both sides afresh (Cosmos straight from cosmosdb-server) and check the archive against the seed."""
    store = lab.store()
    manifest = store.read_manifest(lab.time_slice.slice_id)
    source: dict[str, str] = {}
    content: dict[str, str] = {}
    for doc in lab.source(lab.backend_endpoint).query_items("SELECT * FROM c", enable_cross_partition_query=True):
        if is_stub(doc):
            continue  # a purge stub: the record lives in the archive
        pk, rid = record_key(doc, lab.settings.partition_key_path)
        source[f"{pk}/{rid}"] = sha256_hex(canonical_json(doc))
        content[f"{pk}/{rid}"] = content_hash(doc)
    check = ArchiveCheck(manifest.status if manifest else None)
    archived: dict[str, str] = {}
    rows: list[tuple[str, str, str]] = []
    if manifest is not None:
        for entry in manifest.files:
            with contextlib.suppress(Exception):  # a damaged part counts as missing records
                for row in decode_any(store.download(entry.path), lab.settings.partition_key_path):
                    rows.append((row.partition_key, row.id, sha256_hex(row.doc)))
                    archived[f"{row.partition_key}/{row.id}"] = sha256_hex(row.doc)
        listed = {f.path for f in manifest.files}
        check.stale_parts = len(set(store.list_parts(lab.time_slice.slice_id)) - listed)
        check.digest_ok = (
            manifest.slice_digest
            == slice_digest(rows)
            == slice_digest(
                [(*key.split("/", 1), digest) for key, digest in lab.expected.items()]  # type: ignore[misc]
            )
        )
    check.archived = len(rows)
    check.duplicates = len(rows) - len(archived)
    check.missing_from_archive = sum(1 for k, d in lab.expected.items() if archived.get(k) != d)
    verified = check.status == "verified"
    check.lost = sum(
        1 for k, d in lab.expected.items() if source.get(k) != d and not (verified and archived.get(k) == d)
    )
    check.source_intact = source == lab.expected
    check.in_cosmos = sum(1 for k in lab.expected if k in source)
    check.restored = sum(1 for k, d in lab.expected_content.items() if content.get(k) == d)
    return check


# -- cases ----------------------------------------------------------------------------------------------------------
@dataclass
class CaseResult:
    fault_class: str
    name: str
    injected: int = 0
    converged: bool = False
    records_lost: int = 0
    duplicates: int = 0
    stale_parts: int = 0
    corruptions_injected: int = 0
    corruptions_detected: int = 0
    seconds: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class FaultCase:
    fault_class: str
    name: str
    run: Callable[[FaultLab], CaseResult]
    slow: bool = False

    @property
    def id(self) -> str:
        return f"{self.fault_class}: {self.name}"


def _converge(
    lab: FaultLab, result: CaseResult, started: float, before: str, operation: str = "pipeline"
) -> CaseResult:
    """Rerun ``operation``, fault gone, and record whether it converged: the pipeline to a verified archive with
    every seeded record purged from Cosmos; a restore to every seeded record back with its archived content."""
    OPERATIONS[operation](lab)
    check = inspect(lab)
    if operation == "restore":
        result.converged = check.archived_ok and check.restored == len(lab.expected_content)
    else:
        result.converged = check.archived_ok and check.in_cosmos == 0
    result.records_lost = check.lost
    result.duplicates = check.duplicates
    result.stale_parts = check.stale_parts
    result.seconds = round(time.monotonic() - started, 2)
    result.detail = f"{before}; after the rerun: {check.describe()}".strip("; ")
    return result


def _crash_case(point: CrashPoint, action: str) -> Callable[[FaultLab], CaseResult]:
    def run(lab: FaultLab) -> CaseResult:
        result = CaseResult(f"crash ({'SIGKILL' if action == 'kill' else 'exception'})", point.name)
        if point.operation != "pipeline":
            run_pipeline(lab)  # e.g. a restore needs an archived and purged slice first
        started = time.monotonic()
        if action == "kill":
            done = subprocess.run(
                [sys.executable, "-m", "devstack.fault_suite", "worker", lab.to_json(), point.name],
                cwd=REPO_ROOT, capture_output=True, text=True, timeout=FAILURE_BOUND_S,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            )  # fmt: skip
            result.injected = int(done.returncode == -signal.SIGKILL)
            how = f"worker exit {done.returncode}" + ("" if result.injected else f": {done.stderr[-500:]}")
        else:
            try:
                with armed(point, "raise"):
                    OPERATIONS[point.operation](lab)
                how = "no crash happened"
            except InjectedCrash as exc:
                result.injected = 1
                how = str(exc)
        after = inspect(lab)
        before = f"{how}; left: {after.status or 'no manifest'}, {after.in_cosmos} in Cosmos"
        if point.before_verified and after.status == "verified":  # never 'verified' before validation ended
            before += " (WRONG: verified before validation finished)"
            result.injected = 0
        return _converge(lab, result, started, before, point.operation)

    return run


SLOW = {"mid-restore"}  # the restore cases run the whole pipeline first


def crash_cases() -> list[FaultCase]:
    cases = []
    for point in CRASH_POINTS.values():
        cases.append(FaultCase("crash (exception)", point.name, _crash_case(point, "raise"), slow=point.name in SLOW))
        # a killed worker's lease blocks the rerun for up to slice_lease_s (15 s): slow
        cases.append(FaultCase("crash (SIGKILL)", point.name, _crash_case(point, "kill"), slow=True))
    return cases


def _storage_case(
    name: str, damage: Callable[[FaultLab, ArchiveStore, Manifest], None], *, after_verified: bool = False
) -> FaultCase:
    """Damage the archive after the copy (or after its validation: ``after_verified``), then: validation (or the
    purge's own re-verification) must detect it and mark the slice failed, and the purge must refuse — nothing
    leaves Cosmos. A rerun (re-copy while Cosmos still holds the records) converges."""

    def run(lab: FaultLab) -> CaseResult:
        result = CaseResult("storage", name, corruptions_injected=1)
        started = time.monotonic()
        store = lab.store()
        manifest = _copy(lab)
        if after_verified:
            _validate(lab)
            manifest = store.read_manifest(lab.time_slice.slice_id) or manifest
        damage(lab, store, manifest)
        result.injected = 1
        outcome = _validate(lab)  # answers "already verified" without reading when after_verified
        try:
            purged = _purge(lab)
            refusal = f"WRONG: purge ran ({purged.message()[:100]})"
        except PurgeError as exc:
            refusal = f"purge refused: {type(exc).__name__}"
        left = store.read_manifest(lab.time_slice.slice_id)
        status = left.status if left else "no manifest"
        untouched = inspect(lab).source_intact  # nothing purged
        result.corruptions_detected = int(status != "verified" and untouched and not refusal.startswith("WRONG"))
        before = (
            f"validation {'FAILED' if not outcome.ok else 'passed'}, {refusal}, left {status}, source "
            f"{'intact' if untouched else 'CHANGED'}: {outcome.message()[:120]}"
        )
        return _converge(lab, result, started, before)

    return FaultCase("storage", name, run)


def _part(manifest: Manifest, index: int = 1) -> str:
    return manifest.files[min(index, len(manifest.files) - 1)].path


def _rewrite_manifest(store: ArchiveStore, manifest: Manifest) -> None:
    first, second = manifest.files[0], manifest.files[-1]
    first.sha256, second.sha256 = second.sha256, first.sha256  # another copy's manifest: hashes of other files
    store.write_manifest(manifest)


def storage_cases() -> list[FaultCase]:
    return [
        _storage_case("flipped byte", lambda lab, s, m: s.upload(_part(m), flip_byte(s.download(_part(m))))),
        _storage_case("truncated file", lambda lab, s, m: s.upload(_part(m), s.download(_part(m))[:-1000])),
        _storage_case("missing file", lambda lab, s, m: s.delete(_part(m))),
        _storage_case("manifest not matching its files", lambda lab, s, m: _rewrite_manifest(s, m)),
        _storage_case("deleted manifest", lambda lab, s, m: s.delete(s.manifest_path(m.slice_id))),
        _storage_case(
            "stray part from another copy",
            lambda lab, s, m: s.upload(s.part_path(m.slice_id, 99), s.download(_part(m, 0))),
        ),
        _storage_case(
            "flipped byte after verification, before the purge",
            lambda lab, s, m: s.upload(_part(m), flip_byte(s.download(_part(m)))),
            after_verified=True,
        ),
    ]


def _gateway_faults(gateway: Gateway, lab: FaultLab, body: Any, method: str = "POST") -> dict[str, Any]:
    """Drive the gateway's loopback control endpoint, as an operator's drill would."""
    ca = str(Path(lab.stack_state_dir) / "tls" / "ca.pem")
    answer = requests.request(method, f"{gateway.endpoint}_gateway/faults", json=body, verify=ca, timeout=10)
    answer.raise_for_status()
    return answer.json()


def _service_case(name: str, fault: dict[str, Any], *, settle_s: float = 0.0, slow: bool = False) -> FaultCase:
    def run(lab: FaultLab) -> CaseResult:
        result = CaseResult("service (Cosmos)", name)
        started = time.monotonic()
        with start_gateway(lab.backend_endpoint.rstrip("/"), Path(lab.stack_state_dir)) as gateway:
            faulty = lab.with_endpoint(gateway.endpoint)
            _gateway_faults(gateway, lab, fault)
            t0 = time.monotonic()
            ends = t0 + float(fault.get("duration_s") or 0)
            try:
                steps = run_pipeline(faulty)
                outcome = f"run completed despite the fault ({steps['validate'].message()[:100]})"
            except Exception as exc:  # what a task would report: a clear failure, then the rerun
                outcome = f"run failed clearly after {time.monotonic() - t0:.1f}s: {type(exc).__name__}: {exc}"[:300]
            took = time.monotonic() - t0
            time.sleep(max(0.0, ends - time.monotonic()))  # a 'down' gateway refuses its control endpoint too
            state = _gateway_faults(gateway, lab, None, "DELETE")
            result.injected = sum(state["injected"].values())
            time.sleep(settle_s)
            bounded = took <= FAILURE_BOUND_S
            result = _converge(faulty, result, started, outcome + ("" if bounded else " (NOT bounded)"))
            result.converged = result.converged and bounded
        return result

    return FaultCase("service (Cosmos)", name, run, slow=slow)


def _pause_azurite(lab: FaultLab, seconds: float) -> None:
    """SIGSTOP the stack's Azurite for ``seconds``, then SIGCONT it (always)."""
    pid = int((Path(lab.stack_state_dir) / "azurite-blob.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def _blob_paused(lab: FaultLab) -> CaseResult:
    """Blob Storage stops answering for a few seconds while the copy uploads: the upload waits it out."""
    result = CaseResult("service (Blob)", "Blob not answering for 3 s")
    started = time.monotonic()
    pause = threading.Timer(0.3, _pause_azurite, args=(lab, 3.0))
    pause.start()
    try:
        run_pipeline(lab)
        outcome = "run completed after Azurite resumed"
    except Exception as exc:
        outcome = f"run failed clearly: {type(exc).__name__}: {exc}"[:300]
    finally:
        pause.join()
    result.injected = 1
    return _converge(lab, result, started, outcome)


def _blob_down(lab: FaultLab) -> CaseResult:
    """Blob Storage unreachable (nothing listening): bounded SDK retries, a clear failure; the rerun completes."""
    result = CaseResult("service (Blob)", "Blob unreachable")
    started = time.monotonic()
    closed = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    unreachable = lab.blob_connection_string.replace(
        lab.blob_connection_string.split("BlobEndpoint=")[1].rstrip(";"), closed
    )
    t0 = time.monotonic()
    try:
        store = ArchiveStore(blob_container(unreachable, lab.blob_container, create=False), lab.settings.blob_prefix)
        copy_slice(lab.source(), store, lab.time_slice, lab.settings)
        outcome = "WRONG: the copy reported success with Blob Storage unreachable"
    except Exception as exc:
        result.injected = 1
        outcome = f"failed clearly after {time.monotonic() - t0:.1f}s: {type(exc).__name__}: {str(exc)[:160]}"
    return _converge(lab, result, started, outcome)


def service_cases() -> list[FaultCase]:
    return [
        _service_case(
            "429 storm (all archiver requests, 3 s)",
            {"kind": "throttle", "duration_s": 3, "traffic": "archiver", "retry_after_ms": 200},
        ),
        _service_case("connection resets (30 % of requests, 8 of them)", {"kind": "reset", "count": 8, "rate": 0.3}),
        _service_case("slow answers (1.5 s, 4 of them)", {"kind": "slow", "count": 4, "delay_s": 1.5}, slow=True),
        _service_case("5xx (503, 3 s)", {"kind": "error", "duration_s": 3}, slow=True),
        _service_case("5xx (500 on 2 requests)", {"kind": "error", "status": 500, "count": 2}),
        _service_case("Cosmos down for 4 s", {"kind": "down", "duration_s": 4}, settle_s=0.5),
        FaultCase("service (Blob)", "Blob not answering for 3 s", _blob_paused, slow=True),
        FaultCase("service (Blob)", "Blob unreachable", _blob_down, slow=True),  # the SDK's own back-off: ~1 min
    ]


def all_cases() -> list[FaultCase]:
    return [*crash_cases(), *storage_cases(), *service_cases()]


def run_case(stack: StackConfig, case: FaultCase) -> CaseResult:
    lab = new_lab(stack)
    try:
        return case.run(lab)
    finally:
        drop_lab(lab)


# -- the worker (SIGKILL cases) -------------------------------------------------------------------------------------
def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.fault_suite")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run the pipeline on a lab, killed at a crash point")
    worker.add_argument("lab", help="FaultLab JSON")
    worker.add_argument("point", choices=sorted(CRASH_POINTS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    lab = FaultLab.from_json(args.lab)
    point = CRASH_POINTS[args.point]
    with armed(point, "kill"):
        OPERATIONS[point.operation](lab)
    print("the crash point was never reached", file=sys.stderr)
    return 3


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
