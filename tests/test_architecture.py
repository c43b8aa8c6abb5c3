"""Where the product ends: include/cosmos_archiver (the product library) imports neither the dev kit (devstack/)
nor Airflow, and dags/ does not import the dev kit. Imports are read with ``ast`` from every module, including
imports inside functions and relative ones; the same checker is run on a small tree that breaks each rule, so the
test is known to fail when a product module imports the dev kit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# (folder, top-level packages it must not import)
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("include/cosmos_archiver", ("devstack", "airflow")),
    ("dags", ("devstack",)),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every module ``path`` imports anywhere in its body (functions, conditionals, try blocks included)."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from x import y` may be a module
    return found


def forbidden_imports(root: Path, rules: tuple[tuple[str, tuple[str, ...]], ...] = RULES) -> list[str]:
    """``<file>: imports <module>`` for every import that breaks ``rules`` below ``root``."""
    problems = []
    for folder, banned in rules:
        for path in sorted((root / folder).rglob("*.py")):
            for module in sorted(imported_modules(path, root)):
                if module.split(".")[0] in banned:
                    problems.append(f"{path.relative_to(root)}: imports {module}")
    return problems


def repository_paths(root: Path) -> list[str]:
    """Library code that climbs out of its package (``Path(__file__).parents[n]`` / ``.parent.parent``)."""
    found = []
    for path in sorted((root / "include/cosmos_archiver").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            climbs = (
                isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "parents"
            ) or (
                isinstance(node, ast.Attribute) and node.attr == "parent"
                and isinstance(node.value, ast.Attribute) and node.value.attr == "parent"
            )
            if climbs:
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_the_library_imports_neither_the_dev_kit_nor_airflow() -> None:
    assert forbidden_imports(REPO, RULES[:1]) == []


def test_the_dags_do_not_import_the_dev_kit() -> None:
    assert forbidden_imports(REPO, RULES[1:]) == []


def test_the_library_computes_no_repository_paths() -> None:
    assert repository_paths(REPO) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


CLEAN = {
    "include/__init__.py": "",
    "include/cosmos_archiver/__init__.py": "",
    "include/cosmos_archiver/source/__init__.py": "",
    "include/cosmos_archiver/source/reader.py": "from ..archive import store\nimport json\n",
    "dags/archive.py": "from include.cosmos_archiver.source import reader\nimport airflow\n",
    "devstack/__init__.py": "import include.cosmos_archiver\n",
}


def test_the_checker_passes_a_clean_tree(tmp_path: Path) -> None:
    root = _tree(tmp_path, CLEAN)
    assert forbidden_imports(root) == []
    reader = root / "include/cosmos_archiver/source/reader.py"
    assert "include.cosmos_archiver.archive.store" in imported_modules(reader, root)  # relative imports resolved


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("include/cosmos_archiver/source/reader.py", "import devstack.seed\n", "devstack.seed"),
        ("include/cosmos_archiver/source/reader.py", "from devstack import drills\n", "devstack"),
        (
            "include/cosmos_archiver/source/reader.py",
            "def f():\n    try:\n        from devstack.stack import free_port\n    except ImportError:\n        pass\n",
            "devstack.stack",
        ),
        ("include/cosmos_archiver/source/reader.py", "from airflow.sdk import Variable\n", "airflow.sdk"),
        ("dags/archive.py", "from devstack import drills\n", "devstack"),
    ],
)
def test_the_checker_fails_a_product_module_that_imports_the_dev_kit_or_airflow(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    root = _tree(tmp_path, {**CLEAN, name: CLEAN.get(name, "") + text})
    assert f"{name}: imports {expected}" in forbidden_imports(root)


def test_the_checker_finds_a_computed_repository_path(tmp_path: Path) -> None:
    text = "from pathlib import Path\nROOT = Path(__file__).resolve().parents[3]\nUP = Path('.').parent.parent\n"
    root = _tree(tmp_path, {**CLEAN, "include/cosmos_archiver/source/reader.py": text})
    assert repository_paths(root) == ["include/cosmos_archiver/source/reader.py:2",
                                      "include/cosmos_archiver/source/reader.py:3"]
