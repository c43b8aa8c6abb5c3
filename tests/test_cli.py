"""The product CLI turns the mistakes a new user makes into one `cosmos-archive: error: ...` line and an exit status
(2 bad input/settings, 3 a service unreachable), never a traceback; `summary` says what it leaves out and what every
step cost; census and scrub print their report once."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from azure.core.exceptions import ServiceRequestError

from devstack.stack import AZURITE_KEY, EMULATOR_COSMOS_KEY, free_port
from include.cosmos_archiver.archive.scrub import SCRUB_NAME, UnknownSliceError, scrub_archive
from include.cosmos_archiver.archive.slice_grid import SliceGridError
from include.cosmos_archiver.cli.main import EXIT_BAD_INPUT, EXIT_UNAVAILABLE, main
from include.cosmos_archiver.cli.targets import BLOB_CONNECTION_STRING_ENV, COSMOS_ENDPOINT_ENV, COSMOS_KEY_ENV
from include.cosmos_archiver.errors import TransientError
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.purge import purge_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ArchiveSettings(timestamp_field="issuedAt", timestamp_kind="iso8601")
DAYS = [TimeSlice(dt.datetime(2025, 3, d, tzinfo=dt.UTC), dt.datetime(2025, 3, d + 1, tzinfo=dt.UTC))
        for d in (1, 2, 3)]  # the 3rd stays empty

# A subcommand of this module raises what --raise names (the mapping is the CLI's, whatever the command).
RAISED = {
    "grid": SliceGridError("slice_hours=6 differs from the archive's grid of 24 h: keep slice_hours=24"),
    "busy": TransientError("slice 2025/03/01 is busy (leased by another run)"),
    "refused": ServiceRequestError("HTTPSConnection(host='127.0.0.1', port=9): Failed to establish a new "
                                   "connection: [Errno 111] Connection refused"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fail")
    parser.add_argument("--raise", dest="what", choices=sorted(RAISED))
    parser.set_defaults(func=lambda args: (_ for _ in ()).throw(RAISED[args.what]))


@pytest.mark.parametrize(("what", "code", "says"), [
    ("grid", EXIT_BAD_INPUT, "cosmos-archive: error: slice_hours=6 differs"),
    ("busy", EXIT_UNAVAILABLE, "cosmos-archive: error: slice 2025/03/01 is busy"),
    ("refused", EXIT_UNAVAILABLE, "cosmos-archive: error: cannot reach 127.0.0.1:9: HTTPSConnection"),
])
def test_library_and_sdk_errors_become_one_line_and_an_exit_status(what, code, says, capsys):
    assert main(["fail", "--raise", what], modules=(__name__,)) == code
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(says) and captured.err.count("\n") == 1
    if what == "refused":
        assert "cosmos-archive stack up" in captured.err


def test_a_closed_pipe_ends_the_command_quietly():
    process = subprocess.Popen(
        [sys.executable, "-m", "include.cosmos_archiver", "plan", "--records", "2000000", "--avg-size-kb", "300",
         "--ru-per-record", "300", "--provisioned-ru-s", "5000", "--account-mode", "provisioned"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # `| head -0`: the reader is gone before the first line
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141  # 128 + SIGPIPE, as a shell reports a command whose reader left
    assert err == ""


def _env(stack, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), COSMOS_ENDPOINT_ENV: stack.cosmos_endpoint,
            COSMOS_KEY_ENV: EMULATOR_COSMOS_KEY, BLOB_CONNECTION_STRING_ENV: stack.blob_connection_string, **extra}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: its own process, its own stderr (no test logging handlers)."""
    return subprocess.run([sys.executable, "-m", "include.cosmos_archiver", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_missing_container_is_named_not_a_404(cosmos_container, archive_store, stack):
    settings = json.dumps({"database": "tests", "container": "nosuch", "timestamp_field": "issuedAt",
                           "timestamp_kind": "iso8601", "blob_container": archive_store.container.container_name})
    census = _cli(_env(stack), "census", "--settings-json", settings)
    assert census.returncode == EXIT_BAD_INPUT
    assert "database 'tests', container 'nosuch'" in census.stderr and "does not exist" in census.stderr
    assert "Traceback" not in census.stderr and census.stderr.count("\n") == 1

    plan = _cli(_env(stack), "plan", "--from-container", "--endpoint", stack.cosmos_endpoint, "--database",
                "nodb", "--container", "nosuch", "--key-env", COSMOS_KEY_ENV)
    assert plan.returncode == EXIT_BAD_INPUT
    assert "database 'nodb', container 'nosuch'" in plan.stderr and "Traceback" not in plan.stderr


def test_an_unreachable_service_is_named_with_how_to_start_it(stack, archive_store):
    port = free_port()  # nothing listens there
    cosmos_down = _cli(_env(stack, **{COSMOS_ENDPOINT_ENV: f"https://127.0.0.1:{port}/"}), "census")
    assert cosmos_down.returncode == EXIT_UNAVAILABLE
    assert f"cannot reach Cosmos DB at https://127.0.0.1:{port}/" in cosmos_down.stderr
    assert "cosmos-archive stack up" in cosmos_down.stderr and "Traceback" not in cosmos_down.stderr

    blob = stack.blob_connection_string.replace(f":{stack.blob_port}/", f":{port}/")
    blob_down = _cli(_env(stack, **{BLOB_CONNECTION_STRING_ENV: blob}), "summary")
    assert blob_down.returncode == EXIT_UNAVAILABLE
    assert f"cannot reach Blob Storage at http://127.0.0.1:{port}/" in blob_down.stderr
    assert "Traceback" not in blob_down.stderr


def test_a_refused_key_is_named_not_a_traceback(stack, archive_store):
    wrong = stack.blob_connection_string.replace(AZURITE_KEY, base64.b64encode(b"not the key").decode())
    refused = _cli(_env(stack, **{BLOB_CONNECTION_STRING_ENV: wrong}), "summary")
    assert refused.returncode == EXIT_BAD_INPUT, refused.stderr
    named = f"Blob Storage at http://127.0.0.1:{stack.blob_port}/devstoreaccount1 (from ${BLOB_CONNECTION_STRING_ENV})"
    assert f"{named} refused the credentials (HTTP 403" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.fixture
def archived(cosmos_container, archive_store):
    """Two slices archived and purged (copy, validate and purge RU recorded), one empty slice verified."""
    for day in DAYS[:2]:
        for i in range(6):
            cosmos_container.upsert_item({"id": f"{day.start:%d}-{i}", "customerId": f"c{i % 2}",
                                          "issuedAt": f"{day.start:%Y-%m-%d}T{i:02d}:00:00.000Z", "pad": "x" * 500})
    for day in DAYS:
        copy_slice(cosmos_container, archive_store, day, SETTINGS)
        assert validate_slice(cosmos_container, archive_store, day, SETTINGS).ok
    for day in DAYS[:2]:
        purge_slice(cosmos_container, archive_store, day, SETTINGS)
    return cosmos_container, archive_store


def test_summary_shows_ru_per_step_and_says_which_slices_it_leaves_out(archived, stack):
    container, store = archived
    settings = json.dumps({"database": "tests", "container": container.id,
                           "blob_container": store.container.container_name})
    manifests = [store.read_manifest(day.slice_id) for day in DAYS]
    steps = {step: sum(m.ru_steps.get(step, 0.0) for m in manifests) for step in ("copy", "validate", "purge")}
    assert all(steps.values())

    result = _cli(_env(stack), "summary", "--settings-json", settings)

    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 120
    assert lines[0].split()[7:13] == ["RU", "copy", "validate", "purge", "RU", "total"]
    first = lines[1].split()
    assert first[0] == DAYS[0].slice_id
    assert [float(v) for v in first[5:9]] == pytest.approx(
        [round(manifests[0].ru_steps[s]) for s in ("copy", "validate", "purge")]
        + [round(sum(manifests[0].ru_steps.values()))], abs=1)
    assert DAYS[2].slice_id not in result.stdout
    assert "total: 3 slices (3 verified)" in result.stdout
    assert "(1 empty slice(s) not listed; --all lists them)" in result.stdout
    ru_line = next(line for line in lines if line.startswith("RU by step (the whole archive, every run so far):"))
    total = sum(sum(m.ru_steps.values()) for m in manifests)
    assert f"copy {steps['copy']:,.0f}" in ru_line and f"purge {steps['purge']:,.0f}" in ru_line
    assert f"validate {steps['validate']:,.0f}" in ru_line and ru_line.endswith(f"= {total:,.0f} RU in all")
    listed = _cli(_env(stack), "summary", "--settings-json", settings, "--all")
    assert DAYS[2].slice_id in listed.stdout and "not listed" not in listed.stdout


def test_scrub_of_an_unknown_slice_is_refused_and_writes_nothing(archived, stack):
    container, store = archived
    settings = json.dumps({"database": "tests", "container": container.id,
                           "blob_container": store.container.container_name})
    for wrong in ("banana", "2025-03-01"):
        result = _cli(_env(stack), "scrub", "--settings-json", settings, "--slice", wrong)
        assert result.returncode == EXIT_BAD_INPUT
        assert result.stderr.startswith(f"cosmos-archive: error: unknown slice '{wrong}'")
        assert DAYS[0].slice_id in result.stderr and "cosmos-archive summary" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
    with pytest.raises(UnknownSliceError, match="unknown slice 'banana'"):
        scrub_archive(store, SETTINGS, slice_ids=[DAYS[0].slice_id, "banana"])
    assert not [b.name for b in store.container.list_blobs() if b.name.endswith(SCRUB_NAME)]
    assert _cli(_env(stack), "summary", "--settings-json", settings).returncode == 0


def test_scrub_and_census_print_their_report_once(archived, stack):
    container, store = archived
    settings = json.dumps({"database": "tests", "container": container.id, "timestamp_field": "issuedAt",
                           "timestamp_kind": "iso8601", "blob_container": store.container.container_name})
    part = store.read_manifest(DAYS[0].slice_id).files[0].path
    store.upload(part, store.download(part)[:-10])

    scrub = _cli(_env(stack), "scrub", "--settings-json", settings)
    assert scrub.returncode == 1
    assert scrub.stdout.count("1 damaged: 2025/03/01") == 1 and scrub.stdout.count("DAMAGED") == 1
    assert scrub.stderr == ""

    container.upsert_item({"id": "bad", "customerId": "c0", "issuedAt": 1772000000})
    census = _cli(_env(stack), "census", "--settings-json", settings)
    assert census.returncode == 1
    assert census.stdout.count("1 left out") == 1 and "timestamp_wrong_kind" in census.stdout
    assert census.stderr == ""
