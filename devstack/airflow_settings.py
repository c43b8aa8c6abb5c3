"""The repository's airflow_settings.yaml (Astro CLI format): read it, with ``${VAR:-default}`` expanded from the
environment, and look up a Variable. Used by scripts/apply_airflow_settings.py (which writes it to the metadata DB)
and by the dev CLI, whose ``--settings-json`` defaults to the ``cosmos_archive_settings`` Variable: the settings the
local stack's archive is written with."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

AIRFLOW_SETTINGS = Path(__file__).resolve().parents[1] / "airflow_settings.yaml"
SETTINGS_VARIABLE = "cosmos_archive_settings"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def expand(value: Any) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value


def load(path: Path = AIRFLOW_SETTINGS) -> dict[str, Any]:
    """The file's ``airflow`` section (connections, pools, variables), expanded."""
    return expand(yaml.safe_load(path.read_text()) or {}).get("airflow", {})


def variable(name: str, path: Path = AIRFLOW_SETTINGS) -> str:
    """The value of Variable ``name`` as the file defines it."""
    for item in load(path).get("variables") or []:
        if item["variable_name"] == name:
            return str(item["variable_value"])
    raise KeyError(f"{path} defines no Variable {name!r}")


if __name__ == "__main__":  # python -m devstack.airflow_settings [NAME]: print a Variable's value
    import sys

    print(variable(sys.argv[1] if len(sys.argv) > 1 else SETTINGS_VARIABLE))
