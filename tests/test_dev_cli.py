"""The dev kit's CLI (bin/cosmos-archive) against the local stack: it trusts the local CA even when the shell
points REQUESTS_CA_BUNDLE at a bundle without it, defaults --settings-json to airflow_settings.yaml's
cosmos_archive_settings (the product CLI does not), and saves a run's report out of the archive."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import certifi

from devstack.airflow_settings import SETTINGS_VARIABLE, variable
from devstack.cli import DEV_SUBCOMMAND_MODULES
from devstack.stack import StackConfig
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.cli.main import SUBCOMMAND_MODULES, build_parser
from include.cosmos_archiver.clients import CA_BUNDLE_ENV, blob_container, ca_bundle
from include.cosmos_archiver.reporting.run_report import REPORT_HTML, report_dir

REPO = Path(__file__).resolve().parents[1]


def _dev_cli(stack: StackConfig, *args: str) -> subprocess.CompletedProcess[str]:
    """bin/cosmos-archive in a shell whose REQUESTS_CA_BUNDLE/SSL_CERT_FILE are a public-roots bundle (no local CA)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSMOS_ARCHIVE_")}
    env.update({
        "REQUESTS_CA_BUNDLE": certifi.where(), "SSL_CERT_FILE": certifi.where(),
        "COSMOS_ARCHIVE_STATE_DIR": str(stack.state_dir), "COSMOS_ARCHIVE_COSMOS_PORT": str(stack.cosmos_port),
        "COSMOS_ARCHIVE_COSMOS_BACKEND_PORT": str(stack.backend_port),
        "COSMOS_ARCHIVE_BLOB_PORT": str(stack.blob_port),
    })
    return subprocess.run([str(REPO / "bin/cosmos-archive"), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_dev_cli_trusts_the_local_ca_over_a_shell_wide_requests_ca_bundle(stack):
    database = f"ca-{uuid.uuid4().hex[:8]}"
    seeded = _dev_cli(stack, "seed", "--records", "3", "--target-kb", "1", "--database", database,
                      "--through-gateway")
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    counted = _dev_cli(stack, "storage", "--database", database, "--container", "records")
    assert counted.returncode == 0, counted.stderr[-2000:]
    assert f"Cosmos DB {database}/records holds 3 documents" in counted.stdout
    assert "CERTIFICATE_VERIFY_FAILED" not in seeded.stderr + counted.stderr


def test_dev_cli_saves_a_run_report_from_the_archive(stack, tmp_path):
    run_id = "manual__2026-12-02T03:00:00+00:00"
    settings = {"blob_container": f"t-{uuid.uuid4().hex[:12]}", "blob_prefix": "records"}
    html = "<html>report of one run</html>"
    stored = _dev_cli(stack, "save-report", "--run-id", run_id, "--to", str(tmp_path / "missing"),
                      "--settings-json", json.dumps(settings))
    assert stored.returncode == 2 and "no run report at" in stored.stderr and run_id in stored.stderr

    store = ArchiveStore(blob_container(stack.blob_connection_string, settings["blob_container"]), "records")
    try:
        store.upload(f"{report_dir(store, run_id)}/{REPORT_HTML}", html.encode(), content_type="text/html")
        saved = _dev_cli(stack, "save-report", "--run-id", run_id, "--to", str(tmp_path / "report"),
                         "--settings-json", json.dumps(settings))
    finally:
        store.container.delete_container()
    assert saved.returncode == 0, saved.stderr[-2000:]
    assert (tmp_path / "report" / REPORT_HTML).read_text() == html
    assert str(tmp_path / "report" / REPORT_HTML) in saved.stdout


def test_dev_cli_defaults_settings_to_airflow_settings_yaml_and_the_product_cli_does_not():
    dev = build_parser((*SUBCOMMAND_MODULES, *DEV_SUBCOMMAND_MODULES, "devstack.cli"))
    product = build_parser()
    local = variable(SETTINGS_VARIABLE)
    assert json.loads(local)["slice_hours"] == 720 and json.loads(local)["timestamp_field"] == "issuedAt"
    for command in ("census", "scrub", "restore", "summary", "api"):
        assert dev.parse_args([command]).settings_json == local, command
        assert product.parse_args([command]).settings_json is None, command
    assert dev.parse_args(["census", "--settings-json", "{}"]).settings_json == "{}"


def test_ca_bundle_prefers_the_project_variable(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/system/bundle.pem")
    monkeypatch.delenv(CA_BUNDLE_ENV, raising=False)
    assert ca_bundle() == "/system/bundle.pem"
    monkeypatch.setenv(CA_BUNDLE_ENV, "/local/ca-bundle.pem")
    assert ca_bundle() == "/local/ca-bundle.pem"
