"""The RU sensor against the real RU gateway (cosmosdb-server behind it, the real MetricsClient in front):
it blocks while a business spike is on, passes after it, times out with a clear message, and runs in a DAG."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from devstack.business_load import LoadMix, LoadTrace, run_business_load
from devstack.ru_gateway import GatewaySettings
from devstack.ru_lab import RuLab, ru_lab
from devstack.stack import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "plugins"))  # Airflow puts plugins/ on sys.path; so do we
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, TaskDeferred
from ru_sensor import CosmosRuQuietSensor, CosmosRuQuietTrigger

PROVISIONED = 1000.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuLab]:
    settings = GatewaySettings(provisioned_ru=PROVISIONED, reporting_delay_s=1.0)
    with ru_lab(tmp_path_factory.mktemp("sensor-lab"), settings=settings, docs=16, doc_kb=20) as lab:
        yield lab


def _sensor(lab: RuLab, **kwargs: object) -> CosmosRuQuietSensor:
    params: dict[str, object] = {
        "task_id": "wait_for_quiet_cosmos",
        "metrics_endpoint": lab.gateway.metrics_endpoint,
        "resource_id": lab.gateway.resource_id,
        "provisioned_ru_s": PROVISIONED,
        "threshold": 0.5,
        "quiet_window": timedelta(seconds=3),
        "grain": timedelta(seconds=1),  # the gateway's local PT1S grain stands in for Azure's PT1M
        "lagging_grains": 1,
        "database": lab.database,
        "collection": lab.container,
        "credential": "local",
        "connection_verify": str(lab.ca_bundle),
        **kwargs,
    }
    return CosmosRuQuietSensor(**params)  # type: ignore[arg-type]


def _spike(lab: RuLab, seconds: float) -> threading.Thread:
    thread = threading.Thread(
        target=run_business_load,
        args=(lab.endpoint, lab.key, lab.database, lab.container, LoadTrace.constant(0.85), seconds),
        kwargs={"provisioned_ru": PROVISIONED, "workers": 4, "mix": LoadMix(read=1, query=0, write=0)},
        daemon=True,
    )
    thread.start()
    return thread


def _wait_business_at_least(lab: RuLab, fraction: float, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        rows = lab.gateway.stats(3)["per_second"][:-1]
        if any(r["business"]["ru"] >= fraction * PROVISIONED for r in rows):
            return
        time.sleep(0.1)
    raise AssertionError(f"business load never reached {fraction:.0%} in {limit_s}s")


def test_sensor_blocks_during_a_spike_and_passes_after(lab: RuLab) -> None:
    sensor = _sensor(lab)
    spike = _spike(lab, 8.0)
    _wait_business_at_least(lab, 0.7, 6)
    time.sleep(2.2)  # reporting delay + one lagging grain: the spike is published
    assert sensor.poke({}) is False  # type: ignore[arg-type]
    with pytest.raises(TaskDeferred) as deferred:  # deferrable: the wait moves to the triggerer
        _sensor(lab, deferrable=True, poke_interval=0.5).execute({})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, CosmosRuQuietTrigger) and deferred.value.method_name == "execute_complete"
    # Timing out while the business is busy says so, in words an operator can act on.
    blocking = _sensor(lab, mode="poke", poke_interval=0.5, timeout=1.5)
    with pytest.raises(AirflowSensorTimeout, match=r"did not stay under 50% of 1,000 RU/s.*business is busy"):
        blocking.execute({})  # type: ignore[arg-type]
    spike.join()
    deadline = time.monotonic() + 45  # bounded; generous because a loaded 2-core CI machine lags the metrics
    passed = False
    while time.monotonic() < deadline and not passed:
        passed = sensor.poke({})  # type: ignore[arg-type]
        time.sleep(0.5)
    assert passed, "the sensor must open once the window after the spike is quiet"
    # The trigger, rebuilt from its serialized form as the triggerer does, fires once it is quiet.
    classpath, kwargs = trigger.serialize()
    assert classpath == "ru_sensor.CosmosRuQuietTrigger"

    async def first_event():  # type: ignore[no-untyped-def]
        async for event in CosmosRuQuietTrigger(**kwargs).run():
            return event

    event = asyncio.run(asyncio.wait_for(first_event(), 45))  # bounded; a loaded CI machine lags the metrics
    assert event.payload["status"] == "quiet", event.payload
    _sensor(lab, deferrable=True).execute_complete({}, event.payload)  # type: ignore[arg-type]


def test_sensor_defaults_and_bad_settings(lab: RuLab) -> None:
    sensor = _sensor(lab)
    assert sensor.mode == "reschedule"  # holds no worker slot while waiting
    with pytest.raises(ValueError, match=r"threshold=1\.5 must be in \(0, 1\]"):
        _sensor(lab, threshold=1.5)
    with pytest.raises(ValueError, match="credential='token' must be"):
        _sensor(lab, credential="token")


@pytest.mark.dag
def test_sensor_in_a_dag_test_run(lab: RuLab, tmp_path: Path) -> None:
    """A real Airflow task run (dag.test(), SQLite metadata DB in tmp) of a DAG whose first task is the sensor."""
    dag_file = tmp_path / "ru_gate_dag.py"
    dag_file.write_text(
        textwrap.dedent(
            f"""
            import datetime as dt
            from airflow.sdk import DAG
            from ru_sensor import CosmosRuQuietSensor, CosmosRuQuietTrigger

            with DAG("ru_gate_test", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False) as dag:
                CosmosRuQuietSensor(
                    task_id="wait_for_quiet_cosmos",
                    metrics_endpoint={lab.gateway.metrics_endpoint!r},
                    resource_id={lab.gateway.resource_id!r},
                    provisioned_ru_s={PROVISIONED},
                    threshold=0.5,
                    quiet_window=dt.timedelta(seconds=3),
                    grain=dt.timedelta(seconds=1),
                    lagging_grains=1,
                    credential="local",
                    connection_verify={str(lab.ca_bundle)!r},
                    mode="poke",
                    poke_interval=1,
                    timeout=20,
                )

            if __name__ == "__main__":
                from airflow.utils.db import initdb

                initdb()  # a fresh SQLite metadata DB (in-process: one interpreter start instead of two)
                run = dag.test()
                print("DAG_RUN_STATE", run.state)
            """
        )
    )
    home = tmp_path / "airflow-home"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")]),
    }
    done = subprocess.run(
        [sys.executable, str(dag_file)], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert "DAG_RUN_STATE success" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
