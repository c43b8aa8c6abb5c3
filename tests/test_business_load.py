"""The business-load generator against the local stack (cosmosdb-server behind the RU gateway)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from azure.cosmos import PartitionKey

from devstack import cli, stack
from devstack.business_load import BusinessLoad, LoadMix, LoadTrace, run_business_load
from include.cosmos_archiver.clients import cosmos_client

DB, COLL = "bizload", "records"
PROVISIONED = 2000.0


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.StackConfig]:
    """A stack under the seed charge model (issue 17): there a 30 KB read costs ~30 RU, so three workers can load
    2,000 RU/s; under the published model it costs ~2.6 RU and the load would need ~10x the requests per second,
    more than two shared cores serve. The load generator paces on the reported charge either way."""
    config = stack.StackConfig(
        charge_model="seed",
        state_dir=tmp_path_factory.mktemp("bizload-stack"),
        cosmos_port=stack.free_port(),
        blob_port=stack.free_port(),
        cosmos_backend_port=stack.free_port(),
        provisioned_ru=PROVISIONED,
    )
    with stack.running_stack(config):
        # seed straight into cosmosdb-server so that setup spends no gateway budget
        direct = cosmos_client(config.cosmos_backend_endpoint, stack.EMULATOR_COSMOS_KEY)
        container = direct.create_database_if_not_exists(DB).create_container_if_not_exists(
            COLL, PartitionKey("/customerId")
        )
        for i in range(20):
            container.upsert_item({"id": f"r{i}", "customerId": f"c{i % 5}", "payload": "p" * 30_000})
        yield config


def _stats(config: stack.StackConfig) -> dict:
    ca = stack.ensure_local_tls(config.state_dir).ca_cert
    return requests.get(config.gateway_stats_url, verify=str(ca), timeout=5).json()


def _settled_totals(config: stack.StackConfig) -> dict:
    """Totals once the archiver column has stopped moving.

    An azure-cosmos client checks endpoint health from a daemon thread after its first request, so a client an
    earlier test made can still land a request a moment later; compare totals only once that has settled.
    """
    totals = _stats(config)["totals"]
    for _ in range(20):
        time.sleep(0.25)
        again = _stats(config)["totals"]
        if again["archiver"] == totals["archiver"]:
            return again
        totals = again
    raise AssertionError(f"archiver traffic did not settle in 5 s: {totals['archiver']}")


def _set_gateway(config: stack.StackConfig, **settings: float) -> None:
    ca = stack.ensure_local_tls(config.state_dir).ca_cert
    url = f"{config.cosmos_endpoint}_gateway/config"
    assert requests.post(url, json=settings, verify=str(ca), timeout=5).status_code == 200


def test_stack_puts_the_gateway_in_front(local_stack: stack.StackConfig) -> None:
    assert local_stack.backend_port != local_stack.cosmos_port
    states = stack.status(local_stack)
    assert set(states) == {"cosmosdb-server", "ru-gateway", "azurite-blob"}
    assert all("healthy" in s and "UNHEALTHY" not in s for s in states.values()), states
    stats = _stats(local_stack)
    assert stats["config"]["provisioned_ru"] == PROVISIONED
    assert stats["config"]["account_mode"] == "provisioned"  # the stack passes its account mode to the gateway
    assert stats["config"]["backend"] == local_stack.cosmos_backend_endpoint.rstrip("/")
    container = cosmos_client(local_stack.cosmos_endpoint, stack.EMULATOR_COSMOS_KEY).get_database_client(DB)
    container.get_container_client(COLL).read_item("r0", partition_key="c0")
    assert _stats(local_stack)["totals"]["archiver"]["requests"] > stats["totals"]["archiver"]["requests"]


def test_stack_rejects_bad_provisioned_ru(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSMOS_ARCHIVE_PROVISIONED_RU", "-3")
    with pytest.raises(stack.StackError, match="-3"):
        stack.StackConfig.from_env()
    monkeypatch.delenv("COSMOS_ARCHIVE_PROVISIONED_RU")
    monkeypatch.setenv("COSMOS_ARCHIVE_ACCOUNT_MODE", "Serverless")
    assert stack.StackConfig.from_env().account_mode == "serverless"
    monkeypatch.setenv("COSMOS_ARCHIVE_ACCOUNT_MODE", "dedicated")
    with pytest.raises(stack.StackError, match="dedicated"):
        stack.StackConfig.from_env()


def test_load_follows_the_trace_and_counts_as_business(local_stack: stack.StackConfig) -> None:
    before = _settled_totals(local_stack)
    result = run_business_load(
        local_stack.cosmos_endpoint, stack.EMULATOR_COSMOS_KEY, DB, COLL, LoadTrace.constant(0.5), duration_s=4,
        provisioned_ru=PROVISIONED, workers=3, seed=1,
    )  # fmt: skip
    after = _stats(local_stack)["totals"]
    rate = result.ru / result.elapsed_s
    assert 0.6 * 0.5 * PROVISIONED <= rate <= 1.25 * 0.5 * PROVISIONED, result.as_dict()
    assert result.failed == 0 and result.by_operation["read"] > result.by_operation.get("write", 0)
    business_ru = after["business"]["ru"] - before["business"]["ru"]
    assert result.ru <= business_ru <= result.ru + 50  # + the clients' metadata calls
    assert after["archiver"] == before["archiver"]
    assert after["business"]["throttled"] - before["business"]["throttled"] == result.throttled_429


def test_a_spike_above_provisioned_gets_429s(local_stack: stack.StackConfig) -> None:
    small = 600.0  # the gateway's budget is changed at run time, well below what 4 workers can send
    _set_gateway(local_stack, provisioned_ru=small)
    try:
        time.sleep(1.1)
        result = run_business_load(
            local_stack.cosmos_endpoint, stack.EMULATOR_COSMOS_KEY, DB, COLL, LoadTrace.constant(1.5), duration_s=5,
            provisioned_ru=small, workers=4, mix=LoadMix(read=1, query=0, write=0), seed=2,
        )  # fmt: skip
    finally:
        _set_gateway(local_stack, provisioned_ru=PROVISIONED)
    assert result.throttled_429 > 0, result.as_dict()
    # The budget is per one-second window: a run of 5.0 s touches up to 6 windows (its first and last are partial),
    # so the gateway holds the line when the RU served fit those windows' budgets (the load asked for 1.5x per second).
    windows = math.ceil(result.elapsed_s) + 1
    assert result.ru <= small * windows, result.as_dict()


def test_load_is_bounded_by_requests_and_stop_event(local_stack: stack.StackConfig) -> None:
    load = BusinessLoad(local_stack.cosmos_endpoint, stack.EMULATOR_COSMOS_KEY, DB, COLL, workers=3)
    result = load.run(duration_s=30, provisioned_ru=PROVISIONED, max_requests=7)
    assert result.requests == 7 and result.elapsed_s < 10
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    again = load.run(LoadTrace.constant(0.2), duration_s=30, provisioned_ru=PROVISIONED, stop_event=stop)
    assert again.requests > 0 and again.elapsed_s < 3  # the same warmed clients, stopped early


def test_cli_load_subcommand(local_stack: stack.StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["load", "--endpoint", local_stack.cosmos_endpoint, "--database", DB, "--container", COLL,
         "--duration-s", "5", "--max-requests", "4", "--trace", "0:0.3,24:0.3", "--provisioned-ru", "2000",
         "--mix", "1:0:0", "--seed", "3"]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["requests"] == 4 and out["by_operation"] == {"read": 4}  # --mix 1:0:0: reads only
    assert cli.main(["load", "--database", DB, "--container", COLL, "--trace", "25:0.5"]) == 2
    assert "25" in capsys.readouterr().err
    assert cli.main(["load", "--database", DB, "--container", COLL, "--mix", "0.9:0.1"]) == 2
    assert "'0.9:0.1' must be read:query:write" in capsys.readouterr().err
    assert cli.main(["load", "--database", DB, "--container", COLL, "--trace-file", "no-such-trace.csv"]) == 2
    assert "cannot read trace file no-such-trace.csv" in capsys.readouterr().err
    both = ["--trace", "0:0.3,24:0.3", "--trace-file", "no-such-trace.csv"]
    assert cli.main(["load", "--database", DB, "--container", COLL, *both]) == 2
    assert "either --trace or --trace-file" in capsys.readouterr().err


def test_default_trace_is_diurnal_around_half_with_spikes() -> None:
    trace = LoadTrace.diurnal()
    assert 0.45 <= trace.mean() <= 0.55
    hourly = [trace.at(h * 3600 + m * 60) for h in range(24) for m in range(0, 60, 10)]
    assert max(hourly) > 0.8 and min(hourly) < 0.4
    spikes = [i for i in range(1, len(hourly)) if hourly[i] > 0.8 >= hourly[i - 1]]
    assert len(spikes) == 2
    assert trace.at(24 * 3600 + 5) == pytest.approx(trace.at(5))  # wraps around the day


def test_bad_load_arguments_name_the_value() -> None:
    with pytest.raises(ValueError, match="0:oops"):
        LoadTrace.parse("0:oops")
    with pytest.raises(ValueError, match=r"2\.5"):
        LoadTrace.constant(2.5)
    for kwargs, needle in (
        ({"duration_s": 0}, "duration_s=0"),
        ({"workers": 0}, "workers=0"),
        ({"user_agent": "x cosmos-archive"}, "cosmos-archive"),
        ({"provisioned_ru": -1}, "-1"),
    ):
        with pytest.raises(ValueError, match=needle):
            run_business_load("https://127.0.0.1:1/", "k", DB, COLL, **kwargs)  # type: ignore[arg-type]


def test_a_recorded_trace_file_plays_per_grain(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Azure Monitor's per-minute TotalRequestUnits (Sum) export: each minute's RU / 60 / provisioned, held for the
    minute; the shipped example traces all read."""
    path = tmp_path / "day.csv"
    path.write_text(
        "# provisioned_ru=5000\n"
        '"Timestamp","Total Request Units (Sum)"\n'
        '"2026-11-30 18:00:00",150000\n"2026-11-30 18:01:00",300000\n"2026-11-30 18:02:00",321000\n'
    )
    from devstack.business_load import read_trace_csv

    trace_file = read_trace_csv(path)
    assert (trace_file.grain_s, trace_file.rows, trace_file.unit) == (60.0, 3, "ru")
    trace = trace_file.trace
    assert trace.at(30) == pytest.approx(0.5) and trace.at(90) == pytest.approx(1.0)
    assert trace.at(150) == pytest.approx(1.07)  # above provisioned: a spike the business alone cannot be served
    assert read_trace_csv(path, provisioned_ru=4000).trace.at(30) == pytest.approx(0.625)  # the option wins
    for example in ("spike", "plateau", "square"):
        assert read_trace_csv(stack.REPO_ROOT / "bench" / "traces" / f"{example}.csv").rows > 60


def test_a_bad_trace_file_names_the_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from devstack.business_load import TraceFileError, read_trace_csv

    cases = {
        "time,fraction\n0,0.5\n1,half\n": r":3: value 'half' is not a number",
        "time,fraction\n0,0.5\nyesterday,0.4\n": r":3: 'yesterday' is not a timestamp",
        "time,fraction\n0,0.5\n2,0.4\n1,0.4\n": r":4: timestamp '1' is not after",
        "time,fraction\n0,0.5\n1,\n": r":3: no value after the timestamp",
        "time,fraction\n0,0.5\n1,2.5\n": r":3: value 2.5 is 250% of provisioned",
        "time,RU\n0,100\n60,200\n": r"need the provisioned RU/s",
        "time,value\n0,100\n60,200\n": r"cannot tell the unit",
        "time,percent\n0,50\n": r"at least two",
        "time,percent\n0,50\n60,50\n120,50\n90000,50\n": r"covers 25.0 h",
    }
    for text, needle in cases.items():
        path = tmp_path / "bad.csv"
        path.write_text(text)
        with pytest.raises(TraceFileError, match=needle):
            read_trace_csv(path)
    with pytest.raises(TraceFileError, match="cannot read trace file"):
        read_trace_csv(tmp_path / "missing.csv")
