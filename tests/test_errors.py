"""Every error the product library defines has a kind that decides retries (no servers, no Airflow)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import include.cosmos_archiver as product
from include.cosmos_archiver.errors import ArchiveError, TerminalError, TransientError
from include.cosmos_archiver.pipeline.slice_workflow import SliceSkipped

NOT_ERRORS = {SliceSkipped}  # an outcome (the task is skipped), not a failure


def _library_exceptions() -> set[type[BaseException]]:
    found = set()
    for module in pkgutil.walk_packages(product.__path__, f"{product.__name__}."):
        if module.name.endswith(".__main__"):  # running it is the CLI
            continue
        loaded = importlib.import_module(module.name)
        for _, value in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == loaded.__name__:
                found.add(value)
    return found


def test_every_library_error_is_terminal_or_transient():
    errors = _library_exceptions() - NOT_ERRORS - {ArchiveError, TerminalError, TransientError}
    assert len(errors) >= 15  # the walk found the stages' errors
    kindless = sorted(e.__qualname__ for e in errors if not issubclass(e, TerminalError | TransientError))
    assert kindless == []
    both = sorted(e.__qualname__ for e in errors if issubclass(e, TerminalError) and issubclass(e, TransientError))
    assert both == []


def test_the_kinds_follow_the_rule():
    from include.cosmos_archiver.archive.slice_lease import SliceBusyError, SliceLeaseLostError
    from include.cosmos_archiver.planning.due_slices import DueSlicesError
    from include.cosmos_archiver.reporting.notifications import DeliveryError
    from include.cosmos_archiver.settings import SettingsError
    from include.cosmos_archiver.slices import SliceError

    for terminal in (SettingsError, SliceError, DueSlicesError):
        assert issubclass(terminal, TerminalError) and issubclass(terminal, ValueError)  # old excepts still catch
    for transient in (SliceBusyError, SliceLeaseLostError, DeliveryError):
        assert issubclass(transient, TransientError) and issubclass(transient, RuntimeError)
