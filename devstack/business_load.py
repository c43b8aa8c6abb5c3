"""Business traffic for local runs and benchmarks: read-heavy Cosmos DB load that follows a trace of target RU/s.

API:
- ``LoadTrace``: target RU/s as a fraction of provisioned over a 24 h day (linear between points);
  ``LoadTrace.diurnal()`` (default: around 50 % with two spikes above 80 %), ``LoadTrace.constant(f)``,
  ``LoadTrace.parse("0:0.4,12:0.8,24:0.4")`` (hour:fraction pairs), ``LoadTrace.from_csv(path, ...)`` (an operator's
  recorded day: see ``read_trace_csv``).
- ``read_trace_csv(path, unit="auto", provisioned_ru=None) -> TraceFile``: a per-second or per-minute CSV as exported
  from Azure Monitor (timestamp, TotalRequestUnits summed per grain) or of fractions/percent of provisioned RU/s;
  each grain's value is held for its grain (a step), hours counted from the file's first timestamp.
- ``LoadMix(read, query, write)``: shares of point reads of existing documents, single-partition queries and upserts.
- ``run_business_load(endpoint, key, database, container, trace=..., duration_s=60, ...) -> LoadResult``: plays
  ``trace_span_h`` hours of the trace (from ``trace_start_h``) in ``duration_s`` wall seconds on an even schedule
  (request slots spaced by expected charge / rate, no catch-up bursts) with ``workers`` threads (one CosmosClient
  each, user agent ``business-load``, never ``cosmos-archive``), bounded by
  ``duration_s``, ``max_requests`` and ``stop_event``. It paces on the charges the server reports
  (``x-ms-request-charge``) and counts every 429 answer (seen through a ``raw_response_hook``), retried by the
  SDK or not.
- ``BusinessLoad(endpoint, key, database, container, workers=4, ...)``: the same with the clients opened and warmed
  once (≈1 s), then ``.run(trace, duration_s, ...)`` as often as needed, e.g. to start a spike at a precise moment.
- ``register(subparsers)``: the ``cosmos-archive load`` subcommand.

Writes upsert a handful of scratch documents (ids ``business-load-<worker>-<n>``, partition key value
``business-load``, field ``kind: "business-load-scratch"``) so the container never grows by more than
``workers * SCRATCH_DOCS_PER_WORKER`` documents; set ``LoadMix(write=0)`` to leave the container untouched.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import itertools
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import CosmosHttpResponseError

from include.cosmos_archiver.clients import cosmos_client

BUSINESS_USER_AGENT = "business-load"
SCRATCH_PREFIX = "business-load-"
SCRATCH_PARTITION = "business-load"
SCRATCH_DOCS_PER_WORKER = 5
# Unused pacing credit kept at most this long. Requests follow an even schedule (one slot per expected charge / rate);
# a worker that falls behind does not catch up in a burst — missed slots older than this are dropped, so the RU sent
# per second stays close to the trace (a burst of catch-up reads is per-second noise the trace does not describe).
_BURST_S = 0.1


@dataclass(frozen=True)
class LoadTrace:
    points: tuple[tuple[float, float], ...]  # (hour of day 0-24, fraction of provisioned RU/s)

    def __post_init__(self) -> None:
        if len(self.points) < 1:
            raise ValueError("a load trace needs at least one hour:fraction point")
        hours = [h for h, _ in self.points]
        if hours != sorted(hours) or not all(0 <= h <= 24 for h in hours):
            raise ValueError(f"trace hours {hours} must be ascending within 0-24")
        bad = [f for _, f in self.points if not 0 <= f <= 1.5]
        if bad:
            raise ValueError(f"trace fraction(s) {bad} must be within 0-1.5 of provisioned RU/s")

    @classmethod
    def constant(cls, fraction: float) -> LoadTrace:
        return cls(((0.0, fraction), (24.0, fraction)))

    @classmethod
    def diurnal(cls) -> LoadTrace:
        """Night ~35 %, day ~55-65 %, a late-morning spike to 85 % and an evening spike to 88 %; mean ≈ 50 %."""
        return cls(
            (
                (0, 0.38),
                (4, 0.32),
                (7, 0.45),
                (9, 0.55),
                (10.5, 0.60),
                (11, 0.85),
                (11.5, 0.60),
                (14, 0.55),
                (17, 0.62),
                (18.5, 0.62),
                (19, 0.88),
                (19.5, 0.60),
                (22, 0.45),
                (24, 0.38),
            )
        )

    @classmethod
    def parse(cls, text: str) -> LoadTrace:
        points = []
        for item in text.split(","):
            hour, sep, fraction = item.strip().partition(":")
            try:
                if not sep:
                    raise ValueError
                points.append((float(hour), float(fraction)))
            except ValueError:
                raise ValueError(f"trace point {item!r} must be hour:fraction, e.g. 11:0.85") from None
        return cls(tuple(points))

    @classmethod
    def from_csv(cls, path: str | Path, *, unit: str = "auto", provisioned_ru: float | None = None) -> LoadTrace:
        return read_trace_csv(path, unit=unit, provisioned_ru=provisioned_ru).trace

    @cached_property
    def _hours(self) -> list[float]:
        return [h for h, _ in self.points]

    def at(self, trace_s: float) -> float:
        hour = (trace_s / 3600.0) % 24.0
        hours = self._hours
        i = bisect.bisect_right(hours, hour)
        if i == 0:
            return self.points[0][1]
        if i == len(self.points):
            return self.points[-1][1]
        (h0, f0), (h1, f1) = self.points[i - 1], self.points[i]
        return f0 if h1 == h0 else f0 + (f1 - f0) * (hour - h0) / (h1 - h0)

    def mean(self, samples: int = 1440) -> float:
        return sum(self.at(i * 86400 / samples) for i in range(samples)) / samples


TRACE_UNITS = ("auto", "ru", "fraction", "percent")
_MAX_FRACTION = 1.5
_TIME_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%d.%m.%Y %H:%M:%S")


class TraceFileError(ValueError):
    """A trace file cannot be read; the message names the file, the line and what to do."""


@dataclass(frozen=True)
class TraceFile:
    """A recorded business load: ``trace`` (hours from the first timestamp), the grain, and where it came from."""

    path: Path
    trace: LoadTrace
    grain_s: float
    rows: int
    unit: str
    provisioned_ru: float | None  # what RU values were divided by (unit "ru")

    @property
    def span_s(self) -> float:
        return self.rows * self.grain_s

    def describe(self) -> str:
        values = [f for _, f in self.trace.points]
        basis = f" of {self.provisioned_ru:g} RU/s" if self.provisioned_ru else ""
        return (
            f"{self.path.name}: {self.rows} grains of {self.grain_s:g} s ({self.span_s / 60:g} min), unit {self.unit}"
            f"{basis}; business {min(values):.0%}-{max(values):.0%} of provisioned"
        )


def _parse_time(raw: str) -> float | None:
    text = raw.strip().strip('"')
    if not text:
        return None
    try:
        return float(text)  # epoch seconds, or seconds from the start
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        stamp = None
        for fmt in _TIME_FORMATS:
            try:
                stamp = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if stamp is None:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def _unit_from_header(header: list[str]) -> str | None:
    text = " ".join(header).lower()
    if "normalized" in text or "%" in text or "percent" in text:
        return "percent"
    if "fraction" in text:
        return "fraction"
    if "request unit" in text or "requestunit" in text or any(c.strip().lower() in ("ru", "rus") for c in header):
        return "ru"
    return None


def read_trace_csv(path: str | Path, *, unit: str = "auto", provisioned_ru: float | None = None) -> TraceFile:
    """Read ``timestamp,value`` rows (more columns are ignored). Before the first data row, header lines are allowed
    (an Azure Monitor export's column names tell the unit); ``#`` lines are comments, and ``# provisioned_ru=5000``
    names the RU/s the trace was recorded against. Units: ``ru`` — RU consumed per grain (TotalRequestUnits, Sum),
    divided by the grain and ``provisioned_ru``; ``fraction`` — share of provisioned (0-1.5); ``percent`` — 0-150
    (NormalizedRUConsumption). Timestamps: ISO 8601, ``MM/DD/YYYY HH:MM:SS [AM|PM]`` or seconds; strictly
    increasing, at most 24 h. Any bad line raises TraceFileError naming the file, the line number and the text."""
    path = Path(path)
    if unit not in TRACE_UNITS:
        raise TraceFileError(f"trace unit {unit!r} must be one of {', '.join(TRACE_UNITS)}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TraceFileError(f"cannot read trace file {path}: {exc.strerror or exc}") from None
    header: list[str] = []
    stamps: list[float] = []
    values: list[float] = []
    lines: list[int] = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip():
            continue
        first = row[0].strip()
        if first.startswith("#"):
            key, sep, value = ",".join(row).lstrip("# ").partition("=")
            if sep and key.strip().lower() == "provisioned_ru" and provisioned_ru is None:
                try:
                    provisioned_ru = float(value)
                except ValueError:
                    raise TraceFileError(
                        f"{path}:{number}: provisioned_ru={value.strip()!r} is not a number of RU/s"
                    ) from None
            continue
        stamp = _parse_time(first)
        if stamp is None and not stamps and (len(row) < 2 or _parse_time(row[1]) is None):
            header = row  # column names (or an export's title lines) before the data
            if len(header) > 1000:
                raise TraceFileError(f"{path}:{number}: not a CSV of timestamp,value rows")
            continue
        shown = ",".join(row)[:80]
        if stamp is None:
            raise TraceFileError(
                f"{path}:{number}: {first!r} is not a timestamp (ISO 8601, MM/DD/YYYY HH:MM:SS or seconds) in {shown!r}"
            )
        if len(row) < 2 or not row[1].strip():
            raise TraceFileError(
                f"{path}:{number}: no value after the timestamp in {shown!r}; fill it or remove the line"
            )
        try:
            value = float(row[1].strip().strip('"').rstrip("%"))
        except ValueError:
            raise TraceFileError(f"{path}:{number}: value {row[1].strip()!r} is not a number in {shown!r}") from None
        if not math.isfinite(value) or value < 0:
            raise TraceFileError(f"{path}:{number}: value {row[1].strip()!r} must be a number >= 0 in {shown!r}")
        if stamps and stamp <= stamps[-1]:
            raise TraceFileError(
                f"{path}:{number}: timestamp {first!r} is not after the previous line's; sort the file by time"
            )
        stamps.append(stamp)
        values.append(value)
        lines.append(number)
    if len(stamps) < 2:
        raise TraceFileError(f"{path}: needs at least two timestamp,value rows, found {len(stamps)}")
    steps = sorted(b - a for a, b in itertools.pairwise(stamps))
    grain = steps[len(steps) // 2]
    span = stamps[-1] + grain - stamps[0]
    if span > 86400:
        raise TraceFileError(f"{path}: covers {span / 3600:.1f} h; a trace plays at most 24 h: cut the file")
    if unit == "auto":
        found = _unit_from_header(header)
        if found is None:
            raise TraceFileError(
                f"{path}: cannot tell the unit from the header {header!r}; pass the unit (ru, fraction or percent)"
            )
        unit = found
    if unit == "ru":
        if provisioned_ru is None or not provisioned_ru > 0:
            raise TraceFileError(
                f"{path}: RU values need the provisioned RU/s they were recorded against "
                f"(got {provisioned_ru!r}): pass it, or add a line '# provisioned_ru=5000' to the file"
            )
        fractions = [v / grain / provisioned_ru for v in values]
    else:
        fractions = [v / 100.0 if unit == "percent" else v for v in values]
    for number, fraction, raw in zip(lines, fractions, values, strict=True):
        if fraction > _MAX_FRACTION:
            raise TraceFileError(
                f"{path}:{number}: value {raw:g} is {fraction:.0%} of provisioned; a trace may ask at most "
                f"{_MAX_FRACTION:.0%} (check the unit and the provisioned RU/s)"
            )
    hours = [(stamp - stamps[0]) / 3600.0 for stamp in stamps]
    points: list[tuple[float, float]] = []
    for i, (start_h, fraction) in enumerate(zip(hours, fractions, strict=True)):
        end_h = min(24.0, start_h + grain / 3600.0, hours[i + 1] if i + 1 < len(hours) else 24.0)
        points += [(start_h, fraction), (end_h, fraction)]  # each grain's value held for its grain
    return TraceFile(path, LoadTrace(tuple(points)), grain, len(stamps), unit, provisioned_ru if unit == "ru" else None)


@dataclass(frozen=True)
class LoadMix:
    read: float = 0.85
    query: float = 0.10
    write: float = 0.05

    def __post_init__(self) -> None:
        if min(self.read, self.query, self.write) < 0 or self.read + self.query + self.write <= 0:
            raise ValueError(f"load mix {self} needs non-negative shares with a positive sum")

    @classmethod
    def parse(cls, text: str) -> LoadMix:
        try:
            read, query, write = (float(part) for part in text.split(":"))
        except ValueError:
            raise ValueError(f"load mix {text!r} must be read:query:write shares, e.g. 0.9:0.1:0") from None
        return cls(read, query, write)


@dataclass
class LoadResult:
    requests: int = 0
    ru: float = 0.0
    throttled_429: int = 0
    failed: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    started_at: float = 0.0  # wall clock (time.time()) when the trace's first second began
    target_ru: float = 0.0  # what the trace asked for over the run
    errors: list[str] = field(default_factory=list)
    timeline: list[dict[str, float]] = field(default_factory=list)  # per wall second: target and sent RU

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ru": round(self.ru, 1),
            "throttled_429": self.throttled_429,
            "failed": self.failed,
            "by_operation": dict(self.by_operation),
            "elapsed_s": round(self.elapsed_s, 2),
            "started_at": round(self.started_at, 3),
            "target_ru": round(self.target_ru, 1),
            "ru_per_s": round(self.ru / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "errors": self.errors[:5],
        }


class _Pacer:
    """Spends RU at the trace's rate: each request books ``expected_ru / rate`` seconds of the shared schedule."""

    def __init__(self, rate: Any, deadline: float, stop: threading.Event) -> None:
        self._rate = rate
        self._deadline = deadline
        self._stop = stop
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def acquire(self, expected_ru: float) -> bool:
        with self._lock:
            now = time.monotonic()
            self._next = max(self._next, now - _BURST_S)
            slot = self._next
            self._next = slot + expected_ru / max(1.0, self._rate(max(now, slot)))
        while True:
            now = time.monotonic()
            if self._stop.is_set() or now >= self._deadline:
                return False
            if now >= slot:
                return True
            time.sleep(min(slot - now, self._deadline - now, 0.1))

    def settle(self, delta_ru: float) -> None:
        with self._lock:
            self._next += delta_ru / max(1.0, self._rate(time.monotonic()))


def _pk_value(doc: dict[str, Any], path: list[str]) -> Any:
    value: Any = doc
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _sample_keys(container: ContainerProxy, pk_path: list[str], sample_size: int) -> list[tuple[str, Any]]:
    pk_expr = "c" + "".join(f'["{p}"]' for p in pk_path)
    query = f"SELECT TOP {int(sample_size)} c.id, {pk_expr} AS pk FROM c"
    keys = []
    for row in container.query_items(query, enable_cross_partition_query=True):
        if not str(row.get("id", "")).startswith(SCRATCH_PREFIX) and row.get("pk") is not None:
            keys.append((row["id"], row["pk"]))
    return keys


def _scratch_doc(worker: int, n: int, pk_path: list[str], size: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": f"{SCRATCH_PREFIX}{worker}-{n % SCRATCH_DOCS_PER_WORKER}",
        "kind": "business-load-scratch",
    }
    target = doc
    for part in pk_path[:-1]:
        target = target.setdefault(part, {})
    target[pk_path[-1]] = SCRATCH_PARTITION
    doc["payload"] = "b" * max(0, size)
    return doc


class BusinessLoad:
    """Clients opened and warmed once (account + container metadata, a sample of document keys), then ``run`` any
    number of times: the trace is followed from its first second, without client start-up inside it."""

    def __init__(
        self,
        endpoint: str,
        key: str,
        database: str,
        container: str,
        *,
        workers: int = 4,
        sample_size: int = 200,
        priority: str | None = None,
        user_agent: str = BUSINESS_USER_AGENT,
    ) -> None:
        if not 1 <= workers <= 64:
            raise ValueError(f"workers={workers!r} must be 1-64")
        if "cosmos-archive" in user_agent:
            raise ValueError(f"user_agent={user_agent!r} would be counted as archiver traffic; choose another")
        self.database, self.container = database, container
        setup = cosmos_client(endpoint, key, user_agent=user_agent).get_database_client(database)
        setup_container = setup.get_container_client(container)
        self.pk_path = [p for p in setup_container.read()["partitionKey"]["paths"][0].split("/") if p]
        self.keys = _sample_keys(setup_container, self.pk_path, sample_size)
        proxies: list[ContainerProxy | None] = [None] * workers

        def build(index: int) -> None:
            client = cosmos_client(endpoint, key, user_agent=user_agent, priority=priority)
            proxy = client.get_database_client(database).get_container_client(container)
            proxy.read()
            proxies[index] = proxy

        builders = [threading.Thread(target=build, args=(i,), daemon=True) for i in range(workers)]
        for thread in builders:
            thread.start()
        for thread in builders:
            thread.join()
        if any(p is None for p in proxies):
            raise RuntimeError(f"could not open {database}/{container} at {endpoint} for every load worker")
        self.proxies: list[ContainerProxy] = [p for p in proxies if p is not None]

    def run(
        self,
        trace: LoadTrace | None = None,
        duration_s: float = 60.0,
        *,
        provisioned_ru: float = 5000.0,
        trace_start_h: float = 0.0,
        trace_span_h: float = 24.0,
        max_requests: int | None = None,
        mix: LoadMix | None = None,
        write_doc_bytes: int = 2048,
        stop_event: threading.Event | None = None,
        seed: int | None = None,
    ) -> LoadResult:
        """Send business traffic until ``duration_s`` passes, ``max_requests`` are sent or ``stop_event`` is set."""
        _check_run_args(duration_s, provisioned_ru, max_requests)
        return _run(
            self, trace or LoadTrace.diurnal(), duration_s, provisioned_ru, trace_start_h, trace_span_h,
            max_requests, mix or LoadMix(), write_doc_bytes, stop_event or threading.Event(), random.Random(seed),
        )  # fmt: skip


def _check_run_args(duration_s: float, provisioned_ru: float, max_requests: int | None) -> None:
    if not duration_s > 0:
        raise ValueError(f"duration_s={duration_s!r} must be > 0 seconds")
    if not provisioned_ru > 0:
        raise ValueError(f"provisioned_ru={provisioned_ru!r} must be > 0 RU/s")
    if max_requests is not None and max_requests < 0:
        raise ValueError(f"max_requests={max_requests!r} must be >= 0")


def run_business_load(
    endpoint: str,
    key: str,
    database: str,
    container: str,
    trace: LoadTrace | None = None,
    duration_s: float = 60.0,
    *,
    provisioned_ru: float = 5000.0,
    trace_start_h: float = 0.0,
    trace_span_h: float = 24.0,
    max_requests: int | None = None,
    workers: int = 4,
    mix: LoadMix | None = None,
    sample_size: int = 200,
    write_doc_bytes: int = 2048,
    priority: str | None = None,
    user_agent: str = BUSINESS_USER_AGENT,
    stop_event: threading.Event | None = None,
    seed: int | None = None,
) -> LoadResult:
    """One-shot ``BusinessLoad(...).run(...)``; client start-up (~1 s) happens before ``duration_s`` starts."""
    _check_run_args(duration_s, provisioned_ru, max_requests)
    load = BusinessLoad(
        endpoint, key, database, container, workers=workers, sample_size=sample_size, priority=priority,
        user_agent=user_agent,
    )  # fmt: skip
    return load.run(
        trace, duration_s, provisioned_ru=provisioned_ru, trace_start_h=trace_start_h, trace_span_h=trace_span_h,
        max_requests=max_requests, mix=mix, write_doc_bytes=write_doc_bytes, stop_event=stop_event, seed=seed,
    )  # fmt: skip


def _run(
    load: BusinessLoad,
    trace: LoadTrace,
    duration_s: float,
    provisioned_ru: float,
    trace_start_h: float,
    trace_span_h: float,
    max_requests: int | None,
    mix: LoadMix,
    write_doc_bytes: int,
    stop: threading.Event,
    rng: random.Random,
) -> LoadResult:
    keys, pk_path, proxies, workers = load.keys, load.pk_path, load.proxies, len(load.proxies)
    database, container = load.database, load.container
    start = time.monotonic()
    started_at = time.time()
    deadline = start + duration_s
    compression = trace_span_h * 3600.0 / duration_s

    def rate(now: float) -> float:
        return trace.at(trace_start_h * 3600.0 + (now - start) * compression) * provisioned_ru

    pacer = _Pacer(rate, deadline, stop)
    lock = threading.Lock()
    result = LoadResult(started_at=started_at)
    sent_per_second: Counter[int] = Counter()
    ops: Counter[str] = Counter()
    budget = [max_requests if max_requests is not None else math.inf]
    expected = {"read": 10.0, "query": 10.0, "write": 10.0}
    weights = [mix.read if keys else 0.0, mix.query if keys else 0.0, mix.write]
    if sum(weights) <= 0:
        raise ValueError(f"container {database}/{container} has no documents to read and the load mix has no writes")

    def worker(index: int) -> None:
        proxy = proxies[index]
        local_rng = random.Random(rng.random())
        statuses: list[int] = []

        def hook(response: Any) -> None:  # sees every HTTP answer, including the 429s the SDK then retries
            statuses.append(response.http_response.status_code)

        n = 0
        while True:
            op = local_rng.choices(("read", "query", "write"), weights)[0]
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
                guess = expected[op]
            if not pacer.acquire(guess):
                return
            charge, error = 0.0, None
            statuses.clear()
            try:
                if op == "read":
                    doc_id, pk = local_rng.choice(keys)
                    proxy.read_item(doc_id, partition_key=pk, raw_response_hook=hook)
                elif op == "query":
                    _, pk = local_rng.choice(keys)
                    pk_expr = "c" + "".join(f'["{p}"]' for p in pk_path)
                    list(
                        proxy.query_items(
                            f"SELECT TOP 2 * FROM c WHERE {pk_expr} = @pk",
                            parameters=[{"name": "@pk", "value": pk}],
                            partition_key=pk,
                            raw_response_hook=hook,
                        )
                    )
                else:
                    proxy.upsert_item(_scratch_doc(index, n, pk_path, write_doc_bytes), raw_response_hook=hook)
                    n += 1
                headers = proxy.client_connection.last_response_headers or {}
                charge = float(headers.get("x-ms-request-charge") or 0.0)
            except CosmosHttpResponseError as exc:
                error = f"{op}: {exc.status_code} {exc.message[:200] if exc.message else ''}"
                charge = float((exc.headers or {}).get("x-ms-request-charge") or 0.0)
            pacer.settle(charge - guess)
            with lock:
                expected[op] = charge if ops[op] == 0 else 0.7 * expected[op] + 0.3 * max(charge, 1.0)
                result.requests += 1
                result.ru += charge
                result.throttled_429 += statuses.count(429)
                ops[op] += 1
                sent_per_second[int(time.monotonic() - start)] += charge
                if error is not None:
                    result.failed += 1
                    if len(result.errors) < 20:
                        result.errors.append(error)

    threads = [
        threading.Thread(target=worker, args=(i,), name=f"business-load-{i}", daemon=True) for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.monotonic() - start
    result.by_operation = dict(ops)
    seconds = math.ceil(result.elapsed_s)
    for s in range(seconds):
        target = sum(rate(start + s + f / 10) for f in range(10)) / 10
        result.timeline.append({"second": s, "target_ru": round(target, 1), "sent_ru": round(sent_per_second[s], 1)})
    result.target_ru = sum(p["target_ru"] for p in result.timeline)
    return result


# -- `cosmos-archive load` ---------------------------------------------------------------------------------------
def _run_cli(args: argparse.Namespace) -> int:
    import json

    from devstack import stack
    from include.cosmos_archiver.cli.main import UsageError

    try:
        if args.trace and args.trace_file:
            raise UsageError("give either --trace or --trace-file, not both")
        if args.trace_file:
            trace = LoadTrace.from_csv(args.trace_file, unit=args.trace_unit, provisioned_ru=args.trace_provisioned)
        else:
            trace = LoadTrace.parse(args.trace) if args.trace else LoadTrace.diurnal()
        mix = LoadMix.parse(args.mix) if args.mix else None
        endpoint = args.endpoint or stack.StackConfig.from_env().cosmos_endpoint
        key = args.key
        if key is None:
            if urlparse(endpoint).hostname not in ("127.0.0.1", "localhost"):
                raise UsageError(f"--key is required for the non-local endpoint {endpoint}")
            key = stack.EMULATOR_COSMOS_KEY
        result = run_business_load(
            endpoint,
            key,
            args.database,
            args.container,
            trace,
            args.duration_s,
            provisioned_ru=args.provisioned_ru,
            trace_start_h=args.trace_start_h,
            trace_span_h=args.trace_span_h,
            max_requests=args.max_requests,
            workers=args.workers,
            priority=args.priority,
            mix=mix,
            seed=args.seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(result.as_dict(), indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("load", help="send business-like Cosmos DB traffic following an RU/s trace")
    parser.add_argument("--endpoint", help="Cosmos endpoint (default: the local stack's gateway)")
    parser.add_argument("--key", help="account key (default: the emulator's well-known key)")
    parser.add_argument("--database", required=True)
    parser.add_argument("--container", required=True)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--provisioned-ru", type=float, default=5000.0)
    parser.add_argument("--trace", help="hour:fraction points, e.g. 0:0.4,11:0.85,24:0.4 (default: diurnal)")
    parser.add_argument(
        "--trace-file", help="CSV of timestamp,value per second or minute (Azure Monitor export; see read_trace_csv)"
    )
    parser.add_argument("--trace-unit", choices=TRACE_UNITS, default="auto", help="unit of --trace-file's values")
    parser.add_argument(
        "--trace-provisioned", type=float, help="RU/s the --trace-file's RU values were recorded against"
    )
    parser.add_argument("--trace-start-h", type=float, default=0.0)
    parser.add_argument("--trace-span-h", type=float, default=24.0, help="trace hours played during --duration-s")
    parser.add_argument("--max-requests", type=int)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--priority", choices=["High", "Low"])
    parser.add_argument("--mix", help="read:query:write shares, e.g. 0.9:0.1:0 (default 0.85:0.10:0.05)")
    parser.add_argument("--seed", type=int, help="random seed of the request mix and keys (default: random)")
    parser.set_defaults(func=_run_cli)
