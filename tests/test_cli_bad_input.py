"""Every command of `bin/cosmos-archive` (the product's and the dev kit's), given a bad argument, answers one
`error:` line naming it and an exit status, never a traceback (issue 16, item 8). In process: an exception that
escapes ``main`` is the traceback a user would see."""

from __future__ import annotations

import json

import pytest

from devstack import cli as dev_cli
from devstack.stack import EMULATOR_COSMOS_KEY
from include.cosmos_archiver.cli.main import build_parser
from include.cosmos_archiver.cli.targets import BLOB_CONNECTION_STRING_ENV, COSMOS_ENDPOINT_ENV, COSMOS_KEY_ENV

PLAN = ["plan", "--records", "1000", "--avg-size-kb", "300", "--ru-per-record", "24", "--provisioned-ru-s", "5000",
        "--account-mode", "provisioned"]
DEPLOY = ["adf", "deploy", "--subscription-id", "s", "--resource-group", "g", "--factory", "f", "--key-vault-url",
          "https://v.vault.azure.net/", "--blob-endpoint", "https://a.blob.core.windows.net/", "--dry-run"]

# command -> bad invocations (argv after the command, "{settings}" = settings of the test's container) and what the
# error line must name
BAD = {
    "summary": [(["summary", "--settings-json", "{not json"], "--settings-json"),
                (["summary", "--settings-json", '{"slice_hours": 5}'], "slice_hours"),
                (["summary", "--settings-json", "[]"], "must be a JSON object"),
                (["summary", "--settings-json", "null"], "must be a JSON object"),
                (["summary", "--settings-json", '{"timestamp_field": 5}'], "timestamp_field=5")],
    "plan": [([*PLAN[:2], "-5", *PLAN[3:]], "-5"), ([*PLAN[:4], "nan", *PLAN[5:]], "nan"),
             ([*PLAN[:4], "inf", *PLAN[5:]], "inf"), ([*PLAN, "--stub-kb", "inf"], "inf"),
             ([*PLAN[:4], "abc", *PLAN[5:]], "'abc'"),  # argparse's own type error: one line too
             (["plan", "--from-container", "--endpoint", "{endpoint}", "--key-env", COSMOS_KEY_ENV, "--database",
               "tests", "--container", "{container}", "--where", "c.x = ))"], "--where"),
             (["plan", "--from-container", "--endpoint", "{endpoint}", "--key-env", COSMOS_KEY_ENV, "--database",
               "tests", "--container", "{container}"], "could not read the provisioned throughput")],
    "adf": [([*DEPLOY, "--cosmos-endpoint", "not a url"], "not a url")],
    "api": [(["api", "--port", "70000"], "70000"), (["api", "--host", "::nonsense::", "--settings-json", "{settings}"],
                                                    "::nonsense::"),
            (["api", "--port", "{busy_port}", "--settings-json", "{settings}"], "choose another --port")],
    "restore": [(["restore", "--slice", "2025/13/01", "--settings-json", "{settings}"], "2025/13/01"),
                (["restore", "--ids", "no-key-here", "--settings-json", "{settings}"], "no-key-here"),
                (["restore", "--slice", "../..", "--settings-json", "{settings}"], "../.."),
                (["restore", "--slice", "2025/03/01", "--max-ru-s", "nan", "--settings-json", "{settings}"], "nan")],
    "census": [(["census", "--now", "yesterday", "--settings-json", "{settings}"], "yesterday"),
               (["census", "--now", "0001-01-01T00:00:00+01:00", "--settings-json", "{settings}"], "0001-01-01"),
               (["census", "--max-listed", "-1", "--settings-json", "{settings}"], "-1")],
    "reopen": [(["reopen", "--slices", "nonsense", "--settings-json", "{settings}"], "nonsense"),
               (["reopen", "--slices", "9999-12-31..9999-12-31", "--settings-json", "{settings}"], "9999")],
    "scrub": [(["scrub", "--slice", "2025/99/99", "--settings-json", "{settings}"], "2025/99/99"),
              (["scrub", "--max-mb", "-1", "--settings-json", "{settings}"], "-1"),
              (["scrub", "--mb-per-s", "0", "--settings-json", "{settings}"], "0")],
    "survey": [(["survey", "--slice", "2025/13/45", "--settings-json", "{settings}"], "2025/13/45"),
               (["survey", "--settings-json", "[]"], "must be a JSON object")],
    "stack": [(["stack", "sideways"], "sideways")],
    "seed": [(["seed", "--records", "-1", "--database", "tests", "--container", "{container}"], "-1"),
             (["seed", "--target-kb", "0", "--database", "tests", "--container", "{container}"], "0")],
    "storage": [(["storage", "--database", "tests", "--container", "no-such-container"], "no-such-container")],
    "save-report": [(["save-report", "--run-id", "no-such-run"], "no-such-run"),
                    (["save-report", "--run-id", "   "], "run")],
    "load": [(["load", "--database", "tests", "--container", "{container}", "--duration-s", "-1"], "-1"),
             (["load", "--database", "tests", "--container", "{container}", "--trace", "bad"], "bad")],
}
CASES = [(command, argv, names) for command, cases in BAD.items() for argv, names in cases]


def test_every_command_has_a_bad_argument_case():
    parser = build_parser((*dev_cli.SUBCOMMAND_MODULES, *dev_cli.DEV_SUBCOMMAND_MODULES))
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == set(BAD)


@pytest.fixture
def at_test_stack(stack, cosmos_container, archive_store, monkeypatch):
    """The CLI's environment pointed at the test session's stack (product and dev-kit commands alike)."""
    for name, value in {COSMOS_ENDPOINT_ENV: stack.cosmos_endpoint, COSMOS_KEY_ENV: EMULATOR_COSMOS_KEY,
                        BLOB_CONNECTION_STRING_ENV: stack.blob_connection_string,
                        "COSMOS_ARCHIVE_STATE_DIR": str(stack.state_dir),
                        "COSMOS_ARCHIVE_COSMOS_PORT": str(stack.cosmos_port),
                        "COSMOS_ARCHIVE_COSMOS_BACKEND_PORT": str(stack.backend_port),
                        "COSMOS_ARCHIVE_BLOB_PORT": str(stack.blob_port)}.items():
        monkeypatch.setenv(name, value)
    settings = json.dumps({"database": "tests", "container": cosmos_container.id, "timestamp_field": "issuedAt",
                           "timestamp_kind": "iso8601", "blob_container": archive_store.container.container_name})
    return {"{settings}": settings, "{container}": cosmos_container.id, "{endpoint}": stack.cosmos_endpoint,
            "{busy_port}": str(stack.cosmos_port)}  # the stack's gateway listens there


@pytest.mark.parametrize(("command", "argv", "names"), CASES, ids=[f"{c}:{' '.join(a)[:40]}" for c, a, _ in CASES])
def test_a_bad_argument_is_one_error_line_never_a_traceback(command, argv, names, at_test_stack, capsys):
    argv = [at_test_stack.get(a, a) for a in argv]
    try:
        code = dev_cli.main(argv)
    except SystemExit as exc:  # argparse's own usage error: usage, then one error line, exit 2
        code = exc.code
    captured = capsys.readouterr()
    assert code in (1, 2, 3), (code, captured.out, captured.err)
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()  # one line, argparse's usage errors too (no usage block first)
    assert len(lines) == 1 and "error:" in lines[0] and names in lines[0], captured.err
