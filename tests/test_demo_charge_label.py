"""The demo's RU figures say who charged them: `cosmos-archive stack charge-model` (which bin/archive-local prints
after the summary) names the running RU gateway's model, as the gateway itself reports it, and that it is not Azure."""

from __future__ import annotations

from devstack import cli as dev_cli


def test_stack_charge_model_names_the_running_gateways_model(stack, monkeypatch, capsys):
    for name, value in {"COSMOS_ARCHIVE_STATE_DIR": str(stack.state_dir),
                        "COSMOS_ARCHIVE_COSMOS_PORT": str(stack.cosmos_port),
                        "COSMOS_ARCHIVE_COSMOS_BACKEND_PORT": str(stack.cosmos_backend_port),
                        "COSMOS_ARCHIVE_BLOB_PORT": str(stack.blob_port),
                        "COSMOS_ARCHIVE_CHARGE_MODEL": "seed"}.items():  # the env's wish is not what runs
        monkeypatch.setenv(name, value)
    assert dev_cli.main(["stack", "charge-model"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"RU charged by the local RU gateway under its {stack.charge_model!r} model"), line
    assert "Microsoft's published figures" in line and line.endswith("not by Azure"), line
