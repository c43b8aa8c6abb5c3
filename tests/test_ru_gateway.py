"""The RU gateway against a real cosmosdb-server: charges, throttling, traffic classes, discovery, metrics."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.cosmos import PartitionKey

from devstack.ru_gateway import (
    METRICS_NAMESPACE,
    SUBSTATUS_THROUGHPUT_BUCKET_EXCEEDED,
    FaultSpec,
    FaultSpecError,
    Gateway,
    GatewaySettings,
    GatewaySettingsError,
    start_gateway,
)
from devstack.stack import EMULATOR_COSMOS_KEY, REPO_ROOT, free_port, trusting
from devstack.tls import ensure_local_tls
from include.cosmos_archiver.clients import cosmos_client
from include.cosmos_archiver.ru.budget import served_at

DB, COLL = "rugw", "records"
DOC_BYTES = 300 * 1024
LAUNCHER = REPO_ROOT / "devstack" / "cosmosdb_server_launcher.js"


@dataclass(frozen=True)
class Backend:
    url: str
    state_dir: Path
    doc_ids: tuple[str, ...]


def _wait_https(url: str, ca: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, verify=str(ca), timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout_s}s")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A real cosmosdb-server on a free loopback port, seeded with a few ~300 KB documents."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 20 and run `npm ci`")
    state = tmp_path_factory.mktemp("rugw-state")
    tls = ensure_local_tls(state)
    port = free_port()
    log = open(state / "cosmosdb-server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [node, str(LAUNCHER), "127.0.0.1", str(port), str(tls.server_cert), str(tls.server_key)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=state,
    )
    try:
        with trusting(tls.ca_bundle):  # its own CA, also over a session stack's
            url = f"https://127.0.0.1:{port}"
            _wait_https(url + "/", tls.ca_cert)
            client = cosmos_client(url + "/", EMULATOR_COSMOS_KEY)
            container = client.create_database_if_not_exists(DB).create_container_if_not_exists(
                COLL, PartitionKey("/customerId")
            )
            ids = tuple(f"rec-{i}" for i in range(4))
            for i, doc_id in enumerate(ids):
                container.upsert_item({"id": doc_id, "customerId": f"cust-{i}", "payload": "x" * DOC_BYTES})
            yield Backend(url, state, ids)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _container(endpoint: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return cosmos_client(endpoint, EMULATOR_COSMOS_KEY, **kwargs).get_database_client(DB).get_container_client(COLL)  # type: ignore[arg-type]


def _charge(container) -> float:  # type: ignore[no-untyped-def]
    return float(container.client_connection.last_response_headers["x-ms-request-charge"])


def _raw_read(gateway: Gateway, backend: Backend, i: int = 0, **headers: str) -> requests.Response:
    """One point read without the SDK's retries (cosmosdb-server does not check the signature)."""
    return requests.get(
        f"{gateway.endpoint}dbs/{DB}/colls/{COLL}/docs/{backend.doc_ids[i]}",
        headers={"x-ms-documentdb-partitionkey": json.dumps([f"cust-{i}"]), **headers},
        verify=str(backend.state_dir / "tls" / "ca.pem"),
        timeout=10,
    )


def _at_start_of_second() -> None:
    time.sleep(math.ceil(time.time()) - time.time() + 0.005)


def test_charges_follow_the_model(backend: Backend) -> None:
    with start_gateway(backend.url, backend.state_dir) as gw:
        container = _container(gw.endpoint)
        container.read_item(backend.doc_ids[0], partition_key="cust-0")
        read_ru = _charge(container)
        assert 0.9 * 300 <= read_ru <= 1.1 * 300, read_ru
        ca = str(backend.state_dir / "tls" / "ca.pem")
        # (cosmosdb-server answers 500 for a missing id in an existing container, so use a missing container)
        missing = requests.get(f"{gw.endpoint}dbs/{DB}/colls/nope/docs/x", verify=ca, timeout=5)
        assert missing.status_code == 404 and float(missing.headers["x-ms-request-charge"]) == pytest.approx(1.0)
        container.upsert_item({"id": "w", "customerId": "cust-w", "payload": "y" * (60 * 1024)})
        write_ru = _charge(container)
        assert 4 * 60 <= write_ru <= 6 * 60, write_ru  # writes cost ~5x reads per KB
        rows = list(container.query_items("SELECT * FROM c WHERE c.customerId = 'cust-1'", partition_key="cust-1"))
        assert len(rows) == 1
        assert 300 <= _charge(container) <= 1.1 * 300 + 3  # page bytes + per-page overhead
        account = requests.get(gw.endpoint, verify=ca, timeout=5)
        assert float(account.headers["x-ms-request-charge"]) == pytest.approx(1.0)
        container.delete_item("w", partition_key="cust-w")
        # a delete is charged by the size of what it removes, also when the gateway never saw the document read
        # (written by an upsert, found by a query: the purge's case)
        assert 4 * 60 <= _charge(container) <= 6 * 60 + 5


def test_over_budget_gets_cosmos_429_and_the_sdk_retries(backend: Backend) -> None:
    settings = GatewaySettings(provisioned_ru=1000)
    with start_gateway(backend.url, backend.state_dir, settings=settings) as gw:
        container = _container(gw.endpoint)
        started = time.monotonic()
        statuses: list[int] = []
        for _ in range(8):  # 8 x ~300 RU at 1000 RU/s: needs > 2 s and some retries
            item = container.read_item(
                backend.doc_ids[1],
                partition_key="cust-1",
                raw_response_hook=lambda r: statuses.append(r.http_response.status_code),
            )
            assert item["id"] == backend.doc_ids[1]
        elapsed = time.monotonic() - started
        assert statuses.count(429) > 0 and statuses.count(200) == 8, statuses
        assert gw.stats()["totals"]["archiver"]["throttled"] == statuses.count(429)
        # 2,400 RU at 1,000 RU/s spans at least three one-second windows, whatever the phase it starts in.
        assert elapsed > 1.0, elapsed
        # The raw answer has Cosmos's shape: status, retry-after to the next window, substatus, JSON error body.
        _at_start_of_second()
        answers = [_raw_read(gw, backend, 1) for _ in range(5)]
        throttled = [r for r in answers if r.status_code == 429]
        assert throttled, [r.status_code for r in answers]
        first = throttled[0]
        assert 0 < int(first.headers["x-ms-retry-after-ms"]) <= 1000
        assert first.headers["x-ms-substatus"] == "3200"
        assert first.json()["code"] == "429" and "Request rate is large" in first.json()["message"]


def test_traffic_classes_are_counted_apart(backend: Backend) -> None:
    with start_gateway(backend.url, backend.state_dir) as gw:
        archiver = _container(gw.endpoint)
        business = _container(gw.endpoint, user_agent="business-app")
        for _ in range(2):
            archiver.read_item(backend.doc_ids[0], partition_key="cust-0")
        for _ in range(3):
            business.read_item(backend.doc_ids[2], partition_key="cust-2")
        assert _raw_read(gw, backend, 3, **{"x-cosmos-archive-traffic": "archiver"}).status_code == 200
        totals = gw.stats()["totals"]
        doc_ru = _charge(archiver)
        # point reads dominate; client start-up adds a few 1-RU metadata calls per client
        assert 3 * doc_ru <= totals["archiver"]["ru"] <= 3 * doc_ru + 15
        assert 3 * doc_ru <= totals["business"]["ru"] <= 3 * doc_ru + 15
        assert totals["archiver"]["requests"] >= 3 and totals["business"]["requests"] >= 3
        per_second = gw.stats(seconds=30)["per_second"]
        assert sum(row["business"]["ru"] for row in per_second) == pytest.approx(totals["business"]["ru"])


def test_answers_are_dated_in_the_second_their_ru_is_booked(backend: Backend) -> None:
    """A spender books its own RU by the answer's Date (ru_budget.served_at), so that second must be the one the
    gateway's metrics book it in, not the backend's clock nor the client's."""
    with start_gateway(backend.url, backend.state_dir, settings=GatewaySettings(provisioned_ru=100_000)) as gw:
        by_date: dict[int, float] = {}
        deadline = time.monotonic() + 2.5  # reads across at least two second boundaries
        while time.monotonic() < deadline:
            answer = _raw_read(gw, backend, 2)
            assert answer.status_code == 200
            assert len(answer.raw.headers.getlist("Date")) == 1, answer.raw.headers.getlist("Date")
            second = int(served_at(answer.headers))
            by_date[second] = by_date.get(second, 0.0) + float(answer.headers["x-ms-request-charge"])
        assert len(by_date) >= 3
        booked = {
            row["second"]: row["archiver"]["ru"] + row["business"]["ru"] for row in gw.stats(seconds=30)["per_second"]
        }
        for second, ru in by_date.items():
            assert booked[second] == pytest.approx(ru, rel=1e-4), (second, by_date, booked)  # headers: 2 decimals


def _scenario_in_one_second(gw: Gateway, backend: Backend, steps: list[dict[str, str]]) -> list[requests.Response]:
    """Run raw reads inside one one-second window (retried if the window rolled over mid-way)."""
    for _ in range(4):
        time.sleep(1.1)  # let any overspend carried from earlier seconds drain
        _at_start_of_second()
        second = math.floor(time.time())
        answers = [_raw_read(gw, backend, 0, **headers) for headers in steps]
        if math.floor(time.time()) == second:
            return answers
    raise AssertionError("could not fit the scenario into one second")


def test_low_priority_is_throttled_before_high(backend: Backend) -> None:
    settings = GatewaySettings(provisioned_ru=1000, low_priority_fraction=0.5)
    with start_gateway(backend.url, backend.state_dir, settings=settings) as gw:
        assert _raw_read(gw, backend).status_code == 200  # teaches the gateway this collection's document size
        low, high = {"x-ms-cosmos-priority-level": "Low"}, {"x-ms-cosmos-priority-level": "High"}
        answers = _scenario_in_one_second(gw, backend, [high, low, high])
        assert [r.status_code for r in answers] == [200, 429, 200]
        # The SDK sends the header: a Low client is refused in a second where a High one still gets through.
        low_client = _container(gw.endpoint, priority="Low")
        low_client.read_item(backend.doc_ids[0], partition_key="cust-0")
        sent = low_client.client_connection.last_response_headers
        assert float(sent["x-ms-request-charge"]) > 250


def test_throughput_bucket_over_its_share_gets_3212(backend: Backend) -> None:
    settings = GatewaySettings(provisioned_ru=2000, throughput_buckets={1: 20})  # bucket 1: 400 RU/s
    with start_gateway(backend.url, backend.state_dir, settings=settings) as gw:
        assert _raw_read(gw, backend).status_code == 200
        bucket = {"x-ms-cosmos-throughput-bucket": "1"}
        answers = _scenario_in_one_second(gw, backend, [bucket, bucket, {}])
        assert [r.status_code for r in answers] == [200, 429, 200]
        assert answers[1].headers["x-ms-substatus"] == str(SUBSTATUS_THROUGHPUT_BUCKET_EXCEEDED)
        # The SDK's throughput_bucket option reaches the gateway: its bucket share is enforced.
        in_bucket = _container(gw.endpoint, throughput_bucket=1)
        statuses: list[int] = []
        for _ in range(3):
            in_bucket.read_item(
                backend.doc_ids[0],
                partition_key="cust-0",
                raw_response_hook=lambda r: statuses.append(r.http_response.status_code),
            )
        assert statuses.count(429) >= 1 and statuses.count(200) == 3, statuses


def test_serverless_account_honours_neither_priority_nor_buckets(backend: Backend) -> None:
    """On a serverless account (the seed's) Azure offers no priority-based execution and no throughput buckets:
    the headers reach the gateway but change nothing; only the account's RU/s limit throttles."""
    settings = GatewaySettings(
        provisioned_ru=1000, low_priority_fraction=0.5, throughput_buckets={1: 20}, account_mode="serverless"
    )
    with start_gateway(backend.url, backend.state_dir, settings=settings) as gw:
        assert gw.stats()["config"]["account_mode"] == "serverless"
        assert _raw_read(gw, backend).status_code == 200
        low, bucket = {"x-ms-cosmos-priority-level": "Low"}, {"x-ms-cosmos-throughput-bucket": "1"}
        # ~300 RU each: in provisioned mode the Low read (over 50 %) and the second bucket read (over 20 %) are 429s
        answers = _scenario_in_one_second(gw, backend, [{}, low, bucket])
        assert [r.status_code for r in answers] == [200, 200, 200]
        answers = _scenario_in_one_second(gw, backend, [bucket, bucket, low, low])
        assert [r.status_code for r in answers] == [200, 200, 200, 429]  # the account's 1000 RU/s still holds
        assert answers[3].headers["x-ms-substatus"] == "3200"
        ca = str(backend.state_dir / "tls" / "ca.pem")
        # switched at run time: the same Low read is refused again once the account is provisioned
        url = f"{gw.endpoint}_gateway/config"
        assert requests.post(url, json={"account_mode": "provisioned"}, verify=ca, timeout=5).json()[
            "account_mode"
        ] == "provisioned"
        answers = _scenario_in_one_second(gw, backend, [{}, low])
        assert [r.status_code for r in answers] == [200, 429]
        bad = requests.post(url, json={"account_mode": "dedicated"}, verify=ca, timeout=5)
        assert bad.status_code == 400 and "dedicated" in bad.json()["error"]


def test_endpoint_discovery_stays_on_the_gateway(backend: Backend) -> None:
    with start_gateway(backend.url, backend.state_dir) as gw:
        ca = str(backend.state_dir / "tls" / "ca.pem")
        account = requests.get(gw.endpoint, verify=ca, timeout=5)
        backend_port = backend.url.rsplit(":", 1)[1]
        assert f":{backend_port}" not in account.text and f":{backend_port}" not in account.headers["content-location"]
        locations = account.json()["writableLocations"] + account.json()["readableLocations"]
        assert {loc["databaseAccountEndpoint"] for loc in locations} == {gw.endpoint}
        client = cosmos_client(gw.endpoint, EMULATOR_COSMOS_KEY)
        container = client.get_database_client(DB).get_container_client(COLL)
        container.read_item(backend.doc_ids[0], partition_key="cust-0")  # after discovery
        assert client.client_connection.WriteEndpoint == gw.endpoint
        assert client.client_connection.ReadEndpoint == gw.endpoint
        before = gw.stats()["totals"]["archiver"]["requests"]
        for _ in range(3):
            container.read_item(backend.doc_ids[0], partition_key="cust-0")
        assert gw.stats()["totals"]["archiver"]["requests"] >= before + 3  # (plus any metadata the SDK refreshes)


class _StaticToken:
    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("local-gateway-token", int(time.time()) + 3600)


def test_metrics_answer_the_real_metrics_client(backend: Backend) -> None:
    from azure.monitor.querymetrics import MetricAggregationType, MetricsClient

    with start_gateway(backend.url, backend.state_dir) as gw:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        _container(gw.endpoint).read_item(backend.doc_ids[0], partition_key="cust-0")
        _container(gw.endpoint, user_agent="business-app").read_item(backend.doc_ids[1], partition_key="cust-1")
        time.sleep(1.1)  # the current second becomes visible once it has ended
        client = MetricsClient(gw.metrics_endpoint, _StaticToken())
        end = dt.datetime.now(dt.UTC)
        results = client.query_resources(
            resource_ids=[gw.resource_id],
            metric_namespace=METRICS_NAMESPACE,
            metric_names=["TotalRequestUnits"],
            timespan=(start, end),
            granularity=dt.timedelta(seconds=1),
            aggregations=[MetricAggregationType.TOTAL],
            filter="TrafficClass eq '*'",
        )
        series = {
            ts.metadata_values["TrafficClass"]: sum(p.total or 0 for p in ts.data)
            for ts in results[0].metrics["TotalRequestUnits"].timeseries
        }
        totals = gw.stats()["totals"]
        assert series["archiver"] == pytest.approx(totals["archiver"]["ru"], rel=1e-6)
        assert series["business"] == pytest.approx(totals["business"]["ru"], rel=1e-6)
        assert 250 < series["business"] < 400

        normalized = client.query_resources(
            resource_ids=[gw.resource_id],
            metric_namespace=METRICS_NAMESPACE,
            metric_names=["NormalizedRUConsumption"],
            timespan=(start, end),
            granularity=dt.timedelta(minutes=1),
            aggregations=[MetricAggregationType.MAXIMUM],
        )[0].metrics["NormalizedRUConsumption"]
        assert normalized.unit == "Percent"
        peak = max(p.maximum or 0 for ts in normalized.timeseries for p in ts.data)
        assert 250 / 5000 * 100 < peak <= 100

        gw.update_settings(reporting_delay_s=120)  # Azure Monitor's lateness: recent points carry no value yet
        delayed = client.query_resources(
            resource_ids=[gw.resource_id],
            metric_namespace=METRICS_NAMESPACE,
            metric_names=["TotalRequestUnits"],
            timespan=(start, end),
            granularity=dt.timedelta(seconds=1),
            aggregations=[MetricAggregationType.TOTAL],
        )[0].metrics["TotalRequestUnits"]
        points = [p for ts in delayed.timeseries for p in ts.data]
        assert points and all(p.total is None for p in points)


def test_bad_settings_are_refused_with_the_value(backend: Backend) -> None:
    with pytest.raises(GatewaySettingsError, match="-5"):
        GatewaySettings(provisioned_ru=-5)
    with pytest.raises(GatewaySettingsError, match=r"1\.5"):
        GatewaySettings(low_priority_fraction=1.5)
    with pytest.raises(GatewaySettingsError, match="150"):
        GatewaySettings(throughput_buckets={1: 150})
    with start_gateway(backend.url, backend.state_dir) as gw:
        ca = str(backend.state_dir / "tls" / "ca.pem")
        bad = requests.post(f"{gw.endpoint}_gateway/config", json={"provisioned_ru": -1}, verify=ca, timeout=5)
        assert bad.status_code == 400 and "-1" in bad.json()["error"]
        ok = requests.post(f"{gw.endpoint}_gateway/config", json={"provisioned_ru": 1234}, verify=ca, timeout=5)
        assert ok.status_code == 200 and gw.settings.provisioned_ru == 1234
    for args, needle in (
        (["--provisioned-ru", "-5"], "-5"),
        (["--low-priority-fraction", "1.5"], "1.5"),
        (["--port", "70000"], "70000"),
        (["--backend", "http://127.0.0.1:1"], "http://127.0.0.1:1"),
        (["--account", "dedicated"], "dedicated"),
    ):
        argv = {"--port": str(free_port()), "--backend": backend.url, "--state-dir": str(backend.state_dir)}
        argv.update(dict(zip(args[::2], args[1::2], strict=True)))
        cmd = [sys.executable, "-m", "devstack.ru_gateway", *[x for kv in argv.items() for x in kv]]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=30)
        assert done.returncode == 2 and needle in done.stderr, (args, done.stderr)


def test_runs_as_a_process(backend: Backend) -> None:
    port = free_port()
    cmd = [
        sys.executable, "-m", "devstack.ru_gateway", "--port", str(port), "--backend", backend.url,
        "--state-dir", str(backend.state_dir), "--provisioned-ru", "4000", "--throughput-bucket", "2=50",
        "--account", "serverless",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ca = str(backend.state_dir / "tls" / "ca.pem")
        _wait_https(f"https://127.0.0.1:{port}/_gateway/health", backend.state_dir / "tls" / "ca.pem")
        container = _container(f"https://127.0.0.1:{port}/")
        container.read_item(backend.doc_ids[0], partition_key="cust-0")
        assert _charge(container) > 250
        config = requests.get(f"https://127.0.0.1:{port}/_gateway/stats", verify=ca, timeout=5).json()["config"]
        assert config["provisioned_ru"] == 4000 and config["throughput_buckets"] == {"2": 50.0}
        assert config["account_mode"] == "serverless"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_stopped_gateway_answers_nothing_even_on_kept_alive_connections(backend: Backend) -> None:
    ca = str(backend.state_dir / "tls" / "ca.pem")
    session = requests.Session()
    with start_gateway(backend.url, backend.state_dir) as gw:
        assert session.get(f"{gw.endpoint}_gateway/config", verify=ca, timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        session.get(f"{gw.endpoint}_gateway/config", verify=ca, timeout=5)


def test_faults_are_injected_on_request_and_end_by_themselves(backend: Backend) -> None:
    ca = str(backend.state_dir / "tls" / "ca.pem")
    with start_gateway(backend.url, backend.state_dir) as gw:
        url = f"{gw.endpoint}_gateway/faults"
        assert _raw_read(gw, backend).status_code == 200
        # a 429 storm of two answers: Cosmos's shape, whatever the RU budget says; then normal service
        started = requests.post(url, json={"kind": "throttle", "count": 2, "retry_after_ms": 50}, verify=ca, timeout=5)
        assert started.status_code == 200 and started.json()["active"][0]["kind"] == "throttle"
        answers = [_raw_read(gw, backend) for _ in range(3)]
        assert [r.status_code for r in answers] == [429, 429, 200]
        assert answers[0].headers["x-ms-retry-after-ms"] == "50" and answers[0].headers["x-ms-substatus"] == "3200"
        # a 5xx, then a slow answer, in one POST (a list)
        both = [{"kind": "error", "status": 500, "count": 1}, {"kind": "slow", "delay_s": 0.6, "count": 1}]
        assert requests.post(url, json=both, verify=ca, timeout=5).status_code == 200
        assert _raw_read(gw, backend).status_code == 500
        t0 = time.monotonic()
        assert _raw_read(gw, backend).status_code == 200
        assert time.monotonic() - t0 >= 0.6
        # only the traffic class named: business-only faults leave the archiver alone
        gw.inject(kind="error", count=1, traffic="business")
        assert _raw_read(gw, backend, **{"x-cosmos-archive-traffic": "archiver"}).status_code == 200
        assert _raw_read(gw, backend, **{"x-cosmos-archive-traffic": "business"}).status_code == 503
        # a connection reset: no answer at all, the next connection is served
        gw.inject(kind="reset", count=1)
        with pytest.raises(requests.ConnectionError):
            _raw_read(gw, backend)
        assert _raw_read(gw, backend).status_code == 200
        # down for a while: every connection refused, then back by itself
        gw.inject(kind="down", duration_s=1.0)
        with pytest.raises(requests.ConnectionError):
            _raw_read(gw, backend)
        time.sleep(1.1)
        assert _raw_read(gw, backend).status_code == 200
        state = requests.get(url, verify=ca, timeout=5).json()
        assert state["active"] == []
        assert state["injected"]["throttle"] == 2 and state["injected"]["error"] == 2
        assert state["injected"]["reset"] == 1 and state["injected"]["slow"] == 1 and state["injected"]["down"] >= 1
        # the SDK rides out a short 429 storm on its own retries
        gw.inject(kind="throttle", count=3, retry_after_ms=20)
        statuses: list[int] = []
        _container(gw.endpoint).read_item(
            backend.doc_ids[0],
            partition_key="cust-0",
            raw_response_hook=lambda r: statuses.append(r.http_response.status_code),
        )
        assert statuses.count(429) == 3 and statuses[-1] == 200, statuses
        # cleared on request; bad specifications name the value
        gw.inject(kind="error", duration_s=60)
        assert requests.delete(url, verify=ca, timeout=5).json()["active"] == []
        assert _raw_read(gw, backend).status_code == 200
        for bad, needle in (
            ({"kind": "meteor", "count": 1}, "meteor"),
            ({"kind": "error", "count": 1, "status": 404}, "404"),
            ({"kind": "slow"}, "duration_s or count"),
            ({"kind": "reset", "count": 1, "rate": 2}, "rate=2"),
            ({"kind": "reset", "count": 1, "when": "now"}, "when"),
        ):
            answer = requests.post(url, json=bad, verify=ca, timeout=5)
            assert answer.status_code == 400 and needle in answer.json()["error"], (bad, answer.text)


def test_a_fault_plan_ends_by_count_and_duration_and_hits_its_share() -> None:
    """The plan's own logic, on a fake clock (no servers)."""
    from devstack.ru_gateway.faults import FaultPlan

    now = [0.0]
    plan = FaultPlan(clock=lambda: now[0])
    plan.add(FaultSpec(kind="error", count=2, traffic="archiver"))
    assert plan.draw("business") is None
    assert [plan.draw("archiver") is not None for _ in range(3)] == [True, True, False]
    plan.add(FaultSpec(kind="slow", duration_s=1.0))
    assert plan.draw("business", metadata=True) is None  # only 'down' meets metadata requests
    assert plan.draw("business") is not None
    now[0] = 1.0
    assert plan.draw("business") is None and plan.to_json()["active"] == []
    plan.add(FaultSpec(kind="reset", duration_s=100, rate=0.25, seed=7))
    hits = sum(plan.draw("archiver") is not None for _ in range(2000))
    assert 400 <= hits <= 600, hits  # a quarter of the requests, seeded
    plan.clear()
    plan.add(FaultSpec(kind="down", duration_s=1.0))
    assert plan.down() and plan.draw("business", metadata=True) is not None
    assert plan.to_json()["injected"] == {"error": 2, "slow": 1, "reset": hits, "down": 2}
    with pytest.raises(FaultSpecError, match="count=0"):
        FaultSpec(kind="error", count=0)
