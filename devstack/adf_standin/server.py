"""A loopback stand-in for the Azure Data Factory REST endpoints the Airflow provider and the deployer use.

Serves, over TLS with the local CA (azure-core refuses bearer tokens over plain http), on 127.0.0.1:

* GET factory; PUT/GET linkedservices, datasets, pipelines (api-version 2018-06-01);
* POST pipelines/{name}/createRun -> {"runId"}; GET pipelineruns/{runId}; POST pipelineruns/{runId}/cancel.

A run moves Queued -> InProgress -> Succeeded/Failed while a background thread calls ``run_copy(parameters)``
(by default ``copy_runner``: files in the layout the real pipeline writes, no manifest — index them with
``indexing.index_adf_slice`` before validating; ``--layout archive`` uses the local executor instead); a failure's
message is ADF-shaped and carries the exception text.
``Faults`` injects the awkward cases (a run that finishes before the first poll, a run that fails, a slow queue).
Run in-process (``with AdfStandin(...) as standin``) or as a process: ``python -m
devstack.adf_standin.server --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from devstack.adf_standin.copy_runner import RunCopy
from include.cosmos_archiver.adf import API_VERSION
from include.cosmos_archiver.adf.definitions import load_definitions, render

log = logging.getLogger(__name__)

HEALTH_PATH = "/_standin/health"
LOCAL_RESOURCE_GROUP = "cosmos-archive-local"
LOCAL_FACTORY = "cosmos-archive-local"
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})
COLLECTIONS = {"linkedservices": "linkedService", "datasets": "dataset", "pipelines": "pipeline"}
_FACTORY_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.DataFactory/"
    r"factories/(?P<factory>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)
# Values the bundled definitions are rendered with when preloaded (never used to reach anything).
LOCAL_DEPLOYMENT_VALUES = {
    "keyVaultUrl": "https://cosmos-archive-local.vault.azure.net/",
    "cosmosEndpoint": "https://127.0.0.1:8081/",
    "cosmosDatabase": "billing",
    "cosmosContainer": "records",
    "cosmosKeySecretName": "cosmos-archive-account-key",
    "blobServiceEndpoint": "https://127.0.0.1:10000/devstoreaccount1",
    "blobContainer": "billing-archive",
}


@dataclass
class Faults:
    """Injected behaviour for tests; the defaults behave like a healthy factory."""

    finish_before_first_poll: bool = False  # createRun carries the copy out before it answers
    queued_s: float = 0.0  # how long a run stays Queued before it starts
    fail_message: str | None = None  # every run fails with this message instead of copying
    min_run_s: float = 0.0  # a run stays InProgress at least this long (to exercise polling)


@dataclass
class Run:
    run_id: str
    pipeline_name: str
    parameters: dict[str, Any]
    factory: tuple[str, str, str]
    status: str = "Queued"
    message: str = ""
    run_start: dt.datetime | None = None
    run_end: dt.datetime | None = None
    last_updated: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    output: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "runId": self.run_id,
            "runGroupId": self.run_id,
            "isLatest": True,
            "pipelineName": self.pipeline_name,
            "parameters": {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.parameters.items()},
            "invokedBy": {"name": "Manual", "id": self.run_id, "invokedByType": "Manual"},
            "status": self.status,
            "message": self.message,
            "lastUpdated": _iso(self.last_updated),
        }
        if self.run_start:
            body["runStart"] = _iso(self.run_start)
        if self.run_end:
            body["runEnd"] = _iso(self.run_end)
            body["durationInMs"] = int((self.run_end - (self.run_start or self.run_end)).total_seconds() * 1000)
        return body


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class AdfStandin:
    """The stand-in server. ``run_copy`` does the work of a pipeline run; see :func:`copy_runner.copy_runner`."""

    def __init__(
        self,
        run_copy: RunCopy,
        *,
        tls_cert: Path,
        tls_key: Path,
        port: int = 0,
        factories: tuple[tuple[str, str], ...] = ((LOCAL_RESOURCE_GROUP, LOCAL_FACTORY),),
        preload: bool = True,
        faults: Faults | None = None,
    ) -> None:
        self.run_copy = run_copy
        self.faults = faults or Faults()
        self.factories = {(rg.lower(), f.lower()) for rg, f in factories}
        self.resources: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.runs: dict[str, Run] = {}
        self.requests: deque[tuple[str, str]] = deque(maxlen=10_000)  # (method, path), latest last, for tests
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        if preload:
            for rg, factory in self.factories:
                for res in render(load_definitions(), LOCAL_DEPLOYMENT_VALUES):
                    self._store(rg, factory, res.kind, res.name, res.body)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls_cert), str(tls_key))
        self._server = _TlsServer(("127.0.0.1", port), _Handler, context, self)
        self._serve_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> AdfStandin:
        self._serve_thread = threading.Thread(target=self._server.serve_forever, name="adf-standin", daemon=True)
        self._serve_thread.start()
        return self

    def stop(self, wait_runs_s: float = 10.0) -> None:
        self._server.shutdown()
        self._server.server_close()
        deadline = time.monotonic() + wait_runs_s
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> AdfStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, run_id: str, timeout_s: float = 60.0) -> Run:
        run = self.runs[run_id]
        if not run.done.wait(timeout_s):
            raise TimeoutError(f"stand-in run {run_id} still {run.status} after {timeout_s}s")
        return run

    # --- resources ---------------------------------------------------------------------------------------------

    def _store(self, rg: str, factory: str, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        stored = {
            **body,
            "id": f"/subscriptions/local/resourceGroups/{rg}/providers/Microsoft.DataFactory/factories/{factory}/"
            f"{_collection(kind)}/{name}",
            "name": name,
            "type": f"Microsoft.DataFactory/factories/{_collection(kind)}",
            "etag": uuid.uuid4().hex,
        }
        self.resources[(rg.lower(), factory.lower(), kind, name.lower())] = stored
        return stored

    def resource(self, rg: str, factory: str, kind: str, name: str) -> dict[str, Any] | None:
        return self.resources.get((rg.lower(), factory.lower(), kind, name.lower()))

    # --- runs --------------------------------------------------------------------------------------------------

    def create_run(
        self, rg: str, factory: str, pipeline: str, parameters: dict[str, Any], reference_run_id: str | None
    ) -> Run:
        definition = self.resource(rg, factory, "pipeline", pipeline)
        if definition is None:
            raise HttpError(404, "PipelineNotFound", f"Pipeline '{pipeline}' not found in factory '{factory}'.")
        if reference_run_id:
            if reference_run_id not in self.runs:
                raise HttpError(404, "PipelineRunNotFound", f"Pipeline run '{reference_run_id}' not found.")
            parameters = dict(self.runs[reference_run_id].parameters)
        declared = definition["properties"].get("parameters", {})
        unknown = sorted(set(parameters) - set(declared))
        missing = sorted(n for n, spec in declared.items() if n not in parameters and "defaultValue" not in spec)
        if unknown or missing:
            raise HttpError(
                400, "BadRequest", f"Pipeline '{pipeline}' parameters: missing {missing}, not declared {unknown}."
            )
        values = {n: parameters.get(n, spec.get("defaultValue")) for n, spec in declared.items()}
        run = Run(uuid.uuid4().hex, pipeline, values, (rg, factory, pipeline))
        with self._lock:
            self.runs[run.run_id] = run
        if self.faults.finish_before_first_poll:
            self._execute(run)
        else:
            thread = threading.Thread(target=self._execute, args=(run,), name=f"adf-run-{run.run_id[:8]}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return run

    def _set(self, run: Run, **changes: Any) -> None:
        with self._lock:
            if run.status in TERMINAL:  # a cancelled run keeps its status when the work ends later
                return
            for key, value in changes.items():
                setattr(run, key, value)
            run.last_updated = dt.datetime.now(dt.UTC)

    def _execute(self, run: Run) -> None:
        try:
            if self.faults.queued_s:
                time.sleep(self.faults.queued_s)
            started = time.monotonic()
            self._set(run, status="InProgress", run_start=dt.datetime.now(dt.UTC))
            try:
                if self.faults.fail_message is not None:
                    raise RuntimeError(self.faults.fail_message)
                output = self.run_copy(dict(run.parameters))
            except Exception as exc:
                log.warning("stand-in run %s failed: %s", run.run_id, exc)
                self._set(
                    run,
                    status="Failed",
                    run_end=dt.datetime.now(dt.UTC),
                    message=f"Operation on target CopySlice failed: {exc}",
                )
                return
            remaining = self.faults.min_run_s - (time.monotonic() - started)
            if remaining > 0:
                time.sleep(remaining)
            self._set(run, status="Succeeded", run_end=dt.datetime.now(dt.UTC), output=output)
        finally:
            run.done.set()

    def cancel(self, run_id: str) -> None:
        run = self.runs.get(run_id)
        if run is None:
            raise HttpError(404, "PipelineRunNotFound", f"Pipeline run '{run_id}' not found.")
        self._set(run, status="Cancelled", run_end=dt.datetime.now(dt.UTC), message="Cancelled by request.")


def _collection(kind: str) -> str:
    return {v: k for k, v in COLLECTIONS.items()}[kind]


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext, standin: AdfStandin):
        self.context = context
        self.standin = standin
        super().__init__(address, handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        # The handshake runs on first read, in the request's own thread, so one slow client cannot stall accept().
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TlsServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("adf-standin: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        standin = self.server.standin
        standin.requests.append((method, url.path))
        try:
            if url.path == HEALTH_PATH and method == "GET":  # unauthenticated, for the local stack's health check
                status, payload = 200, {"status": "ok", "runs": len(standin.runs)}
                return self._reply(status, payload)
            query = parse_qs(url.query)
            if query.get("api-version") != [API_VERSION]:
                raise HttpError(
                    400,
                    "InvalidApiVersionParameter",
                    f"api-version must be {API_VERSION}, got {query.get('api-version')}",
                )
            if not (self.headers.get("Authorization") or "").startswith("Bearer "):
                raise HttpError(401, "AuthenticationFailed", "Authentication failed: no bearer token.")
            body = json.loads(raw) if raw else {}
            status, payload = self._route(method, url.path, query, body)
        except HttpError as exc:
            status, payload = exc.status, {"error": {"code": exc.code, "message": exc.message}}
        except json.JSONDecodeError as exc:
            status, payload = 400, {"error": {"code": "BadRequest", "message": f"request body is not JSON: {exc}"}}
        except Exception as exc:  # a stand-in bug: answer like a service would instead of dropping the connection
            log.exception("adf-standin: %s %s failed", method, url.path)
            status, payload = 500, {"error": {"code": "InternalServerError", "message": str(exc)}}
        self._reply(status, payload)

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", uuid.uuid4().hex)
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        standin = self.server.standin
        match = _FACTORY_RE.match(path)
        if not match:
            raise HttpError(404, "NotFound", f"no such resource {path}")
        rg, factory, rest = match["rg"], match["factory"], (match["rest"] or "").rstrip("/")
        if (rg.lower(), factory.lower()) not in standin.factories:
            raise HttpError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.DataFactory/factories/{factory}' under resource group '{rg}' was not found.",
            )
        parts = rest.strip("/").split("/") if rest else []
        if not parts and method == "GET":
            return 200, {
                "id": path,
                "name": factory,
                "type": "Microsoft.DataFactory/factories",
                "location": "local",
                "properties": {"provisioningState": "Succeeded"},
            }
        if len(parts) == 2 and parts[0].lower() in COLLECTIONS and method in ("PUT", "GET"):
            kind = COLLECTIONS[parts[0].lower()]
            if method == "PUT":
                if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
                    raise HttpError(400, "BadRequest", f"{kind} body must have 'properties'")
                return 200, standin._store(rg, factory, kind, parts[1], body)
            found = standin.resource(rg, factory, kind, parts[1])
            if found is None:
                raise HttpError(404, "NotFound", f"{kind} '{parts[1]}' not found")
            return 200, found
        if len(parts) == 3 and parts[0].lower() == "pipelines" and parts[2] == "createRun" and method == "POST":
            ref = (query.get("referencePipelineRunId") or [None])[0]
            run = standin.create_run(rg, factory, parts[1], body if isinstance(body, dict) else {}, ref)
            return 200, {"runId": run.run_id}
        if len(parts) == 2 and parts[0].lower() == "pipelineruns" and method == "GET":
            run = standin.runs.get(parts[1])
            if run is None:
                raise HttpError(404, "PipelineRunNotFound", f"Pipeline run '{parts[1]}' not found.")
            with standin._lock:
                return 200, run.to_json()
        if len(parts) == 3 and parts[0].lower() == "pipelineruns" and parts[2] == "cancel" and method == "POST":
            standin.cancel(parts[1])
            return 200, {}
        raise HttpError(404, "NotFound", f"the stand-in does not serve {method} {path}")


def main(argv: list[str] | None = None) -> int:
    from devstack.adf_standin.copy_runner import LAYOUTS, copy_runner
    from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig
    from devstack.tls import ensure_local_tls
    from include.cosmos_archiver.settings import ArchiveSettings

    parser = argparse.ArgumentParser(
        prog="python -m devstack.adf_standin.server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stack = StackConfig.from_env()
    parser.add_argument("--state-dir", type=Path, default=stack.state_dir, help="holds the local TLS material")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("COSMOS_ARCHIVE_ADF_PORT", "0")),
        help="default $COSMOS_ARCHIVE_ADF_PORT, else 0: a free port (printed on start)",
    )
    parser.add_argument("--cosmos-endpoint", default=stack.cosmos_endpoint)
    parser.add_argument("--blob-connection-string", default=stack.blob_connection_string)
    parser.add_argument("--settings-json", default="{}", help="ArchiveSettings as JSON (e.g. an Airflow Variable)")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="adf",
        help="what a run writes: 'adf' = the pipeline's Parquet files, no manifest (default); 'archive' = copy_slice",
    )
    parser.add_argument("--resource-group", default=LOCAL_RESOURCE_GROUP)
    parser.add_argument("--factory", default=LOCAL_FACTORY)
    args = parser.parse_args(argv)
    settings = ArchiveSettings.from_mapping(json.loads(args.settings_json))
    key = os.environ.get("COSMOS_ARCHIVE_COSMOS_KEY", EMULATOR_COSMOS_KEY)
    tls = ensure_local_tls(args.state_dir)
    standin = AdfStandin(
        copy_runner(args.cosmos_endpoint, key, args.blob_connection_string, settings, layout=args.layout),
        tls_cert=tls.server_cert,
        tls_key=tls.server_key,
        port=args.port,
        factories=((args.resource_group, args.factory),),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with standin:
        print(
            json.dumps({"base_url": standin.base_url, "resource_group": args.resource_group, "factory": args.factory}),
            flush=True,
        )
        stop.wait()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(main())
