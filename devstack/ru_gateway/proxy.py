"""The RU gateway: a loopback TLS reverse proxy in front of cosmosdb-server that charges, throttles and reports RU.

API:
- ``start_gateway(backend, state_dir, *, port=0, settings=GatewaySettings(), charge_model=ChargeModel())``: a
  context manager that runs a ``Gateway`` in threads of this process and stops it afterwards (tests, benches).
- ``Gateway``: ``start()``/``stop()``, ``endpoint`` (``https://127.0.0.1:<port>/``, what Cosmos clients use),
  ``metrics_endpoint`` (for ``azure.monitor.querymetrics.MetricsClient``), ``settings``/``update_settings(**kw)``,
  ``stats(seconds)`` (same JSON as ``GET /_gateway/stats``), ``resource_id`` (an ARM-shaped id to query),
  ``ledger`` (the last 10,000 booked requests: ``Booked(traffic, operation, status, ru, partitions)``, for benches).
- ``classify_traffic(headers)``: ``x-cosmos-archive-traffic: archiver|business|adf`` if given; else ``"adf"`` if the
  User-Agent contains ``azure-data-factory`` (the ADF stand-in's), ``"archiver"`` if it contains ``cosmos-archive``
  (the archiver's ``user_agent_suffix``), else ``"business"``.

Charging (charge_model.py, query_shape.py, query_probe.py, partitions.py): point operations by document size; a
query page by the documents it makes the service load, measured by an uncharged probe query to the backend on the
query's first page; reads doubled under Strong/Bounded Staleness (``x-ms-consistency-level`` or the account's
``default_consistency``). Every charge is booked on the physical partition(s) it lands on (the request's partition
key header; a cross-partition query: each partition pays a first page, then its share of later pages and of the
load), and each partition has
its own budget per second (throttle.py). When the client sends ``x-ms-documentdb-populatequerymetrics: True``, a
query or feed answer carries ``x-ms-documentdb-query-metrics`` (query_probe.format_query_metrics).

Partition key ranges: the gateway still serves cosmosdb-server's single range (``pkranges``). Serving N ranges would
make azure-cosmos fan a cross-partition query out to N requests (one per range, ``x-ms-documentdb-partitionkeyrangeid``)
and cosmosdb-server ignores that header, so each would return the whole result (N duplicates); the gateway could
filter ``SELECT *`` answers by EPK, but not projections without the key, aggregates (COUNT) or continuation tokens
without rewriting the SQL. Physical partitions are therefore modelled for charging, throttling and metrics only.

HTTP surface besides the proxied Cosmos REST API:
- ``POST /subscriptions/{id}/metrics:getBatch`` — Azure Monitor's batch metrics API (any bearer token).
- ``GET /_gateway/stats[?seconds=N]`` — per-class RU/requests/429s per second and totals, plus the settings.
- ``POST /_gateway/config`` — JSON object of settings to change (``provisioned_ru``, ``low_priority_fraction``,
  ``throughput_buckets``, ``reporting_delay_s``, ``account_mode``); answers the new settings or 400 naming the bad
  value.
- ``GET /_gateway/health`` — 200 once the backend answers.
- ``POST /_gateway/faults`` — inject a service fault (a JSON object or list of them: ``{"kind": "throttle" | "error"
  | "reset" | "slow" | "down", "duration_s": 5, "count": null, "rate": 1.0, "traffic": "all"|"archiver"|"business",
  "status": 503, "delay_s": 1.0, "retry_after_ms": 100}``, see faults.py); ``GET`` lists the active ones and the
  injections so far; ``DELETE`` clears them. Loopback clients only (403 otherwise). A ``down`` fault refuses this
  endpoint's connections too: wait for its ``duration_s``, or call ``Gateway.clear_faults()`` in-process.

Transparency: the account document and any header naming the backend (``content-location``) are rewritten to the
gateway's own address, so the SDK's endpoint discovery keeps talking to the gateway. Responses are buffered (the
charge depends on their size) and sent with a Content-Length; backend connections are kept alive per thread.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import logging
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devstack.ru_gateway.charge_model import ChargeModel, QueryLoad, RequestKind, classify
from devstack.ru_gateway.config import GatewaySettings, GatewaySettingsError, settings_from_json
from devstack.ru_gateway.faults import FaultPlan, FaultSpec, FaultSpecError
from devstack.ru_gateway.metrics import TRAFFIC_CLASSES, BatchQuery, MetricsQueryError, MetricsStore
from devstack.ru_gateway.partitions import PartitionKeyDef
from devstack.ru_gateway.query_probe import (
    QueryRun,
    QueryRuns,
    figures_from_rows,
    format_query_metrics,
    page_load,
    probe_sql,
)
from devstack.ru_gateway.query_shape import QueryShape, parse_query
from devstack.ru_gateway.throttle import SUBSTATUS_RU_BUDGET_EXCEEDED, Admission, Throttle
from devstack.tls import TlsFiles, ensure_local_tls
from include.cosmos_archiver.loopback import LOCAL_SUBSCRIPTION_ID

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
TRAFFIC_HEADER = "x-cosmos-archive-traffic"
ARCHIVER_MARK = "cosmos-archive"
ADF_MARK = "azure-data-factory"
SUBSCRIPTION_ID = LOCAL_SUBSCRIPTION_ID  # the one all-zero id, shared with the product (loopback.py)
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)
_DROP_TO_BACKEND = _HOP_BY_HOP | {"host", "accept-encoding", TRAFFIC_HEADER}
_SIZE_CACHE_LIMIT = 200_000


def classify_traffic(headers: Mapping[str, str]) -> str:
    explicit = headers.get(TRAFFIC_HEADER, "").strip().lower()
    if explicit in TRAFFIC_CLASSES:
        return explicit
    agent = headers.get("user-agent", "")
    if ADF_MARK in agent:
        return "adf"
    return "archiver" if ARCHIVER_MARK in agent else "business"


def _parse_backend(backend: str) -> tuple[str, int]:
    parts = urlsplit(backend)
    if parts.scheme != "https" or not parts.hostname or parts.port is None:
        raise GatewaySettingsError(f"backend {backend!r} must look like https://127.0.0.1:<port> (cosmosdb-server)")
    return parts.hostname, parts.port


@dataclass(frozen=True)
class Booked:
    traffic: str
    operation: str
    status: int
    ru: float
    partitions: Mapping[int, float]


class Gateway:
    def __init__(
        self,
        backend: str,
        tls: TlsFiles,
        *,
        port: int = 0,
        settings: GatewaySettings | None = None,
        charge_model: ChargeModel | None = None,
    ) -> None:
        if not 0 <= port < 65536:
            raise GatewaySettingsError(f"gateway port {port!r} must be 0 (any free port) or 1-65535")
        self.backend = backend.rstrip("/")
        self._backend_host, self._backend_port = _parse_backend(backend)
        self.tls = tls
        self._settings = settings or GatewaySettings()
        self._settings_lock = threading.Lock()
        self.charge_model = charge_model or ChargeModel()
        self.throttle = Throttle(lambda: self._settings)
        self.metrics = MetricsStore()
        self.faults = FaultPlan()
        self._server = _Server((LOOPBACK, port), _Handler, self)
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._backend_ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
        self._doc_sizes: dict[str, int] = {}
        self._read_bytes_ema: dict[str, float] = {}
        self._page_ru_ema: dict[str, float] = {}
        self._cache_lock = threading.Lock()
        self._pk_defs: dict[tuple[str, str], PartitionKeyDef] = {}
        self.runs = QueryRuns()
        self.ledger: collections.deque[Booked] = collections.deque(maxlen=10_000)
        self._backend_origins = tuple(
            f"https://{host}:{self._backend_port}".encode() for host in {self._backend_host, LOOPBACK, "localhost"}
        )

    # -- lifecycle -----------------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.port}/"

    @property
    def metrics_endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/local/providers/"
            f"Microsoft.DocumentDB/databaseAccounts/local-{self.port}"
        )

    def start(self) -> Gateway:
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"ru-gateway-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    # -- settings and stats --------------------------------------------------------------------------------------
    @property
    def settings(self) -> GatewaySettings:
        return self._settings

    def update_settings(self, **changes: Any) -> GatewaySettings:
        with self._settings_lock:
            self._settings = self._settings.replace(**changes)
            return self._settings

    def _apply_json_settings(self, payload: Any) -> GatewaySettings:
        with self._settings_lock:
            self._settings = settings_from_json(self._settings, payload)
            return self._settings

    def inject(self, spec: FaultSpec | None = None, **fields: Any) -> FaultSpec:
        """Start a service fault (a ``FaultSpec`` or its fields); it ends by itself (duration/count) or on
        ``clear_faults()``."""
        spec = spec or FaultSpec(**fields)
        self.faults.add(spec)
        log.warning("ru-gateway: injecting fault %s", spec)
        return spec

    def clear_faults(self) -> None:
        self.faults.clear()

    def stats(self, seconds: int = 60) -> dict[str, Any]:
        body = self.metrics.stats(time.time(), seconds)
        body["config"] = {
            **self._settings.to_json(),
            "backend": self.backend,
            "charge_model": vars(self.charge_model),
            "partition_count": self._settings.partition_count,
            "partition_budget_ru": self._settings.partition_budget,
        }
        return body

    # -- backend -------------------------------------------------------------------------------------------------
    def _backend_conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(
                self._backend_host, self._backend_port, context=self._backend_ctx, timeout=120
            )
            self._local.conn = conn
        return conn

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        out = [(k, v) for k, v in headers if k.lower() not in _DROP_TO_BACKEND]
        out.append(("Host", f"{self._backend_host}:{self._backend_port}"))
        out.append(("Content-Length", str(len(body))))
        for attempt in (1, 2):
            conn = self._backend_conn()
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for k, v in out:
                    conn.putheader(k, v)
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    conn.close()
                return resp.status, resp.reason, resp.getheaders(), data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()  # a kept-alive connection the backend had closed: reconnect once
                if attempt == 2:
                    raise
            except Exception:
                conn.close()
                raise
        raise AssertionError("unreachable")

    def rewrite(self, data: bytes) -> bytes:
        gateway = f"https://{LOOPBACK}:{self.port}".encode()
        for origin in self._backend_origins:
            data = data.replace(origin, gateway)
        return data

    # -- charging ------------------------------------------------------------------------------------------------
    def estimate(self, kind: RequestKind, request_bytes: int) -> float:
        with self._cache_lock:
            known = self._doc_sizes.get(kind.doc_link) if kind.doc_link else None
            if known is None and kind.operation == "Read":
                ema = self._read_bytes_ema.get(kind.collection)
                known = int(ema) if ema is not None else None
            page_guess = self._page_ru_ema.get(kind.collection, 0.0)
        return self.charge_model.estimate(kind, request_bytes, known, page_guess)

    def pk_def(self, kind: RequestKind, headers: list[tuple[str, str]]) -> PartitionKeyDef:
        """The container's partition key definition, read once from the backend (uncharged)."""
        key = (kind.database, kind.collection)
        with self._cache_lock:
            found = self._pk_defs.get(key)
        if found is not None:
            return found
        plain = [(k, v) for k, v in headers if k.lower() in ("authorization", "x-ms-date", "x-ms-version")]
        try:
            status, _, _, data = self.forward("GET", f"/dbs/{kind.database}/colls/{kind.collection}", plain, b"")
        except OSError:
            return PartitionKeyDef()
        if status != 200:
            return PartitionKeyDef()
        found = PartitionKeyDef.from_collection(json.loads(data))
        with self._cache_lock:
            self._pk_defs[key] = found
        return found

    def partitions_of(self, kind: RequestKind, lower: Mapping[str, str], headers: list[tuple[str, str]]) -> list[int]:
        """The physical partitions a request lands on: its partition key's, or all of them (cross-partition)."""
        count = self._settings.partition_count
        if kind.operation in ("Metadata", "QueryPlan") or not kind.collection:
            return []
        if count == 1:
            return [0]
        key = lower.get("x-ms-documentdb-partitionkey")
        if key is not None:
            return [self.pk_def(kind, headers).partition(key, count)]
        return list(range(count))

    def probe(self, kind: RequestKind, shape: QueryShape, query: Mapping[str, Any], headers: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
        """Measure, uncharged, the documents the query's scope holds (query_probe.py); None if the backend refuses."""
        pk_def = self.pk_def(kind, headers)
        header = next((v for k, v in headers if k.lower() == "x-ms-documentdb-partitionkey"), None)
        key_filter = pk_def.key_filter(shape.alias, header) if header else None
        body = json.dumps({"query": probe_sql(shape, pk_def.expression(shape.alias), key_filter),
                           "parameters": query.get("parameters") or []}).encode()
        keep = ("authorization", "x-ms-date", "x-ms-version", "x-ms-documentdb-partitionkey",
                "x-ms-documentdb-query-enablecrosspartition")
        base = [(k, v) for k, v in headers if k.lower() in keep]
        base += [("Content-Type", "application/query+json"), ("x-ms-documentdb-isquery", "True"),
                 ("x-ms-max-item-count", "1000")]
        if not any(k.lower() in ("x-ms-documentdb-partitionkey", "x-ms-documentdb-query-enablecrosspartition")
                   for k, _ in base):
            base.append(("x-ms-documentdb-query-enablecrosspartition", "True"))
        docs = f"/dbs/{kind.database}/colls/{kind.collection}/docs"
        rows: list[Any] = []
        continuation = None
        for _ in range(100_000):
            extra = [("x-ms-continuation", continuation)] if continuation else []
            try:
                status, _, resp_headers, data = self.forward("POST", docs, base + extra, body)
            except OSError:
                return None
            if status != 200:
                log.debug("ru-gateway: probe refused (%s): %s", status, data[:300])
                return None
            rows.extend(json.loads(data).get("Documents") or [])
            continuation = dict((k.lower(), v) for k, v in resp_headers).get("x-ms-continuation")
            if not continuation:
                break
        return figures_from_rows(rows, pk_def, self._settings.partition_count)

    def query_charge(
        self,
        kind: RequestKind,
        lower: Mapping[str, str],
        run: tuple[QueryShape, QueryRun] | None,
        targets: list[int],
        output_docs: int,
        output_bytes: int,
        last_page: bool,
    ) -> tuple[dict[int, float], QueryLoad, Any]:
        """A query/feed page's RU per physical partition, the load it was charged for, and the scope figures."""
        model = self.charge_model
        factor = model.consistency_factor(lower.get("x-ms-consistency-level") or self._settings.default_consistency)
        figures = None
        if run is not None and not model.seed:
            shape, query_run = run
            load, shares = page_load(shape, query_run, output_docs, output_bytes, last_page)
            figures = query_run.figures
        else:
            load = QueryLoad(output_docs, output_bytes, output_docs, output_bytes, output_docs, True)
            shares = {}
        if model.seed:
            total = model.query(load) * factor
            return {p: total / len(targets) for p in targets}, load, None
        # The SDK sends a cross-partition query to every partition key range, each answering at least one page:
        # the first page pays a page on every targeted partition, later pages one page, spread like the load
        # (approximates Azure's sum over ranges of max(1, pages of that range)).
        page = model.query_page_ru
        variable = model.query(load) - page
        first = not lower.get("x-ms-continuation")
        spread = shares or {p: 1 / len(targets) for p in targets}
        parts = {p: page if first else 0.0 for p in targets}
        for p, share in spread.items():
            parts[p] = parts.get(p, 0.0) + (variable + (0.0 if first else page)) * share
        return {p: ru * factor for p, ru in parts.items()}, load, figures

    def point_charge(self, kind: RequestKind, lower: Mapping[str, str], status: int, request_bytes: int,
                     response_bytes: int) -> float:
        factor = 1.0
        if kind.operation == "Read":
            factor = self.charge_model.consistency_factor(
                lower.get("x-ms-consistency-level") or self._settings.default_consistency
            )
        return self.charge(kind, status, request_bytes, response_bytes) * factor

    def query_run(
        self, kind: RequestKind, lower: Mapping[str, str], headers: list[tuple[str, str]], body: bytes
    ) -> tuple[Any, QueryShape, QueryRun] | None:
        """For a query page under the published model: its run key, shape and scope figures (probed on the first
        page, i.e. without ``x-ms-continuation``, and kept while it is paged); None for anything else."""
        if kind.operation != "Query" or self.charge_model.seed:
            return None
        try:
            query = json.loads(body)
            sql = str(query["query"])
            params = json.dumps(query.get("parameters") or [], sort_keys=True)
        except (ValueError, KeyError, TypeError):
            return None
        shape = parse_query(sql)
        key = (kind.database, kind.collection, lower.get("x-ms-documentdb-partitionkey"),
               lower.get("x-ms-documentdb-partitionkeyrangeid"), sql, params)
        run = self.runs.get(key) if lower.get("x-ms-continuation") else None
        if run is None:
            figures = self.probe(kind, shape, query, headers)
            if figures is None:
                return None
            run = self.runs.start(key, figures)
        return key, shape, run

    def learn_size(self, kind: RequestKind, path: str, headers: list[tuple[str, str]]) -> None:
        """Before a delete or replace of a document whose size it has not seen (written by a create or upsert, found
        by a query), read it from the backend, uncharged: Cosmos charges a delete by the size of what it removes."""
        if kind.operation not in ("Delete", "Replace") or not kind.doc_link:
            return
        with self._cache_lock:
            if kind.doc_link in self._doc_sizes:
                return
        plain = [(k, v) for k, v in headers if k.lower() not in ("if-match", "if-none-match", "content-type")]
        try:
            status, _, _, data = self.forward("GET", path, plain, b"")
        except OSError:
            return  # the delete itself will meet the same backend and answer for it
        if status == 200:
            with self._cache_lock:
                self._remember(kind.doc_link, len(data))

    def charge(self, kind: RequestKind, status: int, request_bytes: int, response_bytes: int) -> float:
        with self._cache_lock:
            known = self._doc_sizes.get(kind.doc_link) if kind.doc_link else None
            ru = self.charge_model.charge_point(kind, status, request_bytes, response_bytes, known)
            ok = 200 <= status < 300
            if kind.operation == "Read" and ok:
                self._remember(kind.doc_link, response_bytes)
                old = self._read_bytes_ema.get(kind.collection)
                self._read_bytes_ema[kind.collection] = (
                    response_bytes if old is None else 0.8 * old + 0.2 * response_bytes
                )
            elif kind.operation == "Replace" and ok:
                self._remember(kind.doc_link, request_bytes)
            elif (kind.operation == "Delete" and ok) or status == 404:
                self._doc_sizes.pop(kind.doc_link, None)
        return ru

    def learn_page(self, kind: RequestKind, ru: float) -> None:
        with self._cache_lock:
            old = self._page_ru_ema.get(kind.collection)
            self._page_ru_ema[kind.collection] = ru if old is None else 0.8 * old + 0.2 * ru

    def _remember(self, link: str, size: int) -> None:
        if not link:
            return
        self._doc_sizes.pop(link, None)
        self._doc_sizes[link] = size
        if len(self._doc_sizes) > _SIZE_CACHE_LIMIT:
            del self._doc_sizes[next(iter(self._doc_sizes))]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], gateway: Gateway) -> None:
        self.gateway = gateway
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_context.load_cert_chain(str(gateway.tls.server_cert), str(gateway.tls.server_key))
        self.open_connections: set[Any] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def close_open_connections(self) -> None:
        """Kept-alive client connections outlive ``shutdown()``; cut them so a stopped gateway answers nothing."""
        with self.connections_lock:
            for sock in list(self.open_connections):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-request (SDK timeouts, test teardown) is routine: log it quietly."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | ssl.SSLError | TimeoutError):
            log.debug("connection from %s ended: %s", client_address, exc)
            return
        log.exception("ru-gateway: error while serving %s", client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the connection's own thread, so one slow client cannot stall accept().
        if self.gateway.faults.down():  # an injected outage: the connection is refused before TLS
            _hard_close(request)
            return
        try:
            tls_sock = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake from %s failed: %s", client_address, exc)
            return
        with self.connections_lock:
            self.open_connections.add(tls_sock)
        try:
            self.RequestHandlerClass(tls_sock, client_address, self)
        finally:
            with self.connections_lock:
                self.open_connections.discard(tls_sock)


def _missing_document_as_404(method: str, path: str, status: int, reason: str, data: bytes) -> tuple[int, str, bytes]:
    """cosmosdb-server answers a read/replace/delete of a missing document with 500 "Cannot read properties of
    undefined"; Cosmos DB answers 404 NotFound (the SDK retries a 500, so a miss would also take ~0.5 s)."""
    if status == 500 and "/docs/" in path and method in ("GET", "PUT", "DELETE") and b"Cannot read properties" in data:
        body = {"code": "NotFound", "message": "Entity with the specified id does not exist in the system."}
        return 404, "Not Found", json.dumps(body).encode()
    return status, reason, data


def _hard_close(sock: Any) -> None:
    """Cut a connection with a TCP RST (SO_LINGER 0), as a crashed or unreachable service does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _throttled_body(activity_id: str, admission: Admission) -> bytes:
    errors = json.dumps(
        {
            "Errors": [
                "Request rate is large. More Request Units may be needed, so no changes were made. "
                "Please retry this request later. Learn more: http://aka.ms/cosmosdb-error-429"
            ]
        }
    )
    message = f"Message: {errors}\r\nActivityId: {activity_id}, Request URI: local ru-gateway, {admission.reason}"
    return json.dumps({"code": "429", "message": message}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: without TCP_NODELAY each answer waits ~40 ms
    server_version = "cosmos-archive-ru-gateway"
    timeout = 300
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        reason: str | None = None,
        *,
        booked_at: float | None = None,
    ) -> None:
        """``booked_at``: when the request's RU was booked in the metrics; its ``Date`` header then names that
        second (a client books its own spend by it, as against Cosmos DB, whose Date is its own clock)."""
        if booked_at is None:
            self.send_response(status, reason)
        else:
            self.log_request(status)
            self.send_response_only(status, reason)
            self.send_header("Server", self.version_string())
            self.send_header("Date", self.date_time_string(booked_at))
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, [("Content-Type", "application/json")], json.dumps(payload).encode())

    def _handle(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send_json(411, {"code": "411", "message": "chunked request bodies are not supported"})
            self.close_connection = True
            return
        body = self._read_body()
        path = self.path
        if path.startswith("/_gateway/"):
            self._local(path, body)
        elif path.startswith("/subscriptions/") and ":getbatch" in path.lower().split("?", 1)[0]:
            self._metrics(path, body)
        else:
            self._proxy(body)

    # -- local endpoints -----------------------------------------------------------------------------------------
    def _local(self, path: str, body: bytes) -> None:
        gateway = self.server.gateway
        route, _, query = path.partition("?")
        params = dict(parse_qsl(query))
        if route == "/_gateway/stats" and self.command == "GET":
            try:
                seconds = max(1, min(3600, int(params.get("seconds", "60"))))
            except ValueError:
                self._send_json(400, {"error": f"seconds={params.get('seconds')!r} must be an integer"})
                return
            self._send_json(200, gateway.stats(seconds))
        elif route == "/_gateway/config" and self.command in ("POST", "PUT"):
            try:
                settings = gateway._apply_json_settings(json.loads(body or b"{}"))
            except (GatewaySettingsError, json.JSONDecodeError, TypeError) as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self._send_json(200, settings.to_json())
        elif route == "/_gateway/config" and self.command == "GET":
            self._send_json(200, gateway.settings.to_json())
        elif route == "/_gateway/faults":
            self._faults(body)
        elif route == "/_gateway/health" and self.command == "GET":
            try:
                status, _, _, _ = gateway.forward("GET", "/", [], b"")
            except OSError as exc:
                self._send_json(503, {"status": "backend unreachable", "backend": gateway.backend, "error": str(exc)})
                return
            self._send_json(200 if status == 200 else 503, {"status": "ok" if status == 200 else "backend unhealthy"})
        else:
            self._send_json(404, {"error": f"no gateway endpoint {self.command} {route}"})

    def _faults(self, body: bytes) -> None:
        gateway = self.server.gateway
        if self.client_address[0] != LOOPBACK:
            self._send_json(403, {"error": "fault injection is for loopback clients only"})
            return
        if self.command in ("POST", "PUT"):
            try:
                payload = json.loads(body or b"null")
                specs = [FaultSpec.from_json(p) for p in (payload if isinstance(payload, list) else [payload])]
            except (FaultSpecError, json.JSONDecodeError) as exc:
                self._send_json(400, {"error": str(exc)})
                return
            for spec in specs:
                gateway.inject(spec)
        elif self.command == "DELETE":
            gateway.clear_faults()
        elif self.command != "GET":
            self._send_json(405, {"error": f"{self.command} /_gateway/faults: use GET, POST or DELETE"})
            return
        self._send_json(200, gateway.faults.to_json())

    def _reset(self) -> None:
        self.close_connection = True
        _hard_close(self.connection)

    def _metrics(self, path: str, body: bytes) -> None:
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._send_json(401, {"error": {"code": "AuthenticationFailed", "message": "a bearer token is required"}})
            return
        gateway = self.server.gateway
        params = {k.lower(): v for k, v in parse_qsl(path.partition("?")[2])}
        now = time.time()
        try:
            payload = json.loads(body) if body else {}
            query = BatchQuery.from_params(params, payload, now)
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"code": "BadRequest", "message": "the body is not JSON"}})
            return
        except MetricsQueryError as exc:
            self._send_json(400, {"error": {"code": exc.code, "message": str(exc)}})
            return
        self._send_json(200, gateway.metrics.get_batch(query, now, gateway.settings.reporting_delay_s))

    # -- the Cosmos REST API ------------------------------------------------------------------------------------
    def _proxy(self, body: bytes) -> None:
        gateway = self.server.gateway
        lower = {k.lower(): v for k, v in self.headers.items()}
        raw_headers = list(self.headers.items())
        kind = classify(self.command, self.path, lower)
        traffic = classify_traffic(lower)
        priority = lower.get("x-ms-cosmos-priority-level")
        bucket: int | None
        try:
            bucket = int(lower["x-ms-cosmos-throughput-bucket"])
        except (KeyError, ValueError):
            bucket = None
        settings = gateway.settings
        budget = settings.partition_budget

        def book(status: int, ru: float, parts: Mapping[int, float] | None) -> float:
            booked_at = time.time()
            gateway.metrics.record(
                booked_at, traffic, status, kind.operation, kind.database, kind.collection, ru, budget, parts
            )
            gateway.ledger.append(Booked(traffic, kind.operation, status, ru, dict(parts or {})))
            return booked_at

        fault = gateway.faults.draw(traffic, metadata=kind.is_metadata)
        if fault is not None:
            if fault.kind in ("reset", "down"):
                book(0, 0.0, None)
                self._reset()
                return
            if fault.kind == "error":
                book(fault.status, 0.0, None)
                message = f"ru-gateway: injected fault: {fault.status}"
                self._send(
                    fault.status,
                    [("Content-Type", "application/json"), ("x-ms-request-charge", "0")],
                    json.dumps({"code": "ServiceUnavailable", "message": message}).encode(),
                )
                return
            if fault.kind == "slow":
                time.sleep(fault.delay_s)
        gateway.learn_size(kind, self.path, raw_headers)
        targets = gateway.partitions_of(kind, lower, raw_headers)
        estimate = gateway.estimate(kind, len(body))
        reserved = {p: estimate / len(targets) for p in targets}
        if fault is not None and fault.kind == "throttle":
            reason = "injected 429 storm"
            admission = Admission(False, fault.retry_after_ms, SUBSTATUS_RU_BUDGET_EXCEEDED, reason)
        elif kind.is_metadata:
            # Like Cosmos DB, metadata calls (account, database, container, pkranges, query plans) are not refused
            # for the data-plane budget and land on no physical partition.
            admission = Admission(True)
        else:
            admission = gateway.throttle.admit(reserved, priority, bucket)
        if not admission.admitted:
            activity_id = str(uuid.uuid4())
            hit = admission.partition if admission.partition is not None else (targets[0] if targets else None)
            booked_at = book(429, 0.0, None if hit is None else {hit: 0.0})
            headers = [
                ("Content-Type", "application/json"),
                ("x-ms-retry-after-ms", str(admission.retry_after_ms)),
                ("x-ms-substatus", str(admission.substatus)),
                ("x-ms-request-charge", "0"),
                ("x-ms-activity-id", activity_id),
            ]
            self._send(429, headers, _throttled_body(activity_id, admission), "Too Many Requests", booked_at=booked_at)
            return
        run = gateway.query_run(kind, lower, raw_headers, body)
        started = time.monotonic()
        try:
            status, reason, headers, data = gateway.forward(self.command, self.path, raw_headers, body)
        except OSError as exc:
            gateway.throttle.settle({p: -ru for p, ru in reserved.items()}, bucket)
            self._send_json(503, {"code": "ServiceUnavailable", "message": f"ru-gateway: backend failed: {exc}"})
            return
        elapsed_ms = (time.monotonic() - started) * 1000
        status, reason, data = _missing_document_as_404(self.command, self.path, status, reason, data)
        backend_headers = {k.lower(): v for k, v in headers}
        metrics_header = None
        if kind.is_paged and 200 <= status < 300:
            try:
                output_docs = int(backend_headers["x-ms-item-count"])
            except (KeyError, ValueError):
                output_docs = len(json.loads(data).get("Documents") or [])
            last_page = not backend_headers.get("x-ms-continuation")
            parts, load, figures = gateway.query_charge(
                kind, lower, run[1:] if run else None, targets, output_docs, len(data), last_page
            )
            if run is not None and last_page:
                gateway.runs.end(run[0])
            ru = sum(parts.values())
            gateway.learn_page(kind, ru)
            if lower.get("x-ms-documentdb-populatequerymetrics", "").lower() == "true":
                metrics_header = format_query_metrics(load, figures, elapsed_ms)
        else:
            ru = gateway.point_charge(kind, lower, status, len(body), len(data))
            parts = {p: ru / len(targets) for p in targets}
        if ru > 0:  # book what the answer says (2 decimals), so a client's sum of charges matches the metrics
            scale = round(ru, 2) / ru
            ru, parts = round(ru, 2), {p: part * scale for p, part in parts.items()}
        gateway.throttle.settle({p: parts.get(p, 0.0) - reserved.get(p, 0.0) for p in {*parts, *reserved}}, bucket)
        booked_at = book(status, ru, parts)
        if kind.is_metadata:
            data = gateway.rewrite(data)
        out = []
        for k, v in headers:
            lk = k.lower()
            if lk in _HOP_BY_HOP or lk in ("x-ms-request-charge", "date", "server", "x-ms-documentdb-query-metrics"):
                continue  # the gateway charges, books, dates and measures the answer
            if "://" in v:
                v = gateway.rewrite(v.encode("latin-1")).decode("latin-1")
            out.append((k, v))
        out.append(("x-ms-request-charge", f"{ru:.2f}"))
        if metrics_header is not None:
            out.append(("x-ms-documentdb-query-metrics", metrics_header))
        self._send(status, out, data, reason, booked_at=booked_at)


@contextlib.contextmanager
def start_gateway(
    backend: str,
    state_dir: Path,
    *,
    port: int = 0,
    settings: GatewaySettings | None = None,
    charge_model: ChargeModel | None = None,
) -> Iterator[Gateway]:
    """Run a gateway in this process (server threads) for the duration of a block."""
    gateway = Gateway(
        backend, ensure_local_tls(Path(state_dir)), port=port, settings=settings, charge_model=charge_model
    ).start()
    try:
        yield gateway
    finally:
        gateway.stop()
