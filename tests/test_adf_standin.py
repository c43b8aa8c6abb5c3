"""The loopback ADF stand-in, driven by the real azure-mgmt-datafactory client (no Cosmos DB needed here: the
run's work is a recording callable; tests/test_adf_operator.py runs the real copy)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.datafactory import DataFactoryManagementClient

from devstack.adf_standin.server import LOCAL_FACTORY, LOCAL_RESOURCE_GROUP, AdfStandin, Faults
from devstack.stack import trust_env
from devstack.tls import TlsFiles, ensure_local_tls
from include.cosmos_archiver.adf import PIPELINE_NAME
from include.cosmos_archiver.adf.definitions import load_definitions
from include.cosmos_archiver.adf.management_client import LocalEndpointError, local_management_client
from include.cosmos_archiver.adf.parameters import pipeline_parameters
from include.cosmos_archiver.cli.main import main as cli_main
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import slice_grid

REPO = Path(__file__).resolve().parents[1]
SUB = "00000000-0000-0000-0000-00000000a0a0"
RG, FACTORY = LOCAL_RESOURCE_GROUP, LOCAL_FACTORY


class Recorder:
    """run_copy stand-in: records parameters; can block until released or raise."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.release.set()
        self.error: Exception | None = None

    def __call__(self, parameters: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(parameters)
        assert self.release.wait(20)
        if self.error is not None:
            raise self.error
        return {"records": 3}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_local_tls(tmp_path_factory.mktemp("adf-tls"))


@pytest.fixture
def standin(tls: TlsFiles) -> Any:
    recorder = Recorder()
    with AdfStandin(recorder, tls_cert=tls.server_cert, tls_key=tls.server_key) as server:
        server.recorder = recorder  # type: ignore[attr-defined]
        yield server
    recorder.release.set()


@pytest.fixture
def client(standin: AdfStandin, tls: TlsFiles) -> DataFactoryManagementClient:
    return local_management_client(standin.base_url, SUB, ca_file=str(tls.ca_bundle))


def _params() -> dict[str, Any]:
    settings = ArchiveSettings()
    (day,) = slice_grid(*_day_bounds())
    return pipeline_parameters(day, settings, page_size=25, parallel_copies=2)


def _day_bounds() -> tuple[Any, Any]:
    import datetime as dt

    return dt.datetime(2024, 5, 1, tzinfo=dt.UTC), dt.datetime(2024, 5, 2, tzinfo=dt.UTC)


def _wait_status(client: DataFactoryManagementClient, run_id: str, statuses: set[str], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        run = client.pipeline_runs.get(RG, FACTORY, run_id)
        if not seen or seen[-1] != run.status:
            seen.append(run.status)
        if run.status in statuses:
            return run, seen
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {statuses}; saw {seen}")


def test_run_moves_queued_in_progress_succeeded_with_its_parameters(standin: AdfStandin, client: Any) -> None:
    standin.faults = Faults(queued_s=0.3)
    standin.recorder.release.clear()  # type: ignore[attr-defined]
    run_id = client.pipelines.create_run(RG, FACTORY, PIPELINE_NAME, parameters=_params()).run_id
    queued = client.pipeline_runs.get(RG, FACTORY, run_id)
    assert queued.status == "Queued" and queued.run_start is None
    _, seen = _wait_status(client, run_id, {"InProgress"})
    standin.recorder.release.set()  # type: ignore[attr-defined]
    run, seen_after = _wait_status(client, run_id, {"Succeeded"})
    assert seen == ["Queued", "InProgress"] and seen_after[-1] == "Succeeded"
    assert run.pipeline_name == PIPELINE_NAME and run.run_id == run_id
    assert run.run_start <= run.run_end and run.message == ""
    # ADF reports parameter values as strings; the work received them as sent.
    assert run.parameters == {k: v if isinstance(v, str) else json.dumps(v) for k, v in _params().items()}
    assert standin.recorder.calls == [_params()]  # type: ignore[attr-defined]
    assert standin.runs[run_id].output == {"records": 3}


def test_failing_work_fails_the_run_with_the_exception_text(standin: AdfStandin, client: Any) -> None:
    standin.recorder.error = RuntimeError("Cosmos DB said 404: container 'nope' not found")  # type: ignore[attr-defined]
    run_id = client.pipelines.create_run(RG, FACTORY, PIPELINE_NAME, parameters=_params()).run_id
    run, _ = _wait_status(client, run_id, {"Succeeded", "Failed"})
    assert run.status == "Failed"
    assert "container 'nope' not found" in run.message and "CopySlice" in run.message


def test_fault_injection_finish_before_first_poll_and_forced_failure(standin: AdfStandin, client: Any) -> None:
    standin.faults = Faults(finish_before_first_poll=True)
    run_id = client.pipelines.create_run(RG, FACTORY, PIPELINE_NAME, parameters=_params()).run_id
    assert client.pipeline_runs.get(RG, FACTORY, run_id).status == "Succeeded"  # the very first poll
    standin.faults = Faults(finish_before_first_poll=True, fail_message="injected: region outage")
    run_id = client.pipelines.create_run(RG, FACTORY, PIPELINE_NAME, parameters=_params()).run_id
    run = client.pipeline_runs.get(RG, FACTORY, run_id)
    assert (run.status, run.message) == ("Failed", "Operation on target CopySlice failed: injected: region outage")


def test_cancel_is_final_even_when_the_work_ends_later(standin: AdfStandin, client: Any) -> None:
    standin.recorder.release.clear()  # type: ignore[attr-defined]
    run_id = client.pipelines.create_run(RG, FACTORY, PIPELINE_NAME, parameters=_params()).run_id
    _wait_status(client, run_id, {"InProgress"})
    client.pipeline_runs.cancel(RG, FACTORY, run_id)
    assert client.pipeline_runs.get(RG, FACTORY, run_id).status == "Cancelled"
    standin.recorder.release.set()  # type: ignore[attr-defined]
    standin.wait(run_id)
    assert client.pipeline_runs.get(RG, FACTORY, run_id).status == "Cancelled"


def test_rerun_from_reference_reuses_parameters(standin: AdfStandin, client: Any) -> None:
    first = client.pipelines.create_run(RG, FACTORY, PIPELINE_NAME, parameters=_params()).run_id
    standin.wait(first)
    second = client.pipelines.create_run(RG, FACTORY, PIPELINE_NAME, reference_pipeline_run_id=first).run_id
    standin.wait(second)
    assert second != first and standin.runs[second].parameters == standin.runs[first].parameters


def test_bad_requests_get_adf_shaped_errors(standin: AdfStandin, client: Any, tls: TlsFiles) -> None:
    params = _params()
    with pytest.raises(HttpResponseError) as missing:
        client.pipelines.create_run(RG, FACTORY, PIPELINE_NAME,
                                    parameters={k: v for k, v in params.items() if k != "parallelCopies"})
    assert missing.value.status_code == 400 and "missing ['parallelCopies']" in str(missing.value)
    with pytest.raises(HttpResponseError) as unknown:
        client.pipelines.create_run(RG, FACTORY, PIPELINE_NAME, parameters={**params, "batch": 3})
    assert "not declared ['batch']" in str(unknown.value)
    with pytest.raises(HttpResponseError) as no_pipeline:
        client.pipelines.create_run(RG, FACTORY, "other_pipeline", parameters=params)
    assert no_pipeline.value.status_code == 404
    with pytest.raises(HttpResponseError) as no_run:
        client.pipeline_runs.get(RG, FACTORY, "0" * 32)
    assert no_run.value.status_code == 404
    with pytest.raises(HttpResponseError) as no_factory:
        client.factories.get(RG, "someone-elses-factory")
    assert no_factory.value.status_code == 404
    assert standin.recorder.calls == []  # type: ignore[attr-defined]
    # Without a bearer token the stand-in refuses, as ADF does.
    factory_path = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DataFactory/factories/{FACTORY}"
    url = f"{standin.base_url}{factory_path}?api-version=2018-06-01"
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(url, context=ssl.create_default_context(cafile=str(tls.ca_cert)), timeout=5)
    assert anonymous.value.code == 401


def test_local_client_refuses_a_non_loopback_url() -> None:
    with pytest.raises(LocalEndpointError, match=r"management\.azure\.com"):
        local_management_client("https://management.azure.com", SUB)


@pytest.mark.integration  # starts its own server
def test_deploy_puts_every_resource_in_order(
    tls: TlsFiles, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in trust_env(tls.ca_bundle).items():  # its own CA, also over a session stack's
        monkeypatch.setenv(key, value)
    recorder = Recorder()
    with AdfStandin(recorder, tls_cert=tls.server_cert, tls_key=tls.server_key, preload=False) as standin:
        args = [
            "adf",
            "deploy",
            "--subscription-id",
            SUB,
            "--resource-group",
            RG,
            "--factory",
            FACTORY,
            "--cosmos-endpoint",
            "https://127.0.0.1:8081/",
            "--key-vault-url",
            "https://kv.vault.azure.net/",
            "--blob-endpoint",
            "https://127.0.0.1:10000/devstoreaccount1",
            "--local-base-url",
            standin.base_url,
        ]
        assert cli_main(args) == 0
        out = capsys.readouterr().out
        puts = [path.rsplit("/", 2)[-2:] for method, path in standin.requests if method == "PUT"]
        names = [r.name for r in load_definitions()]
        assert [name for _, name in puts] == names
        assert out.count("created/updated (etag ") == len(names)
        stored = standin.resource(RG, FACTORY, "pipeline", PIPELINE_NAME)
        assert stored is not None
        assert stored["properties"] == next(r.body for r in load_definitions() if r.name == PIPELINE_NAME)["properties"]
        cosmos = standin.resource(RG, FACTORY, "linkedService", "ArchiveCosmosDb")
        assert cosmos["properties"]["typeProperties"]["accountEndpoint"] == "https://127.0.0.1:8081/"
        # Deployed, the pipeline runs.
        client = local_management_client(standin.base_url, SUB)
        run_id = client.pipelines.create_run(RG, FACTORY, PIPELINE_NAME, parameters=_params()).run_id
        assert standin.wait(run_id).status == "Succeeded"
        # A factory that does not exist is reported before anything is written.
        before = len(standin.requests)
        assert cli_main([*args[:6], "--factory", "missing-factory", *args[8:]]) == 2
        assert "factory 'missing-factory'" in capsys.readouterr().err
        assert [m for m, _ in list(standin.requests)[before:]] == ["GET"]


@pytest.mark.integration  # starts its own server
def test_standin_runs_as_a_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.adf_standin.server", "--state-dir", str(tmp_path), "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read()  # type: ignore[union-attr]
        info = json.loads(line)
        assert info["base_url"].startswith("https://127.0.0.1:")
        client = local_management_client(info["base_url"], SUB, ca_file=str(tmp_path / "tls" / "ca-bundle.pem"))
        assert client.factories.get(info["resource_group"], info["factory"]).name == info["factory"]
        assert client.pipelines.get(info["resource_group"], info["factory"], PIPELINE_NAME).name == PIPELINE_NAME
        health = f"{info['base_url']}/_standin/health"  # no token needed: the local stack's health check
        ctx = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.pem"))
        with urllib.request.urlopen(health, context=ctx, timeout=5) as resp:
            assert json.loads(resp.read())["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
