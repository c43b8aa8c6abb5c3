"""`cosmos-archive` command line: one subcommand per concern, each registered by its own module."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import NoReturn

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from include.cosmos_archiver.errors import ArchiveError, TerminalError

# Each module listed here defines `register(subparsers)` adding its subcommand(s) with `set_defaults(func=...)`.
SUBCOMMAND_MODULES = (
    "include.cosmos_archiver.cli.summary",
    "include.cosmos_archiver.cli.plan",
    "include.cosmos_archiver.cli.adf",
    "include.cosmos_archiver.cli.api",
    "include.cosmos_archiver.cli.restore",
    "include.cosmos_archiver.cli.census",
    "include.cosmos_archiver.cli.reopen",
    "include.cosmos_archiver.cli.scrub",
    "include.cosmos_archiver.cli.survey",
)

EXIT_FOUND = 1  # the command ran and found something to act on (left out, damaged, not verified, ...)
EXIT_BAD_INPUT = 2  # bad input or settings, or another terminal error: fix it, then re-run
EXIT_UNAVAILABLE = 3  # a service is unreachable or busy (a transient error): start it or wait, then re-run
EXIT_BUG = 70  # EX_SOFTWARE: an error the CLI does not know (a bug): one line, the traceback only on request
EXIT_CLOSED_PIPE = 141  # the reader of stdout went away (`| head`): 128 + SIGPIPE, as the shell reports it
EXIT_STATUS = (f"exit status: 0 done; {EXIT_FOUND} the command found something to act on (see its help); "
               f"{EXIT_BAD_INPUT} bad input or settings; {EXIT_UNAVAILABLE} a service is unreachable or busy "
               f"(start it, or try again later); {EXIT_BUG} an unexpected error (a bug: report it)")
START_HINT = "is the service running? (the local stack: `cosmos-archive stack up`)"
TRACEBACK_ENV = "COSMOS_ARCHIVE_TRACEBACK"  # set to 1 to see the traceback of an unexpected error


class UsageError(TerminalError):
    """Bad input: the message names the value and what to do instead."""


class OneLineParser(argparse.ArgumentParser):
    """argparse's usage errors as one line naming the problem and where the help is (its default prints the usage
    block first); the subcommands' parsers are of this class too (``add_subparsers`` builds them with it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(modules: Sequence[str] = SUBCOMMAND_MODULES) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="cosmos-archive", description=__doc__, epilog=EXIT_STATUS)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, *, modules: Sequence[str] = SUBCOMMAND_MODULES) -> int:
    args = build_parser(modules).parse_args(argv)
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run the subcommand; every error becomes one ``cosmos-archive: error: ...`` line on stderr and an exit status
    (EXIT_STATUS), never a traceback: the errors a user can cause or fix say what to do; anything else (a bug) says
    so, and shows its traceback only with COSMOS_ARCHIVE_TRACEBACK=1."""
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CLOSED_PIPE
    except (ServiceRequestError, ServiceResponseError) as exc:
        return _fail(f"cannot reach {_endpoint_in(exc)}: {_first_line(exc)}; {START_HINT}", EXIT_UNAVAILABLE)
    except HttpResponseError as exc:  # ClientAuthenticationError (Blob's refused key) is one
        status = getattr(exc, "status_code", None)
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            return _fail(f"{_service_of(exc)} refused the credentials (HTTP {status or '?'}: {_first_line(exc)}); "
                         "check the key or connection string it was given", EXIT_BAD_INPUT)
        answered = f"{_service_of(exc)} answered HTTP {status or '?'}: {_first_line(exc)}"
        if status in (408, 429) or (status or 500) >= 500:
            return _fail(f"{answered} (try again later)", EXIT_UNAVAILABLE)
        return _fail(f"{answered}; check the arguments and settings given", EXIT_BAD_INPUT)
    except TerminalError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except ArchiveError as exc:  # TransientError: the same command may succeed later
        return _fail(f"{exc} (try again later)", EXIT_UNAVAILABLE)
    except Exception as exc:  # a bug: one line naming it (the traceback on request)
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        return _fail(f"unexpected {type(exc).__name__}: {_first_line(exc)} (a bug in cosmos-archive: please report "
                     f"it with the command; {TRACEBACK_ENV}=1 shows the traceback)", EXIT_BUG)


def _fail(message: str, code: int) -> int:
    print(f"cosmos-archive: error: {message}", file=sys.stderr)
    return code


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _service_of(exc: HttpResponseError) -> str:
    """The configured endpoint an HTTP error came from (its request's URL), or "the service"."""
    url = getattr(getattr(exc, "response", None), "url", None) or ""
    match = re.match(r"\w+://([^/]+)", str(url))
    return _named(match.group(1)) if match else "the service"


def _named(host_port: str) -> str:
    from include.cosmos_archiver.cli.targets import endpoint_named  # targets imports this module

    return endpoint_named(host_port)


def _endpoint_in(exc: BaseException) -> str:
    """The endpoint the SDK could not reach (``host:port`` from its connection error, named as the configured
    endpoint it is), or "the service" when the error does not say."""
    match = re.search(r"host='([^']+)', port=(\d+)", str(exc))
    return _named(f"{match.group(1)}:{match.group(2)}") if match else "the service"


@contextlib.contextmanager
def printed_here(*logger_names: str) -> Iterator[None]:
    """While a command prints what these loggers say (its report, on stdout), keep them off stderr, so no line
    appears twice; they are restored afterwards (other callers and the DAG keep their logs)."""
    loggers = [logging.getLogger(name) for name in logger_names]
    saved = [(lg.propagate, lg.handlers[:]) for lg in loggers]
    for lg in loggers:
        lg.propagate = False
        lg.handlers = [logging.NullHandler()]
    try:
        yield
    finally:
        for lg, (propagate, handlers) in zip(loggers, saved, strict=True):
            lg.propagate, lg.handlers = propagate, handlers
