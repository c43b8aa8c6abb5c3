"""The library's error kinds, which decide whether a task is retried.

Every error the library raises on purpose is an :class:`ArchiveError` of one of two kinds:

* :class:`TerminalError`: retrying cannot help until a person acts (bad settings, a missing connection, an
  archive that failed its integrity check). The Airflow layer fails the task at once, without retries.
* :class:`TransientError`: the same call may succeed later (a slice lease busy or lost, throttling, a service
  unreachable). The Airflow layer lets the task's retries (with back-off) take it again.

Each stage keeps its own exception classes (``SettingsError``, ``SliceBusyError``, ...); they subclass one kind,
and usually a builtin too (``ValueError``, ``RuntimeError``) so existing ``except`` clauses keep working.
Errors from the SDKs (azure-core, azure-cosmos) are neither kind: the Airflow layer treats them as transient.
"""

from __future__ import annotations


class ArchiveError(Exception):
    """Base of every error cosmos-archive raises on purpose; the message says what was wrong and what to do."""


class TerminalError(ArchiveError):
    """Retrying cannot help: bad settings, a missing connection, an integrity failure. Fail without retries."""


class TransientError(ArchiveError):
    """The same work may succeed later: a busy or lost slice lease, throttling, an unreachable service."""
